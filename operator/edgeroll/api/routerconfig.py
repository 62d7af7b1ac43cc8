"""RouterConfig: a router config to render, sign, publish and roll out to edge clusters."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import ConfigDict, Field

from edgeroll.api.common import (
    CONFIG_KEY,
    DNS1123_SUBDOMAIN,
    ApiModel,
    Condition,
    LabelSelector,
    SecretKeyRef,
    _kx,
)
from edgeroll.api.rollout import RolloutPolicy, RolloutState

KIND = "RouterConfig"
PLURAL = "routerconfigs"
SINGULAR = "routerconfig"
SHORT_NAMES = ["rtc"]

PRESERVE = {"x-kubernetes-preserve-unknown-fields": True}


class ConfigFormat(StrEnum):
    COSMO = "cosmo"
    JSON = "json"


class ConfigMapKeyRef(ApiModel):
    """A key of a ConfigMap in the RouterConfig's namespace.

    The value may sit in `data` (JSON text) or in `binaryData` (JSON, or
    gzip-compressed JSON: a ConfigMap holds at most 1 MiB, so a 2 MB config
    travels compressed).
    """

    name: str = Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
    key: str = Field(min_length=1, max_length=253, pattern=CONFIG_KEY)


class ConfigMapRef(ApiModel):
    """A ConfigMap in the RouterConfig's namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)


class PersistedOperations(ApiModel):
    """Persisted (trusted) GraphQL operations, published and rolled out with the config.

    The ConfigMap's keys (in `data`, or in `binaryData`, gzip allowed):
    `<client>.<sha256>.graphql` holds one operation document of that client;
    `<sha256>.graphql` one of no particular client; `manifest.json` a Cosmo PQL
    manifest (`{"version": 1, "operations": {"<sha256>": "<document>"}}`). Every
    hash must be the sha256 of its document. The edge caches serve them on Cosmo's
    CDN routes `operations/manifest.json`, `operations/<client>/<sha256>.json`
    and, with `cacheWarmup`, `cache_warmup/operations.json`.
    """

    config_map_ref: ConfigMapRef
    cache_warmup: bool = Field(
        default=False,
        description=(
            "Also serve every operation as a cache warmup item (cache_warmup/operations.json), "
            "so routers plan them before they take traffic."
        ),
    )


class ConfigFrom(ApiModel):
    """Where to read the config when it is too large to sit inline."""

    config_map_key_ref: ConfigMapKeyRef


class Targets(ApiModel):
    cluster_selector: LabelSelector = Field(
        description="Selects EdgeClusters by their labels. An empty selector selects all EdgeClusters."
    )


class Overlay(ApiModel):
    """An RFC 7386 JSON merge patch applied to the clusters the selector matches.

    String values may use `${cluster.name}` and `${cluster.labels.<key>}`;
    `$${` writes a literal `${`.
    """

    cluster_selector: LabelSelector
    patch: dict[str, Any] = Field(json_schema_extra=_kx(**PRESERVE))


class Signing(ApiModel):
    secret_ref: SecretKeyRef = Field(
        description="Secret key holding the HMAC-SHA256 key (a Cosmo router needs exactly 32 bytes)."
    )


class CosmoSpec(ApiModel):
    """Identifies the graph for the edge cache's Cosmo CDN protocol."""

    organization_id: str = Field(min_length=1, max_length=253)
    federated_graph_id: str = Field(min_length=1, max_length=253)
    graph_token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description=(
            "Secret key holding the HS256 secret graph tokens are signed with (Cosmo's "
            "AUTH_JWT_SECRET). The caches then accept only tokens signed with it; unset, they "
            "check the token's claims only, and the TokensVerified condition says so."
        ),
    )


class ResourceRequirements(ApiModel):
    requests: dict[str, int | str] | None = Field(default=None, json_schema_extra=_kx(maxProperties=16))
    limits: dict[str, int | str] | None = Field(default=None, json_schema_extra=_kx(maxProperties=16))


class CacheSpec(ApiModel):
    """Shape of the edge-cache Deployment in every target cluster."""

    replicas: int = Field(default=2, ge=0, le=1000)
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Cache image; the operator's default (EDGEROLL_CACHE_IMAGE) when unset.",
    )
    port: int = Field(default=8080, ge=1, le=65535)
    resources: ResourceRequirements | None = None
    public_read: bool = Field(
        default=False,
        description=(
            "Serve GET /configs/<namespace>/<name> without a credential. Off: it needs a verified "
            "graph token or the read token derived from the signing key (docs/edge-cache.md)."
        ),
    )


class AdmissionWebhook(ApiModel):
    """A webhook that admits every rendered revision before it is published (as Cosmo's admission
    webhook does): POSTed the revision, signed with the Secret's key (X-Cosmo-Signature-256)."""

    url: str = Field(
        min_length=1,
        max_length=2048,
        pattern=r"^https?://\S+$",
        description=(
            "Where the revision is POSTed. It must lie under one of the operator's "
            "--admission-url-prefix entries (none by default: then no webhook is called and the "
            "RouterConfig is Stalled); https unless the prefix itself is http."
        ),
    )
    secret_ref: SecretKeyRef = Field(
        description=(
            "Secret key (in the RouterConfig's namespace) the request body is HMAC-SHA256 signed "
            "with; the hex signature is in the X-Cosmo-Signature-256 header."
        )
    )


class Admission(ApiModel):
    """Pre-publish admission: nothing is published, and so nothing rolled out, that it has not admitted."""

    webhook: AdmissionWebhook


class RouterConfigSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=_kx(
            **{
                "x-kubernetes-validations": [
                    {
                        "rule": "has(self.config) != has(self.configFrom)",
                        "message": "exactly one of spec.config or spec.configFrom must be set",
                    },
                    {
                        "rule": "!has(self.cosmo) || self.format == 'cosmo'",
                        "message": "spec.cosmo is only allowed with spec.format cosmo",
                    },
                    {
                        "rule": "!has(self.persistedOperations) || has(self.cosmo)",
                        "message": (
                            "spec.persistedOperations needs spec.cosmo: the caches serve them on the "
                            "Cosmo routes of that graph"
                        ),
                    },
                ]
            }
        )
    )

    format: ConfigFormat = Field(description="cosmo: a Cosmo router execution config; json: any JSON object.")
    config: dict[str, Any] | None = Field(
        default=None, description="The config, inline.", json_schema_extra=_kx(**PRESERVE)
    )
    config_from: ConfigFrom | None = None
    targets: Targets
    overlays: list[Overlay] = Field(default_factory=list, max_length=32)
    signing: Signing
    cosmo: CosmoSpec | None = None
    persisted_operations: PersistedOperations | None = None
    cache: CacheSpec = Field(default_factory=CacheSpec, json_schema_extra=_kx(default={}))
    revision_history_limit: int = Field(default=10, ge=1, le=100)
    rollout: RolloutPolicy = Field(default_factory=RolloutPolicy, json_schema_extra=_kx(default={}))
    admission: Admission | None = Field(
        default=None,
        description="Ask a webhook to admit every rendered revision before it is published.",
    )


# ---- status -----------------------------------------------------------------------------------------


class ClusterPhase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    READY = "Ready"
    FAILED = "Failed"
    UNREACHABLE = "Unreachable"
    PAUSED = "Paused"
    DELETING = "Deleting"
    # Progressive rollout: unreachable (Skip: left out of wave health), and sent back to last-good.
    STALE = "Stale"
    ROLLED_BACK = "RolledBack"


class RevisionStatus(ApiModel):
    """The published base render (no overlays)."""

    digest: str
    short_digest: str = ""
    key: str
    size: int
    published_at: str | None = Field(default=None, json_schema_extra=_kx(format="date-time"))


class ClusterStatus(ApiModel):
    """Per-cluster truth: what the edge runs (`digest`) and what it should run (`desiredDigest`)."""

    name: str
    phase: ClusterPhase
    wave: str | None = Field(default=None, description="The rollout wave the cluster belongs to.")
    digest: str | None = Field(default=None, description="Digest in the edge Deployment's pod template.")
    desired_digest: str | None = Field(default=None, description="Digest rendered for this cluster.")
    key: str | None = Field(default=None, description="S3 key of the desired digest.")
    ready_replicas: int = 0
    replicas: int = 0
    message: str | None = Field(default=None, max_length=4096)
    last_transition_time: str | None = Field(default=None, json_schema_extra=_kx(format="date-time"))


class Summary(ApiModel):
    desired: int = 0
    ready: int = 0
    failed: int = 0
    unreachable: int = 0


class OwnerStatus(ApiModel):
    """The operator replica that wrote this status, and the shard lease it held (sharding/)."""

    shard: int = Field(
        ge=0, description="The shard this RouterConfig is in (label edgeroll.io/shard pins it)."
    )
    replica: str = Field(description="The lease holder: <pod or host name>/<pid>.")
    term: int = Field(
        ge=0,
        description="The shard lease's leaseTransitions when the replica took it; a new holder's is higher.",
    )


StatusPhase = Literal["Ready", "Progressing", "Degraded", "Stalled", "Deleting"]


class RouterConfigStatus(ApiModel):
    observed_generation: int | None = None
    phase: StatusPhase | None = None
    ready_clusters: str | None = Field(default=None, description="ready/desired, for the READY column.")
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra=_kx(**{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}),
    )
    revision: RevisionStatus | None = None
    clusters: list[ClusterStatus] = Field(
        default_factory=list,
        json_schema_extra=_kx(**{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}),
    )
    summary: Summary | None = None
    rollout: RolloutState | None = Field(
        default=None, description="The rollout of the current revision, as the planner persisted it."
    )
    owner: OwnerStatus | None = Field(default=None, description="Which operator replica acts on this object.")


class RouterConfig(ApiModel):
    """The whole object as the operator reads it (metadata handled by kopf)."""

    spec: RouterConfigSpec
    status: RouterConfigStatus = Field(default_factory=RouterConfigStatus)


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Format", "type": "string", "jsonPath": ".spec.format"},
    {"name": "Digest", "type": "string", "jsonPath": ".status.revision.shortDigest"},
    {"name": "Ready", "type": "string", "jsonPath": ".status.readyClusters"},
    {"name": "Wave", "type": "string", "jsonPath": ".status.rollout.waveProgress"},
    {"name": "Rollout", "type": "string", "jsonPath": ".status.rollout.phase"},
    {"name": "Status", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    # -o wide: empty unless a wave waits for its windows (ROLLOUT says Waiting then). A string, not a
    # date: kubectl shows a date as an age, and this one lies ahead.
    {"name": "Next Window", "type": "string", "jsonPath": ".status.rollout.window.nextOpenAt", "priority": 1},
    {"name": "Shard", "type": "integer", "jsonPath": ".status.owner.shard", "priority": 1},
    {"name": "Owner", "type": "string", "jsonPath": ".status.owner.replica", "priority": 1},
]
