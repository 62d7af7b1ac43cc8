"""Start a program detached, and print its PID only once the program is really running.

`processes.spawn_detached` runs this file as a script (`python -I launcher.py LOG PROGRAM ARGS...`):
it starts PROGRAM in a session of its own with output appended to LOG, prints the PID and exits,
so the program is reparented to PID 1 and outlives the caller (a CLI run, a pytest session).
Standard library only: importing edgeroll would add a fifth of a second to every start.

Why it waits before printing the PID: `subprocess.Popen` returns as soon as the child's exec has
closed its close-on-exec pipe, but the kernel sets the new image's argument area, which is what
/proc/<pid>/cmdline shows, only later in the same exec, after mapping the binary. That step can wait
on the disk when the binary is not in the page cache (a 150 MB `weed` after a memory-hungry demo),
and meanwhile /proc/<pid>/cmdline is empty. A caller that recognises its process by its command line
(`SeaweedServer.owns`, which guards against recycled PIDs) would take a program that is still
starting for one that has exited. Here the launcher is the parent and does not reap the child, so
the PID cannot be reused while it waits: an empty command line means "exec not finished", and
`poll()` tells an exit apart.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

EXEC_TIMEOUT = 20.0  # below spawn_detached's 30 s for the whole launcher
POLL_INTERVAL = 0.001  # the exec normally finishes within milliseconds


class LaunchError(RuntimeError):
    pass


def proc_cmdline(pid: int) -> bytes:
    """The raw /proc/<pid>/cmdline: empty while an exec is still loading the image, and for a zombie."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def launch(
    argv: Sequence[str],
    log: Path,
    *,
    timeout: float = EXEC_TIMEOUT,
    cmdline: Callable[[int], bytes] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Start `argv` in a new session, output appended to `log`; return its PID once its exec is complete."""
    with log.open("ab") as out:
        try:
            child = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise LaunchError(f"cannot execute {argv[0]}: {exc}") from exc
    read_cmdline = cmdline or proc_cmdline
    deadline = clock() + timeout
    while True:
        code = child.poll()  # first: a zombie has an empty command line too
        if code is not None:
            raise LaunchError(f"{argv[0]} exited with code {code} as it started; see {log}")
        if read_cmdline(child.pid):
            return child.pid
        if clock() >= deadline:
            child.kill()
            child.wait()
            raise LaunchError(f"{argv[0]} had not finished its exec after {timeout:.0f}s; killed it")
        sleep(POLL_INTERVAL)


def main(args: Sequence[str]) -> int:
    if len(args) < 2:
        print("usage: launcher.py LOG PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    try:
        pid = launch(args[1:], Path(args[0]))
    except LaunchError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(pid)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
