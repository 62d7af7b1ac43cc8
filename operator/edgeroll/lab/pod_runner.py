"""Run an edge cache the way a kubelet would, from the pod spec the operator wrote.

The lab's nodes are kwok fakes: pods turn Ready but no container runs. To put a
real data path behind every edge, this reads the edge-cache Deployment from an
edge cluster and starts `edgeroll cache` as a local process with that
container's exact command and environment, resolving `secretKeyRef`s from the
same cluster. Only two things differ from the pod, because a laptop is not a
pod: the listening port (many caches share 127.0.0.1) and the state directory
(the pod's emptyDir path is not writable here).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edgeroll.api.edge_objects import LABEL_CLUSTER, LABEL_RC_NAME, LABEL_RC_NAMESPACE
from edgeroll.lab.handle import Lab
from edgeroll.lab.prometheus import register_target
from edgeroll.render.canonical import content_digest
from edgeroll.render.operations import unbundle
from edgeroll.render.signing import SIGNATURE_HEADER, read_token, verify
from edgeroll.rollout.resources import CONTAINER as CACHE_CONTAINER
from edgeroll.rollout.resources import edge_name


class PodSpecError(RuntimeError):
    """The Deployment or a Secret it references is missing or not what the operator writes."""


class Kubectl(Protocol):
    """What this module needs from a cluster handle: `Lab`, or any other with the same `kubectl`."""

    def kubectl(
        self, cluster: str, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]: ...


class CacheEndpoint(Protocol):
    """An edge cache a client can reach: a local process, or a port-forward to a real pod."""

    @property
    def cluster(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def env(self) -> dict[str, str]: ...

    @property
    def signing_key(self) -> bytes: ...


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def resolve_env(container: dict[str, Any], secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The container's env as a process would see it; `secrets` maps name -> base64 data."""
    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            raise PodSpecError(f"env {var['name']}: only value and secretKeyRef are supported")
        data = secrets.get(ref["name"])
        if data is None or ref["key"] not in data:
            raise PodSpecError(f"env {var['name']}: secret {ref['name']} has no key {ref['key']!r}")
        env[var["name"]] = base64.b64decode(data[ref["key"]]).decode()
    return env


def cache_container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    for container in containers:
        if container.get("name") == CACHE_CONTAINER or container.get("command", [])[-1:] == ["cache"]:
            return dict(container)
    raise PodSpecError(f"deployment {deployment['metadata']['name']} has no edge cache container")


def local_argv(container: dict[str, Any]) -> list[str]:
    """The container's command with `edgeroll` taken from this interpreter's environment."""
    argv = [*container.get("command", []), *container.get("args", [])]
    if not argv or Path(argv[0]).name != "edgeroll":
        raise PodSpecError(f"unexpected edge cache command {argv!r}")
    exe = shutil.which("edgeroll", path=str(Path(sys.executable).parent)) or "edgeroll"
    return [exe, *argv[1:]]


@dataclass(frozen=True)
class ScrapeTarget:
    """Where a started cache registers itself for the lab's Prometheus (file_sd), and its labels."""

    targets_dir: Path
    labels: dict[str, str]


def scrape_labels(deployment: dict[str, Any], cluster: str) -> dict[str, str]:
    """The target labels of a cache run from `deployment` in lab cluster `cluster`: the EdgeCluster it
    serves (what a query's `${cluster.name}` names), where it runs, and whose config it serves."""
    meta = deployment.get("metadata", {})
    labels = meta.get("labels") or {}
    return {
        "cluster": labels.get(LABEL_CLUSTER, cluster),
        "edge_cluster": cluster,
        "edge_namespace": meta.get("namespace", ""),
        "deployment": meta.get("name", ""),
        "routerconfig_namespace": labels.get(LABEL_RC_NAMESPACE, ""),
        "routerconfig": labels.get(LABEL_RC_NAME, ""),
    }


@dataclass
class LocalEdgeCache:
    """One `edgeroll cache` process started from an edge cluster's pod spec. With `scrape`, it is a
    target of the lab's Prometheus from `start` to `stop`."""

    cluster: str
    deployment: str
    port: int
    state_dir: Path
    env: dict[str, str] = field(repr=False)
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    scrape: ScrapeTarget | None = None
    _registered: Path | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def digest(self) -> str:
        return self.env["EDGEROLL_CONFIG_DIGEST"]

    @property
    def signing_key(self) -> bytes:
        return self.env["EDGEROLL_SIGNING_KEY"].encode()

    def start(self) -> LocalEdgeCache:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if self.scrape is not None:
            name = f"{self.cluster}-{self.deployment}-{self.port}"
            self._registered = register_target(
                self.scrape.targets_dir, name, f"127.0.0.1:{self.port}", self.scrape.labels
            )
        return self

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise PodSpecError(f"edge cache for {self.cluster} exited; see {self.log_path}")
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as resp:  # noqa: S310 - loopback
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = 30.0) -> LocalEdgeCache:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise PodSpecError(
                    f"edge cache for {self.cluster} not ready in {timeout}s; see {self.log_path}"
                )
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self._registered is not None:  # no longer a target: Prometheus stops scraping it
            self._registered.unlink(missing_ok=True)
            self._registered = None
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def __enter__(self) -> LocalEdgeCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pod_spec_env(
    lab: Kubectl, cluster: str, namespace: str, deployment: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The edge cache container of the Deployment in `cluster`/`namespace`, and its env resolved
    as the kubelet would (`secretKeyRef`s read from the same cluster)."""
    _, container, env = _pod_spec(lab, cluster, namespace, deployment)
    return container, env


def _pod_spec(
    lab: Kubectl, cluster: str, namespace: str, deployment: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    raw = lab.kubectl(cluster, "-n", namespace, "get", "deployment", deployment, "-o", "json").stdout
    manifest = json.loads(raw)
    container = cache_container(manifest)
    secrets: dict[str, dict[str, str]] = {}
    for var in container.get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref and ref["name"] not in secrets:
            got = lab.kubectl(cluster, "-n", namespace, "get", "secret", ref["name"], "-o", "json").stdout
            secrets[ref["name"]] = json.loads(got).get("data", {})
    return manifest, container, resolve_env(container, secrets)


def edge_cache_from_cluster(
    lab: Kubectl,
    cluster: str,
    namespace: str,
    deployment: str,
    work_dir: Path,
    port: int | None = None,
) -> LocalEdgeCache:
    """Build (not start) a local edge cache from the Deployment in `cluster`/`namespace`. From the lab,
    it registers with the lab's Prometheus while it runs, as a ServiceMonitor would select a pod."""
    manifest, container, pod_env = _pod_spec(lab, cluster, namespace, deployment)
    scrape = (
        ScrapeTarget(lab.prometheus_targets, scrape_labels(manifest, cluster))
        if isinstance(lab, Lab)
        else None
    )
    port = port or free_port()
    state_dir = work_dir / f"{cluster}-{deployment}-state"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **pod_env,
        "EDGEROLL_CACHE_PORT": str(port),
        "EDGEROLL_CACHE_HOST": "127.0.0.1",  # loopback only, unlike the pod's 0.0.0.0
        "EDGEROLL_STATE_DIR": str(state_dir),
    }
    work_dir.mkdir(parents=True, exist_ok=True)
    return LocalEdgeCache(
        cluster=cluster,
        deployment=deployment,
        port=port,
        state_dir=state_dir,
        env=env,
        argv=local_argv(container),
        log_path=work_dir / f"{cluster}-{deployment}.log",
        scrape=scrape,
    )


def graph_token(organization_id: str, federated_graph_id: str) -> str:
    """A graph-token-shaped JWT: the Cosmo router reads these claims without verifying them."""

    def b64(obj: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {"organization_id": organization_id, "federated_graph_id": federated_graph_id}
    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}.c2lnbmF0dXJl"


@dataclass(frozen=True)
class FetchResult:
    """What a client got from one edge cache, and whether it checks out."""

    cluster: str
    status: int
    digest: str
    body_digest: str
    signature_ok: bool
    version: str | None
    cosmo_status: int | None
    # The Cosmo route asked again with the version just served: 304 when the cache revalidates.
    cosmo_revalidate_status: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.digest == self.body_digest and self.signature_ok


def _cosmo_post(
    cache: CacheEndpoint, org: str, graph: str, version: str, timeout: float
) -> tuple[int, bytes]:
    """POST the Cosmo CDN route as a router does; (status, body). A 304 is an answer, not an error."""
    request = urllib.request.Request(  # noqa: S310 - http on loopback
        f"{cache.url}/{org}/{graph}/routerconfigs/latest.json",
        data=json.dumps({"version": version}).encode(),
        headers={
            "Authorization": f"Bearer {graph_token(org, graph)}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:  # urllib raises on 304 too
        return int(exc.code), b""


def fetch_and_verify(cache: CacheEndpoint, timeout: float = 5.0) -> FetchResult:
    """GET /configs/<ns>/<name>, check digest and HMAC; then ask as a Cosmo router would: first with
    no version (200 and the same bytes), then with the version just served (304)."""
    ns, name = cache.env["EDGEROLL_CONFIG_NAMESPACE"], cache.env["EDGEROLL_CONFIG_NAME"]
    request = urllib.request.Request(  # noqa: S310 - the lab's cache
        f"{cache.url}/configs/{ns}/{name}",
        headers={"Authorization": f"Bearer {read_token(cache.signing_key, ns, name)}"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
        body = resp.read()
        status, digest, signature = (
            resp.status,
            resp.headers.get("X-Config-Digest", ""),
            resp.headers.get(SIGNATURE_HEADER),
        )
    version = None
    try:
        # With persisted operations the revision is a bundle; the Cosmo route serves its config part.
        config, _ = unbundle(body)
        parsed = json.loads(config)
        version = parsed.get("version") if isinstance(parsed, dict) else None
    except ValueError:
        config = body
    cosmo_status = revalidate_status = None
    org = cache.env.get("EDGEROLL_COSMO_ORGANIZATION_ID")
    graph = cache.env.get("EDGEROLL_COSMO_FEDERATED_GRAPH_ID")
    if org and graph:
        cosmo_status, cosmo_body = _cosmo_post(cache, org, graph, "", timeout)
        if cosmo_body != config:
            cosmo_status = -cosmo_status  # served different bytes on the Cosmo route: flag it
        if isinstance(version, str):
            revalidate_status, _ = _cosmo_post(cache, org, graph, version, timeout)
    return FetchResult(
        cluster=cache.cluster,
        status=status,
        digest=digest,
        body_digest=content_digest(body),
        signature_ok=verify(cache.signing_key, body, signature),
        version=version,
        cosmo_status=cosmo_status,
        cosmo_revalidate_status=revalidate_status,
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m edgeroll.lab.pod_runner NAMESPACE NAME`: fetch a RouterConfig from every lab edge."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("namespace")
    parser.add_argument("name")
    parser.add_argument("--edge-namespace", default="edgeroll-system", help="EdgeCluster spec.namespace")
    args = parser.parse_args(argv)
    lab = Lab.load()
    deployment = edge_name(args.namespace, args.name)
    print(f"{'EDGE':<10} {'HTTP':<5} {'COSMO':<6} {'SIGNATURE':<10} DIGEST")
    failures = 0
    with tempfile.TemporaryDirectory(prefix="edgeroll-fetch-") as tmp:
        for cluster in sorted(lab.edge_kubeconfigs):
            cache = edge_cache_from_cluster(lab, cluster, args.edge_namespace, deployment, Path(tmp))
            with cache.start():
                cache.wait_ready()
                got = fetch_and_verify(cache)
            failures += not got.ok
            sig = "valid" if got.signature_ok else "INVALID"
            digest = got.digest if got.digest == got.body_digest else f"MISMATCH {got.body_digest}"
            print(f"{cluster:<10} {got.status:<5} {got.cosmo_status or '-'!s:<6} {sig:<10} {digest}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
