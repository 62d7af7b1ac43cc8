"""`edgeroll crds`: print or write the CRDs and the field reference generated from the models.

Apart from `crds.py` because it needs both that module and `reference.py`, which reads the CRDs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeroll.api.crds import rendered_files, stale_files
from edgeroll.api.reference import render_reference


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--write", action="append", default=[], metavar="DIR", help="write the CRDs into DIR")
    parser.add_argument("--check", action="append", default=[], metavar="DIR", help="fail if DIR is stale")
    parser.add_argument("--reference", metavar="PATH", help="write the field reference (Markdown) to PATH")
    parser.add_argument("--check-reference", metavar="PATH", help="fail if the reference at PATH is stale")


def run(args: argparse.Namespace) -> int:
    files = rendered_files()
    reference, check_reference = getattr(args, "reference", None), getattr(args, "check_reference", None)
    if not args.write and not args.check and not reference and not check_reference:
        sys.stdout.write("---\n".join(files.values()))
        return 0
    if reference:
        Path(reference).write_text(render_reference())
        print(f"wrote {reference}")
    for directory in map(Path, args.write):
        directory.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (directory / name).write_text(content)
            print(f"wrote {directory / name}")
    status = 0
    for directory in map(Path, args.check):
        for name in stale_files(directory):
            print(f"{directory / name} is stale: run `make crds`", file=sys.stderr)
            status = 1
    if check_reference and (
        not Path(check_reference).is_file() or Path(check_reference).read_text() != render_reference()
    ):
        print(f"{check_reference} is stale: run `make crds`", file=sys.stderr)
        status = 1
    return status
