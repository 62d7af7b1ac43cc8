"""Helpers for the reliability suite (conftest.py holds the fixtures).

The suite runs the same real `edgeroll operator` process as the e2e suite (operator_e2e_kit.py,
reused, not copied) and adds what fault injection needs to *observe* the edges:

- `EdgeFleet`: for every edge cluster, a watch on the RouterConfig's edge Deployment (every
  version of the pod template is seen, not a sample), a small "kubelet" that runs `edgeroll cache`
  processes from exactly that pod template (pod_runner's helpers) with RollingUpdate
  `maxUnavailable: 0` semantics, and a router-like client polling each edge's ready cache.
- `figure()`: each test prints one `RELIABILITY <name> key=value …` line (also repeated in the
  terminal summary) and, when EDGEROLL_RELIABILITY_RESULTS names a directory, writes
  `<name>.json` there for docs/reliability.md's plots (tests/reliability/plot_reliability.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from operator_e2e_kit import OperatorE2E, cosmo_config
from tests.polling import wait_until

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.lab.pod_runner import LocalEdgeCache, cache_container, free_port, local_argv, resolve_env
from edgeroll.render.revision import make_revision
from edgeroll.render.signing import SIGNATURE_HEADER, read_token, verify
from edgeroll.rollout.resources import ANNOTATION_DIGEST, edge_name

FIGURES: list[str] = []  # RELIABILITY lines of this session, for the terminal summary


def figure(name: str, data: dict[str, Any] | None = None, **values: Any) -> str:
    """Print `RELIABILITY <name> k=v …`; with EDGEROLL_RELIABILITY_RESULTS, also write <name>.json."""

    def show(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    line = f"RELIABILITY {name} " + " ".join(f"{k}={show(v)}" for k, v in values.items())
    print(line, flush=True)
    FIGURES.append(line)
    out = os.environ.get("EDGEROLL_RELIABILITY_RESULTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        doc = {"name": name, "figures": values, "data": data or {}, "machine": machine()}
        (Path(out) / f"{name}.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return line


def machine() -> dict[str, Any]:
    """Cores, memory and load: these figures move with the machine, so every result carries them."""
    mem_kib = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cores": os.cpu_count(),
        "mem_gib": round(mem_kib / 2**20, 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def digest_of(config: dict[str, Any]) -> str:
    return make_revision(ConfigFormat.COSMO, config).digest


def variant(tag: str) -> dict[str, Any]:
    """The e2e suite's wgc-composed Cosmo config, made distinct by a schema comment."""
    config = cosmo_config()
    config["engineConfig"]["graphqlSchema"] += f"\n# {tag}"
    return config


def condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), None)


def cluster_rows(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in status.get("clusters", [])}


@dataclass
class Reliability(OperatorE2E):
    """The e2e kit's handle on the operator and lab, plus a scratch directory for edge caches."""

    work: Path = Path()

    def events(self, name: str) -> list[dict[str, Any]]:
        out = self.hub(
            "-n", self.ns, "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json"
        )
        return list(json.loads(out.stdout)["items"])

    def delete_routerconfig(self, name: str, timeout: float = 90) -> None:
        """Delete and wait for the finalizer (edge caches removed), so later tests start clean."""
        self.hub("-n", self.ns, "delete", "rtc", name, f"--timeout={int(timeout)}s", "--ignore-not-found")


# ---- the edges, observed -------------------------------------------------------------------------


def _metric_samples(text: str) -> dict[str, float]:
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def http_get(
    port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 2.0
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def read_headers(cache: LocalEdgeCache) -> dict[str, str]:
    """The credential GET /configs needs: the read token of the cache's RouterConfig (docs/edge-cache.md)."""
    env = cache.env
    token = read_token(cache.signing_key, env["EDGEROLL_CONFIG_NAMESPACE"], env["EDGEROLL_CONFIG_NAME"])
    return {"Authorization": f"Bearer {token}"}


def cache_metric(cache: LocalEdgeCache, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`, from the cache's /metrics."""
    _, _, body = http_get(cache.port, "/metrics")
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    total = 0.0
    for sample, value in _metric_samples(body.decode()).items():
        base, _, rest = sample.partition("{")
        if base == name and wanted <= set(re.findall(r'\w+="[^"]*"', rest)):
            total += value
    return total


@dataclass
class Pod:
    """One `edgeroll cache` process started from one version of an edge Deployment's pod template."""

    edge: str
    digest: str
    cache: LocalEdgeCache
    started: float
    ready_at: float | None = None
    retire_at: float | None = None


@dataclass(frozen=True)
class Version:
    """One version of an edge Deployment, as a watch delivered it."""

    t: float
    edge: str
    digest: str
    generation: int
    observed_generation: int
    healthy: bool  # rolled out: every replica updated and available

    @classmethod
    def of(cls, t: float, edge: str, dep: dict[str, Any]) -> Version:
        st = dep.get("status", {})
        conds = {c["type"]: c["status"] for c in st.get("conditions", [])}
        generation, observed = int(dep["metadata"]["generation"]), int(st.get("observedGeneration", 0))
        replicas = dep["spec"].get("replicas", 1)
        healthy = (
            observed >= generation
            and conds.get("Available") == "True"
            and st.get("updatedReplicas") == replicas == st.get("availableReplicas") == st.get("replicas")
        )
        digest = dep["spec"]["template"]["metadata"]["annotations"][ANNOTATION_DIGEST]
        return cls(t, edge, digest, generation, observed, healthy)

    @property
    def observed(self) -> bool:
        """The edge's Deployment controller has seen this template."""
        return self.observed_generation >= self.generation


@dataclass(frozen=True)
class Poll:
    t: float
    edge: str
    status: int  # 0: no answer
    digest: str
    error: str = ""


@dataclass
class EdgeFleet:
    """Watch, run and poll the edge caches of one RouterConfig on every lab edge.

    Every Deployment version the watch delivers and every poll answer is checked against
    `allowed` (a set of digests, or None for "anything verified"); anything else is a
    violation. A "pod" is started for each new template digest once the edge's own Deployment
    controller has seen it (observedGeneration), as its ReplicaSet would; it becomes the edge's
    endpoint once its /readyz answers 200 (the Deployment's readinessProbe), and the endpoint it
    replaces is stopped one second later, as endpoints and the pod's preStop sleep do. Superseded
    pods that never got ready are stopped at once. `hold_pods` keeps new pods from starting, e.g.
    until a fault is in place.
    """

    rel: Reliability
    rc: str
    work: Path
    poll_interval: float = 0.1
    allowed: set[str] | None = None
    hold_pods: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)  # edge -> newest Deployment
    rolling: dict[str, dict[str, Any]] = field(default_factory=dict)  # edge -> newest one its controller saw
    history: list[Version] = field(default_factory=list)  # every Deployment version the watches saw
    pods: dict[str, list[Pod]] = field(default_factory=dict)
    endpoint: dict[str, Pod] = field(default_factory=dict)
    polls: list[Poll] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    started: list[tuple[float, str, str]] = field(default_factory=list)  # t, edge, digest of each pod
    became_ready: list[tuple[float, str, str]] = field(default_factory=list)
    watch_restarts: int = 0
    _secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _watches: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    _serial: int = 0
    _terminating: list[LocalEdgeCache] = field(default_factory=list)

    @property
    def edges(self) -> list[str]:
        return list(self.rel.edges)

    @property
    def deployment(self) -> str:
        return edge_name(self.rel.ns, self.rc)

    def __enter__(self) -> EdgeFleet:
        self.work.mkdir(parents=True, exist_ok=True)
        for edge in self.edges:
            self.pods[edge] = []
            self._spawn(self._watch, edge)
        self._spawn(self._kubelet)
        self._spawn(self._poller)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for proc in list(self._watches.values()):
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for thread in self._threads:
            thread.join(timeout=15)
        for pods in self.pods.values():
            for pod in pods:
                pod.cache.stop()
        for cache in self._terminating:
            cache.stop()

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=f"fleet-{target.__name__}")
        thread.start()
        self._threads.append(thread)

    def _violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(f"{time.monotonic():.2f} {text}")

    # -- the watch: every version of the Deployment ------------------------------------------------

    def _watch(self, edge: str) -> None:
        lab = self.rel.lab
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["KUBECACHEDIR"] = str(lab.paths.kube_cache)
        argv = [
            str(lab.bin_dir / "kubectl"),
            "--kubeconfig",
            str(lab.kubeconfig(edge)),
            "-n",
            self.rel.ns,
            "get",
            "deployments",
            "--field-selector",
            f"metadata.name={self.deployment}",
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
            "--request-timeout=0",
        ]
        first = True
        while not self._stop.is_set():
            if not first:
                self.watch_restarts += 1
                self._stop.wait(0.5)  # the edge apiserver may be down: retry, as an informer would
            first = False
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
            )
            self._watches[edge] = proc
            assert proc.stdout is not None
            for line in proc.stdout:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") in ("ADDED", "MODIFIED"):
                    self._observe(edge, event["object"])
            proc.wait()

    def _observe(self, edge: str, dep: dict[str, Any]) -> None:
        digest = dep["spec"]["template"]["metadata"]["annotations"][ANNOTATION_DIGEST]
        version = Version.of(time.monotonic(), edge, dep)
        with self.lock:
            self.templates[edge] = dep
            if version.observed:
                self.rolling[edge] = dep
            self.history.append(version)
            allowed = self.allowed
        if allowed is not None and digest not in allowed:
            self._violation(f"{edge}: Deployment template carries {digest}, not one of {sorted(allowed)}")

    def template_digest(self, edge: str) -> str | None:
        with self.lock:
            dep = self.templates.get(edge)
        return (
            None
            if dep is None
            else str(dep["spec"]["template"]["metadata"]["annotations"][ANNOTATION_DIGEST])
        )

    # -- the kubelet: pods from the template, RollingUpdate with maxUnavailable 0 --------------------

    def _secret(self, edge: str, name: str) -> dict[str, str]:
        if (edge, name) not in self._secrets:
            got = self.rel.lab.kubectl(edge, "-n", self.rel.ns, "get", "secret", name, "-o", "json").stdout
            self._secrets[edge, name] = dict(json.loads(got).get("data", {}))
        return self._secrets[edge, name]

    def start_pod(self, edge: str, dep: dict[str, Any]) -> Pod:
        """Start `edgeroll cache` as this Deployment's pod template says (port and state dir aside)."""
        container = cache_container(dep)
        secrets = {}
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                secrets[ref["name"]] = self._secret(edge, ref["name"])
        self._serial += 1
        port = free_port()
        state_dir = self.work / f"{edge}-pod{self._serial}"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **resolve_env(container, secrets),
            "EDGEROLL_CACHE_PORT": str(port),
            "EDGEROLL_STATE_DIR": str(state_dir),
            "EDGEROLL_CACHE_HOST": "127.0.0.1",
        }
        cache = LocalEdgeCache(
            cluster=edge,
            deployment=self.deployment,
            port=port,
            state_dir=state_dir,
            env=env,
            argv=local_argv(container),
            log_path=self.work / f"{edge}-pod{self._serial}.log",
        )
        digest = dep["spec"]["template"]["metadata"]["annotations"][ANNOTATION_DIGEST]
        return Pod(edge, digest, cache.start(), time.monotonic())

    def _kubelet(self) -> None:
        while not self._stop.wait(0.1):
            for edge in self.edges:
                try:
                    self._sync_edge(edge)
                except Exception as exc:  # the edge apiserver may be away (secrets); try again
                    if not self._stop.is_set():
                        self._note_kubelet_error(edge, exc)

    def _note_kubelet_error(self, edge: str, exc: Exception) -> None:
        with (self.work / "kubelet-errors.log").open("a") as log:
            log.write(f"{time.monotonic():.2f} {edge}: {exc!r}\n")

    def _sync_edge(self, edge: str) -> None:
        now = time.monotonic()
        with self.lock:
            dep = self.rolling.get(edge)  # pods follow the edge's own Deployment controller
            pods = list(self.pods[edge])
            current = self.endpoint.get(edge)
        if dep is None:
            return
        want = dep["spec"]["template"]["metadata"]["annotations"][ANNOTATION_DIGEST]
        if not self.hold_pods and not any(p.digest == want and p.retire_at is None for p in pods):
            pod = self.start_pod(edge, dep)
            with self.lock:
                self.pods[edge].append(pod)
                self.started.append((pod.started, edge, pod.digest))
            pods.append(pod)
        for pod in pods:
            if pod.cache.proc is not None and pod.cache.proc.poll() is not None and pod.retire_at is None:
                self._violation(f"{edge}: cache for {pod.digest} exited ({pod.cache.log_path})")
                pod.retire_at = now
            if pod.ready_at is None and pod.retire_at is None and pod.digest == want and _ready(pod):
                pod.ready_at = time.monotonic()
                with self.lock:
                    self.endpoint[edge] = pod
                    self.became_ready.append((pod.ready_at, edge, pod.digest))
                if current is not None and current is not pod:
                    current.retire_at = pod.ready_at + 1.0
            elif pod.ready_at is None and pod.digest != want and pod.retire_at is None:
                pod.retire_at = now  # superseded before it got ready
        for pod in pods:
            if pod.retire_at is not None and pod.retire_at <= now and self.endpoint.get(edge) is not pod:
                _terminate(pod.cache)
                self._terminating.append(pod.cache)
                with self.lock:
                    self.pods[edge].remove(pod)
        # Reap what has exited, so stopped caches do not linger as zombies.
        self._terminating = [c for c in self._terminating if c.proc is not None and c.proc.poll() is None]

    def serving(self) -> dict[str, str | None]:
        with self.lock:
            return {e: (self.endpoint[e].digest if e in self.endpoint else None) for e in self.edges}

    def answered(self) -> dict[str, str | None]:
        """Per edge, the digest of the client's last good answer."""
        last: dict[str, str | None] = dict.fromkeys(self.edges)
        with self.lock:
            for p in reversed(self.polls):
                if last[p.edge] is None and not p.error:
                    last[p.edge] = p.digest
                if all(last.values()):
                    break
        return last

    def wait_serving(self, digest: str, timeout: float = 60, edges: list[str] | None = None) -> float:
        """Until each edge (default: every edge) has a ready cache of `digest` as its endpoint and
        the client got `digest` from it; returns when (monotonic)."""
        edges = edges or self.edges

        def serving() -> bool:
            endpoints, answers = self.serving(), self.answered()
            return all(endpoints[e] == digest and answers[e] == digest for e in edges)

        wait_until(
            serving,
            timeout=timeout,
            interval=0.05,
            message=lambda: (
                f"{edges} serving {digest}: {self.serving()} {self.answered()}; logs in {self.work}"
            ),
        )
        return time.monotonic()

    # -- the router-like client ------------------------------------------------------------------

    def _poller(self) -> None:
        etags: dict[str, str] = {}
        while not self._stop.wait(self.poll_interval):
            for edge in self.edges:
                with self.lock:
                    pod = self.endpoint.get(edge)
                    allowed = self.allowed
                if pod is None:
                    continue
                poll = _poll(pod, etags.get(edge))
                if poll.status == 200:
                    etags[edge] = poll.digest
                with self.lock:
                    self.polls.append(poll)
                if poll.error:
                    self._violation(f"{edge}: poll failed: {poll.error}")
                elif allowed is not None and poll.digest not in allowed:
                    self._violation(f"{edge}: served {poll.digest}, not one of {sorted(allowed)}")

    def timeline(self, t0: float, labels: dict[str, str]) -> dict[str, Any]:
        """What happened, relative to `t0`, with digests shown as `labels` (for the plots).

        `versions`: every Deployment version [t, edge, label, healthy]; `served`: each edge's
        answers, one row per change of digest [t, edge, label]; `pods`: [started, ready or None,
        edge, label]; `polls_per_s`: answers per second, all edges.
        """

        def rel(t: float) -> float:
            return round(t - t0, 2)

        with self.lock:
            versions = [[rel(v.t), v.edge, labels.get(v.digest, "?"), v.healthy] for v in self.history]
            polls = list(self.polls)
            started = list(self.started)
            ready = {(e, d): t for t, e, d in self.became_ready}
        served: list[list[Any]] = []
        last: dict[str, str] = {}
        for p in polls:
            label = labels.get(p.digest, "?") if not p.error else "FAILED"
            if last.get(p.edge) != label:
                served.append([rel(p.t), p.edge, label])
                last[p.edge] = label
        per_s: dict[int, int] = {}
        for p in polls:
            per_s[int(p.t - t0)] = per_s.get(int(p.t - t0), 0) + 1
        pods = [
            [rel(t), rel(ready[e, d]) if (e, d) in ready else None, e, labels.get(d, "?")]
            for t, e, d in started
        ]
        return {"versions": versions, "served": served, "pods": pods, "polls_per_s": sorted(per_s.items())}

    def failed_polls(self, since: float = 0.0) -> list[Poll]:
        with self.lock:
            return [p for p in self.polls if p.t >= since and p.error]

    def polls_between(self, start: float, end: float) -> list[Poll]:
        with self.lock:
            return [p for p in self.polls if start <= p.t <= end]


def _ready(pod: Pod) -> bool:
    try:
        status, _, _ = http_get(pod.cache.port, "/readyz", timeout=1.0)
    except (OSError, http.client.HTTPException):
        return False
    return status == 200


def _terminate(cache: LocalEdgeCache) -> None:
    """SIGTERM without waiting (the cache drains by itself); reaped when the fleet closes."""
    if cache.proc is not None and cache.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cache.proc.pid, signal.SIGTERM)


def _poll(pod: Pod, etag: str | None) -> Poll:
    """GET the config as a polling router would (If-None-Match), and check what came back."""
    env = pod.cache.env
    path = f"/configs/{env['EDGEROLL_CONFIG_NAMESPACE']}/{env['EDGEROLL_CONFIG_NAME']}"
    headers = {"If-None-Match": f'"{etag}"'} if etag else {}
    headers |= read_headers(pod.cache)
    now = time.monotonic()
    try:
        status, head, body = http_get(pod.cache.port, path, headers)
    except (OSError, http.client.HTTPException) as exc:
        return Poll(now, pod.edge, 0, "", f"{type(exc).__name__}: {exc}")
    if status == 304:
        digest = head.get("etag", "").strip('"')
        return Poll(now, pod.edge, status, digest, "" if digest == etag else f"304 with ETag {digest}")
    if status != 200:
        return Poll(now, pod.edge, status, "", f"HTTP {status}")
    digest = head.get("x-config-digest", "")
    if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
        return Poll(now, pod.edge, status, digest, "body does not hash to X-Config-Digest")
    if not verify(pod.cache.signing_key, body, head.get(SIGNATURE_HEADER.lower())):
        return Poll(now, pod.edge, status, digest, "signature does not verify")
    return Poll(now, pod.edge, status, digest)


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """`with timed() as t:` … `t[0]` is the elapsed seconds afterwards."""
    box: list[float] = []
    start = time.monotonic()
    try:
        yield box
    finally:
        box.append(time.monotonic() - start)
