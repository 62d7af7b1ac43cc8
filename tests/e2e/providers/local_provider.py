"""`local`: the kwokctl lab (hub, edge-eu, edge-us, edge-ap, SeaweedFS S3), the default provider.

The lab's nodes are kwok fakes, so no container runs. Two stand-ins make it
end to end anyway, both built from what the chart and the operator wrote:

- the operator is a local process whose kubeconfig carries only a token of the
  chart's ServiceAccount (installed with `deployOperator=false`): the identity,
  and so the RBAC, of the chart's Deployment;
- an edge cache is an `edgeroll cache` process started from the exact pod spec
  the operator wrote into that edge cluster (`edgeroll.lab.pod_runner`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.e2e.operator.operator_e2e_kit import OperatorProcess, _free_port
from tests.e2e.providers.e2e_provider import RunScope, install_chart, token_kubeconfig, uninstall_chart

from edgeroll.lab import Lab
from edgeroll.lab.pod_runner import CacheEndpoint, edge_cache_from_cluster

# Faster loops than the defaults (60/2/15/10 s), as the operator e2e suite uses: scenarios wait less.
OPERATOR_TIMINGS = [
    "--resync-seconds",
    "5",
    "--progress-seconds",
    "1",
    "--probe-seconds",
    "2",
    "--edge-timeout-seconds",
    "3",
]


class LocalProvider:
    name = "local"

    def __init__(self, lab: Lab, work_dir: Path) -> None:
        self.lab = lab
        self.clusters = lab
        self.work_dir = work_dir
        self._kubeconfigs: dict[str, Path] = {}

    def edge_kubeconfig(self, edge: str) -> str:
        """Self-contained (certificates inlined, not file paths), as a Secret for a real operator must be."""
        return self.lab.kubectl(edge, "config", "view", "--raw", "--flatten", "--minify").stdout

    def install_operator(self, scope: RunScope, log_path: Path) -> OperatorProcess:
        install_chart(
            self.lab,
            scope,
            "--set",
            "deployOperator=false",
            "--set",
            f"s3.bucket={self.lab.s3_bucket}",
            "--set",
            f"s3.endpoint={self.lab.s3_endpoint}",
        )
        kubeconfig = self.work_dir / f"{scope.release}.kubeconfig"
        kubeconfig.touch(mode=0o600)
        kubeconfig.write_text(token_kubeconfig(self.lab, scope))
        self._kubeconfigs[scope.release] = kubeconfig

        # The lab's env for S3 (with its read-only edge key), but never its admin kubeconfig.
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEROLL_") and k != "KUBECONFIG"}
        env.update(self.lab.env())
        env.pop("EDGEROLL_EDGE_KUBECONFIGS", None)
        env.update(
            {
                "EDGEROLL_HUB_KUBECONFIG": str(kubeconfig),
                "KUBECONFIG": str(kubeconfig),
                "EDGEROLL_S3_PREFIX": scope.prefix,
            }
        )
        port = _free_port()
        watched = ["--namespace", scope.ns, "--namespace", scope.tenant_ns]
        # Where the chart's pod keeps its Leases (POD_NAMESPACE): the chart grants them there only.
        leases = ["--lease-namespace", scope.system_ns]
        args = [*watched, *leases, "--liveness", f"http://127.0.0.1:{port}/healthz", *OPERATOR_TIMINGS]
        operator = OperatorProcess(env=env, args=args, log_path=log_path, port=port)
        operator.start()
        return operator

    def operator_identity(self, scope: RunScope) -> str:
        """Who the hub says the operator's kubeconfig is (`kubectl auth whoami`)."""
        result = subprocess.run(
            [
                str(self.lab.bin_dir / "kubectl"),
                "--kubeconfig",
                str(self._kubeconfigs[scope.release]),
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ],
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": "/usr/bin:/bin", "KUBECACHEDIR": str(self.lab.paths.kube_cache)},
        )
        return result.stdout.strip()

    def uninstall_operator(self, scope: RunScope) -> None:
        uninstall_chart(self.lab, scope)

    @contextlib.contextmanager
    def edge_cache(
        self, edge: str, namespace: str, deployment: str, work_dir: Path
    ) -> Iterator[CacheEndpoint]:
        cache = edge_cache_from_cluster(self.lab, edge, namespace, deployment, work_dir)
        with cache.start():
            cache.wait_ready()
            yield cache

    def close(self) -> None:
        pass
