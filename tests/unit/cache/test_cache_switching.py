"""In-place switching: `POST /-/revision` through the real HTTP protocol, a fake S3 keyed by object
key, the real Keeper and Switcher, and a state dir on disk (hack/CONTRACTS.md "In-place switching")."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cache_testkit import (
    READ_TOKEN,
    SIGNING_KEY,
    FakeTransport,
    Harness,
    HttpAnswer,
    config_body,
    make_harness,
    read_answers,
    signed_revision,
)

from edgeroll.cache.fetcher import Backoff, fetch_wanted
from edgeroll.cache.metrics import Metrics
from edgeroll.cache.origin import OriginError, OriginObject
from edgeroll.cache.peer import PeerOrigin
from edgeroll.cache.responses import prepare
from edgeroll.cache.revision import Revision
from edgeroll.cache.runner import make_server_state, make_switcher
from edgeroll.cache.server import HttpConnection
from edgeroll.cache.settings import SettingsError, settings_from_env
from edgeroll.cache.state import StateDir, StateIdentity
from edgeroll.cache.switching import MIN_GAP_SECONDS, Keeper, Switcher, expected_cluster
from edgeroll.render.canonical import digest_hex
from edgeroll.render.pointer import RevisionPointer, encode_pointer, sign_pointer
from edgeroll.render.signing import sign

pytestmark = pytest.mark.unit

REV0 = signed_revision(config_body("v0"))
REV1 = signed_revision(config_body("v1"))
REV2 = signed_revision(config_body("v2"))
CLUSTER = "edge-eu"
POINTER_KEY = f"revisions/ns/router/targets/{CLUSTER}.json"
PEER_URL = "http://edgeroll-ns-router.edge.svc:8080"


def key_of(revision: Revision) -> str:
    return f"revisions/ns/router/{digest_hex(revision.digest)}.json"


def stored(revision: Revision, body: bytes | None = None, signature: str | None = None) -> OriginObject:
    """`revision` as publish/ puts it in S3; `body`/`signature` tamper with it."""
    return OriginObject(
        body if body is not None else revision.body,
        signature if signature is not None else sign(SIGNING_KEY, revision.body),
        1_700_000_000.0,
    )


def pointer_to(
    revision: Revision,
    *,
    key: str | None = None,
    namespace: str = "ns",
    name: str = "router",
    cluster: str = CLUSTER,
    signing_key: bytes = SIGNING_KEY,
) -> OriginObject:
    """The pointer as the operator PUTs it: canonical JSON, `signature-sha256` = sign_pointer, hex."""
    pointer = RevisionPointer(namespace, name, cluster, revision.digest, key or key_of(revision))
    body = encode_pointer(pointer)
    return OriginObject(body, sign_pointer(signing_key, body), 1_700_000_000.0)


class KeyedS3:
    """S3 by key; a key in `gates` blocks its gets until the event is set (the call runs in a thread)."""

    def __init__(self, objects: dict[str, OriginObject | OriginError]) -> None:
        self.objects = objects
        self.calls: Counter[str] = Counter()
        self.gates: dict[str, threading.Event] = {}

    def get(self, key: str) -> OriginObject:
        self.calls[key] += 1
        # What S3 holds when the request arrives; the answer may take until the gate opens.
        got = self.objects.get(key, OriginError("not_found", f"s3://bucket/{key} does not exist (NoSuchKey)"))
        gate = self.gates.get(key)
        if gate is not None:
            gate.wait(10)
        if isinstance(got, OriginError):
            raise got
        return got

    def gate(self, key: str) -> threading.Event:
        self.gates[key] = threading.Event()
        return self.gates[key]


class FakeSocket:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self.raw)


class OnePeerAnswer:
    """Stands in for http.client.HTTPConnection: every connection gets the same raw answer."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.asked = 0

    def __call__(self, host: str, port: int, timeout: float) -> OnePeerAnswer:
        return self

    def request(self, method: str, path: str, headers: dict[str, str]) -> None:
        self.asked += 1

    def getresponse(self) -> http.client.HTTPResponse:
        response = http.client.HTTPResponse(FakeSocket(self.raw), method="GET")  # type: ignore[arg-type]
        response.begin()
        return response

    def close(self) -> None:
        pass


def peer_serving(revision: Revision, body: bytes | None = None) -> OnePeerAnswer:
    """A sibling cache serving `revision` (its exact answer); `body` swaps in other bytes."""
    answer = prepare(revision).configs_identity
    raw = answer.head + b"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n" + answer.body
    if body is not None:
        raw = raw.replace(answer.body, body).replace(
            f"Content-Length: {len(answer.body)}".encode(), f"Content-Length: {len(body)}".encode()
        )
    return OnePeerAnswer(raw)


@dataclass
class Rig:
    harness: Harness
    s3: KeyedS3
    keeper: Keeper
    switcher: Switcher
    state_dir: StateDir

    @property
    def metrics(self) -> Metrics:
        return self.harness.metrics

    def post(self, *extra: bytes) -> tuple[HttpConnection, FakeTransport]:
        conn, transport = self.harness.connect()
        conn.data_received(post() + b"".join(extra))
        return conn, transport

    def stored_digest(self) -> str | None:
        revision = self.state_dir.load(SIGNING_KEY)
        return None if revision is None else revision.digest


def make_rig(
    tmp_path: Path,
    objects: dict[str, OriginObject | OriginError],
    *,
    loaded: Revision | None = REV1,
    wanted: Revision | None = None,
    peer: OnePeerAnswer | None = None,
    seconds: float = 10.0,
) -> Rig:
    harness = make_harness(loaded=loaded, wanted=wanted or loaded or REV1)
    state_dir = StateDir(tmp_path / "state", StateIdentity("ns", "router"))
    state_dir.prepare()
    if loaded is not None:
        state_dir.store(loaded)

    async def install(revision: Revision) -> None:
        harness.load(revision)

    s3 = KeyedS3(objects)
    keeper = Keeper(harness.state.status, state_dir, install)
    switcher = Switcher(
        pointer_key=POINTER_KEY,
        namespace="ns",
        name="router",
        signing_key=SIGNING_KEY,
        origin=s3,
        peer=None if peer is None else PeerOrigin(PEER_URL, "/configs/ns/router", connect=peer),
        keeper=keeper,
        metrics=harness.metrics,
        seconds=seconds,
    )
    harness.state.switcher = switcher
    return Rig(harness, s3, keeper, switcher, state_dir)


def post(body: bytes = b"", path: str = "/-/revision") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: edge\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def get(path: str, method: str = "GET") -> bytes:
    auth = f"Authorization: Bearer {READ_TOKEN}\r\n" if path.startswith("/configs/") else ""
    return f"{method} {path} HTTP/1.1\r\nHost: edge\r\n{auth}\r\n".encode()


async def settled(conn: HttpConnection) -> None:
    """Until the connection has written every answer it owes (switches included)."""
    for _ in range(1000):
        if conn.waiting is None and not conn.queued:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the switch never answered")


async def answers(
    conn: HttpConnection, transport: FakeTransport, head_only: tuple[bool, ...] = ()
) -> list[HttpAnswer]:
    await settled(conn)
    return read_answers(bytes(transport.out), head_only)


async def switch(rig: Rig) -> tuple[int, dict[str, object], HttpAnswer]:
    conn, transport = rig.post()
    [answer] = await answers(conn, transport)
    return answer.status, json.loads(answer.body), answer


def readyz(rig: Rig) -> int:
    return rig.harness.one(get("/readyz")).status


# -- switched and unchanged --------------------------------------------------------------------


async def test_switches_to_the_revision_the_pointer_names(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV2), key_of(REV2): stored(REV2)})
    with caplog.at_level(logging.INFO):
        code, body, answer = await switch(rig)
    assert code == 200
    assert body == {"outcome": "switched", "serving": REV2.digest, "wanted": REV2.digest}
    assert answer.header("Cache-Control") == "no-store"
    assert answer.header("Content-Type") == "application/json"
    # Served, wanted (so still ready), stored for a restart.
    configs = rig.harness.one(get("/configs/ns/router"))
    assert configs.body == REV2.body and configs.header("ETag") == f'"{REV2.digest}"'
    assert rig.harness.state.status.wanted_digest == REV2.digest and readyz(rig) == 200
    assert rig.stored_digest() == REV2.digest
    assert rig.metrics.switches("switched") == 1 and rig.metrics.total_fetches("origin") == 1
    switched = [r.getMessage() for r in caplog.records if "switched in place" in r.getMessage()]
    assert switched and REV1.digest in switched[0] and REV2.digest in switched[0]
    assert caplog.records[-1].levelno == logging.INFO
    assert not any(SIGNING_KEY.decode() in r.getMessage() for r in caplog.records)


async def test_the_pointer_naming_what_is_served_fetches_nothing(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV1)})
    code, body, _ = await switch(rig)
    assert (code, body) == (200, {"outcome": "unchanged", "serving": REV1.digest, "wanted": REV1.digest})
    assert rig.s3.calls == Counter({POINTER_KEY: 1})
    assert rig.metrics.switches("unchanged") == 1


async def test_unchanged_makes_the_served_revision_the_wanted_one(tmp_path: Path) -> None:
    # Started from the state dir on REV1 while the env still names REV0: not ready until the pointer says.
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV1)}, loaded=REV1, wanted=REV0)
    assert readyz(rig) == 503
    code, body, _ = await switch(rig)
    assert (code, body["outcome"], body["wanted"]) == (200, "unchanged", REV1.digest)
    assert readyz(rig) == 200


async def test_switch_back_and_forth(tmp_path: Path) -> None:
    rig = make_rig(
        tmp_path, {POINTER_KEY: pointer_to(REV2), key_of(REV2): stored(REV2), key_of(REV1): stored(REV1)}
    )
    assert (await switch(rig))[1]["serving"] == REV2.digest
    rig.s3.objects[POINTER_KEY] = pointer_to(REV1)
    code, body, _ = await switch(rig)
    assert (code, body["outcome"], body["serving"]) == (200, "switched", REV1.digest)
    assert rig.harness.one(get("/configs/ns/router")).body == REV1.body


# -- refused: keeps serving, keeps wanted ------------------------------------------------------


@pytest.mark.parametrize(
    ("pointer", "revision", "reason"),
    [
        (pointer_to(REV2, signing_key=b"another-key-another-key-another!"), stored(REV2), "signature"),
        (replace(pointer_to(REV2), signature=None), stored(REV2), "signature"),
        (pointer_to(REV2, namespace="other"), stored(REV2), "config"),
        (pointer_to(REV2, name="other"), stored(REV2), "config"),
        (pointer_to(REV2, cluster="edge-us"), stored(REV2), "cluster"),
        (OriginObject(b"{}", sign_pointer(SIGNING_KEY, b"{}"), None), stored(REV2), "malformed"),
        # The revision's bytes tampered with, its signature kept.
        (pointer_to(REV2), stored(REV2, body=REV2.body.replace(b"v2", b"v9")), "digest_mismatch"),
        # Valid bytes, a forged signature.
        (pointer_to(REV2), stored(REV2, signature=sign(b"x" * 32, REV2.body)), "bad_signature"),
        (pointer_to(REV2), OriginObject(REV2.body, None, 1.0), "missing_signature"),
        # The key holds another (validly signed) revision than the digest the pointer names.
        (pointer_to(REV2), stored(REV0), "digest_mismatch"),
    ],
    ids=[
        "pointer-other-key",
        "pointer-unsigned",
        "pointer-other-namespace",
        "pointer-other-name",
        "pointer-other-cluster",
        "pointer-malformed",
        "revision-tampered",
        "revision-forged-signature",
        "revision-unsigned",
        "revision-digest-mismatch",
    ],
)
async def test_what_does_not_verify_is_refused(
    tmp_path: Path, pointer: OriginObject, revision: OriginObject, reason: str
) -> None:
    rig = make_rig(tmp_path, {POINTER_KEY: pointer, key_of(REV2): revision})
    assert readyz(rig) == 200
    code, body, answer = await switch(rig)
    assert code == 422 and answer.header("Cache-Control") == "no-store"
    assert body["outcome"] == "refused" and body["reason"] == reason and body["message"]
    assert (body["serving"], body["wanted"]) == (REV1.digest, REV1.digest)
    assert rig.harness.one(get("/configs/ns/router")).body == REV1.body
    assert readyz(rig) == 200 and rig.stored_digest() == REV1.digest
    assert rig.metrics.switches("refused") == 1


async def test_a_refused_revision_is_counted_as_a_verify_failure(tmp_path: Path) -> None:
    tampered = stored(REV2, body=REV2.body + b" ")
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV2), key_of(REV2): tampered})
    await switch(rig)
    assert rig.metrics.verify_failures("origin", "digest_mismatch") == 1


async def test_a_verified_peer_answer_stands_in_for_a_tampered_s3_object(tmp_path: Path) -> None:
    tampered = stored(REV2, body=REV2.body + b" ")
    peer = peer_serving(REV2)
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV2), key_of(REV2): tampered}, peer=peer)
    code, body, _ = await switch(rig)
    assert (code, body["outcome"], body["serving"]) == (200, "switched", REV2.digest)
    assert rig.metrics.total_fetches("peer") == 1


async def test_tampered_s3_and_an_unswitched_peer_is_still_a_refusal(tmp_path: Path) -> None:
    tampered = stored(REV2, body=REV2.body + b" ")
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV2), key_of(REV2): tampered}, peer=peer_serving(REV1))
    code, body, _ = await switch(rig)
    assert (code, body["reason"]) == (422, "digest_mismatch")


# -- unavailable: retry ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("objects", "reason"),
    [
        (
            {POINTER_KEY: OriginError("unreachable", "s3://b/k: origin unreachable (ConnectTimeoutError)")},
            "unreachable",
        ),
        ({}, "not_found"),  # no pointer
        ({POINTER_KEY: OriginError("denied", "s3://b/k: access denied (AccessDenied)")}, "denied"),
        ({POINTER_KEY: pointer_to(REV2)}, "not_found"),  # the revision it names is missing
        (
            {
                POINTER_KEY: pointer_to(REV2),
                key_of(REV2): OriginError("unreachable", "s3://b/k: unreachable"),
            },
            "unreachable",
        ),
    ],
    ids=[
        "pointer-unreachable",
        "pointer-missing",
        "pointer-denied",
        "revision-missing",
        "revision-unreachable",
    ],
)
async def test_what_cannot_be_read_is_unavailable(
    tmp_path: Path, objects: dict[str, OriginObject | OriginError], reason: str
) -> None:
    rig = make_rig(tmp_path, objects)
    code, body, _ = await switch(rig)
    assert code == 503 and body["outcome"] == "unavailable" and body["reason"] == reason
    assert (body["serving"], body["wanted"]) == (REV1.digest, REV1.digest)
    assert readyz(rig) == 200 and rig.metrics.switches("unavailable") == 1


async def test_a_peer_on_another_revision_is_unavailable_not_refused(tmp_path: Path) -> None:
    # S3 has lost the revision; the siblings have not switched yet.
    peer = peer_serving(REV1)
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV2)}, peer=peer)
    code, body, _ = await switch(rig)
    assert code == 503 and body["reason"] == "not_found" and peer.asked == 1
    assert rig.metrics.fetch_failures("peer", "not_found") == 1


async def test_a_peer_with_wrong_bytes_is_unavailable_not_refused(tmp_path: Path) -> None:
    peer = peer_serving(REV2, body=REV2.body.replace(b"v2", b"v9"))
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV2)}, peer=peer)
    code, body, _ = await switch(rig)
    assert code == 503 and body["outcome"] == "unavailable"
    assert rig.metrics.verify_failures("peer", "digest_mismatch") == 1
    assert rig.harness.one(get("/configs/ns/router")).body == REV1.body


async def test_s3_down_and_a_switched_peer_switches(tmp_path: Path) -> None:
    down = OriginError("unreachable", "s3://b/k: unreachable")
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV2), key_of(REV2): down}, peer=peer_serving(REV2))
    code, body, _ = await switch(rig)
    assert (code, body["serving"]) == (200, REV2.digest)


async def test_a_switch_is_bounded_in_time(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV2), key_of(REV2): stored(REV2)}, seconds=0.2)
    gate = rig.s3.gate(POINTER_KEY)  # S3 never answers the pointer read
    try:
        code, body, _ = await switch(rig)
    finally:
        gate.set()
    assert (code, body["outcome"], body["reason"]) == (503, "unavailable", "unreachable")


async def test_the_time_bound_covers_the_revision_fetch(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV2), key_of(REV2): stored(REV2)}, seconds=0.2)
    gate = rig.s3.gate(key_of(REV2))
    try:
        code, body, _ = await switch(rig)
    finally:
        gate.set()
    assert (code, body["reason"]) == (503, "unreachable")
    assert rig.harness.state.status.served_digest == REV1.digest


# -- single flight -----------------------------------------------------------------------------


async def test_concurrent_posts_share_one_switch(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV2), key_of(REV2): stored(REV2)})
    (c1, t1), (c2, t2) = rig.post(), rig.post()
    [a1], [a2] = await answers(c1, t1), await answers(c2, t2)
    assert a1.status == a2.status == 200 and a1.body == a2.body
    assert rig.s3.calls == Counter({POINTER_KEY: 1, key_of(REV2): 1})
    assert rig.metrics.switches("switched") == 1


async def test_a_post_after_the_pointer_was_read_gets_a_read_of_its_own(tmp_path: Path) -> None:
    """An answer always comes from a pointer read that began after its POST: the operator PUTs, then POSTs."""
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV1), key_of(REV2): stored(REV2)})
    gate = rig.s3.gate(POINTER_KEY)
    first = rig.post()
    while rig.s3.calls[POINTER_KEY] == 0:  # the first switch is reading the (old) pointer
        await asyncio.sleep(0.005)
    rig.s3.objects[POINTER_KEY] = pointer_to(REV2)  # the operator's PUT lands meanwhile...
    second, third = rig.post(), rig.post()  # ...and its POSTs come
    gate.set()
    [a1] = await answers(*first)
    [a2], [a3] = await answers(*second), await answers(*third)
    assert json.loads(a1.body)["outcome"] == "unchanged"
    assert (
        json.loads(a2.body)
        == json.loads(a3.body)
        == {
            "outcome": "switched",
            "serving": REV2.digest,
            "wanted": REV2.digest,
        }
    )
    assert rig.s3.calls[POINTER_KEY] == 2  # the later two shared one read


async def test_a_flood_of_posts_reads_the_pointer_at_most_once_per_gap(tmp_path: Path) -> None:
    """POST /-/revision is open to whoever reaches the pod: back-to-back POSTs, each sent once the
    last was answered, still read the pointer no faster than MIN_GAP_SECONDS apart."""
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV1)})
    reads: list[float] = []
    read = rig.s3.get

    def timed(key: str) -> OriginObject:
        reads.append(time.monotonic())
        return read(key)

    rig.s3.get = timed  # type: ignore[method-assign]
    started = time.monotonic()
    for _ in range(4):
        status, body, _ = await switch(rig)
        assert (status, body["outcome"]) == (200, "unchanged")
    elapsed = time.monotonic() - started
    assert len(reads) == 4
    # Each read runs in a thread, so when it reaches S3 jitters with scheduling (a loaded machine
    # delayed one by tens of ms, and the gap after it looked short): bound the count of reads by the
    # flood's duration instead, which every delay only lengthens.
    assert len(reads) <= elapsed / MIN_GAP_SECONDS + 1.01, (elapsed, reads)


# -- the start-up fetch ------------------------------------------------------------------------


async def test_a_slow_start_up_fetch_never_overwrites_a_switch(tmp_path: Path) -> None:
    """Pod started on REV0 wanting REV1 (env); S3 is slow on REV1; meanwhile the pointer moves to REV2."""
    rig = make_rig(
        tmp_path,
        {POINTER_KEY: pointer_to(REV2), key_of(REV1): stored(REV1), key_of(REV2): stored(REV2)},
        loaded=REV0,
        wanted=REV1,
    )
    slow = rig.s3.gate(key_of(REV1))
    startup = asyncio.create_task(
        fetch_wanted(
            origin=rig.s3,
            key=key_of(REV1),
            digest=REV1.digest,
            signing_key=SIGNING_KEY,
            state=None,
            metrics=rig.metrics,
            install=rig.keeper.keep_startup,
            backoff=Backoff(0.01, 0.02),
            stop=asyncio.Event(),
        )
    )
    rig.keeper.startup = startup
    while rig.s3.calls[key_of(REV1)] == 0:
        await asyncio.sleep(0.005)
    code, body, _ = await switch(rig)
    assert (code, body["serving"], body["wanted"]) == (200, REV2.digest, REV2.digest)
    with contextlib.suppress(asyncio.CancelledError):
        await startup
    assert startup.cancelled()
    slow.set()  # S3 answers REV1 now: nobody takes it
    # Nothing to poll for: what is checked is that nothing happens, so give the answer a moment.
    await asyncio.sleep(0.05)
    # And should a start-up keep get there anyway, it is refused.
    await rig.keeper.keep_startup(REV1)
    assert rig.harness.state.status.served_digest == REV2.digest and readyz(rig) == 200
    assert rig.stored_digest() == REV2.digest


async def test_a_start_up_fetch_that_lands_during_a_switch_comes_first(tmp_path: Path) -> None:
    rig = make_rig(
        tmp_path,
        {POINTER_KEY: pointer_to(REV2), key_of(REV1): stored(REV1), key_of(REV2): stored(REV2)},
        loaded=REV0,
        wanted=REV1,
    )
    switch_fetch = rig.s3.gate(key_of(REV2))
    conn, transport = rig.post()
    while rig.s3.calls[key_of(REV2)] == 0:  # the switch is fetching REV2
        await asyncio.sleep(0.005)
    await rig.keeper.keep_startup(REV1)  # the start-up fetch lands first: installed, not wanted yet...
    assert rig.harness.state.status.served_digest == REV1.digest
    switch_fetch.set()
    [answer] = await answers(conn, transport)
    assert json.loads(answer.body)["serving"] == REV2.digest  # ...and the switch lands last
    assert rig.stored_digest() == REV2.digest and readyz(rig) == 200


# -- disabled, GET, methods, bodies ------------------------------------------------------------


def test_without_a_pointer_key_post_is_404_disabled() -> None:
    harness = make_harness(loaded=REV1)
    answer = harness.one(post())
    assert answer.status == 404 and answer.header("Cache-Control") == "no-store"
    body = json.loads(answer.body)
    assert body["outcome"] == "disabled" and body["serving"] == REV1.digest


ENV = {
    "EDGEROLL_S3_BUCKET": "edgeroll",
    "EDGEROLL_CONFIG_KEY": key_of(REV1),
    "EDGEROLL_CONFIG_DIGEST": REV1.digest,
    "EDGEROLL_SIGNING_KEY": SIGNING_KEY.decode(),
    "EDGEROLL_CONFIG_NAMESPACE": "ns",
    "EDGEROLL_CONFIG_NAME": "router",
}


def test_the_pointer_key_setting() -> None:
    assert settings_from_env(ENV).pointer_key is None
    assert (
        settings_from_env({**ENV, "EDGEROLL_CONFIG_POINTER_KEY": f" {POINTER_KEY} "}).pointer_key
        == POINTER_KEY
    )
    with pytest.raises(SettingsError, match="EDGEROLL_CONFIG_POINTER_KEY"):
        settings_from_env({**ENV, "EDGEROLL_CONFIG_POINTER_KEY": "  "})


def test_workers_and_no_pointer_key_mean_no_switcher(tmp_path: Path) -> None:
    for env in (ENV, {**ENV, "EDGEROLL_CONFIG_POINTER_KEY": POINTER_KEY, "EDGEROLL_CACHE_WORKERS": "2"}):
        settings = settings_from_env(env)
        # A worker builds its server state so (workers.serve_worker): no switcher, POST is 404.
        state = make_server_state(settings, Metrics())
        assert state.switcher is None
        conn = HttpConnection(state)
        transport = FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        conn.data_received(post())
        [answer] = read_answers(bytes(transport.out))
        assert answer.status == 404 and json.loads(answer.body)["outcome"] == "disabled"
    settings = settings_from_env(ENV)
    state = make_server_state(settings, Metrics())
    keeper = Keeper(state.status, None, lambda revision: asyncio.sleep(0))
    assert make_switcher(settings, state, keeper, KeyedS3({}), None) is None  # type: ignore[arg-type]


def test_get_and_head_say_what_is_served_and_wanted() -> None:
    harness = make_harness(loaded=None, wanted=REV1)
    answer = harness.one(get("/-/revision"))
    assert answer.status == 200 and answer.header("Cache-Control") == "no-store"
    assert json.loads(answer.body) == {"serving": None, "wanted": REV1.digest}
    harness.load(REV1)
    assert json.loads(harness.one(get("/-/revision")).body) == {"serving": REV1.digest, "wanted": REV1.digest}
    head = harness.one(get("/-/revision", method="HEAD"), head=True)
    assert head.status == 200 and head.body == b"" and int(head.header("Content-Length") or 0) > 0


def test_other_methods_are_405() -> None:
    harness = make_harness(loaded=REV1)
    for method in ("PUT", "DELETE", "PATCH"):
        answer = harness.one(get("/-/revision", method=method))
        assert answer.status == 405 and answer.header("Allow") == "GET, HEAD, POST"


async def test_the_body_is_ignored_and_bounded(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV1)})
    conn, transport = rig.harness.connect()
    conn.data_received(post(b'{"digest": "sha256:whatever the caller says"}'))
    [answer] = await answers(conn, transport)
    assert answer.status == 200 and json.loads(answer.body)["serving"] == REV1.digest
    big = rig.harness.one(post(b"x" * 2048))
    assert big.status == 413 and big.header("Connection") == "close"
    assert rig.s3.calls[POINTER_KEY] == 1  # the oversized POST started nothing


# -- the connection: order, reading, draining --------------------------------------------------


async def test_pipelined_requests_after_a_post_are_answered_after_it_in_order(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV2), key_of(REV2): stored(REV2)})
    gate = rig.s3.gate(key_of(REV2))
    conn, transport = rig.post(get("/-/revision"), get("/configs/ns/router"), get("/healthz"))
    while rig.s3.calls[key_of(REV2)] == 0:  # the switch is held at its fetch
        await asyncio.sleep(0.005)
    assert transport.out == b"" and not transport.reading  # nothing before the switch's answer
    gate.set()
    a = await answers(conn, transport)
    assert [x.status for x in a] == [200, 200, 200, 200]
    assert json.loads(a[0].body)["outcome"] == "switched"
    assert json.loads(a[1].body)["serving"] == REV2.digest  # handled after the switch
    assert a[2].body == REV2.body
    assert transport.reading and not transport.closed


async def test_two_pipelined_posts_and_a_malformed_tail(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV2), key_of(REV2): stored(REV2)})
    conn, transport = rig.post(post(), b"NOT HTTP AT ALL\r\n\r\n")
    a = await answers(conn, transport)
    assert [x.status for x in a] == [200, 200, 400]
    assert [json.loads(x.body)["outcome"] for x in a[:2]] == ["switched", "unchanged"]
    assert transport.closed


async def test_a_post_with_connection_close_gets_its_answer_then_the_close(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV1)})
    conn, transport = rig.harness.connect()
    conn.data_received(
        b"POST /-/revision HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n" + get("/healthz")
    )
    a = await answers(conn, transport)
    assert [x.status for x in a] == [200] and a[0].header("Connection") == "close" and transport.closed


async def test_draining_waits_for_the_switch_then_closes(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV2), key_of(REV2): stored(REV2)})
    gate = rig.s3.gate(key_of(REV2))
    conn, transport = rig.post()
    rig.harness.state.begin_drain()
    rig.harness.state.tick()  # timeouts and drain checks run while the switch is pending
    assert not transport.closed
    gate.set()
    [answer] = await answers(conn, transport)
    assert answer.status == 200 and answer.header("Connection") == "close" and transport.closed


async def test_a_switch_cancelled_at_shutdown_answers_503(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV2), key_of(REV2): stored(REV2)})
    gate = rig.s3.gate(POINTER_KEY)
    conn, transport = rig.post()
    while rig.s3.calls[POINTER_KEY] == 0:  # the switch is held reading the pointer
        await asyncio.sleep(0.005)
    rig.switcher.close()
    [answer] = await answers(conn, transport)
    gate.set()
    assert answer.status == 503 and json.loads(answer.body)["reason"] == "shutting_down"


async def test_a_client_gone_before_the_answer_is_harmless(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV2), key_of(REV2): stored(REV2)})
    conn, transport = rig.post(get("/healthz"))
    transport.close()
    conn.connection_lost(None)
    await settled(conn)
    assert rig.harness.state.status.served_digest == REV2.digest  # the switch itself went through


# -- metrics -----------------------------------------------------------------------------------


async def test_outcomes_and_answers_are_counted_on_metrics(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, {POINTER_KEY: pointer_to(REV1), key_of(REV2): stored(REV2)})
    await switch(rig)  # unchanged
    rig.s3.objects[POINTER_KEY] = pointer_to(REV2)
    await switch(rig)  # switched
    rig.s3.objects[POINTER_KEY] = pointer_to(REV1, signing_key=b"k" * 32)
    await switch(rig)  # refused
    del rig.s3.objects[POINTER_KEY]
    await switch(rig)  # unavailable
    text = rig.harness.one(get("/metrics")).body.decode()
    for outcome in ("switched", "unchanged", "refused", "unavailable"):
        assert f'edgeroll_cache_switches_total{{outcome="{outcome}"}} 1' in text
    assert "# TYPE edgeroll_cache_switches_total counter" in text
    assert 'edgeroll_cache_requests_total{route="revision",code="200"} 2' in text
    assert 'edgeroll_cache_requests_total{route="revision",code="422"} 1' in text
    assert 'edgeroll_cache_requests_total{route="revision",code="503"} 1' in text


# -- pure --------------------------------------------------------------------------------------


def test_the_cluster_a_pointer_key_names() -> None:
    assert expected_cluster("p/ns/name/targets/edge-eu.json") == "edge-eu"
    assert expected_cluster("p/ns/name/targets/.json") is None
    assert expected_cluster("p/ns/name/pointer.json") is None
    assert expected_cluster("p/ns/name/targets/a/b.json") is None
