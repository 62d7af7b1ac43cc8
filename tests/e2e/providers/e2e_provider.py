"""The seam between the e2e scenarios and the clusters they run on.

A provider hands the scenarios four things, and nothing else differs between
`local` (the kwokctl lab, the default and what CI runs) and `kind` (four kind
clusters and real edge-cache pods, where Docker exists):

- `clusters`: a handle shaped like `edgeroll.lab.Lab` (`kubectl(cluster, ...)`,
  `s3_client()`, `s3_bucket`, `edge_labels`, `edge_kubeconfigs`), so the operator
  suite's `OperatorE2E` helpers work unchanged on both;
- `edge_kubeconfig(edge)`: the kubeconfig an EdgeCluster Secret carries, as the
  operator reaches that edge;
- `install_operator(scope, log)`: the Helm chart into the hub, and the operator
  running under the chart's ServiceAccount (a local process with a token of it,
  or the chart's own Deployment);
- `edge_cache(...)`: a client-reachable edge cache for one edge Deployment (a
  local `edgeroll cache` process started from the pod spec, or a port-forward to
  the real pod).

Select one with EDGEROLL_E2E_PROVIDER=local|kind (docs/e2e.md).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml
from tests.polling import wait_until

from edgeroll.lab.pod_runner import CacheEndpoint

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "edgeroll"
CRD_NAMES = ("routerconfigs.edgeroll.io", "edgeclusters.edgeroll.io")


@dataclass(frozen=True)
class RunScope:
    """Names of everything one e2e session creates, all derived from one run id."""

    run: str
    ns: str  # hub namespace of RouterConfigs and their Secrets; also the edge cache namespace in each edge
    system_ns: str  # the chart's release namespace
    release: str  # Helm release; cluster-scoped RBAC objects carry its name, so it is unique per run
    prefix: str  # S3 prefix

    @classmethod
    def new(cls, kind: str = "sc") -> RunScope:
        run = uuid.uuid4().hex[:6]
        return cls(
            run=run,
            ns=f"e2e-{kind}-{run}",
            system_ns=f"e2e-{kind}-{run}-system",
            release=f"e2e-{kind}-{run}",
            prefix=f"e2e-{kind}-{run}",
        )

    @property
    def service_account(self) -> str:
        """The chart's ServiceAccount (its fullname: `<release>-edgeroll`)."""
        return f"{self.release}-edgeroll"

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.system_ns}:{self.service_account}"

    @property
    def tenant_ns(self) -> str:
        """A second tenant's hub namespace, also watched. With RouterConfigs `a-web` in `ns` and `web`
        here, the pair spells the 0.1 name collision (`team/a-web` and `team-a/web`)."""
        return f"{self.ns}-a"


class ClusterAccess(Protocol):
    """The part of `edgeroll.lab.Lab` the scenarios and `OperatorE2E` use."""

    @property
    def bin_dir(self) -> Path: ...

    @property
    def hub_kubeconfig(self) -> Path: ...

    @property
    def edge_kubeconfigs(self) -> dict[str, Path]: ...

    @property
    def edge_labels(self) -> dict[str, dict[str, str]]: ...

    @property
    def s3_bucket(self) -> str: ...

    def s3_client(self) -> S3Client: ...

    def kubectl(
        self, cluster: str, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]: ...


class OperatorHandle(Protocol):
    """What `OperatorE2E` and its teardown use of `OperatorProcess`."""

    proc: Any  # alive while `proc.poll() is None`

    def log(self) -> str: ...

    def tail(self, lines: int = 40) -> str: ...

    def stop(self) -> None: ...


class E2EProvider(Protocol):
    name: str
    clusters: ClusterAccess

    def edge_kubeconfig(self, edge: str) -> str: ...

    def install_operator(self, scope: RunScope, log_path: Path) -> OperatorHandle: ...

    def operator_identity(self, scope: RunScope) -> str: ...

    def uninstall_operator(self, scope: RunScope) -> None: ...

    def edge_cache(
        self, edge: str, namespace: str, deployment: str, work_dir: Path
    ) -> AbstractContextManager[CacheEndpoint]: ...

    def close(self) -> None: ...


@dataclass
class ChartRun:
    """The chart installed for one run and the operator it runs (its pods, or a local process with a
    token of its ServiceAccount). Hub namespaces `scope.ns` and `scope.tenant_ns` exist, each with the
    `signing` Secret, and both are watched."""

    provider: E2EProvider
    scope: RunScope
    operator: OperatorHandle
    work: Path
    log_path: Path


# ---- shared by both providers ---------------------------------------------------------------------------


def helm(clusters: ClusterAccess, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The pinned helm against the hub, with its cache and config out of $HOME."""
    state = ROOT / ".lab" / "helm"
    env = {
        "PATH": f"{clusters.bin_dir}:/usr/bin:/bin",
        "KUBECONFIG": str(clusters.hub_kubeconfig),
        "HELM_CACHE_HOME": str(state / "cache"),
        "HELM_CONFIG_HOME": str(state / "config"),
        "HELM_DATA_HOME": str(state / "data"),
    }
    result = subprocess.run(
        [str(clusters.bin_dir / "helm"), *args], capture_output=True, text=True, env=env, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args[:2])} failed: {result.stderr.strip()}")
    return result


def install_chart(clusters: ClusterAccess, scope: RunScope, *values: str) -> None:
    """`helm upgrade --install` of charts/edgeroll into the run's system namespace.

    The CRDs come from crds/ (the chart's copy is identical; a unit test checks it),
    applied beforehand by the caller, so `--skip-crds`.
    """
    helm(
        clusters,
        "upgrade",
        "--install",
        scope.release,
        str(CHART),
        "-n",
        scope.system_ns,
        "--create-namespace",
        "--skip-crds",
        "--set",
        f"secretNamespaces={{{scope.ns},{scope.tenant_ns}}}",
        "--set",
        f"s3.prefix={scope.prefix}",
        *values,
        "--wait",
        "--timeout",
        "180s",
    )


def uninstall_chart(clusters: ClusterAccess, scope: RunScope) -> None:
    helm(clusters, "uninstall", scope.release, "-n", scope.system_ns, "--wait", check=False)
    clusters.kubectl("hub", "delete", "namespace", scope.system_ns, "--wait=false", check=False)


def apply_crds(clusters: ClusterAccess) -> None:
    for crd in sorted((ROOT / "crds").glob("*.yaml")):
        clusters.kubectl("hub", "apply", "--server-side", "--force-conflicts", "-f", str(crd))
    wait_until(lambda: crds_established(clusters), timeout=60, message="the CRDs Established")


def crds_established(clusters: ClusterAccess) -> bool:
    """Both CRDs report Established. Polled rather than `kubectl wait`, which fails at once, instead
    of waiting, on a CRD whose status the apiserver has not written yet (`.status.conditions ... nil`)."""
    out = clusters.kubectl("hub", "get", "crd", *CRD_NAMES, "-o", "json", check=False)
    if out.returncode != 0:
        return False
    items = json.loads(out.stdout).get("items", [])
    conditions = [(i.get("status") or {}).get("conditions") or [] for i in items]
    return len(items) == len(CRD_NAMES) and all(
        any(c.get("type") == "Established" and c.get("status") == "True" for c in conds)
        for conds in conditions
    )


def token_kubeconfig(clusters: ClusterAccess, scope: RunScope, duration: str = "4h") -> str:
    """A kubeconfig for the hub whose only credential is a token of the chart's ServiceAccount:
    what a pod of the chart's Deployment would present, and nothing of the lab's admin identity."""
    token = clusters.kubectl(
        "hub", "-n", scope.system_ns, "create", "token", scope.service_account, f"--duration={duration}"
    ).stdout.strip()
    admin = yaml.safe_load(clusters.hub_kubeconfig.read_text())
    cluster = dict(admin["clusters"][0]["cluster"])
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "hub", "cluster": cluster}],
            "users": [{"name": scope.service_account, "user": {"token": token}}],
            "contexts": [{"name": "operator", "context": {"cluster": "hub", "user": scope.service_account}}],
            "current-context": "operator",
        }
    )
