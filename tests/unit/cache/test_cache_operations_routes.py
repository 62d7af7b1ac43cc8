"""Persisted operations at the edge: `GET /<org>/<graph>/operations/manifest.json`,
`operations/<client>/<sha256>.json` and `cache_warmup/operations.json`, from a verified bundle
(render.operations), in the order and with the texts of Cosmo's CDN (cdn-server/cdn/src/index.ts:
token 401, other methods 404, ids 400, then 404 / 304 / 200). The Cosmo routerconfigs route of a
bundle serves the config alone, signed; GET /configs serves the revision as published."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest
from cache_testkit import (
    GRAPH,
    ORG,
    READ_TOKEN,
    SIGNING_KEY,
    HttpAnswer,
    config_body,
    jwt,
    make_harness,
    signed_revision,
)

from edgeroll.render.operations import PersistedOperations, bundle_body
from edgeroll.render.signing import sign

pytestmark = pytest.mark.unit

SECRET = b"graph-token-secret"
HELLO = "query Hello { hello }"
HASH = hashlib.sha256(HELLO.encode()).hexdigest()
CONFIG = config_body("v7")
OPS = PersistedOperations({"web": {HASH: HELLO}}, cache_warmup=True)
BUNDLE = bundle_body(CONFIG, OPS)
TOKEN = jwt({"organization_id": ORG, "federated_graph_id": GRAPH}, SECRET)


def request(path: str, bearer: str | None = TOKEN, method: str = "GET", extra: tuple[str, ...] = ()) -> bytes:
    lines = [f"{method} /{ORG}/{GRAPH}/{path} HTTP/1.1", "Host: edge", *extra]
    if bearer is not None:
        lines.append(f"Authorization: Bearer {bearer}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def ask(raw: bytes, body: bytes = BUNDLE) -> HttpAnswer:
    return make_harness(loaded=signed_revision(body), cosmo_secret=SECRET).one(raw)


def test_the_manifest_lists_the_operations_with_its_revision_as_etag_and_a_304_round_trip() -> None:
    first = ask(request("operations/manifest.json"))
    assert first.status == 200
    assert first.headers["content-type"] == "application/json; charset=UTF-8"
    manifest = json.loads(first.body)
    assert manifest["version"] == 1 and manifest["operations"] == {HASH: HELLO}
    assert first.headers["etag"] == f'"{manifest["revision"]}"'
    again = ask(request("operations/manifest.json", extra=(f"If-None-Match: {first.headers['etag']}",)))
    assert (again.status, again.body, again.headers["etag"]) == (304, b"", first.headers["etag"])
    other = ask(request("operations/manifest.json", extra=('If-None-Match: "old-revision"',)))
    assert other.status == 200 and other.headers["etag"] == first.headers["etag"]


def test_the_manifest_is_gzipped_for_a_router_that_asks() -> None:
    answer = ask(request("operations/manifest.json", extra=("Accept-Encoding: gzip",)))
    plain = gzip.decompress(answer.body) if answer.headers.get("content-encoding") == "gzip" else answer.body
    assert json.loads(plain)["operations"] == {HASH: HELLO}


def test_one_operation_is_served_per_client_as_the_cdn_stores_it() -> None:
    answer = ask(request(f"operations/web/{HASH}.json"))
    assert answer.status == 200
    assert answer.body == json.dumps({"version": 1, "body": HELLO}, separators=(",", ":")).encode()
    assert "content-type" not in answer.headers
    assert ask(request(f"operations/mobile/{HASH}.json")).status == 404
    assert ask(request("operations/web/does_not_exist.json")).status == 404


def test_cache_warmup_lists_the_operations_and_is_not_cached() -> None:
    answer = ask(request("cache_warmup/operations.json"))
    assert answer.status == 200
    assert answer.headers["cache-control"] == "no-cache, no-store, must-revalidate"
    (item,) = json.loads(answer.body)["operations"]
    assert item["request"]["extensions"]["persistedQuery"]["sha256Hash"] == HASH
    off = bundle_body(CONFIG, PersistedOperations(OPS.by_client, cache_warmup=False))
    assert ask(request("cache_warmup/operations.json"), off).status == 404


@pytest.mark.parametrize(
    ("raw", "status", "text"),
    [
        (request("operations/manifest.json", bearer=None), 401, None),
        (request("operations/manifest.json", bearer=TOKEN[:-1] + "}"), 401, None),
        (request(f"operations/web/{HASH}.json", bearer=None), 401, None),
        (request("cache_warmup/operations.json", bearer=None), 401, None),
        (request("operations/manifest.json", method="POST"), 404, b"404 Not Found"),
        (request("operations/manifest.json").replace(f"/{ORG}/".encode(), b"/foo/"), 400, b"Bad Request"),
    ],
)
def test_refusals_in_the_cdns_order(raw: bytes, status: int, text: bytes | None) -> None:
    answer = ask(raw)
    assert answer.status == status
    if text is not None:
        assert answer.body == text


def test_a_config_without_operations_has_no_operations_routes() -> None:
    for path in ("operations/manifest.json", f"operations/web/{HASH}.json", "cache_warmup/operations.json"):
        assert ask(request(path), CONFIG).status == 404, path


def test_the_cosmo_route_of_a_bundle_serves_the_config_alone_signed() -> None:
    body = b'{"version":""}'
    head = request("routerconfigs/latest.json", method="POST", extra=(f"Content-Length: {len(body)}",))
    raw = head + body
    answer = ask(raw)
    assert answer.status == 200
    assert answer.body == CONFIG
    assert answer.headers["x-signature-sha256"] == sign(SIGNING_KEY, CONFIG)


def test_get_configs_serves_the_revision_as_published() -> None:
    raw = f"GET /configs/ns/router HTTP/1.1\r\nHost: edge\r\nAuthorization: Bearer {READ_TOKEN}\r\n\r\n"
    answer = ask(raw.encode())
    assert answer.status == 200
    assert answer.body == BUNDLE
    assert answer.headers["x-signature-sha256"] == sign(SIGNING_KEY, BUNDLE)


def test_a_client_named_manifest_is_a_client() -> None:
    ops = PersistedOperations({"manifest": {HASH: HELLO}})
    assert ask(request(f"operations/manifest/{HASH}.json"), bundle_body(CONFIG, ops)).status == 200
