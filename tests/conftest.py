"""Session-wide fixtures shared by every suite. Only `lab` lives here; put suite fixtures in the
suite's own conftest.py.

`lab` (session scope) is an `edgeroll.lab.Lab`: hub + edge-eu/us/ap + S3 (API in
`edgeroll/lab/__init__.py`). It reuses a running healthy lab (`make lab-up`) or starts one,
and at the end tears down only a lab this session started, and only if no other pytest
session is still using it (they hold `.lab/users.lock` shared). EDGEROLL_LAB_KEEP=1 keeps a
lab this session started running, for a fast re-run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from edgeroll.lab import Lab, LabError, UpReport, down, up
from edgeroll.lab.layout import LabPaths
from edgeroll.lab.locks import SharedUse
from edgeroll.lab.toolchain import find_repo_root

# Properties assert behaviour, not speed: on a 2-core CI machine shared with labs and kind clusters,
# Hypothesis's per-example deadline and slow-generation check fail runs that are correct.
settings.register_profile("edgeroll", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("edgeroll")


def _log(message: str) -> None:
    sys.stderr.write(f"\nlab: {message}")


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    root = find_repo_root()
    paths = LabPaths(root)
    use = SharedUse(paths.users_lock)  # before `up`, so a finishing session cannot tear it down under us
    had_lab = paths.state.exists()
    report: UpReport | None = None
    try:
        try:
            report = up(root, log=_log)
        except LabError as exc:
            pytest.fail(
                f"the lab did not come up: {exc}\n(logs in {paths.logs}; `edgeroll lab down` cleans up)"
            )
        how = "started" if report.fresh else "reusing"
        repaired = f" (restarted {', '.join(report.started)})" if report.started and not report.fresh else ""
        _log(f"{how} lab in {report.seconds:.1f}s{repaired}")
        yield report.lab
    finally:
        last_user = use.release_if_last()
        try:
            started_here = report.fresh if report is not None else not had_lab
            keep = os.environ.get("EDGEROLL_LAB_KEEP", "") not in ("", "0")
            if started_here and last_user and not keep:
                down(root, log=_log)
        finally:
            use.close()
