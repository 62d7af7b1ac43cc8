"""What the lab consists of and where it lives on disk. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"

HUB = "hub"
# Edge clusters and the labels an EdgeCluster selector can match on.
EDGE_LABELS: dict[str, dict[str, str]] = {
    "edge-eu": {"region": "eu", "tier": "edge"},
    "edge-us": {"region": "us", "tier": "edge"},
    "edge-ap": {"region": "ap", "tier": "edge"},
}
CLUSTER_NAMES: tuple[str, ...] = (HUB, *EDGE_LABELS)
NODES_PER_CLUSTER = 2

# kwokctl starts these as processes; their pid files are named after the component.
KWOK_COMPONENTS: tuple[str, ...] = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok-controller",
)

S3_BUCKET = "edgeroll"
S3_REGION = "us-east-1"
S3_ACCESS_KEY = "edgeroll-lab"  # the operator's: read, write, list, delete
S3_EDGE_ACCESS_KEY = "edgeroll-lab-edge"  # the edge caches': read only


@dataclass(frozen=True)
class LabPaths:
    """Every file the lab writes, all under `<repo>/.lab` (gitignored)."""

    root: Path

    @property
    def lab_dir(self) -> Path:
        return self.root / ".lab"

    @property
    def kwok_workdir(self) -> Path:
        """KWOK_WORKDIR: clusters live here, never in ~/.kwok."""
        return self.lab_dir / "kwok"

    @property
    def kwok_config(self) -> Path:
        # kwokctl loads `$KWOK_WORKDIR/kwok.yaml` by default, so every kwokctl
        # call (create, start, scale, delete) sees the same options.
        return self.kwok_workdir / "kwok.yaml"

    @property
    def kwok_cache(self) -> Path:
        return self.lab_dir / "kwok-cache"

    @property
    def kube_cache(self) -> Path:
        """KUBECACHEDIR for kwokctl and kubectl, so ~/.kube stays untouched."""
        return self.lab_dir / "kube-cache"

    @property
    def s3_dir(self) -> Path:
        return self.lab_dir / "s3"

    @property
    def prometheus_dir(self) -> Path:
        return self.lab_dir / "prometheus"

    @property
    def prometheus_targets(self) -> Path:
        """file_sd: the edge caches tests start write their scrape targets here (lab/prometheus.py)."""
        return self.prometheus_dir / "targets"

    @property
    def logs(self) -> Path:
        return self.lab_dir / "logs"

    @property
    def state(self) -> Path:
        return self.lab_dir / "state.json"

    @property
    def env(self) -> Path:
        return self.lab_dir / "env"

    @property
    def lock(self) -> Path:
        """Held exclusively while the lab is being changed (up, down, start/stop)."""
        return self.lab_dir / "lock"

    @property
    def users_lock(self) -> Path:
        """Held shared by every test session using the lab; see tests/conftest.py."""
        return self.lab_dir / "users.lock"

    def cluster_dir(self, name: str) -> Path:
        return self.kwok_workdir / "clusters" / name
