"""Graph tokens, claim checks and request bodies of the Cosmo CDN protocol."""

from __future__ import annotations

import time

import pytest
from cache_testkit import jwt

from edgeroll.cache.cosmo import (
    ConfigPath,
    TokenCache,
    TokenError,
    bearer_token,
    config_path,
    decode_graph_token,
    requested_version,
)

pytestmark = pytest.mark.unit

CLAIMS = {"organization_id": "org-1", "federated_graph_id": "graph-1", "iat": 1700000000}


def test_claims_are_read_without_a_secret() -> None:
    claims = decode_graph_token(jwt(CLAIMS), None)
    assert (claims.organization_id, claims.federated_graph_id) == ("org-1", "graph-1")


def test_hs256_signature_is_checked_when_a_secret_is_set() -> None:
    assert decode_graph_token(jwt(CLAIMS, b"secret"), b"secret").organization_id == "org-1"
    with pytest.raises(TokenError, match="signature"):
        decode_graph_token(jwt(CLAIMS, b"wrong"), b"secret")


@pytest.mark.parametrize("alg", ["none", "HS512", "RS256"])
def test_only_hs256_is_accepted_with_a_secret(alg: str) -> None:
    with pytest.raises(TokenError, match="HS256"):
        decode_graph_token(jwt(CLAIMS, b"secret", alg=alg), b"secret")


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c.d", "!!!.###.$$$", "e30.W10.x", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.x"],
)
def test_malformed_tokens_are_rejected(token: str) -> None:
    with pytest.raises(TokenError):
        decode_graph_token(token, None)


@pytest.mark.parametrize(
    "claims",
    [
        {"organization_id": "org-1"},
        {"federated_graph_id": "graph-1"},
        {"organization_id": 1, "federated_graph_id": "graph-1"},
        {"organization_id": "", "federated_graph_id": "graph-1"},
    ],
)
def test_tokens_without_both_claims_are_rejected(claims: dict[str, object]) -> None:
    with pytest.raises(TokenError, match="claims"):
        decode_graph_token(jwt(claims), None)


def test_expired_tokens_are_rejected_and_cached_results_expire_too() -> None:
    cache = TokenCache(None)
    header = f"Bearer {jwt({**CLAIMS, 'exp': time.time() + 60})}".encode()
    assert cache.claims(header).organization_id == "org-1"
    with pytest.raises(TokenError, match="expired"):
        cache.claims(header, now=time.time() + 120)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        b"",
        b"Bearer",
        b"Bearer   ",
        b"Basic dXNlcjpwYXNz",
        b"Token abc",
        b"Bearer \xff\xfe",
        b"x" * 9000,
    ],
)
def test_missing_or_non_bearer_authorization_is_rejected(authorization: bytes | None) -> None:
    with pytest.raises(TokenError):
        TokenCache(None).claims(authorization)


def test_bearer_scheme_is_case_insensitive() -> None:
    assert bearer_token(b"bearer abc.def.ghi") == "abc.def.ghi"


def test_cache_remembers_rejections_and_stays_bounded() -> None:
    cache = TokenCache(b"secret")
    bad = f"Bearer {jwt(CLAIMS, b'wrong')}".encode()
    for _ in range(3):
        with pytest.raises(TokenError):
            cache.claims(bad)
    for i in range(3000):
        with pytest.raises(TokenError):
            cache.claims(f"Bearer junk{i}".encode())
    assert len(cache._cache) <= 1024


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (b"/org-1/graph-1/routerconfigs/latest.json", ConfigPath("org-1", "graph-1")),
        (b"/org%201/graph%2F1/routerconfigs/latest.json", ConfigPath("org 1", "graph/1")),
        (b"/org-1/graph-1/routerconfigs/v2/latest.json", ConfigPath("org-1", "graph-1", "v2")),
        (b"/org-1/graph-1/routerconfigs/v%202/latest.json", ConfigPath("org-1", "graph-1", "v 2")),
        (b"/routerconfigs/latest.json", None),
        (b"//graph/routerconfigs/latest.json", None),
        (b"/org/graph/routerconfigs//latest.json", None),
        (b"/a/b/c/routerconfigs/latest.json", None),
        (b"/org/graph/manifest/latest.json", None),
        (b"/org/graph/routerconfigs/v2/x/latest.json", None),
        (b"/org/graph/routerconfigs/latest.json.bak", None),
        (b"/org%ff/graph/routerconfigs/latest.json", None),
        (b"/org/graph/routerconfigs/v%ff/latest.json", None),
    ],
)
def test_config_path(path: bytes, expected: ConfigPath | None) -> None:
    assert config_path(path) == expected


@pytest.mark.parametrize(
    ("body", "version"),
    [
        (b'{"version":"v1"}', "v1"),
        (b'{"version": ""}', ""),
        (b"{}", ""),
        (b"", ""),
        (b'{"version": null}', ""),
        (b'{"version":"v1","extra":true}', "v1"),
    ],
)
def test_requested_version(body: bytes, version: str) -> None:
    assert requested_version(body) == version


@pytest.mark.parametrize("body", [b"{", b"[]", b'"v1"', b'{"version": 3}', b"\xff\xfe"])
def test_malformed_request_bodies(body: bytes) -> None:
    with pytest.raises(ValueError):
        requested_version(body)
