"""The lab's detached launcher (edgeroll/lab/launcher.py) and SeaweedFS start-up, with /proc faked.

The bug: `make bench-propagation` right after `make demo-down` failed with "SeaweedFS exited during
start-up" while weed ran. `Popen` returns once the child's exec has closed its close-on-exec pipe,
but /proc/<pid>/cmdline stays empty until the kernel has finished loading the new image, which waits
on the disk when the 150 MB weed binary is out of the page cache. The old launcher printed the PID
at once, and `SeaweedServer.owns` found an empty command line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from edgeroll.lab import launcher, seaweed
from edgeroll.lab.launcher import LaunchError, launch
from edgeroll.lab.processes import LabError
from edgeroll.lab.s3_config import s3_ports
from edgeroll.lab.seaweed import SeaweedServer
from edgeroll.lab.state import S3State

pytestmark = pytest.mark.unit

PID = 4242
WEED_CMDLINE = b"/venv/bin/weed\0mini\0-dir=/lab/s3\0"


class FakeChild:
    """A `subprocess.Popen` stand-in: `exit_after` polls it reports `exit_code` (None: runs on)."""

    instances: ClassVar[list[FakeChild]] = []

    def __init__(self, argv: list[str], **kwargs: Any) -> None:
        self.argv = argv
        self.kwargs = kwargs
        self.pid = PID
        self.polls = 0
        self.exit_after: int | None = None
        self.exit_code = 0
        self.killed = False
        FakeChild.instances.append(self)

    def poll(self) -> int | None:
        self.polls += 1
        if self.killed:
            return -9
        if self.exit_after is not None and self.polls > self.exit_after:
            return self.exit_code
        return None

    def kill(self) -> None:
        self.killed = True

    def wait(self) -> int:
        return -9 if self.killed else self.exit_code


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeChild]]:
    FakeChild.instances = []
    monkeypatch.setattr("edgeroll.lab.launcher.subprocess.Popen", FakeChild)
    yield FakeChild.instances


class ExecInProgress:
    """/proc/<pid>/cmdline of a child whose exec finishes after `reads_until_loaded` looks."""

    def __init__(self, reads_until_loaded: int) -> None:
        self.reads_until_loaded = reads_until_loaded
        self.reads = 0

    def __call__(self, pid: int) -> bytes:
        assert pid == PID
        self.reads += 1
        return WEED_CMDLINE if self.reads > self.reads_until_loaded else b""


def test_launch_returns_the_pid_only_once_proc_shows_the_new_command_line(
    children: list[FakeChild], tmp_path: Path
) -> None:
    cmdline = ExecInProgress(reads_until_loaded=3)

    pid = launch(["/venv/bin/weed", "mini"], tmp_path / "weed.log", cmdline=cmdline, sleep=lambda _: None)

    assert pid == PID
    assert cmdline.reads == 4  # three empty looks while the kernel was still loading the image
    assert children[0].argv == ["/venv/bin/weed", "mini"]
    assert children[0].kwargs["start_new_session"] is True
    assert (tmp_path / "weed.log").exists()


def test_an_exit_during_the_exec_is_reported_with_its_code(
    children: list[FakeChild], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cmdline = ExecInProgress(reads_until_loaded=10**6)  # a zombie's command line is empty too

    def exits_soon(argv: list[str], **kwargs: Any) -> FakeChild:
        child = FakeChild(argv, **kwargs)
        child.exit_after, child.exit_code = 2, 1
        return child

    monkeypatch.setattr("edgeroll.lab.launcher.subprocess.Popen", exits_soon)

    with pytest.raises(LaunchError, match=r"weed exited with code 1 as it started; see .*weed\.log"):
        launch(["/venv/bin/weed", "mini"], tmp_path / "weed.log", cmdline=cmdline, sleep=lambda _: None)


def test_an_exec_that_never_finishes_is_killed_after_the_timeout(
    children: list[FakeChild], tmp_path: Path
) -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(LaunchError, match="had not finished its exec after 1s"):
        launch(
            ["/venv/bin/weed", "mini"],
            tmp_path / "weed.log",
            timeout=1.0,
            cmdline=lambda _: b"",
            sleep=sleep,
            clock=lambda: now[0],
        )
    assert children[0].killed


def test_main_prints_the_pid_or_the_reason(
    children: list[FakeChild],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(launcher, "proc_cmdline", lambda _: WEED_CMDLINE)
    assert launcher.main([str(tmp_path / "weed.log"), "/venv/bin/weed", "mini"]) == 0
    assert capsys.readouterr().out == f"{PID}\n"

    def missing(argv: list[str], **kwargs: Any) -> FakeChild:
        raise FileNotFoundError(2, "No such file or directory", argv[0])

    monkeypatch.setattr("edgeroll.lab.launcher.subprocess.Popen", missing)
    assert launcher.main([str(tmp_path / "weed.log"), "/nowhere/weed", "mini"]) == 1
    assert "cannot execute /nowhere/weed" in capsys.readouterr().err


def _s3_state(tmp_path: Path) -> S3State:
    return S3State(
        endpoint="http://127.0.0.1:18333",
        bucket="edgeroll",
        region="us-east-1",
        access_key="edgeroll-lab",
        secret_key="secret",
        data_dir=tmp_path / "s3",
        log=tmp_path / "seaweedfs.log",
        ports=s3_ports(18333),
    )


@pytest.fixture
def started_weed(monkeypatch: pytest.MonkeyPatch) -> dict[int, list[str]]:
    """`SeaweedServer.start` with spawning, ports, /proc and HTTP faked; the dict is /proc's cmdlines."""
    proc: dict[int, list[str]] = {}
    monkeypatch.setattr(seaweed, "port_free", lambda _: True)
    monkeypatch.setattr(seaweed, "spawn_detached", lambda *a, **k: PID)
    monkeypatch.setattr(seaweed, "pid_alive", lambda pid: pid in proc)
    monkeypatch.setattr(seaweed, "pid_cmdline", lambda pid: proc.get(pid, []))
    monkeypatch.setattr(SeaweedServer, "healthy", lambda self: True)
    monkeypatch.setattr(SeaweedServer, "bucket_exists", lambda self: True)
    return proc


def test_seaweed_start_records_the_pid_of_a_recognised_weed(
    started_weed: dict[int, list[str]], tmp_path: Path
) -> None:
    state = _s3_state(tmp_path)
    started_weed[PID] = ["/venv/bin/weed", "mini", f"-dir={state.data_dir}"]

    assert SeaweedServer(state, Path("/venv/bin/weed")).start().pid == PID


def test_seaweed_start_tells_a_gone_weed_from_a_pid_running_something_else(
    started_weed: dict[int, list[str]], tmp_path: Path
) -> None:
    state = _s3_state(tmp_path)
    with pytest.raises(LabError, match="SeaweedFS exited during start-up"):
        SeaweedServer(state, Path("/venv/bin/weed")).start()

    started_weed[PID] = ["/usr/bin/sleep", "60"]
    with pytest.raises(LabError, match=f"SeaweedFS pid {PID} now runs /usr/bin/sleep 60, not weed mini"):
        SeaweedServer(state, Path("/venv/bin/weed")).start()
