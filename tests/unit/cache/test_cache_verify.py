"""Only bytes whose digest and HMAC both check out become a Revision."""

from __future__ import annotations

import pytest
from cache_testkit import SIGNING_KEY, config_body

from edgeroll.cache.revision import VerificationError, config_version, verify_revision
from edgeroll.render.canonical import content_digest
from edgeroll.render.signing import sign

pytestmark = pytest.mark.unit


def test_good_revision_verifies_and_exposes_version() -> None:
    body = config_body("2024-06-01T00:00:00Z")
    revision = verify_revision(
        body, expected_digest=content_digest(body), signature=sign(SIGNING_KEY, body), signing_key=SIGNING_KEY
    )
    assert revision.body == body
    assert revision.digest == content_digest(body)
    assert revision.version == "2024-06-01T00:00:00Z"


def test_wrong_digest_is_refused_before_the_signature() -> None:
    body = config_body()
    other = content_digest(body + b" ")
    with pytest.raises(VerificationError) as caught:
        verify_revision(
            body, expected_digest=other, signature=sign(SIGNING_KEY, body), signing_key=SIGNING_KEY
        )
    assert caught.value.reason == "digest_mismatch"
    assert other in str(caught.value)


def test_tampered_body_with_recomputed_digest_fails_the_signature() -> None:
    body = config_body()
    tampered = body.replace(b"hello", b"pwned")
    with pytest.raises(VerificationError) as caught:
        verify_revision(
            tampered,
            expected_digest=content_digest(tampered),
            signature=sign(SIGNING_KEY, body),
            signing_key=SIGNING_KEY,
        )
    assert caught.value.reason == "bad_signature"


def test_signature_from_another_key_is_refused() -> None:
    body = config_body()
    with pytest.raises(VerificationError) as caught:
        verify_revision(
            body,
            expected_digest=content_digest(body),
            signature=sign(b"other", body),
            signing_key=SIGNING_KEY,
        )
    assert caught.value.reason == "bad_signature"
    assert SIGNING_KEY.decode() not in str(caught.value)


@pytest.mark.parametrize("signature", [None, "", "   "])
def test_missing_signature_is_refused(signature: str | None) -> None:
    body = config_body()
    with pytest.raises(VerificationError) as caught:
        verify_revision(
            body, expected_digest=content_digest(body), signature=signature, signing_key=SIGNING_KEY
        )
    assert caught.value.reason in ("missing_signature", "bad_signature")
    if signature is None or signature == "":
        assert caught.value.reason == "missing_signature"


def test_garbage_signature_is_refused_not_crashing() -> None:
    body = config_body()
    with pytest.raises(VerificationError):
        verify_revision(body, expected_digest=content_digest(body), signature="ñ%%%", signing_key=SIGNING_KEY)


@pytest.mark.parametrize(
    ("body", "version"),
    [
        (b'{"version":"abc"}', "abc"),
        (b'{"version":7}', None),
        (b"[1,2]", None),
        (b"not json", None),
        (b'{"engineConfig":{}}', None),
    ],
)
def test_config_version(body: bytes, version: str | None) -> None:
    assert config_version(body) == version
