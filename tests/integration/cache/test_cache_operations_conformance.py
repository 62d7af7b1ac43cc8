"""Persisted operations against one `edgeroll cache` process, table-driven: `operations/manifest.json`,
`operations/<client>/<file>.json` and `cache_warmup/operations.json`, from a bundle published to the
lab's S3 (render.operations).

`cdn.test.ts: <describe> > <test>` names a test of wundergraph/cosmo cdn-server/cdn/test/cdn.test.ts,
sent with the same method, path shape and token, asserting what it asserts. Upstream stores objects
under names of its own choosing ("operationHash", "abc123"); here an operation is filed under its
sha256 and the manifest's revision (its ETag) is the sha256 of the operations, so the expected
values are the ones this cache derives, checked for the same shape (ETag quoted, round trip, 304).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cache_itkit import CacheProcess, config_body, cosmo_cdn, graph_token

from edgeroll.render.operations import (
    PersistedOperations,
    bundle_body,
    operation_file,
    pql_manifest,
    warmup_file,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ORG, GRAPH = "organizationId", "federatedGraphId"  # the ids cdn.test.ts uses
SECRET = "hunter2"  # cdn.test.ts's secretKey
CLIENT = "clientName"
HELLO = "query { hello }"  # the document cdn.test.ts stores
HASH = hashlib.sha256(HELLO.encode()).hexdigest()
OPERATIONS = PersistedOperations({CLIENT: {HASH: HELLO}}, cache_warmup=True)
MANIFEST, REVISION = pql_manifest(OPERATIONS)
WARMUP = warmup_file(OPERATIONS)
CONFIG = config_body("operations-v1")

CLAIMS = {"organization_id": ORG, "federated_graph_id": GRAPH}
VALID = graph_token(CLAIMS, SECRET)
TOKENS: dict[str, str | None] = {
    "none": None,
    "valid": VALID,
    "invalid": VALID[:-1] + "}",  # cdn.test.ts's `token.slice(0, -1)}`
    "expired": graph_token({**CLAIMS, "exp": int(time.time()) - 60}, SECRET),
}
JSON_UTF8 = "application/json; charset=UTF-8"


@dataclass(frozen=True)
class Case:
    mirrors: str
    path: str
    token: str
    status: int
    body: bytes | None = None  # exact body expected, None: not checked
    headers: dict[str, str] = field(default_factory=dict)  # exact, names lowercase
    if_none_match: str | None = None


JWT_OP = "cdn.test.ts: Test JWT authentication with persistent operation > "
OP = "cdn.test.ts: Test persisted operations handler > "
WARM = "cdn.test.ts: Test cache warmer operations handler > "
PQL = "cdn.test.ts: Test persisted operations manifest handler > "
OP_PATH = f"/{ORG}/{GRAPH}/operations/{CLIENT}/operation.json"  # upstream's path: no such operation
OPERATION = f"/{ORG}/{GRAPH}/operations/{CLIENT}/{HASH}.json"
WARMUP_PATH = f"/{ORG}/{GRAPH}/cache_warmup/operations.json"
PQL_PATH = f"/{ORG}/{GRAPH}/operations/manifest.json"
ETAG = f'"{REVISION}"'

CASES = [
    Case(JWT_OP + "it returns a 401 if no Authorization header is provided", OP_PATH, "none", 401),
    Case(
        JWT_OP + "it returns a 403 if an invalid Authorization header is provided (it expects 401)",
        OP_PATH,
        "invalid",
        401,
    ),
    Case(
        JWT_OP + "it authenticates the request when a valid Authorization header is provided",
        OP_PATH,
        "valid",
        404,
    ),
    Case(
        JWT_OP + "it returns a 400 if the graph or organization ids does not match with the JWT payload",
        "/foo/bar/operations/clientName/operation.json",
        "valid",
        400,
        b"Bad Request",
    ),
    Case(
        JWT_OP + "it returns a 401 if the token has expired",
        "/foo/bar/operations/clientName/operation.json",
        "expired",
        401,
    ),
    Case(
        OP + "it returns a persisted operation",
        OPERATION,
        "valid",
        200,
        b'{"version":1,"body":"query { hello }"}',
    ),
    Case(
        OP + "it returns a 404 if the persisted operation does not exist",
        f"/{ORG}/{GRAPH}/operations/{CLIENT}/does_not_exist.json",
        "valid",
        404,
    ),
    Case(WARM + "it returns a 401 if no Authorization header is provided", WARMUP_PATH, "none", 401),
    Case(
        WARM + "it returns a 401 if an invalid Authorization header is provided", WARMUP_PATH, "invalid", 401
    ),
    Case(
        WARM + "it returns a 400 if the graph or organization ids does not match with the JWT payload",
        "/foo/bar/operations/cache_warmup/operations.json",
        "valid",
        400,
        b"Bad Request",
    ),
    Case(
        WARM + "it returns a 401 if the token has expired",
        "/foo/bar/cache_warmup/operations.json",
        "expired",
        401,
    ),
    Case(
        WARM + "it returns the cache warmer operations",
        WARMUP_PATH,
        "valid",
        200,
        WARMUP,
        {"content-type": JSON_UTF8, "cache-control": "no-cache, no-store, must-revalidate"},
    ),
    Case(
        WARM + "it returns a 404 if the persisted operation does not exist",
        f"/{ORG}/{GRAPH}/cache_warmup/does_not_exist.json",
        "valid",
        404,
    ),
    Case(PQL + "it returns a 401 if no Authorization header is provided", PQL_PATH, "none", 401),
    Case(PQL + "it returns a 401 if an invalid Authorization header is provided", PQL_PATH, "invalid", 401),
    Case(
        PQL + "it returns a 400 if the graph or organization ids does not match with the JWT payload",
        "/foo/bar/operations/manifest.json",
        "valid",
        400,
        b"Bad Request",
    ),
    Case(PQL + "it returns a 401 if the token has expired", PQL_PATH, "expired", 401),
    Case(
        PQL + "it returns the manifest with ETag on first request",
        PQL_PATH,
        "valid",
        200,
        MANIFEST,
        {"content-type": JSON_UTF8, "etag": ETAG},
    ),
    Case(
        PQL + "it returns 304 with ETag when If-None-Match matches",
        PQL_PATH,
        "valid",
        304,
        b"",
        {"etag": ETAG},
        if_none_match=ETAG,
    ),
    Case(
        PQL + "it returns 200 with new ETag when If-None-Match does not match",
        PQL_PATH,
        "valid",
        200,
        MANIFEST,
        {"etag": ETAG},
        if_none_match='"old-revision"',
    ),
    Case(
        PQL + "it does not conflict with the individual persisted operations route",
        OPERATION,
        "valid",
        200,
        operation_file(HELLO),
    ),
    # Facts from the code (cdn-server/cdn/src/index.ts) that no upstream test covers.
    Case(
        "index.ts: persistedOperationsManifest strips one pair of quotes, so an unquoted version matches",
        PQL_PATH,
        "valid",
        304,
        b"",
        {"etag": ETAG},
        if_none_match=REVISION,
    ),
    Case(
        "index.ts: a weak validator is not stripped, so it does not match",
        PQL_PATH,
        "valid",
        200,
        MANIFEST,
        if_none_match=f"W/{ETAG}",
    ),
]


def ask(cdn: CacheProcess, path: str, token: str, if_none_match: str | None = None) -> Any:
    headers = {"Accept-Encoding": "identity"}
    bearer = TOKENS[token]
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    if if_none_match is not None:
        headers["If-None-Match"] = if_none_match
    return cdn.request("GET", path, headers)


@pytest.fixture(scope="module")
def cdn(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CacheProcess]:
    body = bundle_body(CONFIG, OPERATIONS)
    with cosmo_cdn(
        lab,
        tmp_path_factory.mktemp("ops"),
        body,
        organization_id=ORG,
        federated_graph_id=GRAPH,
        token_secret=SECRET,
    ) as cache:
        yield cache


@pytest.mark.parametrize("case", CASES, ids=[c.mirrors for c in CASES])
def test_operations_routes_answer_as_cosmos_cdn(cdn: CacheProcess, case: Case) -> None:
    answer = ask(cdn, case.path, case.token, case.if_none_match)
    assert answer.status == case.status, answer.body[:200]
    if case.body is not None:
        assert answer.body == case.body
    for name, value in case.headers.items():
        assert answer.headers.get(name) == value, name


def test_etag_round_trip(cdn: CacheProcess) -> None:
    # cdn.test.ts: Test persisted operations manifest handler > ETag round-trip: fetch returns ETag,
    # re-fetch with that ETag returns 304
    first = ask(cdn, PQL_PATH, "valid")
    assert first.status == 200 and json.loads(first.body)["revision"] == REVISION
    second = ask(cdn, PQL_PATH, "valid", first.headers["etag"])
    assert (second.status, second.headers["etag"]) == (304, first.headers["etag"])


def test_a_config_without_operations_has_no_manifest(
    lab: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # cdn.test.ts: Test persisted operations manifest handler > it returns a 404 if the manifest does not
    # exist
    tmp = tmp_path_factory.mktemp("no-ops")
    with cosmo_cdn(
        lab, tmp, CONFIG, organization_id=ORG, federated_graph_id=GRAPH, token_secret=SECRET
    ) as cache:
        assert ask(cache, PQL_PATH, "valid").status == 404
        assert ask(cache, WARMUP_PATH, "valid").status == 404


def test_answers_are_counted_under_the_operations_route(cdn: CacheProcess) -> None:
    before = cdn.metric("edgeroll_cache_requests_total", route="operations", code="200")
    ask(cdn, OPERATION, "valid")
    assert cdn.metric("edgeroll_cache_requests_total", route="operations", code="200") == before + 1
