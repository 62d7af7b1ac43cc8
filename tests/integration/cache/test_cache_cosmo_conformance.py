"""Conformance of the routerconfigs routes with Cosmo's CDN, one `edgeroll cache` process, table-driven.

Each case names what it mirrors. `cdn.test.ts: <describe> > <test>` is a test in
wundergraph/cosmo cdn-server/cdn/test/cdn.test.ts, sent with the same method, token
and body and asserting what that test asserts (the status, and the body and
X-Signature-SHA256 where it checks them). `index.ts: ...` is a fact read from the
CDN's code (cdn-server/cdn/src/index.ts, cdn-server/src/index.ts) that no upstream
test covers. Upstream always verifies tokens, so this cache runs with a token secret.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cache_itkit import SIGNING_KEY, CacheProcess, config_body, cosmo_cdn, graph_token

from edgeroll.render.signing import sign

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ORG, GRAPH = "organizationId", "federatedGraphId"  # the ids cdn.test.ts uses
SECRET = "hunter2"  # cdn.test.ts's secretKey
VERSION = "conformance-v1"
CONFIG = config_body(VERSION)
LATEST = f"/{ORG}/{GRAPH}/routerconfigs/latest.json"
V2 = f"/{ORG}/{GRAPH}/routerconfigs/v2/latest.json"
INVALID_V2 = b'Invalid router compatibility version "v2".'

VALID = graph_token({"organization_id": ORG, "federated_graph_id": GRAPH}, SECRET)
TOKENS: dict[str, str | None] = {
    "none": None,
    "valid": VALID,
    # cdn.test.ts's "invalid Authorization header": `token.slice(0, -1)}`, a broken signature.
    "invalid": VALID[:-1] + "}",
    "expired": graph_token(
        {"organization_id": ORG, "federated_graph_id": GRAPH, "exp": int(time.time()) - 60}, SECRET
    ),
    "other-secret": graph_token({"organization_id": ORG, "federated_graph_id": GRAPH}, "not-hunter2"),
    "other-graph": graph_token({"organization_id": ORG, "federated_graph_id": "not-here"}, SECRET),
}


@dataclass(frozen=True)
class Case:
    mirrors: str
    method: str
    path: str
    token: str
    status: int
    version: str | None = ""  # the {"version": ...} body; None: no body (cdn.test.ts's GETs)
    gzip: bool = False  # send Accept-Encoding: gzip
    body: bytes | None = None  # exact body expected, None: not checked
    signed: bool | None = None  # X-Signature-SHA256 present and right (True), absent (False), unchecked
    headers: dict[str, str] = field(default_factory=dict)  # exact, names lowercase


JWT_ROUTER = "cdn.test.ts: Test JWT authentication with ready router configs > "
READY = "cdn.test.ts: Test ready router config handler > "
VERSIONED = "cdn.test.ts: Test versioned router config handler > "

CASES = [
    Case(JWT_ROUTER + "it returns a 401 if no Authorization header is provided", "GET", LATEST, "none", 401),
    Case(
        JWT_ROUTER + "it returns a 401 if no Authorization header is provided (POST)",
        "POST",
        LATEST,
        "none",
        401,
    ),
    Case(
        JWT_ROUTER + "it returns a 401 if an invalid Authorization header is provided",
        "GET",
        LATEST,
        "invalid",
        401,
    ),
    Case(
        JWT_ROUTER + "it returns a 401 if an invalid Authorization header is provided (POST)",
        "POST",
        LATEST,
        "invalid",
        401,
    ),
    # Upstream's request path is /foo/bar/operations/routerconfigs/latest.json, which the CDN routes
    # to its persisted-operation handler; the routerconfigs handler has the same check and status.
    Case(
        JWT_ROUTER + "it returns a 400 if the graph or organization ids does not match with the JWT payload",
        "POST",
        "/foo/bar/routerconfigs/latest.json",
        "valid",
        400,
        body=b"Bad Request",
    ),
    Case(
        JWT_ROUTER + "it returns a 401 if the token has expired",
        "POST",
        "/foo/bar/routerconfigs/latest.json",
        "expired",
        401,
    ),
    Case(
        READY + "it returns a router config",
        "POST",
        LATEST,
        "valid",
        200,
        body=CONFIG,
        signed=True,
        headers={"content-type": "application/json; charset=utf-8"},
    ),
    Case(
        READY + "it returns a 404 if the router config does not exist",
        "POST",
        f"/{ORG}/{GRAPH}/routerconfigs/does_not_exist.json",
        "valid",
        404,
    ),
    Case(
        READY + "it returns a 304 if the version is the same as before",
        "POST",
        LATEST,
        "valid",
        304,
        version=VERSION,
        body=b"",
        signed=False,
    ),
    Case(
        VERSIONED + "that an error is thrown if an invalid router config path is requested",
        "POST",
        V2,
        "valid",
        400,
        body=INVALID_V2,
        signed=False,
    ),
    Case(
        VERSIONED + "it returns a 404 if the router config does not exist",
        "POST",
        f"/{ORG}/{GRAPH}/routerconfigs/v3/does_not_exist.json",
        "valid",
        404,
        signed=False,
    ),
    Case(
        VERSIONED + "than an error is thrown if the version is unchanged but an invalid router config path "
        "is requested",
        "POST",
        V2,
        "valid",
        400,
        version=VERSION,
        body=INVALID_V2,
        signed=False,
    ),
    # Facts from the code that no upstream test covers.
    Case(
        "index.ts: latestValidRouterConfig, a held version that differs gets the config",
        "POST",
        LATEST,
        "valid",
        200,
        version="older",
        body=CONFIG,
        signed=True,
    ),
    Case(
        "cdn-server/src/index.ts: compress(); the router asks gzip, the signature is of the plain body",
        "POST",
        LATEST,
        "valid",
        200,
        gzip=True,
        body=CONFIG,
        signed=True,
        headers={"content-encoding": "gzip"},
    ),
    Case(
        "index.ts: jwtMiddleware, JWSSignatureVerificationFailed is 401", "POST", LATEST, "other-secret", 401
    ),
    Case("index.ts: jwtMiddleware runs before the compatibility-version check", "POST", V2, "none", 401),
    Case(
        "index.ts: ids checked before the compatibility version",
        "POST",
        "/foo/bar/routerconfigs/v2/latest.json",
        "valid",
        400,
        body=b"Bad Request",
    ),
    # The path matches the token, but nothing is stored for that graph: BlobNotFoundError.
    Case(
        "index.ts: BlobNotFoundError is 404 (a graph this CDN holds no config for)",
        "POST",
        f"/{ORG}/not-here/routerconfigs/latest.json",
        "other-graph",
        404,
    ),
    # /^1$/ accepts the segment "1" and reads routerconfigs/v1/latest.json, which Cosmo's
    # control plane never writes (version 1 is stored unversioned): not found.
    Case(
        "index.ts: routerCompatibilityVersionPattern /^1$/, segment 1 reads a key never written",
        "POST",
        f"/{ORG}/{GRAPH}/routerconfigs/1/latest.json",
        "valid",
        404,
    ),
]


@pytest.fixture(scope="module")
def cdn(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CacheProcess]:
    tmp = tmp_path_factory.mktemp("conformance")
    with cosmo_cdn(
        lab, tmp, CONFIG, organization_id=ORG, federated_graph_id=GRAPH, token_secret=SECRET
    ) as cache:
        yield cache


@pytest.mark.parametrize("case", CASES, ids=[c.mirrors for c in CASES])
def test_routerconfigs_route_answers_as_cosmos_cdn(cdn: CacheProcess, case: Case) -> None:
    headers = {"Accept-Encoding": "gzip" if case.gzip else "identity"}
    token = TOKENS[case.token]
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = None
    if case.version is not None:
        headers["Content-Type"] = "application/json; charset=UTF-8"  # as the router's client.go
        body = json.dumps({"version": case.version}).encode()
    answer = cdn.request(case.method, case.path, headers, body)

    assert answer.status == case.status, answer.body[:200]
    plain = gzip.decompress(answer.body) if answer.headers.get("content-encoding") == "gzip" else answer.body
    if case.body is not None:
        assert plain == case.body
    for name, value in case.headers.items():
        assert answer.headers.get(name, "").lower() == value.lower(), name
    signature = answer.headers.get("x-signature-sha256")
    if case.signed is True:
        assert signature == sign(SIGNING_KEY.encode(), plain)
    elif case.signed is False:
        assert signature is None


def test_every_answer_is_counted_by_route_and_code(cdn: CacheProcess) -> None:
    before = cdn.metric("edgeroll_cache_requests_total", route="cosmo", code="400")
    cdn.request("POST", V2, {"Authorization": f"Bearer {VALID}"}, b'{"version":""}')
    assert cdn.metric("edgeroll_cache_requests_total", route="cosmo", code="400") == before + 1
