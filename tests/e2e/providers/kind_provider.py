"""`kind`: four kind clusters with real edge-cache pods, for machines with Docker (docs/e2e.md).

1. `kind create cluster` for `<prefix>-hub`, `-eu`, `-us`, `-ap` (EDGEROLL_E2E_KIND_PREFIX, default
   `edgeroll-e2e`) when missing; the ones this session created are deleted at the end unless
   EDGEROLL_E2E_KIND_KEEP=1. The hub maps the S3 NodePort to the host (kind/hub-cluster.yaml).
2. `docker build -t edgeroll:e2e .` and `kind load docker-image` into every cluster: the operator runs
   in the hub, the edge caches in the edges.
3. MinIO in the hub (kind/minio.yaml): pods reach it at `http://<hub node IP>:30900`, the tests at the
   mapped host port.
4. `helm install` of charts/edgeroll with the operator Deployment watching the run's namespace.
   EdgeCluster kubeconfigs point at each edge's node IP on the kind network.
5. A client reaches an edge cache pod with `kubectl port-forward`.

When `docker info` fails the provider skips, saying why.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from tests.e2e.providers.e2e_provider import ROOT, RunScope, install_chart, uninstall_chart
from tests.polling import wait_until

from edgeroll.lab import KubectlError
from edgeroll.lab.pod_runner import CacheEndpoint, pod_spec_env

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

HERE = Path(__file__).parent / "kind"
PREFIX = os.environ.get("EDGEROLL_E2E_KIND_PREFIX", "edgeroll-e2e")
CLUSTERS = {"hub": "hub", "edge-eu": "eu", "edge-us": "us", "edge-ap": "ap"}  # logical name -> kind suffix
IMAGE_REPO, IMAGE_TAG = (
    "edgeroll",
    "e2e",
)  # not `latest`, so the edge caches' IfNotPresent uses the loaded image
S3 = {
    "S3_IMAGE": os.environ.get(
        "EDGEROLL_E2E_KIND_S3_IMAGE", "quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z"
    ),
    "S3_USER": "edgeroll-e2e",
    "S3_PASSWORD": "edgeroll-e2e-secret",
}
S3_NODE_PORT, S3_BUCKET, S3_REGION = 30900, "edgeroll", "us-east-1"


def _run(argv: list[str], timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv[:3])} exited {result.returncode}: {result.stderr[-2000:]}")
    return result


def docker_problem() -> str | None:
    """Why Docker cannot be used here, or None."""
    if shutil.which("docker") is None:
        return "the `docker` command is not installed"
    try:
        result = _run(["docker", "info"], timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer in 30 s"
    if result.returncode != 0:
        return f"`docker info` failed: {(result.stderr.strip().splitlines() or ['no output'])[-1]}"
    return None


def _node(cluster: str) -> str:
    return f"{PREFIX}-{CLUSTERS[cluster]}-control-plane"


def forwarded_port(line: str) -> int | None:
    """The local port in kubectl's `Forwarding from 127.0.0.1:41234 -> 8080`."""
    if not line.startswith("Forwarding from 127.0.0.1:"):
        return None
    return int(line.split("127.0.0.1:", 1)[1].split()[0])


class KindClusters:
    """The kind clusters, shaped like `edgeroll.lab.Lab` for the scenarios."""

    def __init__(self, bin_dir: Path, kubeconfigs: dict[str, Path], s3_port: int, kube_cache: Path) -> None:
        self.bin_dir = bin_dir
        self.kubeconfigs = kubeconfigs
        self.s3_endpoint = f"http://127.0.0.1:{s3_port}"
        self.s3_bucket = S3_BUCKET
        self.edge_labels = {e: {"region": s, "tier": "edge"} for e, s in CLUSTERS.items() if e != "hub"}
        self.kube_cache = kube_cache

    @property
    def hub_kubeconfig(self) -> Path:
        return self.kubeconfigs["hub"]

    @property
    def edge_kubeconfigs(self) -> dict[str, Path]:
        return {k: v for k, v in self.kubeconfigs.items() if k != "hub"}

    def kubectl_argv(self, cluster: str) -> list[str]:
        return [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfigs[cluster])]

    def kubectl(
        self, cluster: str, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.kubectl_argv(cluster), *args],
            input=input,
            capture_output=True,
            text=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "KUBECACHEDIR": str(self.kube_cache)},
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(result)
        return result

    def s3_client(self) -> S3Client:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=S3["S3_USER"],
            aws_secret_access_key=S3["S3_PASSWORD"],
            region_name=S3_REGION,
            config=Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"},
            ),
        )


@dataclass
class InClusterOperator:
    """The chart's operator Deployment; `kubectl logs --follow` copies its log into `log_path`."""

    clusters: KindClusters
    scope: RunScope
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        deploy = f"deployment/{self.scope.service_account}"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.clusters.kubectl_argv("hub"), "-n", self.scope.system_ns, "logs", "--follow", deploy],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self) -> None:
        deploy = f"deployment/{self.scope.service_account}"
        self.clusters.kubectl("hub", "-n", self.scope.system_ns, "scale", deploy, "--replicas=0", check=False)
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)


@dataclass(frozen=True)
class ForwardedCache:
    """An edge cache pod, reached through `kubectl port-forward`."""

    cluster: str
    url: str
    env: dict[str, str] = field(repr=False)

    @property
    def signing_key(self) -> bytes:
        return self.env["EDGEROLL_SIGNING_KEY"].encode()


class KindProvider:
    name = "kind"

    def __init__(
        self, kind: str, clusters: KindClusters, created: list[str], node_ips: dict[str, str]
    ) -> None:
        self.kind = kind
        self.clusters = clusters
        self.created = created
        self.node_ips = node_ips

    @classmethod
    def create(cls, work: Path) -> KindProvider:
        problem = docker_problem()
        if problem:
            pytest.skip(f"EDGEROLL_E2E_PROVIDER=kind needs Docker: {problem}")
        kind = os.environ.get("EDGEROLL_KIND") or shutil.which("kind")
        if not kind:
            pytest.skip("EDGEROLL_E2E_PROVIDER=kind needs `kind` (go install sigs.k8s.io/kind@v0.29.0)")
        bin_dir = Path(
            os.environ.get("EDGEROLL_BIN_DIR")
            or _run([str(ROOT / "hack/build-binaries.sh"), "--print-bin"]).stdout.strip()
        )
        if not (bin_dir / "kubectl").exists() or not (bin_dir / "helm").exists():
            pytest.skip(f"kubectl and helm are not in {bin_dir}: run `make setup`")

        existing = set(_run([kind, "get", "clusters"]).stdout.split())
        created: list[str] = []
        kubeconfigs: dict[str, Path] = {}
        for logical, suffix in CLUSTERS.items():
            name = f"{PREFIX}-{suffix}"
            if name not in existing:
                config = work / f"{name}.yaml"
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 0))
                    port = s.getsockname()[1]
                template = (
                    (HERE / "hub-cluster.yaml").read_text()
                    if logical == "hub"
                    else "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n"
                )
                config.write_text(Template(template).substitute(HOST_PORT=port))
                _run([kind, "create", "cluster", "--name", name, "--config", str(config), "--wait", "180s"])
                created.append(name)
            kubeconfigs[logical] = work / f"{name}.kubeconfig"
            kubeconfigs[logical].touch(mode=0o600)
            kubeconfigs[logical].write_text(_run([kind, "get", "kubeconfig", "--name", name]).stdout)
        mapped = _run(["docker", "port", _node("hub"), f"{S3_NODE_PORT}/tcp"]).stdout.split()[0]
        fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
        node_ips = {c: _run(["docker", "inspect", "-f", fmt, _node(c)]).stdout.split()[0] for c in CLUSTERS}

        image = f"{IMAGE_REPO}:{IMAGE_TAG}"
        _run(["docker", "build", "-t", image, str(ROOT)], timeout=1800)
        for suffix in CLUSTERS.values():
            _run([kind, "load", "docker-image", image, "--name", f"{PREFIX}-{suffix}"])

        clusters = KindClusters(bin_dir, kubeconfigs, int(mapped.rsplit(":", 1)[1]), work / "kube-cache")
        clusters.kubectl(
            "hub", "apply", "-f", "-", input=Template((HERE / "minio.yaml").read_text()).substitute(S3)
        )
        clusters.kubectl(
            "hub",
            "-n",
            "edgeroll-e2e-s3",
            "rollout",
            "status",
            "deployment/minio",
            "--timeout=300s",
            timeout=330,
        )
        s3 = clusters.s3_client()

        def bucket() -> bool:
            with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                s3.create_bucket(Bucket=S3_BUCKET)
            return True

        wait_until(bucket, timeout=60, message="the MinIO bucket")
        return cls(kind, clusters, created, node_ips)

    def edge_kubeconfig(self, edge: str) -> str:
        """The edge's kubeconfig with its node IP on the kind network: what the operator pod can reach."""
        config = yaml.safe_load(self.clusters.kubeconfigs[edge].read_text())
        config["clusters"][0]["cluster"]["server"] = f"https://{self.node_ips[edge]}:6443"
        return str(yaml.safe_dump(config))

    def install_operator(self, scope: RunScope, log_path: Path) -> InClusterOperator:
        values = {
            "deployOperator": "true",
            "image.repository": IMAGE_REPO,
            "image.tag": IMAGE_TAG,
            "image.pullPolicy": "Never",
            "watchNamespace": scope.ns,
            "s3.bucket": S3_BUCKET,
            "s3.endpoint": f"http://{self.node_ips['hub']}:{S3_NODE_PORT}",  # the operator's and the edges'
            "s3.region": S3_REGION,
            "s3.accessKeyId": S3["S3_USER"],
            "s3.secretAccessKey": S3["S3_PASSWORD"],
        }
        install_chart(self.clusters, scope, *(a for k, v in values.items() for a in ("--set", f"{k}={v}")))
        operator = InClusterOperator(self.clusters, scope, log_path)
        operator.start()
        return operator

    def operator_identity(self, scope: RunScope) -> str:
        """The ServiceAccount the chart's operator pod runs as."""
        dep = self.clusters.kubectl(
            "hub", "-n", scope.system_ns, "get", "deploy", scope.service_account, "-o", "json"
        )
        sa = json.loads(dep.stdout)["spec"]["template"]["spec"]["serviceAccountName"]
        return f"system:serviceaccount:{scope.system_ns}:{sa}"

    def uninstall_operator(self, scope: RunScope) -> None:
        uninstall_chart(self.clusters, scope)

    def _current_pod(self, edge: str, namespace: str, deployment: str) -> str | None:
        """A Ready pod of the Deployment's current template, never an old one still terminating."""

        def get(*args: str) -> Any:
            return json.loads(self.clusters.kubectl(edge, "-n", namespace, "get", *args, "-o", "json").stdout)

        dep = get("deployment", deployment)
        digest = dep["spec"]["template"]["metadata"]["annotations"]["edgeroll.io/digest"]
        selector = ",".join(f"{k}={v}" for k, v in dep["spec"]["selector"]["matchLabels"].items())
        for pod in get("pods", "-l", selector)["items"]:
            ready = any(
                c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
            )
            current = pod["metadata"].get("annotations", {}).get("edgeroll.io/digest") == digest
            if ready and current and not pod["metadata"].get("deletionTimestamp"):
                return str(pod["metadata"]["name"])
        return None

    @contextlib.contextmanager
    def edge_cache(
        self, edge: str, namespace: str, deployment: str, work_dir: Path
    ) -> Iterator[CacheEndpoint]:
        container, env = pod_spec_env(self.clusters, edge, namespace, deployment)
        port = int(env.get("EDGEROLL_CACHE_PORT") or container["ports"][0]["containerPort"])
        pod = wait_until(
            lambda: self._current_pod(edge, namespace, deployment),
            timeout=120,
            message=f"a current pod of {deployment} in {edge}",
        )
        proc = subprocess.Popen(
            [*self.clusters.kubectl_argv(edge), "-n", namespace, "port-forward", f"pod/{pod}", f":{port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            assert proc.stdout is not None
            local, deadline = None, time.monotonic() + 30
            while local is None and time.monotonic() < deadline and proc.poll() is None:
                if select.select([proc.stdout], [], [], 1.0)[0]:
                    local = forwarded_port(proc.stdout.readline())
            assert local is not None, f"kubectl port-forward to {edge}/{pod} did not start"
            cache = ForwardedCache(edge, f"http://127.0.0.1:{local}", env)

            def ready() -> bool:
                with urllib.request.urlopen(f"{cache.url}/readyz", timeout=2) as resp:  # noqa: S310 - loopback
                    return bool(resp.status == 200)

            wait_until(ready, timeout=30, message=f"{edge}/{pod} /readyz through the port-forward")
            yield cache
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)

    def close(self) -> None:
        if os.environ.get("EDGEROLL_E2E_KIND_KEEP", "") in ("", "0"):
            for name in self.created:
                _run([self.kind, "delete", "cluster", "--name", name], check=False)
