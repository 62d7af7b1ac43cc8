"""HMAC-SHA256 signatures in the scheme a Cosmo router verifies.

The router (graph.sign_key) expects `X-Signature-SHA256` to hold the standard
base64 of HMAC-SHA256(key, uncompressed body). Cosmo's CDN keeps the same value
in S3 user metadata `signature-sha256`, and so do we.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SIGNATURE_METADATA_KEY = "signature-sha256"
SIGNATURE_HEADER = "X-Signature-SHA256"


def sign(key: bytes, body: bytes) -> str:
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode("ascii")


def verify(key: bytes, body: bytes, signature: str | None) -> bool:
    """Constant-time check; a missing signature never verifies."""
    if not signature:
        return False
    return hmac.compare_digest(sign(key, body).encode("ascii"), signature.strip().encode("ascii", "replace"))
