"""`kind`: four kind clusters with real edge-cache pods, for machines with Docker.

- clusters `<prefix>-hub`, `<prefix>-eu`, `<prefix>-us`, `<prefix>-ap` (prefix
  EDGEROLL_E2E_KIND_PREFIX, default `edgeroll-e2e`), created when missing; the
  ones this session created are deleted at the end unless EDGEROLL_E2E_KIND_KEEP=1;
- the image `edgeroll:e2e` from the repository's Dockerfile (`docker build`),
  loaded into every node (`kind load docker-image`): the operator in the hub, the
  edge caches in the edges;
- MinIO in the hub behind NodePort 30900: pods reach it at `http://<hub node IP>:30900`,
  the tests through a host port mapped at cluster creation;
- `helm install` of charts/edgeroll with the operator Deployment (watching the
  run's namespace); EdgeCluster kubeconfigs point at each edge node's IP;
- a client reaches an edge cache pod with `kubectl port-forward`.

Every step is a plain `docker`, `kind`, `kubectl` or `helm` command. When `docker
info` fails, the whole provider skips with the reason.
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
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from tests.e2e.providers.e2e_provider import ROOT, RunScope, install_chart, uninstall_chart
from tests.polling import wait_until

from edgeroll.lab import KubectlError
from edgeroll.lab.pod_runner import CacheEndpoint, pod_spec_env

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = os.environ.get("EDGEROLL_E2E_KIND_PREFIX", "edgeroll-e2e")
CLUSTERS = {"hub": "hub", "edge-eu": "eu", "edge-us": "us", "edge-ap": "ap"}  # logical -> kind suffix
EDGE_LABELS = {e: {"region": e.removeprefix("edge-"), "tier": "edge"} for e in CLUSTERS if e != "hub"}
IMAGE_REPO, IMAGE_TAG = "edgeroll", "e2e"  # not `latest`: the pull policy stays IfNotPresent
S3_IMAGE = os.environ.get("EDGEROLL_E2E_KIND_S3_IMAGE", "quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z")
S3_NS, S3_NODE_PORT, S3_BUCKET, S3_REGION = "edgeroll-e2e-s3", 30900, "edgeroll", "us-east-1"
S3_USER, S3_PASSWORD = "edgeroll-e2e", "edgeroll-e2e-secret"


def _run(
    argv: list[str], *, timeout: float = 600, check: bool = True, **kw: Any
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kw)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv[:3])} exited {result.returncode}: {result.stderr.strip()[-2000:]}"
        )
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
        lines = result.stderr.strip().splitlines() or ["(no output)"]
        return f"`docker info` failed: {lines[-1]}"
    return None


def _node(cluster: str) -> str:
    return f"{PREFIX}-{CLUSTERS[cluster]}-control-plane"


def _node_ip(cluster: str) -> str:
    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
    return _run(["docker", "inspect", "-f", fmt, _node(cluster)]).stdout.split()[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hub_kind_config(host_port: int) -> str:
    """The hub maps the S3 NodePort to a loopback port on the host; the edges need nothing special."""
    node = {
        "role": "control-plane",
        "extraPortMappings": [
            {"containerPort": S3_NODE_PORT, "hostPort": host_port, "listenAddress": "127.0.0.1"}
        ],
    }
    return yaml.safe_dump({"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "nodes": [node]})


def s3_manifests() -> str:
    labels = {"app": "minio"}
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": S3_NS}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "minio", "namespace": S3_NS},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "minio",
                                "image": S3_IMAGE,
                                "args": ["server", "/data"],
                                "env": [
                                    {"name": "MINIO_ROOT_USER", "value": S3_USER},
                                    {"name": "MINIO_ROOT_PASSWORD", "value": S3_PASSWORD},
                                ],
                                "ports": [{"containerPort": 9000}],
                                "readinessProbe": {"httpGet": {"path": "/minio/health/ready", "port": 9000}},
                                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                            }
                        ],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "minio", "namespace": S3_NS},
            "spec": {
                "type": "NodePort",
                "selector": labels,
                "ports": [{"port": 9000, "targetPort": 9000, "nodePort": S3_NODE_PORT}],
            },
        },
    ]
    return yaml.safe_dump_all(docs)


def forwarded_port(line: str) -> int | None:
    """The local port in kubectl's `Forwarding from 127.0.0.1:41234 -> 8080`."""
    if not line.startswith("Forwarding from 127.0.0.1:"):
        return None
    return int(line.split("127.0.0.1:", 1)[1].split()[0])


class KindClusters:
    """The kind clusters, shaped like `edgeroll.lab.Lab` for the scenarios."""

    def __init__(
        self, bin_dir: Path, kubeconfigs: dict[str, Path], s3_endpoint: str, kube_cache: Path
    ) -> None:
        self.bin_dir = bin_dir
        self._kubeconfigs = kubeconfigs
        self.s3_endpoint = s3_endpoint
        self.s3_bucket = S3_BUCKET
        self.edge_labels = dict(EDGE_LABELS)
        self._kube_cache = kube_cache

    @property
    def hub_kubeconfig(self) -> Path:
        return self._kubeconfigs["hub"]

    @property
    def edge_kubeconfigs(self) -> dict[str, Path]:
        return {k: v for k, v in self._kubeconfigs.items() if k != "hub"}

    def kubeconfig(self, cluster: str) -> Path:
        return self._kubeconfigs[cluster]

    def kubectl(
        self, cluster: str, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "KUBECACHEDIR": str(self._kube_cache)}
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig(cluster)), *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
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
            aws_access_key_id=S3_USER,
            aws_secret_access_key=S3_PASSWORD,
            region_name=S3_REGION,
            config=Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"},
            ),
        )


@dataclass
class InClusterOperator:
    """The chart's operator Deployment. Its log streams into `log_path`: `tail()` works as for a process."""

    clusters: KindClusters
    scope: RunScope
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        deploy = f"deployment/{self.scope.service_account}"
        self.clusters.kubectl(
            "hub", "-n", self.scope.system_ns, "rollout", "status", deploy, "--timeout=180s"
        )
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(self.clusters.bin_dir / "kubectl"),
                    "--kubeconfig",
                    str(self.clusters.hub_kubeconfig),
                    "-n",
                    self.scope.system_ns,
                    "logs",
                    "--follow",
                    deploy,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self) -> None:
        self.clusters.kubectl(
            "hub",
            "-n",
            self.scope.system_ns,
            "scale",
            f"deployment/{self.scope.service_account}",
            "--replicas=0",
            check=False,
        )
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
        self.created = created  # deleted by close() unless EDGEROLL_E2E_KIND_KEEP=1
        self.node_ips = node_ips

    @classmethod
    def create(cls, work_dir: Path) -> KindProvider:
        problem = docker_problem()
        if problem:
            pytest.skip(f"EDGEROLL_E2E_PROVIDER=kind needs Docker: {problem}")
        kind = os.environ.get("EDGEROLL_KIND") or shutil.which("kind")
        if not kind:
            pytest.skip(
                "EDGEROLL_E2E_PROVIDER=kind needs `kind` on PATH (go install sigs.k8s.io/kind@v0.29.0)"
            )
        bin_dir = Path(
            os.environ.get("EDGEROLL_BIN_DIR")
            or _run([str(ROOT / "hack/build-binaries.sh"), "--print-bin"]).stdout.strip()
        )
        if not (bin_dir / "kubectl").exists() or not (bin_dir / "helm").exists():
            pytest.skip(f"kubectl and helm are not in {bin_dir}: run `make setup`")

        existing = set(_run([kind, "get", "clusters"]).stdout.split())
        created: list[str] = []
        kubeconfigs: dict[str, Path] = {}
        host_port: int | None = None
        for logical, suffix in CLUSTERS.items():
            name = f"{PREFIX}-{suffix}"
            if name not in existing:
                config = work_dir / f"{name}.yaml"
                if logical == "hub":
                    host_port = _free_port()
                    config.write_text(hub_kind_config(host_port))
                else:
                    config.write_text(
                        yaml.safe_dump({"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4"})
                    )
                _run([kind, "create", "cluster", "--name", name, "--config", str(config), "--wait", "180s"])
                created.append(name)
            path = work_dir / f"{name}.kubeconfig"
            path.touch(mode=0o600)
            path.write_text(_run([kind, "get", "kubeconfig", "--name", name]).stdout)
            kubeconfigs[logical] = path
        if host_port is None:  # a hub from an earlier run: find the port it maps
            mapped = _run(["docker", "port", _node("hub"), f"{S3_NODE_PORT}/tcp"]).stdout.split()[0]
            host_port = int(mapped.rsplit(":", 1)[1])
        node_ips = {c: _node_ip(c) for c in CLUSTERS}

        image = f"{IMAGE_REPO}:{IMAGE_TAG}"
        _run(["docker", "build", "-t", image, str(ROOT)], timeout=1800)
        for suffix in CLUSTERS.values():
            _run([kind, "load", "docker-image", image, "--name", f"{PREFIX}-{suffix}"])

        kube_cache = work_dir / "kube-cache"
        clusters = KindClusters(bin_dir, kubeconfigs, f"http://127.0.0.1:{host_port}", kube_cache)
        clusters.kubectl("hub", "apply", "-f", "-", input=s3_manifests())
        clusters.kubectl(
            "hub", "-n", S3_NS, "rollout", "status", "deployment/minio", "--timeout=300s", timeout=330
        )
        s3 = clusters.s3_client()

        def bucket() -> bool:
            with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                s3.create_bucket(Bucket=S3_BUCKET)
            return True

        wait_until(bucket, timeout=60, message="the MinIO bucket")
        return cls(kind, clusters, created, node_ips)

    @property
    def s3_endpoint_for_pods(self) -> str:
        return f"http://{self.node_ips['hub']}:{S3_NODE_PORT}"

    def edge_kubeconfig(self, edge: str) -> str:
        """The edge's kubeconfig with the node's IP on the kind network: what a hub pod can reach."""
        config = yaml.safe_load(self.clusters.kubeconfig(edge).read_text())
        config["clusters"][0]["cluster"]["server"] = f"https://{self.node_ips[edge]}:6443"
        return str(yaml.safe_dump(config))

    def install_operator(self, scope: RunScope, log_path: Path) -> InClusterOperator:
        install_chart(
            self.clusters,
            scope,
            "--set",
            "deployOperator=true",
            "--set",
            f"image.repository={IMAGE_REPO}",
            "--set",
            f"image.tag={IMAGE_TAG}",
            "--set",
            "image.pullPolicy=Never",
            "--set",
            f"watchNamespace={scope.ns}",
            "--set",
            f"s3.bucket={S3_BUCKET}",
            "--set",
            f"s3.endpoint={self.s3_endpoint_for_pods}",
            "--set",
            f"s3.region={S3_REGION}",
            "--set",
            f"s3.accessKeyId={S3_USER}",
            "--set",
            f"s3.secretAccessKey={S3_PASSWORD}",
        )
        operator = InClusterOperator(self.clusters, scope, log_path)
        operator.start()
        return operator

    def operator_identity(self, scope: RunScope) -> str:
        """The ServiceAccount the chart's operator pod runs as."""
        out = self.clusters.kubectl(
            "hub", "-n", scope.system_ns, "get", "deployment", scope.service_account, "-o", "json"
        ).stdout
        sa = json.loads(out)["spec"]["template"]["spec"]["serviceAccountName"]
        return f"system:serviceaccount:{scope.system_ns}:{sa}"

    def uninstall_operator(self, scope: RunScope) -> None:
        uninstall_chart(self.clusters, scope)

    def _current_pod(self, edge: str, namespace: str, deployment: str) -> str | None:
        """A Ready pod of the Deployment's current template (never an old one still terminating)."""
        dep = json.loads(
            self.clusters.kubectl(edge, "-n", namespace, "get", "deployment", deployment, "-o", "json").stdout
        )
        digest = dep["spec"]["template"]["metadata"]["annotations"]["edgeroll.io/digest"]
        selector = ",".join(f"{k}={v}" for k, v in dep["spec"]["selector"]["matchLabels"].items())
        pods = json.loads(
            self.clusters.kubectl(edge, "-n", namespace, "get", "pods", "-l", selector, "-o", "json").stdout
        )
        for pod in pods["items"]:
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
        port = int(env.get("EDGEROLL_CACHE_PORT", container["ports"][0]["containerPort"]))
        pod = wait_until(
            lambda: self._current_pod(edge, namespace, deployment),
            timeout=120,
            message=f"a current pod of {deployment} in {edge}",
        )
        proc = subprocess.Popen(
            [
                str(self.clusters.bin_dir / "kubectl"),
                "--kubeconfig",
                str(self.clusters.kubeconfig(edge)),
                "-n",
                namespace,
                "port-forward",
                f"pod/{pod}",
                f":{port}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            local = None
            deadline = time.monotonic() + 30
            assert proc.stdout is not None
            while local is None and time.monotonic() < deadline:
                ready, _, _ = select.select([proc.stdout], [], [], 1.0)
                if ready:
                    line = proc.stdout.readline()
                    if not line and proc.poll() is not None:
                        raise AssertionError(f"kubectl port-forward to {edge}/{pod} exited")
                    local = forwarded_port(line)
            if local is None:
                raise AssertionError(f"kubectl port-forward to {edge}/{pod} did not start in 30 s")
            cache = ForwardedCache(edge, f"http://127.0.0.1:{local}", env)

            def ready() -> bool:
                with urllib.request.urlopen(f"{cache.url}/readyz", timeout=2) as resp:  # noqa: S310 - loopback
                    return bool(resp.status == 200)

            wait_until(ready, timeout=30, message=f"{edge}/{pod} /readyz through port-forward")
            yield cache
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)

    def close(self) -> None:
        if os.environ.get("EDGEROLL_E2E_KIND_KEEP", "") not in ("", "0"):
            return
        for name in self.created:
            _run([self.kind, "delete", "cluster", "--name", name], check=False)
