"""The env contract (hack/CONTRACTS.md) and what a bad value says."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeroll.cache.settings import SettingsError, settings_from_env

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "ab" * 32
BASE = {
    "EDGEROLL_S3_ENDPOINT": "http://127.0.0.1:8333",
    "EDGEROLL_S3_BUCKET": "edgeroll",
    "AWS_ACCESS_KEY_ID": "AKIA-unit",
    "AWS_SECRET_ACCESS_KEY": "secret-unit",
    "AWS_DEFAULT_REGION": "us-east-1",
    "EDGEROLL_CONFIG_KEY": f"revisions/ns/router/{'ab' * 32}.json",
    "EDGEROLL_CONFIG_DIGEST": DIGEST,
    "EDGEROLL_SIGNING_KEY": "the-signing-key",
    "EDGEROLL_CONFIG_NAMESPACE": "ns",
    "EDGEROLL_CONFIG_NAME": "router",
}


def test_minimal_environment_and_defaults() -> None:
    settings = settings_from_env(BASE)
    assert settings.config_path == "/configs/ns/router"
    assert settings.port == 8080
    assert settings.state_dir == Path("/var/lib/edgeroll")
    assert settings.workers == 1
    assert settings.host == "0.0.0.0"
    assert settings.signing_key == b"the-signing-key"
    assert not settings.cosmo_enabled
    assert settings.s3_endpoint == "http://127.0.0.1:8333"
    assert settings.peer_url is None  # no peer fill unless the operator asks for it


def test_listen_address_can_be_loopback() -> None:
    assert settings_from_env({**BASE, "EDGEROLL_CACHE_HOST": "127.0.0.1"}).host == "127.0.0.1"


def test_empty_endpoint_means_aws() -> None:
    assert settings_from_env({**BASE, "EDGEROLL_S3_ENDPOINT": ""}).s3_endpoint is None


def test_cosmo_route_and_token_secret() -> None:
    settings = settings_from_env(
        {
            **BASE,
            "EDGEROLL_COSMO_ORGANIZATION_ID": "org",
            "EDGEROLL_COSMO_FEDERATED_GRAPH_ID": "graph",
            "EDGEROLL_COSMO_TOKEN_SECRET": "s3cr3t",
        }
    )
    assert settings.cosmo_enabled
    assert settings.cosmo_token_secret == b"s3cr3t"


def test_peer_url_is_the_service() -> None:
    url = "http://edgeroll-ns-router.edgeroll-system.svc:8080"
    assert settings_from_env({**BASE, "EDGEROLL_CACHE_PEER_URL": url}).peer_url == url
    assert settings_from_env({**BASE, "EDGEROLL_CACHE_PEER_URL": "http://[::1]:80/"}).peer_url


def test_secrets_never_appear_in_repr() -> None:
    settings = settings_from_env({**BASE, "EDGEROLL_COSMO_TOKEN_SECRET": "tok3n-s3cr3t"})
    text = repr(settings)
    assert "the-signing-key" not in text and "tok3n-s3cr3t" not in text
    assert "secret-unit" not in text


@pytest.mark.parametrize(
    "missing",
    [
        "EDGEROLL_S3_BUCKET",
        "EDGEROLL_CONFIG_KEY",
        "EDGEROLL_CONFIG_DIGEST",
        "EDGEROLL_SIGNING_KEY",
        "EDGEROLL_CONFIG_NAMESPACE",
        "EDGEROLL_CONFIG_NAME",
    ],
)
def test_missing_required_variable_is_named(missing: str) -> None:
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(SettingsError, match=missing):
        settings_from_env(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EDGEROLL_CONFIG_DIGEST", "md5:abc"),
        ("EDGEROLL_CONFIG_DIGEST", "sha256:" + "AB" * 32),
        ("EDGEROLL_CACHE_PORT", "http"),
        ("EDGEROLL_CACHE_PORT", "70000"),
        ("EDGEROLL_CACHE_WORKERS", "0"),
        ("EDGEROLL_CONFIG_NAME", "a/b"),
        ("EDGEROLL_COSMO_ORGANIZATION_ID", "org-without-graph"),
        ("EDGEROLL_CACHE_PEER_URL", "https://peer.ns.svc:8080"),
        ("EDGEROLL_CACHE_PEER_URL", "http://peer.ns.svc:8080/configs/ns/router"),
        ("EDGEROLL_CACHE_PEER_URL", "http://user:pw@peer:8080"),
        ("EDGEROLL_CACHE_PEER_URL", "http://peer:99999"),
        ("EDGEROLL_CACHE_PEER_URL", "peer.ns.svc:8080"),
    ],
)
def test_malformed_values_are_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        settings_from_env({**BASE, name: value})


def test_error_messages_do_not_echo_the_signing_key() -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from_env({**BASE, "EDGEROLL_CONFIG_DIGEST": "nope"})
    assert "the-signing-key" not in str(caught.value)
