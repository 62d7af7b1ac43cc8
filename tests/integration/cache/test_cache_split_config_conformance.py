"""Split config loading against one `edgeroll cache` process, on a config `wgc router compose` writes
now from a graph with a feature flag (tests/unit/render/data/feature-flags/graph.yaml), table-driven.

`cdn.test.ts: <describe> > <test>` names a test of wundergraph/cosmo
cdn-server/cdn/test/cdn.test.ts ("Test manifest routes"), sent with the same method, token and body,
asserting what it asserts. Then what a Cosmo router's split fetcher
(router/pkg/routerconfig/cdn/split_fetcher.go) does with the answers: read the mapper, fetch every
file by name, check each X-Signature-SHA256 with its sign key, and assemble the execution config.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cache_itkit import SIGNING_KEY, Answer, CacheProcess, cosmo_cdn, graph_token
from tests.wgc import compose

from edgeroll.render.canonical import canonical_json
from edgeroll.render.formats import ConfigFormat, finalize
from edgeroll.render.signing import verify

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ORG, GRAPH = "organizationId", "federatedGraphId"  # the ids cdn.test.ts uses
SECRET = "hunter2"  # cdn.test.ts's secretKey
GRAPH_YAML = Path(__file__).parents[2] / "unit" / "render" / "data" / "feature-flags" / "graph.yaml"
SPLIT = ["split-config-loading"]
CLAIMS = {"organization_id": ORG, "federated_graph_id": GRAPH}
TOKENS: dict[str, str | None] = {
    "none": None,
    "split": graph_token({**CLAIMS, "features": SPLIT}, SECRET),
    "no-features": graph_token(CLAIMS, SECRET),
    "other-feature": graph_token({**CLAIMS, "features": ["other-feature"]}, SECRET),
    "invalid": graph_token({**CLAIMS, "features": SPLIT}, SECRET)[:-1] + "}",
    "expired": graph_token({**CLAIMS, "features": SPLIT, "exp": int(time.time()) - 60}, SECRET),
    "wrong-org": graph_token({**CLAIMS, "organization_id": "other", "features": SPLIT}, SECRET),
}
FILES = ["mapper.json", "latest.json", "feature-flags/flash-sale.json"]
MANIFEST = "cdn.test.ts: Test manifest endpoints (split-config-loading) > "
GATE, JWT = MANIFEST + "feature gate authorization > ", MANIFEST + "JWT authentication > "


@dataclass(frozen=True)
class Case:
    mirrors: str
    token: str
    status: int
    body: bytes | None = None  # exact text expected


# The feature-gate and JWT tests upstream run on one route each (mapper.json, or the one they name);
# here each runs on all three files, as the CDN applies the same middleware to them.
CASES = [
    Case(GATE + "returns 403 when features claim is missing from JWT", "no-features", 403,
         b"Forbidden - Missing required feature"),
    Case(GATE + "returns 403 when features claim does not include split-config-loading", "other-feature", 403,
         b"Forbidden - Missing required feature"),
    Case(JWT + "returns 401 with no token", "none", 401),
    Case(JWT + "returns 401 with invalid token", "invalid", 401),
    Case(JWT + "returns 401 with expired token", "expired", 401),
    Case(MANIFEST + "mapper.json > returns 400 when org/graph ID mismatch", "wrong-org", 400, b"Bad Request"),
    Case(MANIFEST + "mapper.json > returns mapper blob content with correct headers", "split", 200),
]  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The composed config as the operator publishes it (finalized: canonical, with our version)."""
    composed = compose(GRAPH_YAML, tmp_path_factory.mktemp("wgc") / "flags.json")
    assert "flash-sale" in composed["featureFlagConfigs"]["configByFeatureFlagName"]
    return canonical_json(finalize(ConfigFormat.COSMO, composed))


@pytest.fixture(scope="module")
def cdn(lab: Any, served: bytes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CacheProcess]:
    tmp = tmp_path_factory.mktemp("split")
    with cosmo_cdn(
        lab, tmp, served, organization_id=ORG, federated_graph_id=GRAPH, token_secret=SECRET
    ) as cache:
        yield cache


def fetch(cdn: CacheProcess, file: str, token: str | None, version: str = "") -> Answer:
    """As split_fetcher.go posts: JSON body, Accept-Encoding gzip, the bearer token."""
    headers = {"Accept-Encoding": "gzip", "Content-Type": "application/json; charset=UTF-8"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"version": version}).encode()
    return cdn.request("POST", f"/{ORG}/{GRAPH}/manifest/{file}", headers, body)


def plain(answer: Answer) -> bytes:
    return gzip.decompress(answer.body) if answer.headers.get("content-encoding") == "gzip" else answer.body


@pytest.mark.parametrize("file", FILES)
@pytest.mark.parametrize("case", CASES, ids=[c.mirrors for c in CASES])
def test_manifest_routes_answer_as_cosmos_cdn(cdn: CacheProcess, case: Case, file: str) -> None:
    answer = fetch(cdn, file, TOKENS[case.token])
    assert answer.status == case.status, answer.body[:200]
    if case.body is not None:
        assert plain(answer) == case.body
    if case.status == 200:
        assert answer.headers["content-type"] == "application/json; charset=UTF-8"
        assert verify(SIGNING_KEY.encode(), plain(answer), answer.headers.get("x-signature-sha256"))


def test_the_held_version_gets_304_without_a_signature(cdn: CacheProcess, served: bytes) -> None:
    # cdn.test.ts: Test manifest endpoints (split-config-loading) > latest.json > returns 304 when version
    # matches
    answer = fetch(cdn, "latest.json", TOKENS["split"], version=json.loads(served)["version"])
    assert answer.status == 304 and answer.body == b"" and "x-signature-sha256" not in answer.headers


def test_a_missing_feature_flag_is_404(cdn: CacheProcess) -> None:
    # cdn.test.ts: Test manifest endpoints (split-config-loading) > feature-flags/:name.json > returns 404
    # when blob does not exist
    assert fetch(cdn, "feature-flags/no-such-flag.json", TOKENS["split"]).status == 404


def test_a_split_fetcher_assembles_the_whole_config(cdn: CacheProcess, served: bytes) -> None:
    token = TOKENS["split"]
    mapper_answer = fetch(cdn, "mapper.json", token)
    assert mapper_answer.headers.get("content-encoding") in (None, "gzip")
    mapper = json.loads(plain(mapper_answer))
    assert "" in mapper and set(mapper) == {"", "flash-sale"}
    files: dict[str, Any] = {}
    for flag, digest in mapper.items():
        answer = fetch(cdn, "latest.json" if flag == "" else f"feature-flags/{flag}.json", token)
        body = plain(answer)
        assert verify(SIGNING_KEY.encode(), body, answer.headers.get("x-signature-sha256")), flag
        assert hashlib.sha256(body).hexdigest() == digest, flag
        files[flag] = json.loads(body)
    config = files.pop("")
    for flag in files.values():
        flag.pop("compatibilityVersion")
    config["featureFlagConfigs"] = {"configByFeatureFlagName": files}
    assert config == json.loads(served)


def test_every_answer_is_counted_under_the_manifest_route(cdn: CacheProcess) -> None:
    before = cdn.metric("edgeroll_cache_requests_total", route="manifest", code="403")
    fetch(cdn, "mapper.json", TOKENS["no-features"])
    assert cdn.metric("edgeroll_cache_requests_total", route="manifest", code="403") == before + 1
