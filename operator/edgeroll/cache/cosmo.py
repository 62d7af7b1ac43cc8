"""The Cosmo router's CDN protocol: graph-token claims and the `{"version": ...}` request body.

The router (router/pkg/routerconfig/cdn/client.go in wundergraph/cosmo) reads
`organization_id` and `federated_graph_id` from its graph token without
verifying it, path-escapes them into
`POST /<organization_id>/<federated_graph_id>/routerconfigs/latest.json`, and
sends `Authorization: Bearer <token>` with the body `{"version": "<held>"}`.
We require the claims to match the path; with a token secret configured we
also verify the token's HS256 signature, as Cosmo's own CDN does.

Routers of compatibility version N > 1 ask `routerconfigs/v<N>/latest.json`
(routerconfig.VersionPath). Cosmo's CDN (cdn-server/cdn/src/index.ts) routes
`routerconfigs/:compatibility_version/latest.json` but accepts only the segment
`1` (pattern /^1$/, read from S3 key `routerconfigs/v1/latest.json`, which the
control plane never writes: version 1 is stored unversioned); any other segment,
`v2` included, is answered 400 `Invalid router compatibility version "<segment>".`
before the body or the stored version is looked at. We answer the same.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from urllib.parse import unquote

CONFIG_FILE = b"/latest.json"  # every routerconfigs route ends so, versioned or not
# The only compatibility-version segment Cosmo's CDN accepts (its routerCompatibilityVersionPattern).
ACCEPTED_COMPATIBILITY_SEGMENT = "1"
MAX_TOKEN_BYTES = 8192
_TOKEN_CACHE_SIZE = 1024


class TokenError(Exception):
    """The token is missing or unacceptable; the message is safe to return to the client."""


@dataclass(frozen=True)
class GraphClaims:
    organization_id: str
    federated_graph_id: str
    expires_at: float | None = None
    # The token's `features` (e.g. "split-config-loading"); anything but a list of strings is none,
    # as Cosmo's CDN takes it.
    features: tuple[str, ...] = ()


def _b64url(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("malformed token") from None


def _json_object(raw: bytes) -> dict[str, object]:
    try:
        value = json.loads(raw)
    except ValueError:
        raise TokenError("malformed token") from None
    if not isinstance(value, dict):
        raise TokenError("malformed token")
    return value


def bearer_token(authorization: bytes | None) -> str:
    if not authorization:
        raise TokenError("missing bearer token")
    if len(authorization) > MAX_TOKEN_BYTES:
        raise TokenError("token too long")
    scheme, _, token = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        raise TokenError("missing bearer token")
    try:
        return token.strip().decode("ascii")
    except UnicodeDecodeError:
        raise TokenError("malformed token") from None


def decode_graph_token(token: str, secret: bytes | None) -> GraphClaims:
    """Claims of a graph token; with `secret`, only an HS256 token signed by it is accepted."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("malformed token")
    header = _json_object(_b64url(parts[0]))
    claims = _json_object(_b64url(parts[1]))
    if secret is not None:
        if header.get("alg") != "HS256":
            raise TokenError("token must be signed with HS256")
        expected = hmac.new(secret, f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _b64url(parts[2])):
            raise TokenError("token signature does not verify")
    org = claims.get("organization_id")
    graph = claims.get("federated_graph_id")
    if not isinstance(org, str) or not isinstance(graph, str) or not org or not graph:
        raise TokenError("token lacks organization_id or federated_graph_id claims")
    exp = claims.get("exp")
    if exp is not None and (isinstance(exp, bool) or not isinstance(exp, int | float)):
        raise TokenError("token has a malformed exp claim")
    features = claims.get("features")
    listed = tuple(f for f in features if isinstance(f, str)) if isinstance(features, list) else ()
    return GraphClaims(org, graph, float(exp) if exp is not None else None, listed)


class TokenCache:
    """Routers send the same token every poll: decode (and verify) each distinct one once."""

    def __init__(self, secret: bytes | None) -> None:
        self._secret = secret
        self._cache: dict[bytes, GraphClaims | TokenError] = {}

    @property
    def verifies(self) -> bool:
        """True when tokens are HS256-verified; an unverified token proves nothing."""
        return self._secret is not None

    def claims(self, authorization: bytes | None, now: float | None = None) -> GraphClaims:
        if authorization is None:
            raise TokenError("missing bearer token")
        hit = self._cache.get(authorization)
        if hit is None:
            try:
                hit = decode_graph_token(bearer_token(authorization), self._secret)
            except TokenError as exc:
                hit = exc
            if len(self._cache) >= _TOKEN_CACHE_SIZE:
                self._cache.clear()
            if len(authorization) <= MAX_TOKEN_BYTES:
                self._cache[authorization] = hit
        if isinstance(hit, TokenError):
            raise hit
        if hit.expires_at is not None and (time.time() if now is None else now) >= hit.expires_at:
            raise TokenError("token expired")
        return hit


@dataclass(frozen=True)
class ConfigPath:
    organization_id: str
    federated_graph_id: str
    # The raw segment of routerconfigs/<segment>/latest.json ("v2"); None for the unversioned route.
    compatibility_segment: str | None = None


def _unescape(segment: bytes) -> str:
    return unquote(segment.decode("ascii"), errors="strict")


def config_path(path: bytes) -> ConfigPath | None:
    """`/<org>/<graph>/routerconfigs[/<segment>]/latest.json`, unescaped; None if not one."""
    if not path.endswith(CONFIG_FILE):
        return None
    parts = path.split(b"/")
    if len(parts) not in (5, 6) or parts[0] != b"" or parts[3] != b"routerconfigs":
        return None
    if not all(parts[1:-1]):
        return None
    try:
        segment = _unescape(parts[4]) if len(parts) == 6 else None
        return ConfigPath(_unescape(parts[1]), _unescape(parts[2]), segment)
    except UnicodeDecodeError:
        return None


MANIFEST_DIR = b"/manifest/"


@dataclass(frozen=True)
class ManifestPath:
    organization_id: str
    federated_graph_id: str
    file: str  # "mapper.json", "latest.json" or "feature-flags/<name>.json", unescaped


def manifest_path(path: bytes) -> ManifestPath | None:
    """`/<org>/<graph>/manifest/<file>` of split config loading, unescaped; None if not one."""
    parts = path.split(b"/")
    if len(parts) < 5 or parts[0] != b"" or parts[3] != b"manifest" or not all(parts[1:]):
        return None
    try:
        org, graph, *rest = (_unescape(p) for p in parts[1:])
    except UnicodeDecodeError:
        return None
    file = "/".join(rest[1:])
    if file in ("mapper.json", "latest.json"):
        return ManifestPath(org, graph, file)
    if len(rest) == 3 and rest[1] == "feature-flags" and rest[2].endswith(".json") and rest[2] != ".json":
        return ManifestPath(org, graph, file)
    return None


OPERATIONS_DIRS = (b"/operations/", b"/cache_warmup/")


@dataclass(frozen=True)
class OperationsPath:
    organization_id: str
    federated_graph_id: str
    kind: str  # "manifest" (operations/manifest.json), "operation" or "warmup" (cache_warmup/...)
    client: str = ""  # of "operation"
    file: str = ""  # of "operation": "<sha256>.json"


def operations_path(path: bytes) -> OperationsPath | None:
    """`/<org>/<graph>/operations/manifest.json`, `.../operations/<client>/<file>.json` or
    `.../cache_warmup/operations.json`, unescaped (the routes of Cosmo's CDN); None if none of them."""
    parts = path.split(b"/")
    if len(parts) not in (5, 6) or parts[0] != b"" or not all(parts[1:]):
        return None
    try:
        org, graph, directory, *rest = (_unescape(p) for p in parts[1:])
    except UnicodeDecodeError:
        return None
    if directory == "operations" and rest == ["manifest.json"]:
        return OperationsPath(org, graph, "manifest")
    if directory == "cache_warmup" and rest == ["operations.json"]:
        return OperationsPath(org, graph, "warmup")
    if directory == "operations" and len(rest) == 2 and rest[1].endswith(".json"):
        return OperationsPath(org, graph, "operation", rest[0], rest[1])
    return None


def unquoted_etag(if_none_match: bytes | None) -> str:
    """The version a PQL manifest client holds: If-None-Match without one pair of surrounding quotes,
    as Cosmo's CDN reads it (`/^"(.*)"$/`); "" when absent."""
    if not if_none_match:
        return ""
    text = if_none_match.decode("latin-1")
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return text


def requested_version(body: bytes) -> str:
    """The version the router holds; "" on a first fetch. ValueError on a malformed body."""
    if not body.strip():
        return ""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("request body is not JSON") from None
    if not isinstance(value, dict):
        raise ValueError('request body must be a JSON object like {"version": "..."}')
    version = value.get("version", "")
    if version is None:
        return ""
    if not isinstance(version, str):
        raise ValueError("version must be a string")
    return version
