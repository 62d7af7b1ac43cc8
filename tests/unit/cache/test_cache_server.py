"""The HTTP protocol handler, driven byte by byte through a fake transport."""

from __future__ import annotations

import gzip

import pytest
from cache_testkit import (
    GRAPH,
    ORG,
    READ_TOKEN,
    SIGNING_KEY,
    config_body,
    jwt,
    make_harness,
    read_answers,
    signed_revision,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeroll.cache.server import Limits
from edgeroll.render.signing import verify

pytestmark = pytest.mark.unit

REV1 = signed_revision(config_body("v1", size=8000))
REV2 = signed_revision(config_body("v2", size=8000))
TOKEN = jwt({"organization_id": ORG, "federated_graph_id": GRAPH})
COSMO_PATH = f"/{ORG}/{GRAPH}/routerconfigs/latest.json"


def get(path: str = "/configs/ns/router", *headers: str, method: str = "GET") -> bytes:
    """A request; one for /configs/ carries the read token unless `headers` name an Authorization."""
    if path.startswith("/configs/") and not any(h.lower().startswith("authorization:") for h in headers):
        headers = (*headers, f"Authorization: Bearer {READ_TOKEN}")
    lines = [f"{method} {path} HTTP/1.1", "Host: edge", *headers, "", ""]
    return "\r\n".join(lines).encode()


def cosmo_post(body: bytes = b'{"version":""}', token: str | None = TOKEN, path: str = COSMO_PATH) -> bytes:
    headers = [
        f"POST {path} HTTP/1.1",
        "Host: edge",
        "Content-Type: application/json; charset=UTF-8",
        "Accept-Encoding: gzip",
        f"Content-Length: {len(body)}",
    ]
    if token is not None:
        headers.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


# -- GET /configs/<ns>/<name> -----------------------------------------------------------------


def test_get_serves_the_config_with_validators_and_signature() -> None:
    answer = make_harness(loaded=REV1).one(get())
    assert answer.status == 200
    assert answer.body == REV1.body
    assert answer.header("etag") == f'"{REV1.digest}"'
    assert answer.header("x-config-digest") == REV1.digest
    assert verify(SIGNING_KEY, answer.body, answer.header("x-signature-sha256"))
    assert answer.header("cache-control") == "no-cache"
    assert answer.header("content-type") == "application/json"
    assert answer.header("date") is not None
    assert answer.header("content-encoding") is None


def test_gzip_when_accepted() -> None:
    answer = make_harness(loaded=REV1).one(get("/configs/ns/router", "Accept-Encoding: gzip, br"))
    assert answer.header("content-encoding") == "gzip"
    assert gzip.decompress(answer.body) == REV1.body
    assert verify(SIGNING_KEY, REV1.body, answer.header("x-signature-sha256"))


def test_if_none_match_gives_304_and_a_stale_etag_gives_200() -> None:
    harness = make_harness(loaded=REV1)
    answer = harness.one(get("/configs/ns/router", f'If-None-Match: "{REV1.digest}"'))
    assert (answer.status, answer.body) == (304, b"")
    assert answer.header("etag") == f'"{REV1.digest}"'
    stale = harness.one(get("/configs/ns/router", f'If-None-Match: "{REV2.digest}"'))
    assert stale.status == 200


def test_head_has_headers_only() -> None:
    answer = make_harness(loaded=REV1).one(get(method="HEAD"), head=True)
    assert answer.status == 200 and answer.body == b""
    assert answer.header("content-length") == str(len(REV1.body))


def test_query_string_is_ignored() -> None:
    assert make_harness(loaded=REV1).one(get("/configs/ns/router?x=1")).status == 200


def test_nothing_loaded_is_503_with_retry_after() -> None:
    answer = make_harness(wanted=REV1).one(get())
    assert answer.status == 503
    assert answer.header("retry-after") == "1"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_wrong_method_is_405(method: str) -> None:
    raw = get(method=method).replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n")
    answer = make_harness(loaded=REV1).one(raw)
    assert answer.status == 405 and answer.header("allow") == "GET, HEAD"


@pytest.mark.parametrize("path", ["/configs/ns/other", "/configs/ns", "/", "/configs/ns/router/x"])
def test_other_paths_are_404(path: str) -> None:
    assert make_harness(loaded=REV1).one(get(path)).status == 404


def test_switch_serves_each_request_from_one_revision() -> None:
    harness = make_harness(wanted=REV2, loaded=REV1)
    conn, transport = harness.connect()
    conn.data_received(get())
    harness.load(REV2)
    conn.data_received(get())
    first, second = read_answers(bytes(transport.out))
    assert (first.body, first.header("x-config-digest")) == (REV1.body, REV1.digest)
    assert (second.body, second.header("x-config-digest")) == (REV2.body, REV2.digest)


# -- connection handling ------------------------------------------------------------------------


def test_keep_alive_and_pipelining_answer_in_order() -> None:
    harness = make_harness(loaded=REV1)
    conn, transport = harness.connect()
    conn.data_received(get("/healthz") + get() + get("/configs/ns/router", f'If-None-Match: "{REV1.digest}"'))
    statuses = [a.status for a in read_answers(bytes(transport.out))]
    assert statuses == [200, 200, 304]
    assert not transport.closed


def test_request_split_across_reads() -> None:
    harness = make_harness(loaded=REV1)
    conn, transport = harness.connect()
    raw = get("/configs/ns/router", "Accept-Encoding: gzip")
    for i in range(len(raw)):
        conn.data_received(raw[i : i + 1])
    (answer,) = read_answers(bytes(transport.out))
    assert answer.status == 200 and answer.header("content-encoding") == "gzip"


def test_connection_close_is_honoured() -> None:
    harness = make_harness(loaded=REV1)
    conn, transport = harness.connect()
    conn.data_received(get("/configs/ns/router", "Connection: close") + get())
    answers = read_answers(bytes(transport.out))
    assert [a.status for a in answers] == [200]
    assert answers[0].header("connection") == "close"
    assert transport.closed


def test_http10_without_keep_alive_closes() -> None:
    harness = make_harness(loaded=REV1)
    conn, transport = harness.connect()
    conn.data_received(b"GET /healthz HTTP/1.0\r\n\r\n")
    assert read_answers(bytes(transport.out))[0].status == 200
    assert transport.closed


def test_draining_closes_idle_connections_and_answers_busy_ones_with_close() -> None:
    harness = make_harness(loaded=REV1)
    _idle, idle_transport = harness.connect()
    busy, busy_transport = harness.connect()
    busy.data_received(b"GET /configs/ns/router HTTP/1.1\r\n")  # half a request
    harness.state.begin_drain()
    assert idle_transport.closed and not busy_transport.closed
    busy.data_received(f"Host: edge\r\nAuthorization: Bearer {READ_TOKEN}\r\n\r\n".encode())
    (answer,) = read_answers(bytes(busy_transport.out))
    assert answer.status == 200 and answer.header("connection") == "close"
    assert busy_transport.closed


def test_slow_request_times_out_with_408_and_idle_connection_closes() -> None:
    harness = make_harness(loaded=REV1, limits=Limits(request_timeout=10, keepalive_timeout=60))
    slow, slow_transport = harness.connect()
    idle, idle_transport = harness.connect()
    slow.data_received(b"GET /configs/ns/router HTTP/1.1\r\nHost:")
    now = harness.state.now
    for conn in (slow, idle):
        conn.check_timeouts(now + 5, harness.state.limits)
    assert not slow_transport.closed and not idle_transport.closed
    for conn in (slow, idle):
        conn.check_timeouts(now + 11, harness.state.limits)
    assert read_answers(bytes(slow_transport.out))[0].status == 408
    assert slow_transport.closed and not idle_transport.closed
    idle.check_timeouts(now + 61, harness.state.limits)
    assert idle_transport.closed and idle_transport.out == b""


def test_connection_limit() -> None:
    harness = make_harness(loaded=REV1, limits=Limits(max_connections=1))
    _, first = harness.connect()
    _, second = harness.connect()
    assert not first.closed
    assert read_answers(bytes(second.out))[0].status == 503 and second.closed


def test_backpressure_pauses_reading() -> None:
    harness = make_harness(loaded=REV1)
    conn, transport = harness.connect()
    conn.pause_writing()
    assert not transport.reading
    conn.resume_writing()
    assert transport.reading


# -- limits and malformed input -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"v" * 17000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # a TLS ClientHello
        (b"GET / HTTP/9.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
        (b"GET / HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", 400),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_close(raw: bytes, status: int) -> None:
    harness = make_harness(loaded=REV1)
    conn, transport = harness.connect()
    conn.data_received(raw)
    (answer,) = read_answers(bytes(transport.out))
    assert answer.status == status
    assert answer.body  # says why
    assert transport.closed


def test_oversized_body_is_413() -> None:
    harness = make_harness(loaded=REV1)
    body = b'{"version":"' + b"x" * 20_000 + b'"}'
    conn, transport = harness.connect()
    conn.data_received(cosmo_post(body))
    (answer,) = read_answers(bytes(transport.out))
    assert answer.status == 413 and b"16384" in answer.body
    assert transport.closed


def test_oversized_chunked_body_is_413() -> None:
    harness = make_harness(loaded=REV1)
    conn, transport = harness.connect()
    head = (
        f"POST {COSMO_PATH} HTTP/1.1\r\nTransfer-Encoding: chunked\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    )
    conn.data_received(head.encode())
    for _ in range(40):
        if transport.closed:
            break
        conn.data_received(b"400\r\n" + b"x" * 0x400 + b"\r\n")
    assert read_answers(bytes(transport.out))[0].status == 413


def test_a_header_never_completed_is_bounded() -> None:
    harness = make_harness(loaded=REV1)
    conn, transport = harness.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nX-Endless: ")
    for _ in range(200):
        if transport.closed:
            break
        conn.data_received(b"v" * 1024)
    assert transport.closed
    assert read_answers(bytes(transport.out))[0].status == 431


def test_upgrade_requests_are_answered_then_closed() -> None:
    harness = make_harness(loaded=REV1)
    conn, transport = harness.connect()
    conn.data_received(b"GET /healthz HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nPRI * HTTP/2.0")
    assert read_answers(bytes(transport.out))[0].status == 200
    assert transport.closed


# -- health, readiness, metrics -----------------------------------------------------------------


def test_readyz_needs_the_wanted_revision() -> None:
    harness = make_harness(wanted=REV2)
    assert harness.one(get("/readyz")).status == 503
    harness.load(REV1)  # last-known-good: serving, but not ready
    answer = harness.one(get("/readyz"))
    assert answer.status == 503 and REV2.digest.encode() in answer.body
    assert harness.one(get()).status == 200
    harness.load(REV2)
    assert harness.one(get("/readyz")).status == 200
    assert harness.one(get("/healthz")).status == 200


def test_metrics_count_requests_bytes_and_show_the_served_digest() -> None:
    harness = make_harness(loaded=REV1)
    harness.one(get())
    harness.one(get("/configs/ns/router", f'If-None-Match: "{REV1.digest}"'))
    harness.one(get("/nope"))
    text = harness.one(get("/metrics")).body.decode()
    assert 'edgeroll_cache_requests_total{route="configs",code="200"} 1' in text
    assert 'edgeroll_cache_requests_total{route="configs",code="304"} 1' in text
    assert 'edgeroll_cache_requests_total{route="other",code="404"} 1' in text
    assert f'digest="{REV1.digest}"}} 1' in text
    assert "edgeroll_cache_ready 1" in text
    assert "edgeroll_cache_served_config_age_seconds " in text
    configs_bytes = next(
        line
        for line in text.splitlines()
        if line.startswith('edgeroll_cache_response_bytes_total{route="configs"}')
    )
    assert int(configs_bytes.split()[-1]) > len(REV1.body)


# -- the Cosmo CDN route ------------------------------------------------------------------------


def test_cosmo_first_fetch_gets_the_signed_config_gzipped() -> None:
    answer = make_harness(loaded=REV1).one(cosmo_post(b'{"version":""}'))
    assert answer.status == 200
    assert answer.header("content-encoding") == "gzip"
    body = gzip.decompress(answer.body)
    assert body == REV1.body
    assert verify(SIGNING_KEY, body, answer.header("x-signature-sha256"))


def test_cosmo_same_version_is_304_and_new_version_is_200() -> None:
    harness = make_harness(loaded=REV1)
    assert harness.one(cosmo_post(b'{"version":"v1"}')).status == 304
    assert harness.one(cosmo_post(b'{"version":"v0"}')).status == 200
    harness.load(REV2)
    answer = harness.one(cosmo_post(b'{"version":"v1"}'))
    assert answer.status == 200 and gzip.decompress(answer.body) == REV2.body


def test_cosmo_without_version_in_config_always_sends_the_body() -> None:
    versionless = signed_revision(b'{"engineConfig":{"graphqlSchema":"' + b"type Q {a: Int}" * 200 + b'"}}')
    harness = make_harness(loaded=versionless)
    assert harness.one(cosmo_post(b'{"version":""}')).status == 200


@pytest.mark.parametrize(
    "token",
    [
        None,
        "not-a-jwt",
        jwt({"organization_id": ORG}),
    ],
)
def test_cosmo_bad_token_is_401(token: str | None) -> None:
    answer = make_harness(loaded=REV1).one(cosmo_post(token=token))
    assert answer.status == 401
    assert answer.header("www-authenticate") is not None


@pytest.mark.parametrize(
    "claims",
    [
        {"organization_id": "other-org", "federated_graph_id": GRAPH},
        {"organization_id": ORG, "federated_graph_id": "g"},
    ],
)
def test_cosmo_token_for_another_graph_than_the_path_is_400(claims: dict[str, str]) -> None:
    # As Cosmo's CDN: the token is fine, the request is not (cdn-server/cdn/src/index.ts).
    answer = make_harness(loaded=REV1).one(cosmo_post(token=jwt(claims)))
    assert (answer.status, answer.body) == (400, b"Bad Request")


def test_cosmo_token_secret_is_enforced() -> None:
    harness = make_harness(loaded=REV1, cosmo_secret=b"graph-secret")
    assert (
        harness.one(cosmo_post(token=jwt({"organization_id": ORG, "federated_graph_id": GRAPH}))).status
        == 401
    )
    good = jwt({"organization_id": ORG, "federated_graph_id": GRAPH}, b"graph-secret")
    assert harness.one(cosmo_post(token=good)).status == 200


def test_cosmo_unknown_graph_is_404_for_a_valid_token() -> None:
    token = jwt({"organization_id": ORG, "federated_graph_id": "graph-2"})
    answer = make_harness(loaded=REV1).one(
        cosmo_post(token=token, path=f"/{ORG}/graph-2/routerconfigs/latest.json")
    )
    assert answer.status == 404


def test_cosmo_path_escaping_matches_claims() -> None:
    token = jwt({"organization_id": "org 1", "federated_graph_id": GRAPH})
    path = f"/org%201/{GRAPH}/routerconfigs/latest.json"
    assert make_harness(loaded=REV1).one(cosmo_post(token=token, path=path)).status == 404  # not our org
    assert make_harness(loaded=REV1).one(cosmo_post(token=token, path=COSMO_PATH)).status == 400


@pytest.mark.parametrize("body", [b"{", b"[1]", b'{"version":42}'])
def test_cosmo_malformed_body_is_400(body: bytes) -> None:
    assert make_harness(loaded=REV1).one(cosmo_post(body)).status == 400


def test_cosmo_get_is_405_and_disabled_route_is_404() -> None:
    assert make_harness(loaded=REV1).one(get(COSMO_PATH, f"Authorization: Bearer {TOKEN}")).status == 405
    assert make_harness(loaded=REV1, with_cosmo=False).one(cosmo_post()).status == 404


def test_cosmo_before_anything_is_loaded_is_503_not_404() -> None:
    # 404 would make the router fall back to its built-in empty config.
    assert make_harness(wanted=REV1).one(cosmo_post()).status == 503


def test_cosmo_expect_100_continue_is_answered() -> None:
    harness = make_harness(loaded=REV1)
    conn, transport = harness.connect()
    body = b'{"version":"v1"}'
    conn.data_received(
        f"POST {COSMO_PATH} HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nExpect: 100-continue\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    assert transport.out.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    del transport.out[: len(b"HTTP/1.1 100 Continue\r\n\r\n")]
    conn.data_received(body)
    assert read_answers(bytes(transport.out))[0].status == 304


# -- whatever arrives, nothing raises and nothing answers 5xx -----------------------------------

VALID = [
    get(),
    get("/configs/ns/router", "Accept-Encoding: gzip", f'If-None-Match: "{REV1.digest}"'),
    cosmo_post(b'{"version":"v1"}'),
    get("/metrics"),
    get(method="HEAD"),
]


def _feed(data: bytes, chunk: int) -> bytes:
    harness = make_harness(loaded=REV1)
    conn, transport = harness.connect()
    for i in range(0, len(data), chunk):
        conn.data_received(data[i : i + chunk])
    return bytes(transport.out)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=3000), chunk=st.integers(1, 512))
def test_arbitrary_bytes_never_raise_or_500(data: bytes, chunk: int) -> None:
    out = _feed(data, chunk)
    assert b"HTTP/1.1 500" not in out


@settings(max_examples=300, deadline=None)
@given(
    requests=st.lists(st.sampled_from(VALID), min_size=1, max_size=4),
    cut=st.integers(0, 4000),
    junk=st.binary(max_size=40),
    chunk=st.integers(1, 700),
)
def test_mutated_requests_never_raise_or_500(
    requests: list[bytes], cut: int, junk: bytes, chunk: int
) -> None:
    data = b"".join(requests)
    cut = min(cut, len(data))
    out = _feed(data[:cut] + junk + data[cut:], chunk)
    assert b"HTTP/1.1 500" not in out
    if not junk:
        assert out.count(b"HTTP/1.1 ") >= len(requests)
