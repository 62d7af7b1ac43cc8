"""The edge cache's configuration, read from the environment the operator writes.

The variable names are the contract in hack/CONTRACTS.md. Secrets (the signing
key, the token secret, the S3 credentials) are kept out of `repr` so that a
logged settings object can never leak them.

EDGEROLL_CONFIG_POINTER_KEY (optional; `pointer_key`) is the S3 key of this
config's revision pointer in this cluster (render/pointer.py). When set, and with
one process (EDGEROLL_CACHE_WORKERS=1), `POST /-/revision` switches revisions in
place (edgeroll.cache.switching). Set but blank is an error, not "off": the
operator sets it only for InPlace clusters, so a blank value is a broken Secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgeroll.cache.peer import parse_peer_url
from edgeroll.render.canonical import digest_hex

DEFAULT_PORT = 8080
DEFAULT_STATE_DIR = "/var/lib/edgeroll"
MAX_WORKERS = 64


class SettingsError(ValueError):
    """A variable is missing or malformed; the message names it."""


@dataclass(frozen=True)
class CacheSettings:
    namespace: str
    name: str
    config_key: str
    config_digest: str
    signing_key: bytes = field(repr=False)
    s3_bucket: str
    s3_endpoint: str | None = None
    s3_region: str | None = None
    cosmo_organization_id: str | None = None
    cosmo_federated_graph_id: str | None = None
    cosmo_token_secret: bytes | None = field(default=None, repr=False)
    port: int = DEFAULT_PORT
    host: str = "0.0.0.0"
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    workers: int = 1
    # The cache's own Service, asked when S3 fails (peer fill); None: S3 only.
    peer_url: str | None = None
    # GET /configs/<ns>/<name> without a credential (spec.cache.publicRead).
    public_read: bool = False
    # The revision pointer's S3 key (InPlace clusters); None: no in-place switching.
    pointer_key: str | None = None

    @property
    def config_path(self) -> str:
        return f"/configs/{self.namespace}/{self.name}"

    @property
    def cosmo_enabled(self) -> bool:
        return bool(self.cosmo_organization_id and self.cosmo_federated_graph_id)


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is required but not set")
    return value


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "false"):
        return False
    if raw == "true":
        return True
    raise SettingsError(f"{name} must be true or false, got {raw[:40]!r}")


def _peer_url(env: Mapping[str, str]) -> str | None:
    url = _optional(env, "EDGEROLL_CACHE_PEER_URL")
    if url is not None:
        try:
            parse_peer_url(url)
        except ValueError as exc:
            raise SettingsError(f"EDGEROLL_CACHE_PEER_URL {exc}") from None
    return url


def _pointer_key(env: Mapping[str, str]) -> str | None:
    name = "EDGEROLL_CONFIG_POINTER_KEY"
    if name not in env:
        return None
    value = env[name].strip()
    if not value:
        raise SettingsError(f"{name} is set but empty; unset it to turn in-place switching off")
    return value


def _utf8(name: str, value: str) -> bytes:
    """The variable's bytes. A value that is not UTF-8 reaches Python with surrogate escapes, which
    cannot be encoded: say so, naming the variable, rather than fail later with a traceback."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise SettingsError(f"{name} is not valid UTF-8 text") from None


def settings_from_env(env: Mapping[str, str] | None = None) -> CacheSettings:
    env = os.environ if env is None else env
    digest = _required(env, "EDGEROLL_CONFIG_DIGEST")
    try:
        digest_hex(digest)
    except ValueError as exc:
        raise SettingsError(f"EDGEROLL_CONFIG_DIGEST: {exc}") from None
    # The signing key is taken verbatim: a trailing space is part of the key.
    signing_key = env.get("EDGEROLL_SIGNING_KEY", "")
    if not signing_key:
        raise SettingsError("EDGEROLL_SIGNING_KEY is required but not set")
    signing_key_bytes = _utf8("EDGEROLL_SIGNING_KEY", signing_key)
    namespace = _required(env, "EDGEROLL_CONFIG_NAMESPACE")
    name = _required(env, "EDGEROLL_CONFIG_NAME")
    for var, value in (("EDGEROLL_CONFIG_NAMESPACE", namespace), ("EDGEROLL_CONFIG_NAME", name)):
        if "/" in value or any(c.isspace() for c in value):
            raise SettingsError(f"{var} must not contain '/' or whitespace, got {value!r}")
    org = _optional(env, "EDGEROLL_COSMO_ORGANIZATION_ID")
    graph = _optional(env, "EDGEROLL_COSMO_FEDERATED_GRAPH_ID")
    if bool(org) != bool(graph):
        raise SettingsError(
            "EDGEROLL_COSMO_ORGANIZATION_ID and EDGEROLL_COSMO_FEDERATED_GRAPH_ID must be set together"
        )
    token_secret = _utf8("EDGEROLL_COSMO_TOKEN_SECRET", env.get("EDGEROLL_COSMO_TOKEN_SECRET", ""))
    return CacheSettings(
        namespace=namespace,
        name=name,
        config_key=_required(env, "EDGEROLL_CONFIG_KEY"),
        config_digest=digest,
        signing_key=signing_key_bytes,
        s3_bucket=_required(env, "EDGEROLL_S3_BUCKET"),
        s3_endpoint=_optional(env, "EDGEROLL_S3_ENDPOINT"),
        s3_region=_optional(env, "AWS_DEFAULT_REGION"),
        cosmo_organization_id=org,
        cosmo_federated_graph_id=graph,
        cosmo_token_secret=token_secret or None,
        port=_int(env, "EDGEROLL_CACHE_PORT", DEFAULT_PORT, 1, 65535),
        # A pod listens on all its addresses; the lab and tests bind loopback only.
        host=_optional(env, "EDGEROLL_CACHE_HOST") or "0.0.0.0",
        state_dir=Path(_optional(env, "EDGEROLL_STATE_DIR") or DEFAULT_STATE_DIR),
        workers=_int(env, "EDGEROLL_CACHE_WORKERS", 1, 1, MAX_WORKERS),
        peer_url=_peer_url(env),
        public_read=_bool(env, "EDGEROLL_CACHE_PUBLIC_READ"),
        pointer_key=_pointer_key(env),
    )
