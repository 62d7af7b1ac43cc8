"""A Cosmo-router-like CDN client, written from the protocol description, against `edgeroll cache`.

The client does what the router's CDN client does (DESIGN-NOTES.md, "Cosmo
router's CDN protocol"): read organization_id and federated_graph_id from the
graph token's claims without verifying it, path-escape them into
POST /<org>/<graph>/routerconfigs/latest.json with {"version": held},
Authorization: Bearer, Accept-Encoding: gzip; gunzip a gzip answer; with a
sign key require X-Signature-SHA256 = base64(HMAC-SHA256(key, body)) and
compare in constant time.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import http.client
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cache_itkit import SIGNING_KEY, CacheProcess, cache_env, config_body, publish, unique
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ORG = "5b3e0a4c-org"
GRAPH = "c0ffee00-graph"
TOKEN_SECRET = "graph-token-secret"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def graph_token(claims: dict[str, Any], secret: str) -> str:
    signing_input = (
        f"{b64url(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64url(json.dumps(claims).encode())}"
    )
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


class SignatureError(Exception):
    pass


@dataclass
class Fetch:
    status: int
    config: bytes | None = None
    version: str | None = None
    gzipped: bool = False


class CosmoCdnClient:
    def __init__(self, port: int, token: str, sign_key: str | None) -> None:
        self.port = port
        self.token = token
        self.sign_key = sign_key.encode() if sign_key else None
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # unverified
        org = quote(claims["organization_id"], safe="")
        graph = quote(claims["federated_graph_id"], safe="")
        self.path = f"/{org}/{graph}/routerconfigs/latest.json"

    def fetch(self, version: str) -> Fetch:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(
                "POST",
                self.path,
                body=json.dumps({"version": version}).encode(),
                headers={
                    "Content-Type": "application/json; charset=UTF-8",
                    "Authorization": f"Bearer {self.token}",
                    "Accept-Encoding": "gzip",
                },
            )
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        if response.status != 200:
            return Fetch(response.status)
        gzipped = response.getheader("Content-Encoding") == "gzip"
        body = gzip.decompress(raw) if gzipped else raw
        if not body:
            raise ValueError("empty response body")
        if self.sign_key is not None:
            header = response.getheader("X-Signature-SHA256")
            if not header:
                raise SignatureError("signature header not found in CDN response")
            expected = hmac.new(self.sign_key, body, hashlib.sha256).digest()
            if not hmac.compare_digest(base64.b64decode(header), expected):
                raise SignatureError("invalid config signature, potential tampering detected")
        return Fetch(200, body, json.loads(body).get("version"), gzipped)


def start(lab: Any, tmp_path: Path, name: str, version: str, prefix: str) -> tuple[CacheProcess, bytes]:
    body = config_body(version)
    rev = publish(lab, prefix, name, body)
    home = tmp_path / f"home-{version}"
    home.mkdir()
    env = cache_env(
        lab,
        rev,
        name,
        tmp_path / f"state-{version}",  # each pod of a rolling update has its own emptyDir
        home,
        EDGEROLL_COSMO_ORGANIZATION_ID=ORG,
        EDGEROLL_COSMO_FEDERATED_GRAPH_ID=GRAPH,
        EDGEROLL_COSMO_TOKEN_SECRET=TOKEN_SECRET,
    )
    cache = CacheProcess(env, workdir=tmp_path).start()
    wait_until(cache.ready, timeout=30, interval=0.05, message=f"cache serving {version} ready")
    return cache, body


def test_cosmo_router_protocol(lab: Any, tmp_path: Path, s3_prefix: str) -> None:
    name, prefix = unique("graph"), s3_prefix
    token = graph_token(
        {"organization_id": ORG, "federated_graph_id": GRAPH, "iat": 1700000000}, TOKEN_SECRET
    )
    old, old_body = start(lab, tmp_path, name, "2024-01-01-v1", prefix)
    new: CacheProcess | None = None
    try:
        router = CosmoCdnClient(old.port, token, SIGNING_KEY)
        first = router.fetch("")
        assert first.status == 200 and first.gzipped
        assert first.config == old_body and first.version == "2024-01-01-v1"
        assert router.fetch("2024-01-01-v1").status == 304

        # A router with the wrong sign key must refuse what we serve: the check above is real.
        with pytest.raises(SignatureError):
            CosmoCdnClient(old.port, token, "not-the-signing-key-0123456789ab").fetch("")

        # Rollout: the next edge pod serves v2; the router holding v1 gets v2, signed.
        new, new_body = start(lab, tmp_path, name, "2024-01-02-v2", prefix)
        router = CosmoCdnClient(new.port, token, SIGNING_KEY)
        update = router.fetch("2024-01-01-v1")
        assert update.status == 200 and update.config == new_body and update.version == "2024-01-02-v2"
        assert router.fetch("2024-01-02-v2").status == 304

        # 401: a token signed with another secret, or forged claims; and no token at all.
        forged = graph_token({"organization_id": ORG, "federated_graph_id": GRAPH}, "guessed-secret")
        assert CosmoCdnClient(new.port, forged, SIGNING_KEY).fetch("").status == 401
        header, _, signature = token.split(".")
        other_claims = b64url(json.dumps({"organization_id": ORG, "federated_graph_id": "other"}).encode())
        assert (
            CosmoCdnClient(new.port, f"{header}.{other_claims}.{signature}", SIGNING_KEY).fetch("").status
            == 401
        )
        answer = new.request("POST", router.path, {"Content-Type": "application/json"}, b'{"version":""}')
        assert answer.status == 401

        # A properly signed token for a graph this edge does not serve: 404.
        elsewhere = graph_token({"organization_id": ORG, "federated_graph_id": "not-here"}, TOKEN_SECRET)
        assert CosmoCdnClient(new.port, elsewhere, SIGNING_KEY).fetch("").status == 404

        assert new.metric("edgeroll_cache_requests_total", route="cosmo", code="401") == 3
        assert new.metric("edgeroll_cache_requests_total", route="cosmo", code="304") == 1
    finally:
        codes = [old.stop()] + ([new.stop()] if new else [])
        assert codes == [0] * len(codes)
