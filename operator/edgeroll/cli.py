"""The `edgeroll` console script: `edgeroll operator | cache | lab | rollout | plan | crds`.

Each subcommand lives next to the code it drives and exposes
`add_arguments(parser)` and `run(args) -> int`; they are imported lazily so
that `edgeroll cache` does not pay for kopf and `edgeroll lab` for boto3.
The container image leaves the lab out (pyproject.toml excludes `edgeroll.lab`),
so a subcommand whose own module is missing ends with one line, not a traceback.

`kubectl-edgeroll` (`kubectl_main`) is the same program as a kubectl plugin: kubectl runs the
executable named `kubectl-edgeroll` on PATH for `kubectl edgeroll ...`, with the user's arguments and
environment (KUBECONFIG included). It offers the commands a kubectl user runs against the hub:
`rollout` and `plan`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "operator": ("edgeroll.operator_main", "run the kopf operator against the hub cluster"),
    "cache": ("edgeroll.cache.main", "run the edge cache server"),
    "lab": ("edgeroll.lab.cli", "start, stop and inspect the local multi-cluster lab"),
    "rollout": ("edgeroll.rollout.cli", "pause, resume, promote, abort or undo a rollout"),
    "plan": ("edgeroll.preview.cli", "preview a RouterConfig: waves, digests and changes; writes nothing"),
    "crds": ("edgeroll.api.crds_command", "print or write the CRDs generated from the models"),
}
KUBECTL_PLUGIN_COMMANDS = ("rollout", "plan")  # what `kubectl edgeroll` offers

# Why a subcommand's module can be missing by design, said instead of a traceback.
MISSING: dict[str, str] = {
    "lab": "the lab is a development tool and is not installed in this image (run it from a source checkout)",
}


class SubcommandUnavailable(Exception):
    """The module that implements a subcommand is not installed."""


def load(command: str) -> ModuleType:
    """Import the module behind `command`; SubcommandUnavailable if that module itself is missing.

    A ModuleNotFoundError for anything else (a dependency the module imports) propagates.
    """
    module_name = SUBCOMMANDS[command][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if not missing or not (module_name == missing or module_name.startswith(missing + ".")):
            raise
        reason = MISSING.get(command, f"{module_name} is not installed")
        raise SubcommandUnavailable(f"edgeroll {command}: {reason}") from None


def main(
    argv: Sequence[str] | None = None,
    prog: str = "edgeroll",
    commands: Sequence[str] = tuple(SUBCOMMANDS),
    description: str = __doc__.splitlines()[0],
) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = argv[0] if argv and argv[0] in commands else None
    try:
        for name in commands:
            sp = sub.add_parser(name, help=SUBCOMMANDS[name][1])
            if name == chosen:  # only import the module that will run
                load(name).add_arguments(sp)
        args, _ = parser.parse_known_args(argv) if chosen is None else (parser.parse_args(argv), None)
        module = load(args.command)
    except SubcommandUnavailable as exc:
        print(exc, file=sys.stderr)
        return 2
    return int(module.run(args))


def kubectl_main(argv: Sequence[str] | None = None) -> int:
    """`kubectl-edgeroll`, the kubectl plugin: `kubectl edgeroll rollout ...`, `kubectl edgeroll plan ...`."""
    what = "edgeroll as a kubectl plugin: rollout control and the plan preview, against the hub"
    return main(argv, prog="kubectl edgeroll", commands=KUBECTL_PLUGIN_COMMANDS, description=what)


if __name__ == "__main__":
    sys.exit(main())
