"""EdgeCluster: a cluster the operator reaches with a kubeconfig from a hub Secret."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from edgeroll.api.common import DNS1123_LABEL, HTTP_URL, ApiModel, Condition, NamespacedSecretKeyRef, _kx

KIND = "EdgeCluster"
PLURAL = "edgeclusters"
SINGULAR = "edgecluster"
SHORT_NAMES = ["ec"]
DEFAULT_NAMESPACE = "edgeroll-system"
RevisionSwitch = Literal["Restart", "InPlace"]


class PrometheusEndpoint(ApiModel):
    """The Prometheus that sees this cluster's edge caches."""

    address: str = Field(
        max_length=2048,
        pattern=HTTP_URL,
        description="Base URL, e.g. http://prometheus.monitoring:9090: the default of every analysis "
        "metric's prometheus.address for this cluster.",
    )


class EdgeClusterSpec(ApiModel):
    kubeconfig_secret_ref: NamespacedSecretKeyRef = Field(
        description="Hub Secret key holding a kubeconfig for this cluster."
    )
    namespace: str = Field(
        default=DEFAULT_NAMESPACE,
        min_length=1,
        max_length=63,
        pattern=DNS1123_LABEL,
        description="Namespace of the edge caches in this cluster.",
    )
    paused: bool = Field(default=False, description="When true, the operator leaves this cluster as it is.")
    revision_switch: RevisionSwitch = Field(
        default="Restart",
        description=(
            "How the edge caches here move to a new revision. Restart: a rolling update of the cache "
            "Deployment (gated on the pods' readiness). InPlace: the running pods fetch, verify and swap "
            "the revision without a restart (gated on every pod's answer); a second or so instead of a "
            "pod start, and it needs `pods/proxy` create in the edge namespace."
        ),
    )
    prometheus: PrometheusEndpoint | None = Field(
        default=None, description="Where rollout analysis queries metrics of this cluster by default."
    )


class EdgeClusterStatus(ApiModel):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra=_kx(**{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}),
    )
    server_version: str | None = None
    last_probe_time: str | None = Field(default=None, json_schema_extra=_kx(format="date-time"))


class EdgeCluster(ApiModel):
    spec: EdgeClusterSpec
    status: EdgeClusterStatus = Field(default_factory=EdgeClusterStatus)


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Version", "type": "string", "jsonPath": ".status.serverVersion"},
    {"name": "Namespace", "type": "string", "jsonPath": ".spec.namespace"},
    {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused", "priority": 1},
    {"name": "Switch", "type": "string", "jsonPath": ".spec.revisionSwitch", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
