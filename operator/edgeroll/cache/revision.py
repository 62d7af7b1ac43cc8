"""A revision is a config body that has passed both checks; nothing else is ever served.

`verify_revision` is pure: it takes bytes and the claimed digest and signature,
and either returns a `Revision` or raises `VerificationError` with a reason
that is also the metrics label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

from edgeroll.render.canonical import content_digest, digest_hex
from edgeroll.render.operations import BundleError, PersistedOperations, unbundle
from edgeroll.render.signing import sign, verify

VerifyReason = Literal["digest_mismatch", "missing_signature", "bad_signature", "malformed"]


class VerificationError(Exception):
    def __init__(self, reason: VerifyReason, message: str) -> None:
        super().__init__(message)
        self.reason: VerifyReason = reason


@dataclass(frozen=True)
class Revision:
    digest: str
    body: bytes = field(repr=False)
    signature: str
    # Top-level `version` of a Cosmo execution config, if the body has one.
    version: str | None = None
    # When the origin says the object was written (unix seconds), else when we fetched it.
    published_at: float | None = None
    # A bundle (render.operations) holds a config and persisted operations: the config's own bytes
    # and HMAC, which the Cosmo routes serve. None: the body is the config.
    bundled_config: bytes | None = field(default=None, repr=False)
    bundled_config_signature: str | None = None
    operations: PersistedOperations | None = None

    @property
    def config(self) -> bytes:
        return self.body if self.bundled_config is None else self.bundled_config

    @property
    def config_signature(self) -> str:
        return self.signature if self.bundled_config_signature is None else self.bundled_config_signature

    @property
    def hex(self) -> str:
        return digest_hex(self.digest)


def config_version(body: bytes) -> str | None:
    """The top-level string `version` of a JSON object body, or None."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if isinstance(value, dict):
        version = value.get("version")
        if isinstance(version, str):
            return version
    return None


def verify_revision(
    body: bytes,
    *,
    expected_digest: str,
    signature: str | None,
    signing_key: bytes,
    published_at: float | None = None,
) -> Revision:
    """The digest first (cheap to explain), then the HMAC in constant time."""
    actual = content_digest(body)
    if actual != expected_digest:
        raise VerificationError(
            "digest_mismatch", f"content digest {actual} does not match expected {expected_digest}"
        )
    if not signature:
        raise VerificationError("missing_signature", f"revision {expected_digest} has no signature")
    if not verify(signing_key, body, signature):
        raise VerificationError(
            "bad_signature", f"signature of revision {expected_digest} does not verify with the signing key"
        )
    try:
        config, operations = unbundle(body)
    except BundleError as exc:
        raise VerificationError("malformed", f"revision {expected_digest}: {exc}") from None
    bundled = config is not body
    return Revision(
        digest=actual,
        body=body,
        signature=signature.strip(),
        version=config_version(config),
        published_at=published_at,
        bundled_config=config if bundled else None,
        bundled_config_signature=sign(signing_key, config) if bundled else None,
        operations=operations,
    )
