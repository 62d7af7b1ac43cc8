"""Who may GET /configs/<ns>/<name>: the read token, a verified graph token of our graph, or anyone
with publicRead; and the versioned Cosmo route, answered as Cosmo's CDN answers it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from cache_testkit import GRAPH, ORG, READ_TOKEN, SIGNING_KEY, config_body, jwt, make_harness, signed_revision

from edgeroll.cache.metrics import Metrics, request_slot
from edgeroll.cache.peer import PeerOrigin
from edgeroll.cache.runner import make_peer, make_server_state
from edgeroll.cache.settings import settings_from_env
from edgeroll.render.signing import read_token

pytestmark = pytest.mark.unit

REV = signed_revision(config_body("v1"))
SECRET = b"graph-token-secret"
GOOD_GRAPH_TOKEN = jwt({"organization_id": ORG, "federated_graph_id": GRAPH}, SECRET)


def request(method: str, path: str, authorization: str | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: edge"]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_read_token_is_unpadded_base64url_of_the_hmac_of_ns_and_name() -> None:
    mac = hmac.new(SIGNING_KEY, b"edgeroll-read:ns/router", hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(mac).decode().rstrip("=") == READ_TOKEN
    assert len(READ_TOKEN) == 43 and "=" not in READ_TOKEN
    assert read_token(SIGNING_KEY, "ns", "other") != READ_TOKEN
    assert read_token(b"another-key-of-thirty-two-bytes!", "ns", "router") != READ_TOKEN


@pytest.mark.parametrize(
    ("authorization", "secret"),
    [
        pytest.param(None, None, id="none"),
        pytest.param("Bearer ", None, id="empty-bearer"),
        pytest.param("Bearer not-the-read-token", None, id="wrong"),
        pytest.param(f"Basic {READ_TOKEN}", None, id="not-bearer"),
        pytest.param(f"Bearer {READ_TOKEN[:-1]}", None, id="truncated-read-token"),
        pytest.param(
            f"Bearer {read_token(SIGNING_KEY, 'ns', 'other')}", None, id="read-token-of-another-name"
        ),
        pytest.param(
            f"Bearer {read_token(SIGNING_KEY, 'other', 'router')}", None, id="read-token-of-another-ns"
        ),
        # Without a secret a graph token is decoded but never verified: anyone can mint one.
        pytest.param(
            f"Bearer {jwt({'organization_id': ORG, 'federated_graph_id': GRAPH})}", None, id="unverified"
        ),
        pytest.param(
            f"Bearer {jwt({'organization_id': ORG, 'federated_graph_id': GRAPH})}", SECRET, id="forged"
        ),
        pytest.param(
            f"Bearer {jwt({'organization_id': ORG, 'federated_graph_id': 'other'}, SECRET)}",
            SECRET,
            id="other-graph",
        ),
        pytest.param(
            f"Bearer {jwt({'organization_id': ORG, 'federated_graph_id': GRAPH, 'exp': 1}, SECRET)}",
            SECRET,
            id="expired",
        ),
    ],
)
def test_configs_without_an_accepted_credential_is_401(
    authorization: str | None, secret: bytes | None
) -> None:
    harness = make_harness(loaded=REV, cosmo_secret=secret)
    for method in ("GET", "HEAD"):
        answer = harness.one(request(method, "/configs/ns/router", authorization), head=method == "HEAD")
        assert answer.status == 401, method
        assert answer.header("www-authenticate") == 'Bearer realm="edgeroll"'
        assert answer.header("x-signature-sha256") is None and answer.header("etag") is None
    assert answer.header("content-type") == "text/plain; charset=utf-8"
    assert harness.metrics.total(request_slot("configs", 401)) == 2


@pytest.mark.parametrize(
    ("authorization", "secret"),
    [
        pytest.param(f"Bearer {READ_TOKEN}", None, id="read-token"),
        pytest.param(f"bearer {READ_TOKEN}", None, id="scheme-case"),
        pytest.param(f"Bearer {READ_TOKEN}", SECRET, id="read-token-with-secret"),
        pytest.param(f"Bearer {GOOD_GRAPH_TOKEN}", SECRET, id="verified-graph-token"),
    ],
)
def test_configs_with_an_accepted_credential_is_served(authorization: str, secret: bytes | None) -> None:
    harness = make_harness(loaded=REV, cosmo_secret=secret)
    answer = harness.one(request("GET", "/configs/ns/router", authorization))
    assert (answer.status, answer.body) == (200, REV.body)
    head = harness.one(request("HEAD", "/configs/ns/router", authorization), head=True)
    assert head.status == 200 and head.body == b""


def test_a_verified_graph_token_is_no_credential_when_the_cosmo_route_is_off() -> None:
    harness = make_harness(loaded=REV, cosmo_secret=SECRET, with_cosmo=False)
    assert harness.one(request("GET", "/configs/ns/router", f"Bearer {GOOD_GRAPH_TOKEN}")).status == 401


def test_public_read_needs_no_credential_and_a_wrong_one_does_not_hurt() -> None:
    harness = make_harness(loaded=REV, public_read=True)
    assert harness.one(request("GET", "/configs/ns/router", None)).status == 200
    assert harness.one(request("GET", "/configs/ns/router", "Bearer nonsense")).status == 200


def test_method_is_checked_before_the_credential() -> None:
    answer = make_harness(loaded=REV).one(request("DELETE", "/configs/ns/router", None))
    assert answer.status == 405


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_and_metrics_stay_open(path: str) -> None:
    assert make_harness(loaded=REV).one(request("GET", path, None)).status == 200


BASE_ENV = {
    "EDGEROLL_S3_BUCKET": "edgeroll",
    "EDGEROLL_CONFIG_KEY": "revisions/ns/router/x.json",
    "EDGEROLL_CONFIG_DIGEST": REV.digest,
    "EDGEROLL_SIGNING_KEY": SIGNING_KEY.decode(),
    "EDGEROLL_CONFIG_NAMESPACE": "ns",
    "EDGEROLL_CONFIG_NAME": "router",
}


@pytest.mark.parametrize(("value", "public"), [("", False), ("false", False), ("true", True), ("TRUE", True)])
def test_public_read_setting(value: str, public: bool) -> None:
    settings = settings_from_env({**BASE_ENV, "EDGEROLL_CACHE_PUBLIC_READ": value})
    assert settings.public_read is public
    state = make_server_state(settings, Metrics())
    assert state.configs_read_token == (None if public else READ_TOKEN.encode())


def test_public_read_setting_rejects_other_values() -> None:
    with pytest.raises(ValueError, match="EDGEROLL_CACHE_PUBLIC_READ"):
        settings_from_env({**BASE_ENV, "EDGEROLL_CACHE_PUBLIC_READ": "yes"})


def test_peer_fill_sends_the_read_token(tmp_path: Path) -> None:
    settings = settings_from_env({**BASE_ENV, "EDGEROLL_CACHE_PEER_URL": "http://peer.ns.svc:8080"})
    peer = make_peer(settings)
    assert isinstance(peer, PeerOrigin)
    assert peer.headers["Authorization"] == f"Bearer {READ_TOKEN}"
    # ...which the sibling, built from the same settings, accepts.
    assert make_server_state(settings, Metrics()).configs_authorized(peer.headers["Authorization"].encode())


# -- POST /<org>/<graph>/routerconfigs/<segment>/latest.json ---------------------------------


def cosmo_post(path: str, token: str | None, version: str = "") -> bytes:
    body = f'{{"version":"{version}"}}'.encode()
    lines = [f"POST {path} HTTP/1.1", "Host: edge", f"Content-Length: {len(body)}"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.mark.parametrize("segment", ["v2", "v1", "v10", "2", "latest"])
@pytest.mark.parametrize("version", ["", "v1"])
def test_versioned_route_refuses_every_segment_but_1_like_the_cdn(segment: str, version: str) -> None:
    path = f"/{ORG}/{GRAPH}/routerconfigs/{segment}/latest.json"
    answer = make_harness(loaded=REV, cosmo_secret=SECRET).one(cosmo_post(path, GOOD_GRAPH_TOKEN, version))
    assert answer.status == 400
    assert answer.body == f'Invalid router compatibility version "{segment}".'.encode()
    assert answer.header("x-signature-sha256") is None


def test_versioned_route_1_finds_nothing_as_the_config_is_stored_unversioned() -> None:
    path = f"/{ORG}/{GRAPH}/routerconfigs/1/latest.json"
    harness = make_harness(loaded=REV, cosmo_secret=SECRET)
    assert harness.one(cosmo_post(path, GOOD_GRAPH_TOKEN)).status == 404
    assert harness.one(cosmo_post(path, GOOD_GRAPH_TOKEN, "v1")).status == 404


def test_versioned_route_checks_the_token_and_path_first() -> None:
    path = f"/{ORG}/{GRAPH}/routerconfigs/v2/latest.json"
    harness = make_harness(loaded=REV, cosmo_secret=SECRET)
    assert harness.one(cosmo_post(path, None)).status == 401
    assert (
        harness.one(cosmo_post(path, jwt({"organization_id": ORG, "federated_graph_id": GRAPH}))).status
        == 401
    )
    other = jwt({"organization_id": ORG, "federated_graph_id": "other"}, SECRET)
    assert harness.one(cosmo_post(path, other)).status == 400
    assert (
        harness.one(cosmo_post(f"/{ORG}/{GRAPH}/routerconfigs/v3/other.json", GOOD_GRAPH_TOKEN)).status == 404
    )


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stdlib_clients_restate_the_read_token_exactly() -> None:
    # kind_client.py and kind_poller.py run in pods with the standard library only.
    repo = Path(__file__).resolve().parents[3]
    client = _load(repo / "tests/e2e/scenarios/kind_client.py")
    poller = _load(repo / "bench/kind_poller.py")
    assert client.read_token(SIGNING_KEY, "ns", "router") == READ_TOKEN
    assert poller.read_token(SIGNING_KEY, "/configs/ns/router") == READ_TOKEN
