"""Split config loading at the edge: `POST /<org>/<graph>/manifest/{mapper,latest}.json` and
`manifest/feature-flags/<name>.json`, answered in the order and with the texts of Cosmo's CDN
(cdn-server/cdn/src/index.ts: token 401, feature 403, ids 400, then 404 / 304 / 200), each file
signed as the router checks it, on a config `wgc router compose` wrote with a feature flag."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest
from cache_testkit import GRAPH, ORG, SIGNING_KEY, HttpAnswer, jwt, make_harness, signed_revision

from edgeroll.render.canonical import canonical_json
from edgeroll.render.formats import ConfigFormat, finalize
from edgeroll.render.signing import verify

pytestmark = pytest.mark.unit

SECRET = b"graph-token-secret"
COMPOSED = json.loads(
    (Path(__file__).parents[1] / "render" / "data" / "cosmo-feature-flags.json").read_text()
)
SERVED = canonical_json(finalize(ConfigFormat.COSMO, COMPOSED))
SPLIT = ["split-config-loading"]


def token(features: list[str] | None = SPLIT, graph: str = GRAPH, secret: bytes = SECRET) -> str:
    claims: dict[str, object] = {"organization_id": ORG, "federated_graph_id": graph}
    if features is not None:
        claims["features"] = features
    return jwt(claims, secret)


def post(file: str, bearer: str | None, version: str = "", graph: str = GRAPH, method: str = "POST") -> bytes:
    body = json.dumps({"version": version}).encode()
    lines = [f"{method} /{ORG}/{graph}/manifest/{file} HTTP/1.1", "Host: edge", "Accept-Encoding: gzip"]
    lines += [f"Content-Length: {len(body)}", "Content-Type: application/json; charset=UTF-8"]
    if bearer is not None:
        lines.append(f"Authorization: Bearer {bearer}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def ask(raw: bytes) -> HttpAnswer:
    harness = make_harness(loaded=signed_revision(SERVED), cosmo_secret=SECRET)
    return harness.one(raw)


def plain(answer: HttpAnswer) -> bytes:
    return gzip.decompress(answer.body) if answer.headers.get("content-encoding") == "gzip" else answer.body


def test_a_router_with_the_feature_gets_signed_files_that_assemble_into_the_config() -> None:
    mapper_answer = ask(post("mapper.json", token()))
    assert mapper_answer.status == 200
    assert mapper_answer.headers["content-type"] == "application/json; charset=UTF-8"
    mapper = json.loads(plain(mapper_answer))
    assert set(mapper) == {"", "flash-sale"}
    files = {
        "": ask(post("latest.json", token())),
        "flash-sale": ask(post("feature-flags/flash-sale.json", token())),
    }
    for name, answer in {**files, "mapper": mapper_answer}.items():
        assert answer.status == 200, name
        assert verify(SIGNING_KEY, plain(answer), answer.headers.get("x-signature-sha256")), name
    for name, answer in files.items():
        assert hashlib.sha256(plain(answer)).hexdigest() == mapper[name]
    base = json.loads(plain(files[""]))
    flag = json.loads(plain(files["flash-sale"]))
    flag.pop("compatibilityVersion")
    assert {**base, "featureFlagConfigs": {"configByFeatureFlagName": {"flash-sale": flag}}} == json.loads(
        SERVED
    )


@pytest.mark.parametrize("file", ["mapper.json", "latest.json", "feature-flags/flash-sale.json"])
@pytest.mark.parametrize(
    ("bearer", "status", "text"),
    [
        (None, 401, None),  # cdn.test.ts: no token
        (token(secret=b"forged"), 401, None),  # invalid token
        (token(features=None), 403, b"Forbidden - Missing required feature"),  # no features claim
        (token(features=["other-feature"]), 403, b"Forbidden - Missing required feature"),
        (token(graph="another-graph"), 400, b"Bad Request"),  # the ids do not match the path
    ],
)
def test_each_file_refuses_as_cosmos_cdn(
    file: str, bearer: str | None, status: int, text: bytes | None
) -> None:
    answer = ask(post(file, bearer))
    assert answer.status == status
    if text is not None:
        assert answer.body == text


def test_an_unknown_feature_flag_is_404_and_an_unknown_graph_too() -> None:
    assert ask(post("feature-flags/no-such-flag.json", token())).status == 404
    other = jwt({"organization_id": ORG, "federated_graph_id": "graph-2", "features": SPLIT}, SECRET)
    assert ask(post("mapper.json", other, graph="graph-2")).status == 404


def test_the_version_a_client_holds_gets_304() -> None:
    served = json.loads(SERVED)
    answer = ask(post("latest.json", token(), version=served["version"]))
    assert answer.status == 304 and answer.body == b"" and "x-signature-sha256" not in answer.headers
    assert ask(post("latest.json", token(), version="older")).status == 200


def test_only_post_is_served() -> None:
    assert ask(post("mapper.json", token(), method="GET")).status == 405


def test_without_the_cosmo_route_there_is_no_manifest() -> None:
    harness = make_harness(loaded=signed_revision(SERVED), with_cosmo=False)
    assert harness.one(post("mapper.json", token())).status == 404
