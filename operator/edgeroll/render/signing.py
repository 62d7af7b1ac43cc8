"""HMAC-SHA256 signatures in the scheme a Cosmo router verifies.

The router (graph.sign_key) expects `X-Signature-SHA256` to hold the standard
base64 of HMAC-SHA256(key, uncompressed body). Cosmo's CDN keeps the same value
in S3 user metadata `signature-sha256`, and so do we.

The router's config schema declares graph.sign_key a string of exactly 32
characters ("a 32 byte long string"), and the router HMACs with its bytes: so a
key it can use is UTF-8 text of 32 bytes that are also 32 characters (ASCII),
and, since the edge cache receives it as an environment variable, without NUL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SIGNATURE_METADATA_KEY = "signature-sha256"
SIGNATURE_HEADER = "X-Signature-SHA256"
SIGNING_KEY_BYTES = 32


def signing_key_problem(key: bytes) -> str | None:
    """What makes `key` unusable as a Cosmo graph.sign_key, or None. Never quotes the key."""
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"is not valid UTF-8 text (byte {exc.start} of {len(key)})"
    if len(key) != SIGNING_KEY_BYTES:
        return f"is {len(key)} bytes; a Cosmo router's graph.sign_key must be exactly {SIGNING_KEY_BYTES}"
    if len(text) != SIGNING_KEY_BYTES:
        return (
            f"is {len(text)} characters in {len(key)} bytes; a Cosmo router's graph.sign_key must be "
            f"{SIGNING_KEY_BYTES} characters of one byte each (ASCII)"
        )
    if "\x00" in text:
        return "contains a NUL byte, which an environment variable cannot carry"
    return None


def sign(key: bytes, body: bytes) -> str:
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode("ascii")


def read_token(key: bytes, namespace: str, name: str) -> str:
    """The bearer credential for `GET /configs/<namespace>/<name>`, derived from the signing key.

    Every cache of the RouterConfig and every router of its graph already holds the key, so
    nothing new is distributed; binding namespace/name makes one config's token useless for another.
    """
    mac = hmac.new(key, f"edgeroll-read:{namespace}/{name}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def verify(key: bytes, body: bytes, signature: str | None) -> bool:
    """Constant-time check; a missing signature never verifies."""
    if not signature:
        return False
    return hmac.compare_digest(sign(key, body).encode("ascii"), signature.strip().encode("ascii", "replace"))
