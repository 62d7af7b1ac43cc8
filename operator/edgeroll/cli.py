"""The `edgeroll` console script: `edgeroll operator | cache | lab | rollout | crds`.

Each subcommand lives next to the code it drives and exposes
`add_arguments(parser)` and `run(args) -> int`; they are imported lazily so
that `edgeroll cache` does not pay for kopf and `edgeroll lab` for boto3.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "operator": ("edgeroll.operator_main", "run the kopf operator against the hub cluster"),
    "cache": ("edgeroll.cache.main", "run the edge cache server"),
    "lab": ("edgeroll.lab.cli", "start, stop and inspect the local multi-cluster lab"),
    "rollout": ("edgeroll.rollout.cli", "pause, resume, promote, abort or undo a rollout"),
    "crds": ("edgeroll.api.crds", "print or write the CRDs generated from the models"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="edgeroll", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text)
        if name == chosen:  # only import the module that will run
            importlib.import_module(module_name).add_arguments(sp)
    args, _ = parser.parse_known_args(argv) if chosen is None else (parser.parse_args(argv), None)
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    return int(module.run(args))


if __name__ == "__main__":
    sys.exit(main())
