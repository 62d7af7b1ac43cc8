"""The fetch loop against a scripted origin: retries, refusals, storage, installation."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path

import pytest
from cache_testkit import SIGNING_KEY, ScriptedOrigin, config_body, signed_revision

from edgeroll.cache.fetcher import Backoff, backoff_delay, fetch_wanted
from edgeroll.cache.metrics import Metrics
from edgeroll.cache.origin import OriginError, OriginObject
from edgeroll.cache.revision import Revision
from edgeroll.cache.state import StateDir, StateIdentity
from edgeroll.render.signing import sign

pytestmark = pytest.mark.unit

FAST = Backoff(initial=0.001, maximum=0.004)
WANTED = signed_revision(config_body("v2"))


def good(body: bytes = WANTED.body) -> OriginObject:
    return OriginObject(body=body, signature=sign(SIGNING_KEY, body), last_modified=1_700_000_000.0)


async def run(
    origin: ScriptedOrigin, tmp_path: Path, *, stop_after: float | None = None
) -> tuple[bool, list[Revision], Metrics, StateDir]:
    state = StateDir(tmp_path / "state", StateIdentity("ns", "router"))
    state.prepare()
    metrics = Metrics()
    installed: list[Revision] = []
    stop = asyncio.Event()

    async def install(revision: Revision) -> None:
        installed.append(revision)

    if stop_after is not None:
        asyncio.get_running_loop().call_later(stop_after, stop.set)
    done = await asyncio.wait_for(
        fetch_wanted(
            origin=origin,
            key="revisions/ns/router/x.json",
            digest=WANTED.digest,
            signing_key=SIGNING_KEY,
            state=state,
            metrics=metrics,
            install=install,
            backoff=FAST,
            stop=stop,
        ),
        timeout=10,
    )
    return done, installed, metrics, state


async def test_first_try_stores_and_installs(tmp_path: Path) -> None:
    done, installed, metrics, state = await run(ScriptedOrigin([good()]), tmp_path)
    assert done and [r.digest for r in installed] == [WANTED.digest]
    assert installed[0].published_at == 1_700_000_000.0
    stored = state.load(SIGNING_KEY)
    assert stored is not None and stored.digest == WANTED.digest
    assert metrics.total_fetches("origin") == 1


async def test_origin_down_is_counted_and_retried(tmp_path: Path) -> None:
    down = OriginError("unreachable", "s3://b/k: origin unreachable (EndpointConnectionError)")
    origin = ScriptedOrigin([down, down, OriginError("not_found", "missing"), good()])
    done, installed, metrics, _ = await run(origin, tmp_path)
    assert done and len(installed) == 1 and origin.calls == 4
    assert metrics.fetch_failures("origin", "unreachable") == 2
    assert metrics.fetch_failures("origin", "not_found") == 1


async def test_tampered_object_is_refused_and_never_installed(tmp_path: Path) -> None:
    tampered = WANTED.body.replace(b"hello", b"pwned")
    forged = OriginObject(body=tampered, signature=sign(b"attacker", tampered), last_modified=None)
    unsigned = OriginObject(body=WANTED.body, signature=None, last_modified=None)
    resigned = OriginObject(body=WANTED.body, signature=sign(b"attacker", WANTED.body), last_modified=None)
    origin = ScriptedOrigin([forged, unsigned, resigned, good()])
    done, installed, metrics, _state = await run(origin, tmp_path)
    assert done and [r.body for r in installed] == [WANTED.body]
    assert metrics.verify_failures("origin", "digest_mismatch") == 1
    assert metrics.verify_failures("origin", "missing_signature") == 1
    assert metrics.verify_failures("origin", "bad_signature") == 1


async def test_refusals_keep_the_state_dir_untouched(tmp_path: Path) -> None:
    tampered = OriginObject(
        body=WANTED.body + b" ", signature=sign(SIGNING_KEY, WANTED.body + b" "), last_modified=None
    )
    origin = ScriptedOrigin([tampered] * 1000)
    done, installed, metrics, state = await run(origin, tmp_path, stop_after=0.05)
    assert not done and installed == []
    assert state.load(SIGNING_KEY) is None
    assert metrics.verify_failures("origin", "digest_mismatch") == origin.calls >= 2


async def test_unexpected_errors_do_not_end_the_loop(tmp_path: Path) -> None:
    class Flaky(ScriptedOrigin):
        def get(self, key: str) -> OriginObject:
            if self.calls == 0:
                self.calls += 1
                raise RuntimeError("library bug")
            return super().get(key)

    done, installed, metrics, _ = await run(Flaky([good()]), tmp_path)
    assert done and len(installed) == 1
    assert metrics.fetch_failures("origin", "error") == 1


async def test_state_write_failure_still_serves_the_verified_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(self: StateDir, revision: Revision) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(StateDir, "store", read_only)
    done, installed, _, _ = await run(ScriptedOrigin([good()]), tmp_path)
    assert done and len(installed) == 1


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = Backoff(initial=0.5, maximum=30.0)
    assert backoff_delay(0, policy, lambda: 0.0) == 0.25
    assert backoff_delay(0, policy, lambda: 1.0) == 0.5
    assert backoff_delay(3, policy, lambda: 0.0) == 2.0
    assert backoff_delay(50, policy, lambda: 1.0) == 30.0
    assert backoff_delay(10_000, policy, lambda: 0.0) == 15.0
    rng = random.Random(1)
    delays = {backoff_delay(4, policy, rng.random) for _ in range(50)}
    assert len(delays) > 40 and all(4.0 <= d <= 8.0 for d in delays)


async def test_cancelling_does_not_wait_for_a_stuck_origin(tmp_path: Path) -> None:
    entered, release = threading.Event(), threading.Event()

    class Stuck:
        def get(self, key: str) -> OriginObject:
            entered.set()
            release.wait(30)
            raise OriginError("unreachable", "too late")

    task = asyncio.create_task(
        fetch_wanted(
            origin=Stuck(),
            key="k",
            digest=WANTED.digest,
            signing_key=SIGNING_KEY,
            state=None,
            metrics=Metrics(),
            install=lambda revision: asyncio.sleep(0),
            backoff=FAST,
            stop=asyncio.Event(),
        )
    )
    assert await asyncio.to_thread(entered.wait, 10)
    task.cancel()
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert time.monotonic() - started < 1
    release.set()
