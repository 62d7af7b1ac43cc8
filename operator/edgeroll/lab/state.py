"""`.lab/state.json` and `.lab/env`: what a running lab consists of. Pure: no I/O."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

STATE_VERSION = 1
FAULT_TTL = 600.0  # a fault older than this is a test that crashed before undoing it; repair it


class ClusterState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    role: Literal["hub", "edge"]
    labels: dict[str, str] = Field(default_factory=dict)
    workdir: Path
    kubeconfig: Path
    server: str
    ports: dict[str, int] = Field(default_factory=dict)
    # A snapshot; `<workdir>/pids/*.pid` is the truth after a component restart.
    pids: dict[str, int] = Field(default_factory=dict)


class S3State(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str
    bucket: str
    region: str
    access_key: str
    secret_key: str
    data_dir: Path
    # The edge caches' read-only key; None in a state written before the lab had one (restarts S3).
    edge_access_key: str | None = None
    edge_secret_key: str | None = None
    log: Path
    ports: dict[str, int]
    pid: int | None = None


class PrometheusState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str
    port: int
    data_dir: Path
    config: Path
    targets_dir: Path  # file_sd: one JSON file per edge cache a test started (lab/prometheus.py)
    log: Path
    pid: int | None = None


class LabState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = STATE_VERSION
    root: Path
    bin_dir: Path
    weed: Path
    kube_version: str
    clusters: list[ClusterState] = Field(default_factory=list)
    s3: S3State | None = None
    # None in a state written before the lab had Prometheus: `up` starts one.
    prometheus: PrometheusState | None = None
    # Components a test stopped on purpose ("s3", "<cluster>/kube-apiserver") -> when (unix time).
    # `up` leaves them stopped for FAULT_TTL seconds instead of "repairing" another session's fault.
    faults: dict[str, float] = Field(default_factory=dict)

    def cluster(self, name: str) -> ClusterState:
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        known = ", ".join(c.name for c in self.clusters) or "none"
        raise KeyError(f"no lab cluster {name!r} (known: {known})")

    def with_cluster(self, cluster: ClusterState) -> LabState:
        """A copy with `cluster` added, or replacing the cluster of the same name in place."""
        clusters = [c for c in self.clusters if c.name != cluster.name]
        order = [c.name for c in self.clusters]
        if cluster.name in order:
            clusters.insert(order.index(cluster.name), cluster)
        else:
            clusters.append(cluster)
        return self.model_copy(update={"clusters": clusters})

    def without_cluster(self, name: str) -> LabState:
        return self.model_copy(update={"clusters": [c for c in self.clusters if c.name != name]})

    def with_fault(self, component: str, now: float) -> LabState:
        return self.model_copy(update={"faults": {**self.faults, component: now}})

    def without_fault(self, component: str) -> LabState:
        return self.model_copy(update={"faults": {k: v for k, v in self.faults.items() if k != component}})

    def active_faults(self, now: float, ttl: float = FAULT_TTL) -> set[str]:
        """Deliberately stopped components that `up` must leave alone."""
        return {component for component, since in self.faults.items() if now - since < ttl}


def apiserver_fault(cluster: str) -> str:
    return f"{cluster}/kube-apiserver"


S3_FAULT = "s3"
PROMETHEUS_FAULT = "prometheus"


def parse_state(text: str) -> LabState:
    """Parse `.lab/state.json`; a state from another layout version is rejected."""
    state = LabState.model_validate_json(text)
    if state.version != STATE_VERSION:
        raise ValueError(f"lab state version {state.version} is not {STATE_VERSION}; run `edgeroll lab down`")
    return state


def dump_state(state: LabState) -> str:
    return state.model_dump_json(indent=2) + "\n"


def lab_environment(state: LabState) -> dict[str, str]:
    """The variables `.lab/env` exports (see hack/CONTRACTS.md)."""
    if state.s3 is None:
        raise ValueError("the lab has no S3 server yet")
    hub = state.cluster("hub")
    edges = [c for c in state.clusters if c.role == "edge"]
    spaced = [str(c.kubeconfig) for c in edges if any(ch.isspace() for ch in str(c.kubeconfig))]
    if spaced:
        # The contract's "name=path name=path" format cannot carry whitespace in a path.
        raise ValueError(f"EDGEROLL_EDGE_KUBECONFIGS cannot hold a path with whitespace: {spaced[0]}")
    return {
        "EDGEROLL_HUB_KUBECONFIG": str(hub.kubeconfig),
        "EDGEROLL_EDGE_KUBECONFIGS": " ".join(f"{c.name}={c.kubeconfig}" for c in edges),
        "EDGEROLL_S3_ENDPOINT": state.s3.endpoint,
        "EDGEROLL_S3_BUCKET": state.s3.bucket,
        "AWS_ACCESS_KEY_ID": state.s3.access_key,
        "AWS_SECRET_ACCESS_KEY": state.s3.secret_key,
        "AWS_DEFAULT_REGION": state.s3.region,
        # The edge caches get a key of their own that only reads, as in production (settings.py).
        "EDGEROLL_EDGE_S3_ACCESS_KEY_ID": state.s3.edge_access_key or "",
        "EDGEROLL_EDGE_S3_SECRET_ACCESS_KEY": state.s3.edge_secret_key or "",
        # The lab's Prometheus, scraping the edge caches tests start (lab/prometheus.py).
        "EDGEROLL_PROMETHEUS_URL": state.prometheus.endpoint if state.prometheus is not None else "",
        "EDGEROLL_BIN_DIR": str(state.bin_dir),
        "EDGEROLL_LAB_STATE": str(state.root / ".lab" / "state.json"),
        # Plain `kubectl` after `source .lab/env` talks to the hub.
        "KUBECONFIG": str(hub.kubeconfig),
        # kubectl's and helm's discovery cache, kept out of ~/.kube.
        "KUBECACHEDIR": str(state.root / ".lab" / "kube-cache"),
    }


def render_env_file(env: dict[str, str]) -> str:
    lines = ["# Written by `edgeroll lab up`; source it: `. .lab/env`"]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
    return "\n".join(lines) + "\n"


def parse_edge_kubeconfigs(value: str) -> dict[str, Path]:
    """Inverse of EDGEROLL_EDGE_KUBECONFIGS: `"name=path name=path"` -> {name: path}."""
    result: dict[str, Path] = {}
    for item in value.split():
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"EDGEROLL_EDGE_KUBECONFIGS item {item!r} is not name=path")
        result[name] = Path(path)
    return result
