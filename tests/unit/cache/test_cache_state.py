"""The state dir: atomic replacement, and nothing truncated or foreign is ever loaded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cache_testkit import SIGNING_KEY, config_body, signed_revision

from edgeroll.cache import state as state_module
from edgeroll.cache.fetcher import load_last_known_good
from edgeroll.cache.metrics import Metrics
from edgeroll.cache.revision import VerificationError
from edgeroll.cache.state import StateDir, StateError, StateIdentity

pytestmark = pytest.mark.unit


def new_state(tmp_path: Path, name: str = "router") -> StateDir:
    state = StateDir(tmp_path / "state", StateIdentity("ns", name))
    state.prepare()
    return state


class SimulatedCrash(BaseException):
    """Not an Exception: like a kill -9, no cleanup handler gets to run for it."""


def test_store_then_load_round_trips(tmp_path: Path) -> None:
    state = new_state(tmp_path)
    revision = signed_revision(config_body("v1"))
    state.store(revision)
    loaded = state.load(SIGNING_KEY)
    assert loaded is not None
    assert (loaded.digest, loaded.body, loaded.version) == (revision.digest, revision.body, "v1")


def test_empty_state_dir_has_no_revision(tmp_path: Path) -> None:
    assert new_state(tmp_path).load(SIGNING_KEY) is None


def test_crash_between_write_and_rename_keeps_the_old_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = new_state(tmp_path)
    old = signed_revision(config_body("old"))
    state.store(old)

    def crash(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise SimulatedCrash()

    monkeypatch.setattr(state_module.os, "replace", crash)
    with pytest.raises(SimulatedCrash):
        state.store(signed_revision(config_body("new", size=20_000)))
    monkeypatch.undo()

    # The crash left a complete temporary file next to an untouched current one.
    leftovers = list(state.root.glob(".*.tmp"))
    assert len(leftovers) == 1
    loaded = state.load(SIGNING_KEY)
    assert loaded is not None and loaded.digest == old.digest

    # After a restart the leftover is removed, never read.
    restarted = StateDir(state.root, state.identity)
    restarted.prepare()
    assert list(state.root.glob(".*.tmp")) == []
    reloaded = restarted.load(SIGNING_KEY)
    assert reloaded is not None and reloaded.digest == old.digest


def test_crash_mid_write_leaves_a_truncated_tmp_that_is_never_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = new_state(tmp_path)
    old = signed_revision(config_body("old"))
    state.store(old)
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, fd: int, mode: str) -> None:
            self.f = real_fdopen(fd, mode)

        def __enter__(self) -> HalfWriter:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def write(self, chunk: bytes) -> None:
            self.f.write(chunk[: len(chunk) // 2])
            self.f.flush()
            raise SimulatedCrash()

    monkeypatch.setattr(state_module.os, "fdopen", HalfWriter)
    with pytest.raises(SimulatedCrash):
        state.store(signed_revision(config_body("new")))
    monkeypatch.undo()

    assert [p.stat().st_size > 0 for p in state.root.glob(".*.tmp")] == [True]
    loaded = state.load(SIGNING_KEY)
    assert loaded is not None and loaded.digest == old.digest


def test_failed_write_cleans_its_tmp_and_keeps_the_old_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = new_state(tmp_path)
    old = signed_revision(config_body("old"))
    state.store(old)

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state_module.os, "fsync", disk_full)
    with pytest.raises(OSError):
        state.store(signed_revision(config_body("new")))
    monkeypatch.undo()
    assert list(state.root.glob(".*.tmp")) == []
    loaded = state.load(SIGNING_KEY)
    assert loaded is not None and loaded.digest == old.digest


def test_truncated_current_file_is_refused(tmp_path: Path) -> None:
    state = new_state(tmp_path)
    state.store(signed_revision(config_body("v1", size=10_000)))
    raw = state.current_path.read_bytes()
    state.current_path.write_bytes(raw[: len(raw) - 100])  # what a non-atomic writer could leave
    with pytest.raises(VerificationError) as caught:
        state.load(SIGNING_KEY)
    assert caught.value.reason == "digest_mismatch"

    metrics = Metrics()
    assert load_last_known_good(state, SIGNING_KEY, metrics) is None
    assert metrics.verify_failures("state", "digest_mismatch") == 1


def test_revision_signed_with_a_rotated_key_is_refused(tmp_path: Path) -> None:
    state = new_state(tmp_path)
    state.store(signed_revision(config_body()))
    with pytest.raises(VerificationError) as caught:
        state.load(b"the-new-key")
    assert caught.value.reason == "bad_signature"


def test_state_of_another_router_config_is_not_served(tmp_path: Path) -> None:
    new_state(tmp_path, name="other").store(signed_revision(config_body()))
    with pytest.raises(StateError, match="belongs to ns/other"):
        new_state(tmp_path, name="router").load(SIGNING_KEY)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"no newline at all",
        b"{not json}\nbody",
        b'{"format": 99}\nbody',
        b'{"format":1,"namespace":"ns","name":"router"}\nx',
    ],
)
def test_malformed_state_files_are_refused(tmp_path: Path, content: bytes) -> None:
    state = new_state(tmp_path)
    state.current_path.write_bytes(content)
    metrics = Metrics()
    assert load_last_known_good(state, SIGNING_KEY, metrics) is None
    assert metrics.verify_failures("state", "malformed") == 1


def test_header_carries_no_key_material(tmp_path: Path) -> None:
    state = new_state(tmp_path)
    state.store(signed_revision(config_body()))
    header = json.loads(state.current_path.read_bytes().partition(b"\n")[0])
    assert SIGNING_KEY.decode() not in json.dumps(header)
    assert set(header) == {"format", "namespace", "name", "digest", "signature", "published_at"}


def test_files_are_private_and_only_inside_the_state_dir(tmp_path: Path) -> None:
    state = new_state(tmp_path)
    state.store(signed_revision(config_body()))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["current.rev", "state"]
    assert state.current_path.stat().st_mode & 0o077 == 0
