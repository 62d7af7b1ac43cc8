"""Peer fill with real `edgeroll cache` processes: a replacement pod that cannot reach S3 fills
from a sibling that serves the wanted revision, and refuses a sibling that lies.

S3 is made unreachable for one cache only by pointing it at a closed loopback port, so the
lab's shared S3 keeps running for everyone else. Cache A is fed from that S3 as usual.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cache_itkit import (
    SIGNING_KEY,
    CacheProcess,
    Published,
    cache_env,
    config_body,
    free_port,
    publish,
    unique,
)
from tests.polling import wait_until

from edgeroll.render.signing import sign, verify

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def start_cache(
    caches: list[CacheProcess], lab: Any, wanted: Published, name: str, state: Path, home: Path, **extra: str
) -> CacheProcess:
    cache = CacheProcess(cache_env(lab, wanted, name, state, home, **extra), workdir=home.parent)
    caches.append(cache)
    return cache.start()


def no_s3() -> dict[str, str]:
    """An S3 endpoint where nothing listens: connection refused, for this cache only."""
    return {"EDGEROLL_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}"}


def seeded(
    lab: Any, prefix: str, home: Path, tmp_path: Path, caches: list[CacheProcess]
) -> tuple[str, Published, CacheProcess]:
    """Cache A: fed from S3, ready, serving the wanted revision."""
    name = unique("router")
    rev = publish(lab, prefix, name, config_body("v1"))
    a = start_cache(caches, lab, rev, name, tmp_path / "state-a", home)
    wait_until(a.ready, timeout=30, interval=0.05, message="cache A ready from S3")
    return name, rev, a


def test_replacement_fills_from_a_ready_sibling_without_s3(
    lab: Any, s3_prefix: str, tmp_path: Path, home: Path, caches: list[CacheProcess]
) -> None:
    name, rev, a = seeded(lab, s3_prefix, home, tmp_path, caches)
    path, state_b = f"/configs/team-a/{name}", tmp_path / "state-b"
    peer = {"EDGEROLL_CACHE_PEER_URL": f"http://127.0.0.1:{a.port}"}
    b = start_cache(caches, lab, rev, name, state_b, home, **no_s3(), **peer)
    wait_until(b.ready, timeout=30, interval=0.05, message=lambda: f"B ready from its peer\n{b.log()}")

    got, from_a = b.request("GET", path), a.request("GET", path)
    assert got.status == 200 and got.body == rev.body == from_a.body
    # A let B in only with the read token: without one, A refuses.
    assert a.request("GET", path, {"Authorization": "Bearer nothing"}).status == 401
    assert a.metric("edgeroll_cache_requests_total", route="configs", code="401") == 1
    assert got.headers["x-config-digest"] == rev.digest
    assert got.headers["x-signature-sha256"] == from_a.headers["x-signature-sha256"]
    assert verify(SIGNING_KEY.encode(), got.body, got.headers["x-signature-sha256"])
    gz = b.request("GET", path, {"Accept-Encoding": "gzip"})
    assert gzip.decompress(gz.body) == rev.body
    assert b.metric("edgeroll_cache_fetches_total", source="peer") == 1
    assert b.metric("edgeroll_cache_fetches_total", source="origin") == 0
    assert b.metric("edgeroll_cache_fetch_failures_total", source="origin", reason="unreachable") >= 1
    assert b.metric("edgeroll_cache_verify_failures_total", source="peer") == 0
    # Stored like any verified revision; its S3 publish time is unknown, so null.
    header = json.loads((state_b / "current.rev").read_bytes().partition(b"\n")[0])
    assert header["digest"] == rev.digest and header["published_at"] is None

    # Restarted with neither S3 nor a peer: ready at once from what the fill stored.
    assert b.stop() == 0
    again = start_cache(caches, lab, rev, name, state_b, home, **no_s3())
    wait_until(again.ready, timeout=30, interval=0.05, message="B ready again from its state dir")
    assert again.request("GET", path).body == rev.body


class LyingPeer(ThreadingHTTPServer):
    """Answers GET /configs/... in turn: tampered bytes with A's headers, A's bytes with a forged
    signature, A's bytes unsigned, and a redirect to A itself (a cache must not follow it)."""

    def __init__(self, good: bytes, headers: dict[str, str], a_url: str) -> None:
        super().__init__(("127.0.0.1", 0), LyingHandler)
        tampered = good.replace(b"field_v1", b"field_v9", 1)
        assert tampered != good and len(tampered) == len(good)
        signed = {"Content-Type": "application/json", "X-Config-Digest": headers["x-config-digest"]}
        self.answers: list[tuple[int, bytes, dict[str, str]]] = [
            (200, tampered, {**signed, "X-Signature-SHA256": headers["x-signature-sha256"]}),
            (200, good, {**signed, "X-Signature-SHA256": sign(b"attacker-key", good)}),
            (200, good, signed),
            (302, b"", {"Location": a_url}),
        ]
        self.seen: list[tuple[str, str | None, str | None]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def next_answer(
        self, path: str, accept_encoding: str | None, authorization: str | None
    ) -> tuple[int, bytes, dict[str, str]]:
        with self.lock:
            self.seen.append((path, accept_encoding, authorization))
            return self.answers[(len(self.seen) - 1) % len(self.answers)]


class LyingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LyingPeer

    def do_GET(self) -> None:
        status, body, headers = self.server.next_answer(
            self.path, self.headers.get("Accept-Encoding"), self.headers.get("Authorization")
        )
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def lying_peer() -> Iterator[list[LyingPeer]]:
    servers: list[LyingPeer] = []
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_sibling_serving_tampered_or_unsigned_bytes_is_refused(
    lab: Any,
    s3_prefix: str,
    tmp_path: Path,
    home: Path,
    caches: list[CacheProcess],
    lying_peer: list[LyingPeer],
) -> None:
    name, rev, a = seeded(lab, s3_prefix, home, tmp_path, caches)
    path, state_c = f"/configs/team-a/{name}", tmp_path / "state-c"
    from_a = a.request("GET", path, {"Accept-Encoding": "identity"})
    liar = LyingPeer(from_a.body, from_a.headers, f"http://127.0.0.1:{a.port}{path}")
    lying_peer.append(liar)
    threading.Thread(target=liar.serve_forever, daemon=True).start()

    c = start_cache(caches, lab, rev, name, state_c, home, **no_s3(), EDGEROLL_CACHE_PEER_URL=liar.url)
    answers: set[int] = set()

    def every_lie_refused_twice() -> bool:
        answers.add(c.request("GET", path).status)  # what a router would get meanwhile
        answers.add(c.request("GET", "/readyz").status)
        verify_failures = [
            c.metric("edgeroll_cache_verify_failures_total", source="peer", reason=reason)
            for reason in ("digest_mismatch", "bad_signature", "missing_signature")
        ]
        redirects = c.metric("edgeroll_cache_fetch_failures_total", source="peer", reason="error")
        return min(*verify_failures, redirects) >= 2

    wait_until(every_lie_refused_twice, timeout=60, interval=0.05, message=lambda: f"refusals\n{c.log()}")
    assert answers == {503}, "nothing unverified is ever served, and the cache never gets ready"
    assert c.metric("edgeroll_cache_ready") == 0 and c.metric("edgeroll_cache_fetches_total") == 0
    assert not (state_c / "current.rev").exists()
    assert len(liar.seen) >= 8 and set(liar.seen) == {(path, "identity", f"Bearer {c.read_token}")}
    assert SIGNING_KEY not in c.log()
