"""Process and port I/O for the lab: liveness, ownership, stopping by PID, spawning.

Lab processes are detached from whoever started them (kwokctl detaches its
components; `spawn_detached` does the same for weed), so they are children of
PID 1 and may linger as zombies until it reaps them. A zombie counts as gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeroll.lab.layout import LOOPBACK


class LabError(RuntimeError):
    """Something in the lab is not as it should be; the message says what and where."""


def wait_for(predicate: Callable[[], bool], *, timeout: float, interval: float, what: str) -> None:
    """Poll `predicate` until it is true; raise LabError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _task_state(stat_path: Path) -> str | None:
    try:
        stat = stat_path.read_text()
    except OSError:
        return None
    # Field 3, after the parenthesised command name (which may contain spaces).
    return stat.rpartition(")")[2].split()[0]


def pid_alive(pid: int) -> bool:
    """True while any thread of `pid` runs; zombies and reaped processes count as gone.

    Every thread counts: a dying Go process shows its leader thread as a zombie
    while the other threads still exit, and its sockets close only after the last.
    """
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reaps it if it happens to be our child
    proc = Path(f"/proc/{pid}")
    try:
        tasks = list((proc / "task").iterdir())
    except OSError:
        tasks = []
    states = [_task_state(task / "stat") for task in tasks] or [_task_state(proc / "stat")]
    return any(state not in (None, "Z", "X") for state in states)


def pid_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def pid_environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (part.decode(errors="replace").partition("=") for part in raw.split(b"\0") if part)
    return {key: value for key, _, value in pairs}


def find_pids(matches: Callable[[int], bool]) -> list[int]:
    """Live PIDs, other than ours, for which `matches(pid)` holds (a scan of /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            pid = int(entry.name)
            if matches(pid) and pid_alive(pid):
                found.append(pid)
    return sorted(found)


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid`, 0 if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def read_pid_file(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@dataclass(frozen=True)
class OwnedProcess:
    """A PID the lab started, how to recognise it (recycled PIDs), and what to call it in errors."""

    pid: int
    what: str
    owned: Callable[[int], bool]

    def running(self) -> bool:
        return pid_alive(self.pid) and self.owned(self.pid)


def stop_processes(targets: Sequence[OwnedProcess], *, grace: float) -> list[OwnedProcess]:
    """SIGTERM every target at once, SIGKILL what is left after `grace` seconds, wait until all are gone.

    A PID that is gone or now belongs to another program is left alone.
    Returns the targets that were signalled.
    """
    signalled = [t for t in targets if t.running()]
    for target in signalled:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target.pid, signal.SIGTERM)

    def remaining() -> list[OwnedProcess]:
        return [t for t in signalled if pid_alive(t.pid)]

    with contextlib.suppress(LabError):
        wait_for(lambda: not remaining(), timeout=grace, interval=0.1, what="lab processes to exit")
    for target in remaining():  # e.g. kube-apiserver drains for up to 60 s on SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.kill(target.pid, signal.SIGKILL)
    left = ", ".join(f"{t.what} (pid {t.pid})" for t in remaining())
    wait_for(lambda: not remaining(), timeout=10, interval=0.1, what=f"SIGKILL to end {left}")
    return signalled


def port_listening(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def port_free(port: int, host: str = LOOPBACK) -> bool:
    """True if nothing holds `port` on `host` (a bind test, not a connect)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As servers bind: SO_REUSEADDR ignores TIME_WAIT leftovers but not a listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def listener_pids(port: int) -> set[int]:
    """PIDs holding a listening TCP socket on `port` (any address), from /proc; those whose fds this
    process may not read are missed. Another lab on this machine may hold a port this one recorded
    while it was stopped: the lab must tell such a port from one of its own."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                # local address "ADDR:PORT" in hex; state 0A is LISTEN; field 9 is the socket's inode
                if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    if not inodes:
        return set()
    wanted = {f"socket:[{inode}]" for inode in inodes}
    holders: set[int] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in wanted for fd in (proc / "fd").iterdir()):
                holders.add(int(proc.name))
    return holders


# A throwaway interpreter starts the real process in its own session and exits, so the process
# is reparented to PID 1 and outlives the caller (a CLI run or a pytest session), just like
# kwokctl's components. `-I`: no user site, no PYTHON* settings, not even the script's directory
# on sys.path (the lab modules next to it are not for it).
_LAUNCHER = Path(__file__).with_name("launcher.py")


def spawn_detached(argv: Sequence[str], *, env: Mapping[str, str], log: Path, cwd: Path) -> int:
    """Start `argv` detached, output appended to `log`; returns its PID.

    The PID comes back only once the exec is complete, when /proc/<pid>/cmdline shows `argv`
    (see launcher.py), so an ownership check by command line holds from the first look.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [sys.executable, "-I", str(_LAUNCHER), str(log), *argv],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if out.returncode != 0 or not out.stdout.strip().isdigit():
        raise LabError(f"could not start {argv[0]}: {out.stderr.strip() or out.stdout.strip()}")
    return int(out.stdout.strip())


def run_logged(argv: Sequence[str], *, env: Mapping[str, str], log: Path, timeout: float, what: str) -> None:
    """Run a short command with output appended to `log`; raise LabError with its tail on failure.

    Output goes to a file, not a pipe: kwokctl's components inherit its stdout,
    and a pipe would keep `subprocess.run` waiting for them to exit.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    start = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            result = subprocess.run(
                list(argv),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"{what}: timed out after {timeout:.0f}s (log: {log})") from exc
    if result.returncode != 0:
        with log.open("rb") as f:
            f.seek(start)
            tail = f.read().decode(errors="replace").strip().splitlines()[-15:]
        raise LabError(f"{what}: exit {result.returncode} (log: {log})\n" + "\n".join(tail))
