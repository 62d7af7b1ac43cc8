"""`edgeroll cache` as a real process against the lab's real S3 (SeaweedFS).

Each test publishes its own revisions under a unique prefix, so tests share
the session's S3 without seeing each other's objects.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cache_itkit import (
    CacheProcess,
    Published,
    cache_env,
    config_body,
    publish,
    revision_key,
    unique,
)
from tests.polling import wait_until

from edgeroll.render.canonical import content_digest
from edgeroll.render.signing import sign, verify

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@contextlib.contextmanager
def s3_stopped(lab: Any) -> Iterator[None]:
    lab.stop_s3()
    try:
        yield
    finally:
        lab.start_s3()


def start_cache(
    caches: list[CacheProcess], lab: Any, wanted: Published, name: str, state: Path, home: Path, **extra: str
) -> CacheProcess:
    cache = CacheProcess(cache_env(lab, wanted, name, state, home, **extra), workdir=home.parent)
    caches.append(cache)
    return cache.start()


def test_fetches_verifies_stores_and_serves(
    lab: Any, s3_prefix: str, tmp_path: Path, home: Path, caches: list[CacheProcess]
) -> None:
    name = unique("router")
    rev = publish(lab, s3_prefix, name, config_body("v1"))
    cache = start_cache(caches, lab, rev, name, tmp_path / "state", home)
    wait_until(cache.ready, timeout=30, interval=0.05, message="readiness after the fetch from S3")
    answer = cache.request("GET", f"/configs/team-a/{name}")
    assert answer.status == 200 and answer.body == rev.body
    assert answer.headers["x-config-digest"] == rev.digest
    assert verify(b"integration-signing-key-32bytes!", answer.body, answer.headers["x-signature-sha256"])
    assert (tmp_path / "state" / "current.rev").exists()
    assert cache.metric("edgeroll_cache_fetches_total") == 1


@pytest.mark.reliability  # stops the lab's S3: `make integration` skips it, `make reliability` runs it
def test_cold_start_from_state_dir_with_s3_stopped(
    lab: Any, s3_prefix: str, tmp_path: Path, home: Path, caches: list[CacheProcess]
) -> None:
    name, state = unique("router"), tmp_path / "state"
    rev1 = publish(lab, s3_prefix, name, config_body("v1"))
    first = start_cache(caches, lab, rev1, name, state, home)
    wait_until(first.ready, timeout=30, interval=0.05, message="first cache ready")
    assert first.stop() == 0
    rev2_body = config_body("v2")
    with s3_stopped(lab):
        # Same wanted revision: ready from the state dir alone.
        again = start_cache(caches, lab, rev1, name, state, home)
        wait_until(again.ready, timeout=30, interval=0.05, message="ready from last-known-good without S3")
        assert again.request("GET", f"/configs/team-a/{name}").body == rev1.body
        assert again.stop() == 0
        # A newer wanted revision while S3 is down: serve last-known-good, not ready, count errors.
        wanted = Published(
            revision_key(f"{s3_prefix}/never", name, content_digest(rev2_body)),
            content_digest(rev2_body),
            rev2_body,
        )
        stale = start_cache(caches, lab, wanted, name, state, home)
        answer = stale.request("GET", f"/configs/team-a/{name}")
        assert answer.status == 200 and answer.headers["x-config-digest"] == rev1.digest
        assert not stale.ready()
        wait_until(
            lambda: stale.metric("edgeroll_cache_fetch_failures_total", reason="unreachable") >= 2,
            timeout=30,
            interval=0.05,
            message="fetch failures counted",
        )


@pytest.mark.reliability  # stops the lab's S3
def test_s3_stopped_mid_serving_no_failed_polls(
    lab: Any, s3_prefix: str, tmp_path: Path, home: Path, caches: list[CacheProcess]
) -> None:
    name, prefix, state = unique("router"), s3_prefix, tmp_path / "state"
    rev1 = publish(lab, prefix, name, config_body("v1"))
    seed = start_cache(caches, lab, rev1, name, state, home)
    wait_until(seed.ready, timeout=30, interval=0.05, message="seed ready")
    assert seed.stop() == 0
    # Wanted: a revision not published yet, so the cache keeps calling S3 while we poll.
    rev2_body = config_body("v2")
    rev2 = Published(
        revision_key(prefix, name, content_digest(rev2_body)), content_digest(rev2_body), rev2_body
    )
    cache = start_cache(caches, lab, rev2, name, state, home)
    wait_until(
        lambda: cache.metric("edgeroll_cache_fetch_failures_total") >= 1,
        timeout=30,
        interval=0.05,
        message="not_found counted",
    )

    statuses: dict[int, int] = {}
    failures: list[str] = []
    conn = cache.connection()
    path = f"/configs/team-a/{name}"

    def poll(i: int) -> None:
        headers = {"Accept-Encoding": "gzip"}
        if i % 2:
            headers["If-None-Match"] = f'"{rev1.digest}"'
        try:
            status = cache.request("GET", path, headers, conn=conn).status
            statuses[status] = statuses.get(status, 0) + 1
        except (OSError, http.client.HTTPException) as exc:
            failures.append(repr(exc))

    for i in range(300):
        poll(i)
    before = cache.metric("edgeroll_cache_fetch_failures_total", reason="unreachable")
    with s3_stopped(lab):
        for i in range(300, 1000):
            poll(i)
        wait_until(
            lambda: cache.metric("edgeroll_cache_fetch_failures_total", reason="unreachable") > before,
            timeout=30,
            interval=0.05,
            message="unreachable S3 counted",
        )
    conn.close()
    assert failures == []
    assert set(statuses) <= {200, 304} and sum(statuses.values()) == 1000, statuses
    assert statuses[304] == 500
    # S3 is back: publishing the wanted revision now makes the cache ready.
    publish(lab, prefix, name, rev2_body)
    wait_until(cache.ready, timeout=60, interval=0.05, message="ready after S3 came back")


def test_switch_to_a_new_revision_fails_no_request(
    lab: Any, s3_prefix: str, tmp_path: Path, home: Path, caches: list[CacheProcess]
) -> None:
    name, prefix, state = unique("router"), s3_prefix, tmp_path / "state"
    rev1 = publish(lab, prefix, name, config_body("v1"))
    seed = start_cache(caches, lab, rev1, name, state, home)
    wait_until(seed.ready, timeout=30, interval=0.05, message="seed ready")
    assert seed.stop() == 0
    rev2_body = config_body("v2")
    rev2 = Published(
        revision_key(prefix, name, content_digest(rev2_body)), content_digest(rev2_body), rev2_body
    )
    cache = start_cache(caches, lab, rev2, name, state, home)
    assert not cache.ready()

    seen: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def router_like_poller() -> None:
        # Revalidates with what it holds, as a CDN client would; every answer must be good.
        conn = cache.connection()
        etag: str | None = None
        while not stop.is_set():
            headers = {"Accept-Encoding": "gzip"} | ({"If-None-Match": etag} if etag else {})
            try:
                answer = cache.request("GET", f"/configs/team-a/{name}", headers, conn=conn)
            except (OSError, http.client.HTTPException) as exc:
                failures.append(repr(exc))
                conn.close()
                conn = cache.connection()
                continue
            if answer.status == 200:
                etag = answer.headers["etag"]
                seen.append(answer.headers["x-config-digest"])
            elif answer.status != 304:
                failures.append(f"{answer.status} {answer.body[:100]!r}")
        conn.close()

    pollers = [threading.Thread(target=router_like_poller) for _ in range(4)]
    for thread in pollers:
        thread.start()
    try:
        wait_until(
            lambda: len(seen) >= 4, timeout=30, interval=0.05, message="pollers to see the old revision"
        )
        publish(lab, prefix, name, rev2_body)
        wait_until(cache.ready, timeout=60, interval=0.05, message="the cache to switch")
        wait_until(
            lambda: seen.count(rev2.digest) >= 4,
            timeout=30,
            interval=0.05,
            message="pollers to see the new revision",
        )
    finally:
        stop.set()
        for thread in pollers:
            thread.join(30)
    assert failures == []
    assert set(seen) == {rev1.digest, rev2.digest}
    assert cache.metric("edgeroll_cache_ready") == 1


@pytest.mark.parametrize("tamper", ["body", "signature", "unsigned", "other-key"])
def test_tampered_object_is_refused_and_counted(
    lab: Any, s3_prefix: str, tmp_path: Path, home: Path, caches: list[CacheProcess], tamper: str
) -> None:
    name, prefix, state = unique("router"), s3_prefix, tmp_path / "state"
    rev1 = publish(lab, prefix, name, config_body("v1"))
    seed = start_cache(caches, lab, rev1, name, state, home)
    wait_until(seed.ready, timeout=30, interval=0.05, message="seed ready")
    assert seed.stop() == 0

    body = config_body("v2")
    evil = body.replace(b"products:4001", b"evil.example:80")
    if tamper == "body":  # object bytes changed after signing; the key still names the real digest
        bad = publish(lab, prefix, name, body, stored_body=evil)
        reason = "digest_mismatch"
    elif tamper == "signature":
        bad = publish(lab, prefix, name, body, signature="AAAA" + sign(b"x", body)[4:])
        reason = "bad_signature"
    elif tamper == "unsigned":
        bad = publish(lab, prefix, name, body, signature=None)
        reason = "missing_signature"
    else:
        bad = publish(lab, prefix, name, body, signature=sign(b"attacker-key", body))
        reason = "bad_signature"

    cache = start_cache(caches, lab, bad, name, state, home)
    wait_until(
        lambda: cache.metric("edgeroll_cache_verify_failures_total", source="origin", reason=reason) >= 2,
        timeout=30,
        interval=0.05,
        message=f"{reason} counted in /metrics",
    )
    answer = cache.request("GET", f"/configs/team-a/{name}")
    assert answer.status == 200 and answer.body == rev1.body  # last-known-good kept
    assert not cache.ready()
    assert cache.metric("edgeroll_cache_served_config_info", digest=rev1.digest) == 1
    stored = (state / "current.rev").read_bytes()
    assert stored.endswith(rev1.body) and b"evil.example" not in stored
    assert "refusing S3 object" in cache.log()
    assert "integration-signing-key" not in cache.log()


def test_workers_share_the_port_and_switch_together(
    lab: Any, s3_prefix: str, tmp_path: Path, home: Path, caches: list[CacheProcess]
) -> None:
    name, prefix, state = unique("router"), s3_prefix, tmp_path / "state"
    rev1 = publish(lab, prefix, name, config_body("v1"))
    seed = start_cache(caches, lab, rev1, name, state, home)
    wait_until(seed.ready, timeout=30, interval=0.05, message="seed ready")
    assert seed.stop() == 0
    rev2_body = config_body("v2")
    rev2 = Published(
        revision_key(prefix, name, content_digest(rev2_body)), content_digest(rev2_body), rev2_body
    )
    cache = start_cache(caches, lab, rev2, name, state, home, EDGEROLL_CACHE_WORKERS="2")

    def digests() -> set[str]:
        # Fresh connections spread over the workers (SO_REUSEPORT).
        return {cache.request("GET", f"/configs/team-a/{name}").headers["x-config-digest"] for _ in range(40)}

    assert digests() == {rev1.digest}
    publish(lab, prefix, name, rev2_body)
    wait_until(
        lambda: digests() == {rev2.digest},
        timeout=60,
        interval=0.05,
        message="every worker to serve the new revision",
    )
    wait_until(cache.ready, timeout=30, interval=0.05, message="readiness")
    # Counters from all workers and the supervisor add up on whichever worker answers.
    assert cache.metric("edgeroll_cache_requests_total", route="configs", code="200") >= 80
    assert cache.metric("edgeroll_cache_fetches_total") == 1
