"""`spawn_detached` hands back a PID that /proc already shows running the program (kernel faked).

Regression test for "the first `make bench-propagation` after `make demo-down` failed with
`SeaweedFS exited during start-up` while that weed was running": `subprocess.Popen` returns as soon
as the child's exec has closed its close-on-exec pipe, but /proc/<pid>/cmdline stays empty until the
kernel has finished loading the new image (which waits on the disk when the 150 MB weed binary is
not in the page cache). The launcher printed the PID at once, `SeaweedServer.owns` then read an
empty command line, and start-up took a starting weed for a dead one.

Here no process runs: the launcher interpreter runs in this process, `Popen` starts nothing, and
/proc/<pid>/cmdline of the "child" stays empty for the first few looks, as during a slow exec.
"""

from __future__ import annotations

import contextlib
import io
import pathlib
import runpy
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from edgeroll.lab.processes import pid_cmdline, spawn_detached

pytestmark = pytest.mark.unit

PID = 4242
ARGV = ["/venv/bin/weed", "mini", "-dir=/lab/s3"]
LOOKS_DURING_EXEC = 3


class SlowExec:
    """/proc/<PID>/cmdline: empty for the first LOOKS_DURING_EXEC reads (exec still loading), then ARGV."""

    def __init__(self) -> None:
        self.looks = 0

    def cmdline(self) -> bytes:
        self.looks += 1
        return b"".join(a.encode() + b"\0" for a in ARGV) if self.looks > LOOKS_DURING_EXEC else b""


class RunningChild:
    def __init__(self, argv: Sequence[str], **kwargs: Any) -> None:
        assert list(argv) == ARGV
        self.pid = PID

    def poll(self) -> int | None:
        return None


def _python_in_process(cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`subprocess.run([sys.executable, [-I], (-c SOURCE | SCRIPT), ARGS...])`, run in this interpreter."""
    assert cmd[0] == sys.executable
    args = [a for a in cmd[1:] if a != "-I"]
    if args[0] == "-c":
        code, argv0, rest = compile(args[1], "<string>", "exec"), "-c", args[2:]
    else:
        code, argv0, rest = None, args[0], args[1:]
    out, err = io.StringIO(), io.StringIO()
    status = 0
    saved_argv = sys.argv
    sys.argv = [argv0, *rest]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if code is not None:
                exec(code, {"__name__": "__main__"})  # noqa: S102 - the launcher's own source
            else:
                runpy.run_path(argv0, run_name="__main__")
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved_argv
    return subprocess.CompletedProcess(list(cmd), status, out.getvalue(), err.getvalue())


def test_the_pid_spawn_detached_returns_already_shows_the_command_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    kernel = SlowExec()
    real_read_bytes = pathlib.Path.read_bytes

    def read_bytes(path: pathlib.Path) -> bytes:
        if str(path) == f"/proc/{PID}/cmdline":
            return kernel.cmdline()
        return real_read_bytes(path)

    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    monkeypatch.setattr(subprocess, "Popen", RunningChild)
    monkeypatch.setattr("edgeroll.lab.processes.subprocess.run", _python_in_process)

    pid = spawn_detached(ARGV, env={}, log=tmp_path / "weed.log", cwd=tmp_path)

    assert pid == PID
    assert pid_cmdline(pid) == ARGV  # what `SeaweedServer.owns` reads first
