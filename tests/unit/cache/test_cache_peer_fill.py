"""Peer fill: when S3 fails, the wanted revision from a sibling pod, accepted only if it verifies.

The peer is a real `PeerOrigin` whose HTTP connection is a script of raw answers
(no socket); its good answer is the exact bytes a cache serving the wanted
revision sends. S3 is the scripted origin of the fetch loop's own tests.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cache_testkit import SIGNING_KEY, ScriptedOrigin, config_body, signed_revision

from edgeroll.cache.fetcher import Backoff, fetch_wanted
from edgeroll.cache.metrics import Metrics
from edgeroll.cache.origin import OriginError, OriginObject
from edgeroll.cache.peer import PeerOrigin
from edgeroll.cache.responses import prepare
from edgeroll.cache.revision import Revision
from edgeroll.cache.state import StateDir, StateIdentity
from edgeroll.render.signing import sign

pytestmark = pytest.mark.unit

FAST = Backoff(initial=0.001, maximum=0.004)
WANTED = signed_revision(config_body("v2"))
OLDER = signed_revision(config_body("v1"))
DOWN = OriginError("unreachable", "s3://b/k: origin unreachable (EndpointConnectionError)")
PEER_URL = "http://edgeroll-ns-router.edge.svc:8080"


def from_s3(revision: Revision = WANTED) -> OriginObject:
    return OriginObject(revision.body, sign(SIGNING_KEY, revision.body), last_modified=1_700_000_000.0)


def served_by_a_cache(revision: Revision) -> bytes:
    """What a cache serving `revision` answers to GET /configs/... with Accept-Encoding: identity."""
    answer = prepare(revision).configs_identity
    return answer.head + b"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n" + answer.body


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    if "Content-Length" not in (headers or {}):
        lines.append("Connection: close")  # then the body ends at EOF
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def signed_as_wanted(body: bytes, signature: str | None) -> bytes:
    """A body presented with the wanted digest and the given signature header."""
    headers = {"X-Config-Digest": WANTED.digest, "Content-Length": str(len(body))}
    if signature is not None:
        headers["X-Signature-SHA256"] = signature
    return answer(200, body, headers)


class FakeSocket:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self.raw)


class ScriptedPeer:
    """Stands in for http.client.HTTPConnection: one raw answer (or error) per connection."""

    def __init__(self, answers: list[bytes | OSError]) -> None:
        self.answers: Iterator[bytes | OSError] = iter(answers)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.current = b""

    def __call__(self, host: str, port: int, timeout: float) -> ScriptedPeer:
        assert (host, port) == ("edgeroll-ns-router.edge.svc", 8080) and 0 < timeout <= 5
        return self

    def request(self, method: str, path: str, headers: dict[str, str]) -> None:
        self.requests.append((method, path, dict(headers)))
        got = next(self.answers)
        if isinstance(got, OSError):
            raise got
        self.current = got

    def getresponse(self) -> http.client.HTTPResponse:
        response = http.client.HTTPResponse(FakeSocket(self.current), method="GET")  # type: ignore[arg-type]
        response.begin()
        return response

    def close(self) -> None:
        pass


async def run(
    origin: ScriptedOrigin, peer: PeerOrigin, tmp_path: Path
) -> tuple[list[Revision], Metrics, StateDir]:
    state = StateDir(tmp_path / "state", StateIdentity("ns", "router"))
    state.prepare()
    metrics = Metrics()
    installed: list[Revision] = []

    async def install(revision: Revision) -> None:
        installed.append(revision)

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
            stop=asyncio.Event(),
            peer=peer,
        ),
        timeout=10,
    )
    assert done
    return installed, metrics, state


def peer_of(script: ScriptedPeer, **over: float) -> PeerOrigin:
    return PeerOrigin(PEER_URL, "/configs/ns/router", connect=script, **over)  # type: ignore[arg-type]


async def test_filled_from_a_peer_when_s3_fails_in_the_same_attempt(tmp_path: Path) -> None:
    script = ScriptedPeer([served_by_a_cache(WANTED)])
    origin = ScriptedOrigin([DOWN])
    installed, metrics, state = await run(origin, peer_of(script), tmp_path)
    assert [r.body for r in installed] == [WANTED.body] and origin.calls == 1
    assert script.requests == [
        (
            "GET",
            "/configs/ns/router",
            {"Accept-Encoding": "identity", "Connection": "close", "User-Agent": "edgeroll-cache-peer-fill"},
        )
    ]
    assert metrics.total_fetches("peer") == 1 and metrics.total_fetches("origin") == 0
    assert metrics.fetch_failures("origin", "unreachable") == 1
    # Stored like any verified revision; no S3 Last-Modified, so the publish time is unknown (null).
    stored = state.load(SIGNING_KEY)
    assert stored is not None and stored.digest == WANTED.digest and stored.published_at is None
    header = json.loads(state.current_path.read_bytes().partition(b"\n")[0])
    assert header["published_at"] is None and header["signature"] == WANTED.signature


async def test_s3_is_preferred_and_the_peer_not_asked(tmp_path: Path) -> None:
    script = ScriptedPeer([served_by_a_cache(WANTED)])
    installed, metrics, _ = await run(ScriptedOrigin([from_s3()]), peer_of(script), tmp_path)
    assert installed[0].published_at == 1_700_000_000.0
    assert script.requests == []
    assert metrics.total_fetches("origin") == 1 and metrics.total_fetches("peer") == 0


TAMPERED = WANTED.body.replace(b"hello", b"pwned")
VERIFY_REFUSALS = {
    "tampered body, the wanted digest and signature": (
        signed_as_wanted(TAMPERED, WANTED.signature),
        "digest_mismatch",
    ),
    "tampered body signed by another key": (
        signed_as_wanted(TAMPERED, sign(b"attacker", TAMPERED)),
        "digest_mismatch",
    ),
    "an older revision, validly signed, posing as the wanted one": (
        signed_as_wanted(OLDER.body, OLDER.signature),
        "digest_mismatch",
    ),
    "the wanted body, signed by another key": (
        signed_as_wanted(WANTED.body, sign(b"attacker", WANTED.body)),
        "bad_signature",
    ),
    "the wanted body, signature garbled": (
        signed_as_wanted(WANTED.body, "not base64 at all"),
        "bad_signature",
    ),
    "the wanted body, no signature": (signed_as_wanted(WANTED.body, None), "missing_signature"),
    "the wanted body, empty signature": (signed_as_wanted(WANTED.body, ""), "missing_signature"),
}


@pytest.mark.parametrize("case", list(VERIFY_REFUSALS))
async def test_a_peer_answer_that_does_not_verify_is_refused_and_counted(case: str, tmp_path: Path) -> None:
    raw, reason = VERIFY_REFUSALS[case]
    origin = ScriptedOrigin([DOWN, DOWN, from_s3()])
    installed, metrics, _ = await run(origin, peer_of(ScriptedPeer([raw, raw])), tmp_path)
    # Never installed: what is served in the end came from S3, on the third attempt.
    assert [(r.body, r.published_at) for r in installed] == [(WANTED.body, 1_700_000_000.0)]
    assert metrics.verify_failures("peer", reason) == 2
    assert metrics.verify_failures("origin", reason) == 0 and metrics.total_fetches("peer") == 0


FETCH_REFUSALS = {
    # Honest about serving another revision (a sibling mid-rollout): refused unread, not tampering.
    "another digest, even a validly signed older one": (served_by_a_cache(OLDER), "not_found"),
    "nothing loaded yet": (answer(503, b"not loaded\n", {"Content-Length": "11"}), "not_found"),
    "the wanted bytes gzipped": (
        answer(200, b"\x1f\x8b...", {"Content-Encoding": "gzip", "X-Signature-SHA256": WANTED.signature}),
        "error",
    ),
    "a redirect, even to a good cache": (
        answer(302, b"", {"Location": "http://a/", "Content-Length": "0"}),
        "error",
    ),
    "garbage instead of HTTP": (b"SSH-2.0-OpenSSH_9.6\r\n", "error"),
    "connection refused": (ConnectionRefusedError(111, "refused"), "unreachable"),
    "no such host": (OSError(-2, "Name or service not known"), "unreachable"),
}


@pytest.mark.parametrize("case", list(FETCH_REFUSALS))
async def test_a_peer_without_the_wanted_revision_is_counted_by_reason(case: str, tmp_path: Path) -> None:
    raw, reason = FETCH_REFUSALS[case]
    script = ScriptedPeer([raw])
    installed, metrics, _ = await run(ScriptedOrigin([DOWN, from_s3()]), peer_of(script), tmp_path)
    assert installed[0].published_at == 1_700_000_000.0  # from S3, not the peer
    assert metrics.fetch_failures("peer", reason) == 1 and metrics.total_fetches("peer") == 0
    assert len(script.requests) == 1  # a redirect is not followed


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "until-eof"])
async def test_oversize_is_refused_even_for_the_right_bytes(with_length: bool, tmp_path: Path) -> None:
    raw = served_by_a_cache(WANTED)
    if not with_length:
        _, _, body = raw.partition(b"\r\n\r\n")
        raw = answer(200, body, {"X-Config-Digest": WANTED.digest, "X-Signature-SHA256": WANTED.signature})
    peer = peer_of(ScriptedPeer([raw]), max_bytes=len(WANTED.body) - 1)
    installed, metrics, _ = await run(ScriptedOrigin([DOWN, from_s3()]), peer, tmp_path)
    assert installed[0].published_at == 1_700_000_000.0
    assert metrics.fetch_failures("peer", "too_large") == 1


def test_the_size_bound_is_s3s() -> None:
    from edgeroll.cache.origin import MAX_OBJECT_BYTES

    assert PeerOrigin(PEER_URL, "/configs/ns/router").max_bytes == MAX_OBJECT_BYTES


def test_a_peer_past_its_deadline_is_unreachable() -> None:
    peer = peer_of(ScriptedPeer([served_by_a_cache(WANTED)]), deadline=-1.0)
    with pytest.raises(OriginError) as caught:
        peer.get(WANTED.digest)
    assert caught.value.reason == "unreachable"


async def test_a_stuck_peer_does_not_stall_the_loop(tmp_path: Path) -> None:
    release = threading.Event()

    class Stuck(ScriptedPeer):
        def request(self, method: str, path: str, headers: dict[str, str]) -> None:
            release.wait(30)  # name resolution that never returns: socket timeouts do not apply
            raise OSError("too late")

    peer = peer_of(Stuck([]), timeout=0.05, deadline=0.05)
    try:
        installed, metrics, _ = await run(ScriptedOrigin([DOWN, from_s3()]), peer, tmp_path)
    finally:
        release.set()
    assert installed[0].body == WANTED.body
    assert metrics.fetch_failures("peer", "unreachable") == 1
