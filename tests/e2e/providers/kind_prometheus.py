"""A real Prometheus for the kind clusters: Debian's `prometheus` in a container on the `kind` network,
scraping the real edge cache pods of the edge clusters.

The edge clusters all use the same pod network (10.244.0.0/24 with the local path's bridge CNI, and
kind's default 10.244.0.0/16 with kindnetd), so a pod IP means nothing outside its cluster: Prometheus
scrapes each cache pod through its edge's API server, at the pod proxy
`/api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/metrics`, with the credentials of
`kind get kubeconfig --internal` (one job per edge, for its TLS settings). Debian builds Prometheus
without Kubernetes service discovery, so the targets are files (`file_sd_configs`, as on the lab) that
the tests write for the pods they find (`register`): every pod is its own target, so a counter's rate
follows one pod, and each target carries the labels the lab's file-based targets carry: `cluster` (the
EdgeCluster, from the pod's `edgeroll.io/edgecluster` label), `edge_cluster`, `edge_namespace`, `pod`.

The operator pods reach it by name (`http://<prefix>-prometheus:9090`, through the cluster DNS and
Docker's resolver, as they reach S3); the tests at a loopback port of the host.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tests.e2e.providers.kind_docker import binary_image
from tests.e2e.providers.kind_docker import run as _run
from tests.polling import wait_until

from edgeroll.api.edge_objects import LABEL_CLUSTER

PORT = 9090
SCRAPE_INTERVAL = "1s"  # as the lab's: tests wait for samples
IN_CONTAINER = Path("/etc/prometheus")


def scrape_job(edge: str, credentials: Path, targets: Path) -> dict[str, Any]:
    """One edge cluster's job: HTTPS to its API server with the client certificate and CA in the
    directory `credentials`, the targets from the files in `targets` (paths inside the container)."""
    tls = {
        "ca_file": str(credentials / "ca.crt"),
        "cert_file": str(credentials / "client.crt"),
        "key_file": str(credentials / "client.key"),
    }
    return {
        "job_name": f"edge-caches-{edge}",
        "scheme": "https",
        "tls_config": tls,
        "file_sd_configs": [{"files": [str(targets / "*.json")], "refresh_interval": "1s"}],
    }


def pod_target(server: str, pod: dict[str, Any], edge: str) -> dict[str, Any]:
    """The file_sd target group of one cache pod, scraped through the API server at `server`."""
    meta = pod["metadata"]
    port = pod["spec"]["containers"][0]["ports"][0]["containerPort"]
    proxy = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}:{port}/proxy"
    return {
        "targets": [urllib.parse.urlsplit(server).netloc],
        "labels": {
            "__metrics_path__": f"{proxy}/metrics",
            "cluster": meta["labels"][LABEL_CLUSTER],
            "edge_cluster": edge,
            "edge_namespace": meta["namespace"],
            "pod": meta["name"],
        },
    }


def prometheus_config(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
        "scrape_configs": jobs,
    }


def write_credentials(kubeconfig_text: str, directory: Path) -> str:
    """The CA, client certificate and key of a `kind get kubeconfig --internal` into `directory`
    (readable by the container's user only); returns the API server's URL."""
    config = yaml.safe_load(kubeconfig_text)
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in (
        ("ca.crt", cluster["certificate-authority-data"]),
        ("client.crt", user["client-certificate-data"]),
        ("client.key", user["client-key-data"]),
    ):
        path = directory / name
        path.touch(mode=0o600)
        path.write_bytes(base64.b64decode(data))
    return str(cluster["server"])


def find_binary() -> Path:
    """Debian's prometheus, which `make setup` installs for the lab (EDGEROLL_PROMETHEUS overrides)."""
    configured = os.environ.get("EDGEROLL_PROMETHEUS", "").strip()
    for candidate in (configured, shutil.which("prometheus") or "", "/usr/bin/prometheus"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise AssertionError("no prometheus binary: run `make setup` (it installs Debian's `prometheus`)")


def build_image(base_image: str) -> str:
    """The host's prometheus on the edgeroll image's base (Debian bookworm; the binary needs only libc)."""
    binary = find_binary()
    version = _run([str(binary), "--version"]).stdout.split()[2].replace("+", "-")
    return binary_image(binary, f"localhost:5000/prometheus:{version}", base_image)


@dataclass
class PrometheusContainer:
    """Prometheus in a container `name` on `network`, its configuration and credentials in `work`."""

    name: str
    image: str
    network: str
    host_port: int
    work: Path
    container_id: str = ""
    servers: dict[str, str] = field(default_factory=dict)  # edge -> its API server's URL

    def register(self, edge: str, pod: dict[str, Any]) -> Path:
        """Scrape `pod`, a cache pod of `edge` (its object as the API server returns it), until
        `unregister`. Written atomically: Prometheus may read the directory at any moment."""
        path = self.work / "targets" / edge / f"{pod['metadata']['namespace']}.{pod['metadata']['name']}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([pod_target(self.servers[edge], pod, edge)]))
        tmp.replace(path)
        return path

    @staticmethod
    def unregister(path: Path) -> None:
        path.unlink(missing_ok=True)

    @property
    def url(self) -> str:
        """How the tests reach it."""
        return f"http://127.0.0.1:{self.host_port}"

    @property
    def internal_url(self) -> str:
        """How the operator pods reach it: by name on the kind network."""
        return f"http://{self.name}:{PORT}"

    def run(self, edges: dict[str, str]) -> None:
        """Start it, scraping the cache pods of every edge in `edges` (name -> internal kubeconfig)."""
        _run(["docker", "rm", "-f", self.name], check=False)  # a leftover of a killed session
        jobs = []
        for edge, text in sorted(edges.items()):
            self.servers[edge] = write_credentials(text, self.work / "edges" / edge)
            (self.work / "targets" / edge).mkdir(parents=True, exist_ok=True)
            jobs.append(scrape_job(edge, IN_CONTAINER / "edges" / edge, IN_CONTAINER / "targets" / edge))
        (self.work / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config(jobs)))
        argv = ["docker", "run", "-d", "--name", self.name, "--network", self.network]
        argv += ["-p", f"127.0.0.1:{self.host_port}:{PORT}", "-v", f"{self.work}:{IN_CONTAINER}:ro"]
        argv += [self.image, f"--config.file={IN_CONTAINER}/prometheus.yml", f"--web.listen-address=:{PORT}"]
        argv += ["--storage.tsdb.path=/prometheus", "--storage.tsdb.retention.time=2h", "--log.level=warn"]
        self.container_id = _run(argv).stdout.strip()
        self.wait_ready()

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:  # noqa: S310 - loopback
                return bool(resp.status == 200)
        except OSError:
            return False

    def wait_ready(self) -> None:
        def why() -> str:
            logs = _run(["docker", "logs", "--tail", "20", self.name], check=False)
            return f"Prometheus in container {self.name} at {self.url}; its log:\n{logs.stdout}{logs.stderr}"

        wait_until(self.ready, timeout=60, message=why)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query: the `result` list of a vector answer."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            answer = json.loads(response.read())
        if answer.get("status") != "success":
            raise AssertionError(f"Prometheus refused {promql!r}: {answer.get('error')}")
        return list(answer["data"]["result"])

    def stop(self) -> None:
        _run(["docker", "stop", "-t", "5", self.container_id])
        wait_until(lambda: not self.ready(), timeout=30, message=f"{self.name} stopped")

    def start(self) -> None:
        _run(["docker", "start", self.container_id])
        self.wait_ready()

    def remove(self) -> None:
        if self.container_id:
            _run(["docker", "rm", "-f", self.container_id], check=False)
