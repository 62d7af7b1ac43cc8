"""Operator settings: flags over environment over defaults, in one frozen object.

Secrets (S3 credentials handed to the edges) are kept out of `repr`, so a
logged settings object never leaks them. The edges never get the operator's own
(read/write/delete) key: their key is separate, or absent (workload identity).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from edgeroll import __version__
from edgeroll.admission.policy import PrefixError, UrlPrefix, parse_prefix

DEFAULT_CACHE_IMAGE = f"ghcr.io/edgeroll/edgeroll:{__version__}"
DEFAULT_S3_PREFIX = "edgeroll"


class SettingsError(ValueError):
    """A variable is missing or malformed; the message names it."""


class MetricsAddress(NamedTuple):
    """Where the operator serves /metrics; host "" is every interface."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


# Next to kopf's liveness endpoint (8080 in the chart), never on it.
DEFAULT_METRICS_ADDRESS = MetricsAddress("", 8081)


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    endpoint: str | None = None
    prefix: str = DEFAULT_S3_PREFIX
    region: str | None = None
    # A publish after our own manifest write skips the read and writes with If-Match instead; off
    # (EDGEROLL_S3_MANIFEST_ALWAYS_READ) for an S3 server that ignores If-Match on PUT.
    manifest_if_match: bool = True


@dataclass(frozen=True)
class EdgeS3Credentials:
    """What the edge caches get: a read-only S3 key and the endpoint they reach.

    No key (both None): the caches use the default AWS credential chain of their pod (workload identity).
    """

    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    endpoint: str | None = None
    region: str | None = None

    @property
    def static(self) -> bool:
        return self.access_key_id is not None and self.secret_access_key is not None


@dataclass(frozen=True)
class OperatorSettings:
    s3: S3Settings
    edge_s3: EdgeS3Credentials
    cache_image: str = DEFAULT_CACHE_IMAGE
    # Images a RouterConfig may set in spec.cache.image, besides `cache_image` (always allowed).
    allowed_cache_images: tuple[str, ...] = ()
    # Prometheus servers a RouterConfig's analysis may name itself (rollout/prometheus_policy.py).
    allowed_prometheus_addresses: tuple[str, ...] = ()
    # URL prefixes spec.admission.webhook.url may lie under; empty: admission webhooks are refused
    # (the operator would otherwise POST wherever a RouterConfig author points it).
    admission_url_prefixes: tuple[UrlPrefix, ...] = ()
    # Upper bound for one admission request; no answer in time is retried with backoff.
    admission_timeout_seconds: float = 10.0
    # Development only: the edges' key may be the operator's own (one-identity S3 servers in the lab).
    allow_shared_edge_key: bool = False
    hub_kubeconfig: str | None = None
    # Full reconcile (drift check, publish verification) of every RouterConfig this often.
    resync_seconds: float = 60.0
    # While something is in flight (rollout progressing, retry pending), look again this often.
    progress_seconds: float = 2.0
    # Probe every EdgeCluster this often; write its status on change or every heartbeat.
    probe_seconds: float = 15.0
    probe_heartbeat_seconds: float = 300.0
    # Upper bound for one request to an edge apiserver; an unreachable edge costs at most this.
    edge_timeout_seconds: float = 10.0
    # Requests in flight to all edge apiservers together (each one also holds at most
    # EDGE_CONNECTIONS): a fleet-wide burst (a cold start, a new revision for every cluster) queues
    # here instead of thrashing one process's CPU and sockets.
    edge_concurrency: int = 64
    max_backoff_seconds: float = 300.0
    # Prometheus /metrics (operator_metrics.py); None: not served.
    metrics_address: MetricsAddress | None = DEFAULT_METRICS_ADDRESS
    # Sharding (edgeroll.sharding): RouterConfigs split into this many shards, one Lease each, held
    # by the replicas; 1 is plain leader election with standbys.
    shards: int = 1
    lease_namespace: str = "default"
    # client-go's leader-election defaults.
    lease_duration_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_period_seconds: float = 2.0
    # <pod or host name>/<pid>: the holderIdentity of our leases.
    identity: str = ""


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise SettingsError(f"{name} must not be negative, got {raw!r}")
    return value


def _listed(env: Mapping[str, str], name: str, what: str) -> tuple[str, ...]:
    """A comma-separated list of `what` (image references, URLs); blanks are dropped."""
    items = tuple(i.strip() for i in env.get(name, "").split(",") if i.strip())
    for item in items:
        if any(c.isspace() for c in item):
            raise SettingsError(f"{name} must be {what} separated by commas, got {item!r}")
    return items


ALLOWED_PROMETHEUS_ENV = "EDGEROLL_ALLOWED_PROMETHEUS_ADDRESSES"


def allowed_prometheus_addresses(env: Mapping[str, str]) -> tuple[str, ...]:
    """--allowed-prometheus-address from the environment: the operator's, and `edgeroll plan`'s default."""
    return _listed(env, ALLOWED_PROMETHEUS_ENV, "URLs")


def _prefixes(env: Mapping[str, str], name: str) -> tuple[UrlPrefix, ...]:
    """Comma-separated admission URL prefixes (a URL holds no bare comma worth allowing here)."""
    out: list[UrlPrefix] = []
    for raw in env.get(name, "").split(","):
        if not raw.strip():
            continue
        try:
            prefix = parse_prefix(raw)
        except PrefixError as exc:
            raise SettingsError(f"{name}: {exc}") from None
        if prefix not in out:
            out.append(prefix)
    return tuple(out)


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "false", "0", "no"):
        return False
    if raw in ("true", "1", "yes"):
        return True
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _metrics_address(env: Mapping[str, str], name: str) -> MetricsAddress | None:
    """`[host]:port` (`:8081`, `127.0.0.1:0`, `[::1]:8081`); `off` or set but empty: not served."""
    if name not in env:
        return DEFAULT_METRICS_ADDRESS
    raw = env[name].strip()
    if raw.lower() in ("", "off"):
        return None
    host, colon, port = raw.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not port.isdigit() or int(port) > 65535 or any(c.isspace() for c in host):
        raise SettingsError(f"{name} must be [host]:port (e.g. :8081) or off, got {raw!r}")
    return MetricsAddress(host, int(port))


def _edge_key(env: Mapping[str, str], allow_shared: bool) -> tuple[str | None, str | None]:
    """The edges' static key, or (None, None) for workload identity. Never the operator's key unless
    `allow_shared`: the caches in every edge cluster would hold a key that can write and delete."""
    ids = ("EDGEROLL_EDGE_S3_ACCESS_KEY_ID", "EDGEROLL_EDGE_S3_SECRET_ACCESS_KEY")
    access, secret = (env.get(n, "").strip() or None for n in ids)
    if (access is None) != (secret is None):
        missing, given = ids if access is None else ids[::-1]
        raise SettingsError(
            f"{missing} is required with {given}; set both for a static edge key, "
            "or neither for workload identity"
        )
    operator_key = env.get("AWS_ACCESS_KEY_ID", "").strip()
    if access is not None and access == operator_key and not allow_shared:
        raise SettingsError(
            "EDGEROLL_EDGE_S3_ACCESS_KEY_ID equals AWS_ACCESS_KEY_ID: the edge caches would get the "
            "operator's read/write key; give them a separate read-only key, or set "
            "EDGEROLL_ALLOW_SHARED_EDGE_KEY=true (development only)"
        )
    return access, secret


def _identity(env: Mapping[str, str]) -> str:
    host = env.get("POD_NAME", "").strip() or socket.gethostname()
    return f"{host}/{os.getpid()}"


def _shards(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name, "").strip() or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= 1024:
        raise SettingsError(f"{name} must be a whole number from 1 to 1024, got {raw!r}")
    return int(raw)


def _lease_timings(env: Mapping[str, str]) -> tuple[float, float, float]:
    duration = _float(env, "EDGEROLL_LEASE_DURATION_SECONDS", 15.0)
    deadline = _float(env, "EDGEROLL_RENEW_DEADLINE_SECONDS", 10.0)
    retry = _float(env, "EDGEROLL_RETRY_PERIOD_SECONDS", 2.0)
    if not 0 < retry < deadline < duration:
        # The deadline below the duration is what keeps a deposed replica from acting next to its
        # successor.
        raise SettingsError(
            "lease timings must satisfy 0 < retry period < renew deadline < lease duration, got "
            f"EDGEROLL_RETRY_PERIOD_SECONDS={retry:g}, EDGEROLL_RENEW_DEADLINE_SECONDS={deadline:g}, "
            f"EDGEROLL_LEASE_DURATION_SECONDS={duration:g}"
        )
    return duration, deadline, retry


def settings_from_env(env: Mapping[str, str] | None = None) -> OperatorSettings:
    env = os.environ if env is None else env

    def opt(name: str) -> str | None:
        return env.get(name, "").strip() or None

    bucket = opt("EDGEROLL_S3_BUCKET")
    if not bucket:
        raise SettingsError("EDGEROLL_S3_BUCKET is required but not set")
    region = opt("AWS_DEFAULT_REGION") or opt("AWS_REGION")
    s3 = S3Settings(
        bucket=bucket,
        endpoint=opt("EDGEROLL_S3_ENDPOINT"),
        prefix=(env.get("EDGEROLL_S3_PREFIX", DEFAULT_S3_PREFIX) or "").strip().strip("/"),
        region=region,
        manifest_if_match=not _bool(env, "EDGEROLL_S3_MANIFEST_ALWAYS_READ"),
    )
    allow_shared = _bool(env, "EDGEROLL_ALLOW_SHARED_EDGE_KEY")
    access, secret = _edge_key(env, allow_shared)
    edge_s3 = EdgeS3Credentials(
        access_key_id=access,
        secret_access_key=secret,
        endpoint=opt("EDGEROLL_EDGE_S3_ENDPOINT") or s3.endpoint,
        region=opt("EDGEROLL_EDGE_S3_REGION") or region,
    )
    duration, deadline, retry = _lease_timings(env)
    return OperatorSettings(
        s3=s3,
        edge_s3=edge_s3,
        cache_image=opt("EDGEROLL_CACHE_IMAGE") or DEFAULT_CACHE_IMAGE,
        allowed_cache_images=_listed(env, "EDGEROLL_ALLOWED_CACHE_IMAGES", "image references"),
        allowed_prometheus_addresses=allowed_prometheus_addresses(env),
        admission_url_prefixes=_prefixes(env, "EDGEROLL_ADMISSION_URL_PREFIXES"),
        admission_timeout_seconds=_float(env, "EDGEROLL_ADMISSION_TIMEOUT_SECONDS", 10.0) or 10.0,
        allow_shared_edge_key=allow_shared,
        hub_kubeconfig=opt("EDGEROLL_HUB_KUBECONFIG") or opt("KUBECONFIG"),
        resync_seconds=_float(env, "EDGEROLL_RESYNC_SECONDS", 60.0),
        progress_seconds=_float(env, "EDGEROLL_PROGRESS_SECONDS", 2.0),
        probe_seconds=_float(env, "EDGEROLL_PROBE_SECONDS", 15.0),
        probe_heartbeat_seconds=_float(env, "EDGEROLL_PROBE_HEARTBEAT_SECONDS", 300.0),
        edge_timeout_seconds=_float(env, "EDGEROLL_EDGE_TIMEOUT_SECONDS", 10.0),
        edge_concurrency=max(1, int(_float(env, "EDGEROLL_EDGE_CONCURRENCY", 64))),
        metrics_address=_metrics_address(env, "EDGEROLL_METRICS_ADDR"),
        shards=_shards(env, "EDGEROLL_SHARDS"),
        lease_namespace=opt("EDGEROLL_LEASE_NAMESPACE") or opt("POD_NAMESPACE") or "default",
        lease_duration_seconds=duration,
        renew_deadline_seconds=deadline,
        retry_period_seconds=retry,
        identity=opt("EDGEROLL_IDENTITY") or _identity(env),
    )
