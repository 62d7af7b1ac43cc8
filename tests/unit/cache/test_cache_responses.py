"""Pre-built answers: gzip once, signature over the uncompressed body, validators."""

from __future__ import annotations

import gzip

import pytest
from cache_testkit import SIGNING_KEY, config_body, signed_revision

from edgeroll.cache.responses import accepts_gzip, compress_body, etag_matches, prepare
from edgeroll.render.signing import verify

pytestmark = pytest.mark.unit


def headers_of(head: bytes) -> dict[str, str]:
    lines = head.decode().split("\r\n")[1:]
    return {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}


def test_prepared_variants() -> None:
    body = config_body("v9", size=20_000)
    revision = signed_revision(body)
    prepared = prepare(revision)
    assert prepared.etag == f'"{revision.digest}"'.encode()
    assert prepared.version == "v9"
    identity = headers_of(prepared.configs_identity.head)
    gz = headers_of(prepared.configs_gzip.head)
    assert prepared.configs_identity.body == body
    assert gzip.decompress(prepared.configs_gzip.body) == body
    assert gz["content-encoding"] == "gzip" and "content-encoding" not in identity
    assert int(gz["content-length"]) == len(prepared.configs_gzip.body) < len(body)
    for headers in (identity, gz, headers_of(prepared.cosmo_gzip.head)):
        assert verify(SIGNING_KEY, body, headers["x-signature-sha256"])
        assert headers["x-config-digest"] == revision.digest
        assert headers["etag"] == f'"{revision.digest}"'
        assert headers["vary"] == "Accept-Encoding"
    not_modified = headers_of(prepared.configs_not_modified.head)
    assert prepared.configs_not_modified.body == b""
    assert "content-length" not in not_modified and not_modified["etag"] == identity["etag"]


def test_gzip_is_skipped_when_it_does_not_pay() -> None:
    tiny = signed_revision(b'{"version":"v"}')
    prepared = prepare(tiny)
    assert prepared.configs_gzip is prepared.configs_identity


def test_compress_body_is_deterministic() -> None:
    body = config_body(size=5000)
    assert compress_body(body) == compress_body(body)


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (b'"sha256:aa"', True),
        (b'W/"sha256:aa"', True),
        (b'"x", "sha256:aa"', True),
        (b"*", True),
        (b'"sha256:bb"', False),
        (b"sha256:aa", False),
        (b"", False),
    ],
)
def test_etag_matches(header: bytes, match: bool) -> None:
    assert etag_matches(header, b'"sha256:aa"') is match


@pytest.mark.parametrize(
    ("header", "gzip_ok"),
    [
        (None, False),
        (b"", False),
        (b"gzip", True),
        (b"gzip, deflate, br", True),
        (b"br, GZIP", True),
        (b"deflate", False),
        (b"gzip;q=0", False),
        (b"gzip;q=0.5, br", True),
        (b"*", True),
        (b"*;q=0", False),
        (b"br;q=1, *;q=0.1", True),
        (b"gzip;q=0, *", False),
        (b"identity", False),
        (b"gzip;q=abc", False),
    ],
)
def test_accepts_gzip(header: bytes | None, gzip_ok: bool) -> None:
    assert accepts_gzip(header) is gzip_ok
