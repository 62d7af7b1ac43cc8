"""`edgeroll lab up | down | status`."""

from __future__ import annotations

import argparse
import sys

from edgeroll.lab.layout import LabPaths
from edgeroll.lab.lifecycle import down, status, up
from edgeroll.lab.processes import LabError
from edgeroll.lab.report import all_healthy, format_table
from edgeroll.lab.toolchain import find_repo_root


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    sub.add_parser("up", help="start the hub, edge-eu/us/ap and S3, or reuse a healthy lab; writes .lab/env")
    sub.add_parser("down", help="stop exactly the processes the lab started and remove its data")
    sub.add_parser("status", help="health of every lab component (exit 1 if any is down)")


def _log(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        root = find_repo_root()
        if args.lab_command == "up":
            report = up(root, log=_log)
            what = "reused a healthy lab" if not report.started else f"started {', '.join(report.started)}"
            _log(f"{what} in {report.seconds:.1f}s; env in {LabPaths(root).env}")
            print(format_table(status(root)))
            return 0
        if args.lab_command == "down":
            stopped = down(root, log=_log)
            _log(f"stopped {len(stopped.stopped)} processes in {stopped.seconds:.1f}s; no lab port listens")
            return 0
        rows = status(root)
        if not rows:
            print("no lab running (edgeroll lab up)")
            return 1
        print(format_table(rows))
        return 0 if all_healthy(rows) else 1
    except LabError as exc:
        _log(f"error: {exc}")
        return 1
