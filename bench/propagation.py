"""Propagation: `kubectl apply` of a changed RouterConfig until every target edge serves the new digest.

On the lab (started or reused with `edgeroll.lab.up()`), with a real `edgeroll operator` process
(its default --progress-seconds and --resync-seconds) scoped to a hub namespace of this run:

- 3 EdgeClusters, one per lab edge apiserver, each with the edge namespace of this run;
- one Cosmo RouterConfig (`--config-bytes`, 500 KB by default, AllAtOnce, 1 replica), its config
  inline, or with `--config-source configmap` in a ConfigMap it reads (`spec.configFrom`; results in
  propagation_configmap.json);
- `--updates` (20) changes, each a `kubectl apply --server-side` of a new config (with a ConfigMap,
  of the ConfigMap and the unchanged RouterConfig).

An edge counts from the moment both hold:
- its Deployment is Available with the new digest in the pod template (rolled out: observed
  generation, updated = available = replicas), as read from the edge apiserver every 50 ms;
- an `edgeroll cache` process started from that pod spec (as a kubelet would, with
  `edgeroll.lab.pod_runner`: the container's command and env, Secrets resolved from the same
  cluster; only the port and state dir differ) answers GET /configs/<ns>/<name> with the new
  digest, and the body, its sha256 and HMAC check out (`fetch_and_verify`).
The kwok nodes run no container, so that process is what stands in for the pod.

Baseline, alternating with the edgeroll runs: the same bytes are uploaded with a bare boto3
`put_object` to one mutable key, and three routers (one per edge) poll it the way a Cosmo router
polls its CDN: a ticker every 10 s from a random phase, each tick delayed by a random jitter in
[0, 5 s), then a GET. The poll schedule is simulated (no 10 s sleeps), the upload and each
router's first GET after the upload are real and timed: latency = upload + wait for the router's
next poll + its GET, the maximum over the three routers.

With `--provider kind` (results in propagation_kind.json): the same RouterConfig and updates on a hub
and three edge kind clusters with real pods (tests/e2e/providers/kind_provider.py, clusters named
with EDGEROLL_E2E_KIND_PREFIX, default `edgeroll-bench` here; `edgeroll-e2e`, the e2e suite's, is
refused), the operator installed by the chart as a pod with the provider's fast timings. An edge
counts once both hold:
- the edge cache Service's EndpointSlices list only ready endpoints, all pods whose
  `edgeroll.io/digest` annotation is the new digest (watched from the host);
- a poller pod in that edge (bench/kind_poller.py: a new connection to the Service every 50 ms,
  the body's sha256 and HMAC checked on every 200) answers the new digest, and has answered
  nothing else since: the time is its last switch to the new digest, known once the old pod is gone.
Each update is broken down into: the operator (new template on the edge), the new pod Ready
(ReplicaSet, kubelet, cache start, readiness probe; the cache's own log stamps split it further),
the endpoints updated, and serving through the Service. The baseline is the lab's, against the
kind S3 container's host port.

With `--provider kind --revision-switch InPlace` (results in propagation_kind_inplace.json; the
default, Restart, is all of the above) the EdgeClusters say `revisionSwitch: InPlace`: a new revision
leaves the pod template alone; the operator writes the revision pointer to S3, applies the edge
Secret and the Deployment (its `edgeroll.io/wanted-digest` annotation names the switch), POSTs
`/-/revision` to each running cache pod through the edge apiserver's pod proxy, and once every pod
has answered that it serves the digest, writes it as the Deployment's own `edgeroll.io/digest`
annotation. No pod starts or goes, so "known once the old pod is gone" has no meaning. An edge
counts once both hold:
- switched: the Deployment's own `edgeroll.io/digest` annotation is the new digest (every pod
  acknowledged; the same Deployment watch);
- served: the poller pod has answered only the new digest SETTLE_ANSWERS (20, 1 s at 50 ms) times
  in a row after `switched` was seen; the time is its last switch to the new digest (which may come
  before `switched`: a pod serves a revision before the operator records that it does).
Parts: operator (apply -> the wanted-digest annotation on the edge Deployment: pointer, Secret and
Deployment written), switch (-> the digest annotation: every pod acknowledged; split by the cache's
"switched in place" log line into the pods' fetch and the operator recording it), serving (-> the
poller's last switch, when it is later than the annotation, else 0). No pod start, so no containerd
or probe parts. Checks, expected 0: EndpointSlice changes (an endpoint's pod, address or
ready/serving/terminating condition), cache pods added or deleted, container restarts, changes of
the Deployment's pod template (not its generation: that moves with its annotations), during each
update. The lab provider is Restart only: kwok pods run no container, so nothing answers the
operator's POST.

Usage: .venv/bin/python bench/propagation.py [--updates 20] [--config-bytes 500000] [--seed 1]
       .venv/bin/python bench/propagation.py --provider kind [--updates 10] [--revision-switch InPlace]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_RUN_LABEL,
    REPO,
    KubeWatch,
    OperatorProcess,
    bench_line,
    delete_s3_prefix,
    edgecluster,
    exit_on_sigterm,
    free_port,
    install_crds,
    kubeconfig_secret,
    kubectl_apply,
    loadavg,
    machine_info,
    median,
    new_run_id,
    operator_env,
    percentile,
    ratio,
    realistic_router_config,
    step_means_ms,
    step_totals,
    tear_down_run,
    wait_for,
    write_result,
)
from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.clusters.kube import KubeClient
from edgeroll.clusters.objects import ObjectRef
from edgeroll.lab import Lab, up
from edgeroll.lab.pod_runner import LocalEdgeCache, cache_container, fetch_and_verify, local_argv, resolve_env
from edgeroll.render.revision import make_revision
from edgeroll.render.signing import read_token
from edgeroll.rollout.health import read_health
from edgeroll.rollout.resources import (
    ANNOTATION_DIGEST,
    ANNOTATION_REFUSED,
    ANNOTATION_WANTED,
    LABEL_INSTANCE,
    edge_name,
)

T = TypeVar("T")
NAME = "propagation"
RC_NAME = "graph"
SIGNING_KEY = "bench-signing-key-0123456789abcd"  # 32 bytes, like a Cosmo graph.sign_key
POLL_INTERVAL_S, POLL_JITTER_S = 10.0, 5.0  # a Cosmo router's CDN poll defaults


@dataclass
class EdgeTimes:
    """Seconds after the `kubectl apply` started, for one edge in one run."""

    cluster: str
    template_s: float  # the Deployment's pod template first seen with the new digest
    available_s: float  # ... and rolled out, Available
    serving_s: float  # the cache process started from that pod spec answered with the new digest

    @property
    def done_s(self) -> float:
        return max(self.available_s, self.serving_s)


@dataclass
class Run:
    index: int
    digest: str
    latency_s: float
    apply_s: float  # how long `kubectl apply` itself took
    edges: list[EdgeTimes]
    load1: float
    status_ready_s: float | None = None  # the RouterConfig's status said Ready with the digest


@dataclass
class BaselineRun:
    index: int
    latency_s: float
    put_s: float
    routers: list[dict[str, float]] = field(default_factory=list)  # wait_s, get_s per router
    load1: float = 0.0


# ---- the config and its updates ------------------------------------------------------------------------


def config_variant(base: dict[str, Any], tag: str) -> dict[str, Any]:
    config = copy.deepcopy(base)
    config["engineConfig"]["graphqlSchema"] += f"\n# {tag}"
    return config


CONFIG_MAP, CONFIG_KEY = f"{RC_NAME}-config", "config.json"


def routerconfig(ns: str, run: str, config: dict[str, Any]) -> dict[str, Any]:
    return routerconfig_with(ns, run, {"config": config})


def update_manifest(ns: str, run: str, config: dict[str, Any], source: str) -> str:
    """What one update applies: the RouterConfig with the config inline, or (`configmap`) the config in
    a ConfigMap it reads (`spec.configFrom`), which is all that changes from one update to the next."""
    if source == "inline":
        return json.dumps(routerconfig(ns, run, config))
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP, "namespace": ns},
        "data": {CONFIG_KEY: json.dumps(config)},
    }
    ref = {"configFrom": {"configMapKeyRef": {"name": CONFIG_MAP, "key": CONFIG_KEY}}}
    items = [config_map, routerconfig_with(ns, run, ref)]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def routerconfig_with(ns: str, run: str, source: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "edgeroll.io/v1alpha1",
        "kind": "RouterConfig",
        "metadata": {"name": RC_NAME, "namespace": ns},
        "spec": {
            "format": "cosmo",
            **source,
            "targets": {"clusterSelector": {"matchLabels": {BENCH_RUN_LABEL: run}}},
            "signing": {"secretRef": {"name": "signing", "key": "key"}},
            "cosmo": {"organizationId": "org-bench", "federatedGraphId": "graph-bench"},
            "cache": {"replicas": 1},
            "rollout": {"strategy": "AllAtOnce"},
        },
    }


# ---- one edge: watch the Deployment, start a cache from its pod spec -------------------------------------


class Edge:
    """One lab edge: watches its Deployment and starts a cache from each new pod spec, as a kubelet would."""

    def __init__(self, cluster: str, lab: Lab, namespace: str, work: Path) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.work = work
        self.deployment = edge_name(namespace, RC_NAME)
        self.watch = KubeWatch(
            lab.kubeconfig(cluster),
            f"/apis/apps/v1/namespaces/{namespace}/deployments",
            {"fieldSelector": f"metadata.name={self.deployment}"},
        )
        # Self-contained, as the operator's client accepts only that (no file paths).
        self.kubeconfig = yaml.safe_load(flattened_kubeconfig(lab, cluster))
        self.kube: KubeClient | None = None
        self.serving: LocalEdgeCache | None = None  # the cache of the current pod spec
        self.spawned = 0

    async def open(self) -> None:
        self.kube = await KubeClient.from_kubeconfig_dict(self.kubeconfig, 10.0, self.cluster)
        await self.watch.start()

    async def close(self) -> None:
        await asyncio.to_thread(self.stop_cache)
        await self.watch.stop()
        if self.kube is not None:
            await self.kube.close()

    def stop_cache(self) -> None:
        if self.serving is not None:
            self.serving.stop()
            shutil.rmtree(self.serving.state_dir, ignore_errors=True)
            self.serving = None

    async def _cache_from(self, deployment: dict[str, Any]) -> LocalEdgeCache:
        """What a kubelet does with a new pod spec: resolve its env (Secrets too), start its command."""
        assert self.kube is not None
        container = cache_container(deployment)
        secrets: dict[str, dict[str, str]] = {}
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["name"] not in secrets:
                got = await self.kube.get(ObjectRef("v1", "Secret", self.namespace, ref["name"]))
                secrets[ref["name"]] = (got or {}).get("data", {})
        self.spawned += 1
        port = free_port()
        state_dir = self.work / f"{self.cluster}-{self.spawned}-state"
        env = {
            "PATH": "/usr/bin:/bin",
            **resolve_env(container, secrets),
            "EDGEROLL_CACHE_PORT": str(port),
            "EDGEROLL_CACHE_HOST": "127.0.0.1",
            "EDGEROLL_STATE_DIR": str(state_dir),
        }
        cache = LocalEdgeCache(
            cluster=self.cluster,
            deployment=self.deployment,
            port=port,
            state_dir=state_dir,
            env=env,
            argv=local_argv(container),
            log_path=self.work / f"{self.cluster}.log",
        )
        return await asyncio.to_thread(cache.start)

    async def _serves(self, cache: LocalEdgeCache, digest: str, session: aiohttp.ClientSession) -> float:
        """Poll the new cache until it answers with `digest`; then verify body, sha256 and HMAC."""
        ns, name = cache.env["EDGEROLL_CONFIG_NAMESPACE"], cache.env["EDGEROLL_CONFIG_NAME"]
        url = f"{cache.url}/configs/{ns}/{name}"
        auth = {"Authorization": f"Bearer {read_token(cache.signing_key, ns, name)}"}
        deadline = time.monotonic() + 60
        while True:
            if cache.proc is not None and cache.proc.poll() is not None:
                raise RuntimeError(f"{self.cluster}: edge cache exited; see {cache.log_path}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url, headers=auth, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    await resp.read()
                    if resp.status == 200 and resp.headers.get("X-Config-Digest") == digest:
                        at = time.monotonic()
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.cluster}: cache never served {digest}; see {cache.log_path}")
            await asyncio.sleep(0.025)
        got = await asyncio.to_thread(fetch_and_verify, cache)
        if not got.ok or got.digest != digest or got.cosmo_status != 200:
            raise RuntimeError(f"{self.cluster}: the edge cache answered wrongly: {got}")
        return at

    async def wait_for_digest(self, digest: str, t0: float, session: aiohttp.ClientSession) -> EdgeTimes:
        template = available = None
        serving: asyncio.Task[float] | None = None
        deadline = t0 + 120
        previous = self.serving
        key = f"{self.namespace}/{self.deployment}"
        try:
            while True:
                self.watch.changed.clear()
                deployment = self.watch.objects.get(key)
                now = time.monotonic()
                if deployment is not None:
                    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
                    if annotations.get(ANNOTATION_DIGEST) == digest:
                        if template is None:
                            template = now
                            cache = await self._cache_from(deployment)
                            self.serving = cache
                            serving = asyncio.create_task(self._serves(cache, digest, session))
                        health = read_health(deployment)
                        if available is None and health.rolled_out and health.available:
                            available = now
                if serving is not None and serving.done() and available is not None:
                    assert template is not None
                    return EdgeTimes(self.cluster, template - t0, available - t0, serving.result() - t0)
                if now > deadline:
                    raise RuntimeError(
                        f"{self.cluster}: not serving {digest} after 120 s "
                        f"(template {template}, available {available})"
                    )
                waiter = asyncio.ensure_future(self.watch.changed.wait())
                pending: set[asyncio.Future[Any]] = {waiter}
                if serving is not None and not serving.done():
                    pending.add(serving)
                await asyncio.wait(pending, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        finally:
            if serving is not None and not serving.done():
                serving.cancel()
            if previous is not None and previous is not self.serving:
                # The rolling update is over for this edge: the old pod goes.
                await asyncio.to_thread(previous.stop)
                shutil.rmtree(previous.state_dir, ignore_errors=True)


async def start_apply(
    kubectl: list[str], env: dict[str, str], manifest: str, t0: float
) -> asyncio.Task[tuple[tuple[bytes, bytes], float]]:
    """`kubectl apply --server-side` of the manifest, started now; the task gives its output and time,
    or raises when kubectl fails."""
    applied = await asyncio.create_subprocess_exec(
        *kubectl,
        "apply",
        "--server-side",
        "--field-manager=bench",
        "-f",
        "-",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )

    async def finished() -> tuple[bytes, bytes]:
        out = await applied.communicate(manifest.encode())
        if applied.returncode != 0:
            raise RuntimeError(f"kubectl apply failed: {out[1].decode()}")
        return out

    return asyncio.create_task(timed(finished(), t0))


async def timed(job: Awaitable[T], t0: float) -> tuple[T, float]:
    """The job's result and when it finished, in seconds after t0."""
    result = await job
    return result, time.monotonic() - t0


async def status_ready(hub: KubeWatch, ns: str, digest: str, t0: float, timeout: float) -> float | None:
    """When the RouterConfig's status says Ready with `digest` for the current generation."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hub.changed.clear()
        rc = hub.objects.get(f"{ns}/{RC_NAME}")
        if rc is not None:
            status = rc.get("status") or {}
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
            )
            if (
                ready
                and status.get("observedGeneration") == rc["metadata"].get("generation")
                and (status.get("revision") or {}).get("digest") == digest
            ):
                return time.monotonic() - t0
        await hub.wait_changed(1.0)
    return None


# ---- the baseline: bare put_object, routers polling ------------------------------------------------------


class PollingRouters:
    """Routers polling one S3 key like Cosmo's CDN poller: a 10 s ticker, then a jitter of [0, 5 s)."""

    def __init__(self, lab: Lab, key: str, count: int, rng: random.Random) -> None:
        self.lab = lab
        self.s3 = lab.s3_client()
        self.key = key
        self.rng = rng
        self.anchor = time.monotonic()
        self.phases = [rng.uniform(0, POLL_INTERVAL_S) for _ in range(count)]
        self.jitter: dict[tuple[int, int], float] = {}  # (router, tick) -> jitter, drawn once

    def next_poll(self, router: int, after: float) -> float:
        """The monotonic time of the router's first poll at or after `after`."""
        base = self.anchor + self.phases[router]
        tick = max(0, int((after - base - POLL_JITTER_S) // POLL_INTERVAL_S))
        while True:
            jitter = self.jitter.setdefault((router, tick), self.rng.uniform(0, POLL_JITTER_S))
            at = base + tick * POLL_INTERVAL_S + jitter
            if at >= after:
                return at
            tick += 1

    def run(self, index: int, body: bytes) -> BaselineRun:
        t0 = time.monotonic()
        self.s3.put_object(Bucket=self.lab.s3_bucket, Key=self.key, Body=body, ContentType="application/json")
        uploaded = time.monotonic()
        routers = []
        for router in range(len(self.phases)):
            poll_at = self.next_poll(router, uploaded)
            started = time.monotonic()
            got = self.s3.get_object(Bucket=self.lab.s3_bucket, Key=self.key)["Body"].read()
            get_s = time.monotonic() - started
            if got != body:
                raise RuntimeError("the baseline GET returned other bytes than were uploaded")
            routers.append({"wait_s": round(poll_at - uploaded, 3), "get_s": round(get_s, 4)})
        put_s = uploaded - t0
        latency = put_s + max(r["wait_s"] + r["get_s"] for r in routers)
        return BaselineRun(index, round(latency, 3), round(put_s, 4), routers, loadavg()[0])


# ---- the benchmark -----------------------------------------------------------------------------------


def flattened_kubeconfig(lab: Lab, cluster: str) -> str:
    """With the certificates inlined, as a Secret in a real hub must carry them."""
    return lab.kubectl(cluster, "config", "view", "--raw", "--flatten").stdout


async def measure(args: argparse.Namespace, lab: Lab, work: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    run = new_run_id()
    ns = f"bench-prop-{run}"
    prefix = f"bench-prop-{run}"
    clusters = sorted(lab.edge_kubeconfigs)
    print(f"run {run}: hub namespace {ns}, S3 prefix {prefix}, edges {', '.join(clusters)}", flush=True)

    install_crds(lab)
    lab.kubectl("hub", "create", "namespace", ns)
    texts = {c: flattened_kubeconfig(lab, c) for c in clusters}
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "signing", "namespace": ns},
            "stringData": {"key": SIGNING_KEY},
        }
    ]
    ec_names = []
    for cluster in clusters:
        ec = f"{ns}-{cluster.removeprefix('edge-')}"
        ec_names.append(ec)
        objects.append(kubeconfig_secret(ns, f"kubeconfig-{cluster}", texts[cluster]))
        objects.append(edgecluster(ec, {BENCH_RUN_LABEL: run}, ns, f"kubeconfig-{cluster}", ns))
    operator = OperatorProcess(operator_env(lab, prefix), ["--namespace", ns], work / "operator.log")
    edges = [Edge(c, lab, ns, work) for c in clusters]
    hub = KubeWatch(
        lab.kubeconfig("hub"),
        f"/apis/edgeroll.io/v1alpha1/namespaces/{ns}/routerconfigs",
        {"fieldSelector": f"metadata.name={RC_NAME}"},
    )
    routers = PollingRouters(lab, f"{prefix}/baseline/latest.json", len(clusters), rng)
    runs: list[Run] = []
    baseline: list[BaselineRun] = []
    try:
        kubectl_apply(lab, "hub", objects)
        operator.start()
        base = realistic_router_config(args.config_bytes, seed=args.seed)
        for edge in edges:
            await edge.open()
        await hub.start()
        steps_before: dict[str, tuple[float, int]] = {}
        async with aiohttp.ClientSession() as session:
            for i in range(args.updates + 1):  # update 0 creates the RouterConfig: warm-up, not timed
                if i == 1:
                    steps_before = step_totals(operator.metrics_text())
                config = config_variant(base, f"bench update {i}")
                revision = make_revision(ConfigFormat.COSMO, config)
                manifest = update_manifest(ns, run, config, args.config_source)
                if i > 0 and i % 2 == 1:  # alternate which goes first, so load drifts hit both alike
                    baseline.append(routers.run(i, revision.body))
                t0 = time.monotonic()
                kubectl = [str(lab.bin_dir / "kubectl"), "--kubeconfig", str(lab.kubeconfig("hub"))]
                env = {**os.environ, **lab.env(), "KUBECACHEDIR": str(lab.paths.kube_cache)}
                apply_task = await start_apply(kubectl, env, manifest, t0)
                status_task = asyncio.create_task(status_ready(hub, ns, revision.digest, t0, 120))
                times = await asyncio.gather(
                    *(e.wait_for_digest(revision.digest, t0, session) for e in edges)
                )
                _, apply_s = await apply_task
                status_s = await status_task
                latency = max(t.done_s for t in times)
                if i == 0:
                    print(f"warm-up: every edge serves {revision.digest[:19]} after {latency:.2f}s")
                else:
                    run_ = Run(i, revision.digest, round(latency, 3), round(apply_s, 3), times, loadavg()[0])
                    run_.status_ready_s = None if status_s is None else round(status_s, 3)
                    runs.append(run_)
                    slowest = max(times, key=lambda t: t.done_s)
                    print(
                        f"update {i:2d}: {latency:6.3f}s (slowest {slowest.cluster}: template "
                        f"{slowest.template_s:.2f}s, available {slowest.available_s:.2f}s, serving "
                        f"{slowest.serving_s:.2f}s; RouterConfig Ready {status_s or float('nan'):.2f}s) "
                        f"load1={run_.load1}",
                        flush=True,
                    )
                    if i % 2 == 0:
                        baseline.append(routers.run(i, revision.body))
                    print(f"  baseline {baseline[-1].latency_s:6.3f}s", flush=True)
                await asyncio.sleep(rng.uniform(1.0, 3.0))  # a random phase against the operator's timers
        operator_cpu = operator.cpu_seconds()
        operator_rss = operator.peak_rss_mib()
        # Where a reconcile's time goes during the timed updates (the Ready lag is one reconcile or two).
        steps = step_means_ms(steps_before, step_totals(operator.metrics_text()))
    finally:
        for edge in edges:
            with contextlib.suppress(Exception):
                await edge.close()
        with contextlib.suppress(Exception):
            await hub.stop()
        cleanup(lab, operator, ns, ec_names, clusters, prefix)

    latencies = [r.latency_s for r in runs]
    base_latencies = [b.latency_s for b in baseline]
    # Issue 13: the RouterConfig's Ready follows the last edge Deployment's Available (the shared watch
    # wakes the reconcile); both seen by this process's own watches, so the clocks compare.
    lags = [
        r.status_ready_s - max(t.available_s for t in r.edges) for r in runs if r.status_ready_s is not None
    ]

    def stage(attr: str) -> float:
        return round(median(max(getattr(t, attr) for t in r.edges) for r in runs), 3)

    return {
        "runs": len(runs),
        "p50_s": round(percentile(latencies, 50), 3),
        "p99_s": round(percentile(latencies, 99), 3),
        "mean_s": round(sum(latencies) / len(latencies), 3),
        "baseline_p50_s": round(percentile(base_latencies, 50), 3),
        "baseline_p99_s": round(percentile(base_latencies, 99), 3),
        "baseline_mean_s": round(sum(base_latencies) / len(base_latencies), 3),
        "stages_median_s": {
            "kubectl_apply": round(median(r.apply_s for r in runs), 3),
            "template": stage("template_s"),
            "available": stage("available_s"),
            "serving": stage("serving_s"),
            "status_ready": round(median(r.status_ready_s or float("nan") for r in runs), 3),
        },
        "goal_p99_s": 5.0,
        "ready_after_available_s": {
            "p50": round(percentile(lags, 50), 3) if lags else None,
            "p99": round(percentile(lags, 99), 3) if lags else None,
            "max": round(max(lags), 3) if lags else None,
            "goal": 0.5,
        },
        "config_bytes": len(make_revision(ConfigFormat.COSMO, config_variant(base, "size")).body),
        "config_source": args.config_source,
        "clusters": clusters,
        "operator": {
            "args": operator.args[:-2],
            "defaults": "progress 2 s, resync 60 s, probe 15 s (flags not given)",
            "cpu_s": round(operator_cpu, 2),
            "peak_rss_mib": operator_rss,
            "reconcile_steps": steps,
        },
        "baseline_model": {
            "poll_interval_s": POLL_INTERVAL_S,
            "poll_jitter_s": POLL_JITTER_S,
            "routers": len(clusters),
            "phases_s": [round(p, 3) for p in routers.phases],
        },
        "run_details": [asdict(r) for r in runs],
        "baseline_details": [asdict(b) for b in baseline],
    }


def cleanup(
    lab: Lab, operator: OperatorProcess, ns: str, ecs: list[str], clusters: list[str], prefix: str
) -> None:
    tear_down_run(
        lab,
        ns,
        operator_running=operator.proc is not None and operator.proc.poll() is None,
        stop_operator=operator.stop,
        edgeclusters=ecs,
        edges=clusters,
        prefix=prefix,
    )


# ---- kind: real pods, kubelet probes, Service endpoints (--provider kind) ------------------------------

KIND_NAME = "propagation_kind"
KIND_PREFIX = "edgeroll-bench"  # EDGEROLL_E2E_KIND_PREFIX of this benchmark's clusters
E2E_PREFIX = "edgeroll-e2e"  # the e2e suite's clusters: never touched
CACHE_PORT = 8080
POLLER = Path(__file__).with_name("kind_poller.py")
POLLER_NAME = "bench-poller"
GOAL_KIND_P99_S, GOAL_KIND_RATIO = 3.0, 0.3
PARTS = {
    "operator": "apply -> the new pod template on the edge (operator: render, sign, publish, apply)",
    "pod_ready": "-> a pod of the new template Ready (ReplicaSet, scheduler, kubelet, cache start, probe)",
    "endpoints": "-> the Service's EndpointSlices list only ready pods of the new digest",
    "serving": "-> every request through the Service answers the new digest",
}
POD_PARTS = {
    "pod_created": "template -> pod created (Deployment and ReplicaSet controllers)",
    "kubelet": "-> containerd asked for the pod sandbox (scheduler, kubelet pod worker, volumes)",
    "sandbox": "-> sandbox up (pause container through runc, network namespace, bridge CNI)",
    "container": "-> cache container created and started (runc)",
    "python": "-> the cache listens (interpreter, imports, state dir, socket)",
    "fetch": "-> the cache serves the wanted revision (boto3 client, S3 GET, sha256 + HMAC, state, gzip)",
    "probe": "-> pod Ready seen (readiness probe period, kubelet status update, watch)",
}

# --revision-switch InPlace: the same pods take the new revision; results in propagation_kind_inplace.json.
KIND_INPLACE_NAME = "propagation_kind_inplace"
SETTLE_ANSWERS = 20  # new-digest answers in a row after "switched" before an edge counts (1 s at 50 ms)
IN_PLACE_PARTS = {
    "operator": "apply -> the wanted digest on the edge Deployment (render, sign, publish, pointer, Secret)",
    "switch": "-> every pod acknowledged: the Deployment's own edgeroll.io/digest annotation",
    "serving": "-> the poller's last switch to the new digest, when later than the annotation (else 0)",
}
SWITCH_PARTS = {
    "pods": "wanted -> the last cache pod logged its switch (POST via pod proxy, pointer, S3 GET, verify)",
    "recorded": "-> the digest annotation seen (answers back, the operator's Deployment write, watch)",
}
IN_PLACE_CHECKS = {
    "endpoint_changes": "EndpointSlice changes of an endpoint's pod, address or conditions (0 expected)",
    "endpoint_events": "EndpointSlice watch events, whatever changed",
    "pod_changes": "cache pods added or deleted (0 expected)",
    "restarts": "cache container restarts (0 expected)",
    "template_changes": "the edge Deployment's pod template changed (0 expected)",
}


def kind_provider_module() -> Any:
    """tests/e2e/providers/kind_provider.py, imported with this benchmark's own cluster prefix."""
    prefix = os.environ.setdefault("EDGEROLL_E2E_KIND_PREFIX", KIND_PREFIX)
    if prefix == E2E_PREFIX or not prefix:
        raise SystemExit(
            f"EDGEROLL_E2E_KIND_PREFIX={prefix!r} is the e2e suite's: use another (default {KIND_PREFIX})"
        )
    if str(REPO) not in sys.path:
        sys.path.insert(1, str(REPO))
    from tests.e2e.providers import kind_provider

    return kind_provider


def docker_names() -> list[str]:
    import subprocess

    got = subprocess.run(
        ["docker", "ps", "--format", "{{.Names}}"], capture_output=True, text=True, check=False, timeout=60
    )
    return sorted(got.stdout.split())


INOTIFY_PER_RUN = 100  # inotify instances four kind nodes took here (~25 each: systemd, kubelet, ...)


def inotify_headroom() -> tuple[int, int]:
    """(instances in use by root, fs.inotify.max_user_instances). kind's known issue: once root's
    instances run out, pods of the cluster created last do not start or get Ready ("too many
    open files") and `kubectl logs -f` fails; kind advises max_user_instances = 512."""
    limit = int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
    used = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if proc.stat().st_uid != 0:
                continue
            used += sum(1 for fd in (proc / "fd").iterdir() if os.readlink(fd) == "anon_inode:inotify")
    return used, limit


def docker_image_id(image: str) -> str:
    import subprocess

    got = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", image],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return got.stdout.strip()


def wall_of_stamp(stamp: str) -> float | None:
    """`kubectl logs --timestamps`' RFC 3339 (nanoseconds, UTC) as a Unix time."""
    import datetime

    if not stamp.endswith("Z"):
        return None
    whole, _, frac = stamp[:-1].partition(".")
    try:
        at = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.UTC)
    except ValueError:
        return None
    return at.timestamp() + float(f"0.{frac or '0'}")


def pod_digest(pod: dict[str, Any]) -> str | None:
    return (pod.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_DIGEST)


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


Endpoint = tuple[str, str, bool, bool, bool]


def endpoint_signature(slices: Iterable[Mapping[str, Any]]) -> frozenset[Endpoint]:
    """Every endpoint of the slices as (pod, addresses, ready, serving, terminating): what routing
    through the Service depends on (discovery/v1: a nil ready or serving means true)."""
    out: set[Endpoint] = set()
    for piece in slices:
        for ep in piece.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            out.add(
                (
                    str((ep.get("targetRef") or {}).get("name", "")),
                    ",".join(sorted(ep.get("addresses") or [])),
                    cond.get("ready") is not False,
                    cond.get("serving") is not False,
                    cond.get("terminating") is True,
                )
            )
    return frozenset(out)


def consecutive_new_after(lines: Sequence[tuple[float, int, str]], since: float, digest: str) -> int:
    """How many answers in a row, all `digest` and all after wall time `since`, the poller's log shows
    up to its latest line. `lines` are its (t, requests so far, state) lines in order, state changes
    and heartbeats alike: the trailing run of `digest` lines starts at its switch to it, and the first
    line at or after `since` names a request answered after it."""
    if not lines or lines[-1][2] != digest:
        return 0
    start = len(lines) - 1
    while start > 0 and lines[start - 1][2] == digest:
        start -= 1
    after = next((n for t, n, _ in lines if t >= since), None)
    if after is None:
        return 0
    return max(0, lines[-1][1] - max(lines[start][1], after) + 1)


def chain(names: Iterable[str], stages: Iterable[float], start: float) -> dict[str, float]:
    """Durations between successive stages from `start`, each counted from the later of its own time
    and the previous stage's (two watches' events may cross by a few ms): they sum to the last."""
    out: dict[str, float] = {}
    at = start
    for name, value in zip(names, stages, strict=True):
        out[name] = round(max(at, value) - at, 3)
        at = max(at, value)
    return out


class EventWatch(KubeWatch):
    """A KubeWatch that also calls `on_event(wall time, type, object)` as each event arrives."""

    def __init__(
        self, kubeconfig: Path, path: str, params: dict[str, str], on_event: Callable[[float, str, Any], None]
    ) -> None:
        super().__init__(kubeconfig, path, params)
        self.on_event = on_event

    def _event(self, event: Any) -> None:
        super()._event(event)
        if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
            self.on_event(time.time(), event["type"], event.get("object") or {})


@dataclass
class KindEdgeTimes:
    """Seconds after the `kubectl apply` started, for one edge in one update (wall clock, shared kernel)."""

    cluster: str
    pod: str  # the new pod that became Ready
    template_s: float  # the Deployment's pod template first seen with the new digest (edge watch)
    pod_created_s: float  # a pod of it first seen (watch)
    container_running_s: float | None  # its container reported running (watch; kubelet PLEG)
    sandbox_start_s: float | None  # containerd: RunPodSandbox called (node's journal)
    sandbox_ready_s: float | None  # ... returned
    container_started_s: float | None  # containerd: StartContainer of the cache returned
    cache_listening_s: float | None  # the cache logged "listening" (container log timestamp)
    cache_serving_s: float | None  # the cache logged "serving the wanted revision"
    pod_ready_s: float  # the pod Ready (watch)
    endpoints_s: float  # EndpointSlices: every ready endpoint is a pod of the new digest (watch)
    first_answer_s: float  # the poller's first answer with the new digest through the Service
    served_s: float  # its last switch to the new digest: from then on, only new-digest answers
    old_pod_gone_s: float | None  # the old pod deleted (None: not within 60 s)
    other_answers: int  # answers other than the new digest after the first new one
    endpoint_flaps: int  # times the endpoints went back from "only new" (0 expected)

    @property
    def done_s(self) -> float:
        return max(self.endpoints_s, self.served_s)

    def parts(self) -> dict[str, float]:
        """PARTS as a chain of durations that sums to done_s (two watches' events may cross by a few ms,
        so each stage counts from the later of its own time and the previous stage's)."""
        out: dict[str, float] = {}
        at = 0.0
        for name, value in zip(
            PARTS, (self.template_s, self.pod_ready_s, self.endpoints_s, self.served_s), strict=True
        ):
            out[name] = round(max(at, value) - at, 3)
            at = max(at, value)
        return out

    def pod_parts(self) -> dict[str, float] | None:
        """POD_PARTS as a chain from template_s to pod_ready_s; None when a log stamp is missing."""
        stages = (
            self.pod_created_s,
            self.sandbox_start_s,
            self.sandbox_ready_s,
            self.container_started_s,
            self.cache_listening_s,
            self.cache_serving_s,
            self.pod_ready_s,
        )
        known = [v for v in stages if v is not None]
        if len(known) != len(stages):
            return None
        out: dict[str, float] = {}
        at = self.template_s
        for name, value in zip(POD_PARTS, known, strict=True):
            out[name] = round(max(at, value) - at, 3)
            at = max(at, value)
        return out


@dataclass
class KindInPlaceTimes:
    """--revision-switch InPlace: seconds after the `kubectl apply` started, for one edge in one update."""

    cluster: str
    pods: list[str]  # the cache pods (the same ones all along: see pod_changes)
    wanted_s: float  # the Deployment's own edgeroll.io/wanted-digest annotation is the new digest (watch)
    pods_switched_s: float | None  # the last cache pod logged "switched in place ... to <digest>"
    switched_s: float  # the Deployment's own edgeroll.io/digest annotation: every pod acknowledged (watch)
    first_answer_s: float  # the poller's first answer with the new digest through the Service
    served_s: float  # its last switch to the new digest: from then on, only new-digest answers
    settled_answers: int  # new-digest answers in a row after `switched` when the edge counted
    other_answers: int  # answers other than the new digest after the first new one
    endpoint_changes: int  # IN_PLACE_CHECKS, during this update
    endpoint_events: int
    pod_changes: int
    restarts: int
    template_changes: int

    @property
    def done_s(self) -> float:
        return max(self.switched_s, self.served_s)

    def parts(self) -> dict[str, float]:
        """IN_PLACE_PARTS as a chain of durations that sums to done_s."""
        return chain(IN_PLACE_PARTS, (self.wanted_s, self.switched_s, self.served_s), 0.0)

    def switch_parts(self) -> dict[str, float] | None:
        """SWITCH_PARTS as a chain from wanted_s to switched_s; None without the cache's log line."""
        if self.pods_switched_s is None:
            return None
        return chain(SWITCH_PARTS, (self.pods_switched_s, self.switched_s), self.wanted_s)


@dataclass
class KindRun:
    index: int
    digest: str
    latency_s: float  # the slowest edge's done_s
    apply_s: float  # `kubectl apply` returned
    status_ready_s: float | None  # the RouterConfig's status said Ready with the digest
    slowest: str
    edges: list[KindEdgeTimes | KindInPlaceTimes]
    load1: float


class KindEdge:
    """One kind edge: watches of its Deployment, pods and EndpointSlices, and a poller pod's answers."""

    def __init__(
        self, cluster: str, clusters: Any, namespace: str, deployment: str, node: str, in_place: bool = False
    ) -> None:
        self.cluster = cluster
        self.in_place = in_place  # revisionSwitch: InPlace (KindInPlaceTimes), else Restart (KindEdgeTimes)
        self.clusters = clusters
        self.namespace = namespace
        self.deployment = deployment
        self.node = node
        kubeconfig = clusters.kubeconfigs[cluster]

        def watch(what: str, path: str, params: dict[str, str]) -> EventWatch:
            return EventWatch(
                kubeconfig, path, params, lambda t, kind, obj: self._on_event(what, t, kind, obj)
            )

        self.deploy_watch = watch(
            "deployment",
            f"/apis/apps/v1/namespaces/{namespace}/deployments",
            {"fieldSelector": f"metadata.name={deployment}"},
        )
        self.pod_watch = watch(
            "pods",
            f"/api/v1/namespaces/{namespace}/pods",
            {"labelSelector": f"{LABEL_INSTANCE}={deployment}"},
        )
        self.slice_watch = watch(
            "slices",
            f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
            {"labelSelector": f"kubernetes.io/service-name={deployment}"},
        )
        self.digest = ""
        self.marks: dict[str, float] = {}  # stage -> wall time, for the current digest
        self.new_pod = ""
        self.flaps = 0
        self.pod_added: dict[str, float] = {}
        self.changed = asyncio.Event()
        self.answers: list[tuple[float, str]] = []  # the poller's state changes (its wall time, state)
        self.poller_seen = 0.0  # the poller's latest line: its log is complete up to here
        self.poller_state = ""
        self.poller_lines: list[tuple[float, int, str]] = []  # every line: (its wall time, requests, state)
        # InPlace only: what must not move during an update, and how many answers settled it.
        self.refused = ""
        self.endpoints_before: frozenset[Endpoint] = frozenset()
        self.pods_before: dict[str, tuple[str, int]] = {}
        self.template_before = ""
        self.counts = dict.fromkeys(IN_PLACE_CHECKS, 0)
        self.settled_answers = 0
        self._lines: set[bytes] = set()
        self._follow: asyncio.Task[None] | None = None
        self._logs: asyncio.subprocess.Process | None = None

    async def open(self) -> None:
        for w in (self.deploy_watch, self.pod_watch, self.slice_watch):
            await w.start()

    async def close(self) -> None:
        if self._follow is not None:
            self._follow.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._follow
        if self._logs is not None and self._logs.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._logs.kill()
            await self._logs.wait()
        for w in (self.deploy_watch, self.pod_watch, self.slice_watch):
            await w.stop()

    def expect(self, digest: str) -> None:
        self.digest, self.marks, self.new_pod, self.flaps = digest, {}, "", 0
        if self.in_place:
            self.refused, self.settled_answers = "", 0
            self.counts = dict.fromkeys(IN_PLACE_CHECKS, 0)
            self.endpoints_before = endpoint_signature(self.slice_watch.objects.values())
            self.pods_before = self._pods_now()
            self.template_before = self._template()

    # -- the control plane, from watch events -------------------------------------------------------

    def _on_event(self, what: str, t: float, kind: str, obj: Any) -> None:
        if what == "pods" and kind == "ADDED":
            self.pod_added.setdefault(obj["metadata"]["name"], t)
        if self.in_place:
            self._count_in_place(what, kind)
            self._evaluate_in_place(t)
        else:
            self._evaluate(t)
        self.changed.set()

    def _evaluate(self, t: float) -> None:
        want, marks = self.digest, self.marks
        if not want:
            return
        deployment = self.deploy_watch.objects.get(f"{self.namespace}/{self.deployment}")
        if deployment is not None:
            template = deployment["spec"]["template"]["metadata"].get("annotations") or {}
            if template.get(ANNOTATION_DIGEST) == want:
                marks.setdefault("template", t)
        pods = list(self.pod_watch.objects.values())
        for pod in pods:
            if pod_digest(pod) != want:
                continue
            name = pod["metadata"]["name"]
            marks.setdefault("pod_created", self.pod_added.get(name, t))
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            if any("running" in (s.get("state") or {}) for s in statuses):
                marks.setdefault("container_running", t)
            if pod_ready(pod) and not pod["metadata"].get("deletionTimestamp") and "pod_ready" not in marks:
                marks["pod_ready"], self.new_pod = t, name
        digests = {p["metadata"]["name"]: pod_digest(p) for p in pods}
        ready = [
            ep
            for s in self.slice_watch.objects.values()
            for ep in s.get("endpoints") or []
            if (ep.get("conditions") or {}).get("ready") is not False  # nil means ready (discovery/v1)
        ]
        only_new = bool(ready) and all(
            digests.get((ep.get("targetRef") or {}).get("name")) == want for ep in ready
        )
        if only_new:
            marks.setdefault("endpoints", t)
        elif "endpoints" in marks and "done" not in marks:
            del marks["endpoints"]
            self.flaps += 1
        if pods and all(d == want for d in digests.values()):
            marks.setdefault("old_gone", t)

    # -- the control plane with revisionSwitch: InPlace: the Deployment's own annotations ----------------

    def _deployment(self) -> dict[str, Any] | None:
        return self.deploy_watch.objects.get(f"{self.namespace}/{self.deployment}")

    def _template(self) -> str:
        return json.dumps(((self._deployment() or {}).get("spec") or {}).get("template"), sort_keys=True)

    def _pods_now(self) -> dict[str, tuple[str, int]]:
        """The cache pods not on their way out: name -> (uid, container restarts)."""
        return {
            pod["metadata"]["name"]: (
                str(pod["metadata"].get("uid", "")),
                sum(
                    int(c.get("restartCount", 0))
                    for c in (pod.get("status") or {}).get("containerStatuses") or []
                ),
            )
            for pod in self.pod_watch.objects.values()
            if not pod["metadata"].get("deletionTimestamp")
        }

    def _count_in_place(self, what: str, kind: str) -> None:
        """During an update (from expect() until done), what moved that must not."""
        if not self.digest or "done" in self.marks:
            return
        if what == "slices":
            self.counts["endpoint_events"] += 1
            now = endpoint_signature(self.slice_watch.objects.values())
            if now != self.endpoints_before:
                self.counts["endpoint_changes"] += 1
                self.endpoints_before = now
        elif what == "pods" and kind in ("ADDED", "DELETED"):
            self.counts["pod_changes"] += 1
        elif what == "deployment":
            template = self._template()
            if template != self.template_before:
                self.counts["template_changes"] += 1
                self.template_before = template

    def _evaluate_in_place(self, t: float) -> None:
        want, marks = self.digest, self.marks
        if not want:
            return
        own = ((self._deployment() or {}).get("metadata") or {}).get("annotations") or {}
        if own.get(ANNOTATION_WANTED) == want:
            marks.setdefault("wanted", t)
        if own.get(ANNOTATION_DIGEST) == want:
            marks.setdefault("wanted", t)
            marks.setdefault("switched", t)
        refused = str(own.get(ANNOTATION_REFUSED) or "")
        if refused.split(" ", 1)[0] == want:
            self.refused = refused
        if any(ready for _, _, ready, _, _ in endpoint_signature(self.slice_watch.objects.values())):
            marks.setdefault("endpoints", t)  # the warm-up's pods routed to; never changes after that

    # -- the data path, from the poller pod -----------------------------------------------------------

    def poller_manifest(self, image: str, rc_name: str) -> dict[str, Any]:
        env = {
            "SERVICE_HOST": f"{self.deployment}.{self.namespace}.svc",
            "SERVICE_PORT": str(CACHE_PORT),
            "CONFIG_PATH": f"/configs/{self.namespace}/{rc_name}",
            "INTERVAL": "0.05",
        }
        return {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": POLLER_NAME, "namespace": self.namespace},
                    "data": {"poller.py": POLLER.read_text()},
                },
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": POLLER_NAME,
                        "namespace": self.namespace,
                        "labels": {"app": POLLER_NAME},
                    },
                    "spec": {
                        "securityContext": {
                            "runAsNonRoot": True,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "enableServiceLinks": False,
                        "automountServiceAccountToken": False,
                        "containers": [
                            {
                                "name": "poller",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "command": ["python3", "/poller/poller.py"],
                                "env": [
                                    *({"name": k, "value": v} for k, v in env.items()),
                                    {  # the key the edge cache holds, as a router's graph.sign_key
                                        "name": "SIGNING_KEY",
                                        "valueFrom": {
                                            "secretKeyRef": {"name": self.deployment, "key": "signing-key"}
                                        },
                                    },
                                ],
                                "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}},
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [{"name": "poller", "mountPath": "/poller"}],
                            }
                        ],
                        "volumes": [{"name": "poller", "configMap": {"name": POLLER_NAME}}],
                    },
                },
            ],
        }

    async def start_poller(self, image: str, rc_name: str, timeout: float = 120) -> None:
        manifest = json.dumps(self.poller_manifest(image, rc_name))
        await asyncio.to_thread(self.clusters.kubectl, self.cluster, "apply", "-f", "-", input=manifest)

        def running() -> bool:
            pod = self.clusters.get_json(self.cluster, "-n", self.namespace, "pod", POLLER_NAME)
            return bool(pod["status"].get("phase") == "Running")

        await asyncio.to_thread(wait_for, running, timeout, 0.5, f"the poller pod in {self.cluster}")
        self._follow = asyncio.create_task(self._follow_logs())
        deadline = time.monotonic() + timeout
        while self.poller_state != self.digest:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.cluster}: the poller never answered {self.digest}: {self.poller_state}"
                )
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 1.0)

    async def _follow_logs(self) -> None:
        """`kubectl logs -f` of the poller, again if it ends; lines already read are skipped."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "KUBECACHEDIR": str(self.clusters.kube_cache)}
        argv = [*self.clusters.kubectl_argv(self.cluster), "-n", self.namespace, "logs", "-f", POLLER_NAME]
        while True:
            self._logs = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env
            )
            assert self._logs.stdout is not None
            async for raw in self._logs.stdout:
                if raw in self._lines or not raw.startswith(b"{"):
                    continue
                self._lines.add(raw)
                line = json.loads(raw)
                if "hb" not in line:
                    self.answers.append((float(line["t"]), str(line["state"])))
                requests = int(line.get("n", line.get("hb", 0)))
                self.poller_lines.append((float(line["t"]), requests, str(line["state"])))
                self.poller_state = str(line["state"])
                self.poller_seen = max(self.poller_seen, float(line["t"]))
                self.changed.set()
            await self._logs.wait()
            await asyncio.sleep(0.5)

    # -- one update -----------------------------------------------------------------------------------

    async def wait_done(self, timeout: float, with_poller: bool) -> None:
        """Until the control-plane stages are marked and, with the poller, it answers the new digest
        and its log is complete up to (old pod gone + 0.5 s): no old answer can come after that."""
        if self.in_place:
            await self._wait_switched(timeout, with_poller)
            return
        deadline = time.time() + timeout
        while True:
            self.changed.clear()
            marks = self.marks
            if all(k in marks for k in ("template", "pod_ready", "endpoints")):
                if not with_poller:
                    break
                if self.poller_state == self.digest:
                    settled = marks.get("old_gone")
                    if settled is None and time.time() > marks["endpoints"] + 60:
                        settled = marks["endpoints"] + 60
                    if settled is not None and self.poller_seen >= settled + 0.5:
                        break
            if time.time() > deadline:
                raise RuntimeError(
                    f"{self.cluster}: not served {self.digest} after {timeout:g} s: stages {sorted(marks)}, "
                    f"poller {self.poller_state!r}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.5)
        self.marks["done"] = time.time()

    async def _wait_switched(self, timeout: float, with_poller: bool) -> None:
        """InPlace: until the Deployment says every pod serves the new digest and, with the poller, it
        has answered only that digest SETTLE_ANSWERS times in a row since."""
        deadline = time.time() + timeout
        while True:
            self.changed.clear()
            marks = self.marks
            if self.refused:
                raise RuntimeError(f"{self.cluster}: a cache pod refused {self.digest}: {self.refused}")
            if "switched" in marks and "endpoints" in marks:
                if not with_poller:
                    break
                self.settled_answers = consecutive_new_after(
                    self.poller_lines, marks["switched"], self.digest
                )
                if self.settled_answers >= SETTLE_ANSWERS:
                    break
            if time.time() > deadline:
                own = ((self._deployment() or {}).get("metadata") or {}).get("annotations") or {}
                raise RuntimeError(
                    f"{self.cluster}: not switched to and served {self.digest} after {timeout:g} s: stages "
                    f"{sorted(marks)}, Deployment annotations {own}, poller {self.poller_state!r} "
                    f"({self.settled_answers} new answers in a row after the switch)"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.5)
        self.marks["done"] = time.time()

    async def cache_log_marks(self) -> tuple[float | None, float | None]:
        """When the new pod's cache logged "listening" and "serving the wanted revision" (runtime stamps)."""
        got = await asyncio.to_thread(
            self.clusters.kubectl,
            self.cluster,
            "-n",
            self.namespace,
            "logs",
            "--timestamps",
            self.new_pod,
            check=False,
        )
        listening = serving = None
        for line in got.stdout.splitlines():
            stamp, _, text = line.partition(" ")
            if listening is None and "listening on" in text:
                listening = wall_of_stamp(stamp)
            if serving is None and f"serving the wanted revision {self.digest}" in text:
                serving = wall_of_stamp(stamp)
        return listening, serving

    async def runtime_marks(self, t0: float) -> dict[str, float]:
        """containerd's own stamps for the new pod, from the node's journal (kind nodes run systemd)."""
        import subprocess

        got = await asyncio.to_thread(
            subprocess.run,
            [
                "docker",
                "exec",
                self.node,
                "journalctl",
                "-u",
                "containerd",
                "-o",
                "cat",
                f"--since=@{int(t0) - 1}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        marks: dict[str, float] = {}
        sandbox = container = ""
        for line in got.stdout.splitlines():
            stamp = line.split('time="', 1)[-1].split('"', 1)[0] if line.startswith('time="') else ""
            at = wall_of_stamp(stamp)
            if at is None:
                continue
            if f"RunPodSandbox for &PodSandboxMetadata{{Name:{self.new_pod}," in line:
                if "returns sandbox id" in line:
                    marks.setdefault("sandbox_ready", at)
                    sandbox = line.rsplit('returns sandbox id \\"', 1)[-1].split("\\", 1)[0]
                else:
                    marks.setdefault("sandbox_start", at)
            elif sandbox and f'within sandbox \\"{sandbox}\\"' in line and "returns container id" in line:
                container = line.rsplit('returns container id \\"', 1)[-1].split("\\", 1)[0]
            elif container and f'StartContainer for \\"{container}\\" returns successfully' in line:
                marks.setdefault("container_started", at)
        return marks

    def _answers_since(self, t0: float) -> tuple[list[tuple[float, str]], float]:
        """The poller's answers since `t0` and when it first got the new digest; they must end on it."""
        answers = [(t, s) for t, s in self.answers if t0 <= t <= self.marks["done"]]
        firsts = [t for t, s in answers if s == self.digest]
        if not firsts or answers[-1][1] != self.digest:
            raise RuntimeError(f"{self.cluster}: the poller's answers since the apply: {answers}")
        return answers, firsts[0]

    async def times(self, t0: float) -> KindEdgeTimes:
        marks = self.marks
        answers, first = self._answers_since(t0)
        (listening, serving), runtime = await asyncio.gather(self.cache_log_marks(), self.runtime_marks(t0))

        def rel(at: float | None) -> float | None:
            return None if at is None else round(at - t0, 3)

        return KindEdgeTimes(
            cluster=self.cluster,
            pod=self.new_pod,
            template_s=round(marks["template"] - t0, 3),
            pod_created_s=round(marks["pod_created"] - t0, 3),
            container_running_s=rel(marks.get("container_running")),
            sandbox_start_s=rel(runtime.get("sandbox_start")),
            sandbox_ready_s=rel(runtime.get("sandbox_ready")),
            container_started_s=rel(runtime.get("container_started")),
            cache_listening_s=rel(listening),
            cache_serving_s=rel(serving),
            pod_ready_s=round(marks["pod_ready"] - t0, 3),
            endpoints_s=round(marks["endpoints"] - t0, 3),
            first_answer_s=round(first - t0, 3),
            served_s=round(answers[-1][0] - t0, 3),
            old_pod_gone_s=rel(marks.get("old_gone")),
            other_answers=sum(1 for t, s in answers if t > first and s != self.digest),
            endpoint_flaps=self.flaps,
        )

    def cache_logs_tail(self, lines: int = 40) -> str:
        got = self.clusters.kubectl(
            self.cluster,
            "-n",
            self.namespace,
            "logs",
            "-l",
            f"{LABEL_INSTANCE}={self.deployment}",
            "--timestamps",
            "--prefix",
            f"--tail={lines}",
            check=False,
        )
        return str(got.stdout) + str(got.stderr)

    async def switch_log_mark(self, pods: Sequence[str]) -> float | None:
        """When the last of `pods` logged its in-place switch to the digest (runtime stamps); None when
        one did not log it (e.g. another line, or its log was not readable)."""
        latest = None
        for pod in pods:
            got = await asyncio.to_thread(
                self.clusters.kubectl,
                self.cluster,
                "-n",
                self.namespace,
                "logs",
                "--timestamps",
                pod,
                check=False,
            )
            at = None
            for line in got.stdout.splitlines():
                stamp, _, text = line.partition(" ")
                if "switched in place from" in text and f" to {self.digest} " in text:
                    at = wall_of_stamp(stamp)
            if at is None:
                return None
            latest = at if latest is None else max(latest, at)
        return latest

    async def in_place_times(self, t0: float) -> KindInPlaceTimes:
        marks = self.marks
        answers, first = self._answers_since(t0)
        pods = self._pods_now()
        pods_switched = await self.switch_log_mark(sorted(pods))
        restarts = sum(
            max(0, restarts - self.pods_before[name][1])
            for name, (uid, restarts) in pods.items()
            if self.pods_before.get(name, ("", 0))[0] == uid
        )
        return KindInPlaceTimes(
            cluster=self.cluster,
            pods=sorted(pods),
            wanted_s=round(marks["wanted"] - t0, 3),
            pods_switched_s=None if pods_switched is None else round(pods_switched - t0, 3),
            switched_s=round(marks["switched"] - t0, 3),
            first_answer_s=round(first - t0, 3),
            served_s=round(answers[-1][0] - t0, 3),
            settled_answers=self.settled_answers,
            other_answers=sum(1 for t, s in answers if t > first and s != self.digest),
            endpoint_changes=self.counts["endpoint_changes"],
            endpoint_events=self.counts["endpoint_events"],
            pod_changes=self.counts["pod_changes"],
            restarts=restarts,
            template_changes=self.counts["template_changes"],
        )


def distribution(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50), 3),
        "p99": round(percentile(values, 99), 3),
        "mean": round(sum(values) / len(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def kube_proxy_config(clusters: Any, edge: str) -> dict[str, Any]:
    """The edge's kube-proxy mode and sync periods (they bound endpoints -> serving)."""
    got = clusters.kubectl(
        edge,
        "-n",
        "kube-system",
        "get",
        "configmap",
        "kube-proxy",
        "-o",
        "jsonpath={.data.config\\.conf}",
        check=False,
    )
    try:
        config = yaml.safe_load(got.stdout) or {}
    except yaml.YAMLError:
        return {}
    mode = config.get("mode") or "iptables"
    return {"mode": mode, mode: config.get(mode) or {}}


async def measure_kind(args: argparse.Namespace, kp: Any, provider: Any, work: Path) -> dict[str, Any]:
    from tests.e2e.providers.e2e_provider import RunScope

    in_place = args.revision_switch == "InPlace"
    rng = random.Random(args.seed)
    run = new_run_id()
    scope = RunScope(
        run=run,
        ns=f"bench-prop-{run}",
        system_ns=f"bench-prop-{run}-system",
        release=f"bench-prop-{run}",
        prefix=f"bench-prop-{run}",
    )
    clusters = provider.clusters
    names = sorted(clusters.edge_kubeconfigs)
    deployment = edge_name(scope.ns, RC_NAME)
    print(
        f"run {run}: hub namespace {scope.ns}, S3 prefix {scope.prefix}, edges {', '.join(names)}"
        + (", revisionSwitch InPlace" if in_place else ""),
        flush=True,
    )

    install_crds(clusters)
    clusters.kubectl("hub", "create", "namespace", scope.ns)
    # The provider's chart install also watches the e2e suite's second tenant namespace (<ns>-a) and
    # grants Secret reads there, so it must exist; nothing of the benchmark goes in it.
    clusters.kubectl("hub", "create", "namespace", scope.tenant_ns)
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "signing", "namespace": scope.ns},
            "stringData": {"key": SIGNING_KEY},
        }
    ]
    ec_names = []
    for cluster in names:
        ec = f"{scope.ns}-{cluster.removeprefix('edge-')}"
        ec_names.append(ec)
        objects.append(
            kubeconfig_secret(scope.ns, f"kubeconfig-{cluster}", provider.edge_kubeconfig(cluster))
        )
        switch = "InPlace" if in_place else None  # Restart: the CRD's default, as before the option
        objects.append(
            edgecluster(ec, {BENCH_RUN_LABEL: run}, scope.ns, f"kubeconfig-{cluster}", scope.ns, switch)
        )
    edges = [
        KindEdge(c, clusters, scope.ns, deployment, f"{kp.PREFIX}-{kp.CLUSTERS[c]}-control-plane", in_place)
        for c in names
    ]
    hub = KubeWatch(
        clusters.hub_kubeconfig,
        f"/apis/edgeroll.io/v1alpha1/namespaces/{scope.ns}/routerconfigs",
        {"fieldSelector": f"metadata.name={RC_NAME}"},
    )
    routers = PollingRouters(clusters, f"{scope.prefix}/baseline/latest.json", len(names), rng)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "KUBECACHEDIR": str(clusters.kube_cache)}
    runs: list[KindRun] = []
    baseline: list[BaselineRun] = []
    operator = None
    probe: dict[str, Any] = {}
    try:
        kubectl_apply(clusters, "hub", objects)
        started = time.monotonic()
        operator = provider.install_operator(scope, work / "operator.log")
        print(f"operator installed (helm --wait) in {time.monotonic() - started:.1f}s", flush=True)
        base = realistic_router_config(args.config_bytes, seed=args.seed)
        for edge in edges:
            await edge.open()
        await hub.start()
        for i in range(args.updates + 1):  # update 0 creates the RouterConfig: warm-up, not timed
            config = config_variant(base, f"bench update {i}")
            revision = make_revision(ConfigFormat.COSMO, config)
            manifest = json.dumps(routerconfig(scope.ns, run, config))
            if i > 0 and i % 2 == 1:  # alternate which goes first, so load drifts hit both alike
                baseline.append(routers.run(i, revision.body))
            for edge in edges:
                edge.expect(revision.digest)
            t0, t0_mono = time.time(), time.monotonic()
            apply_task = await start_apply(clusters.kubectl_argv("hub"), env, manifest, t0_mono)
            status_task = asyncio.create_task(status_ready(hub, scope.ns, revision.digest, t0_mono, 60))
            await asyncio.gather(*(e.wait_done(300 if i == 0 else 180, with_poller=i > 0) for e in edges))
            _, apply_s = await apply_task
            status_s = await status_task
            if i == 0:
                if in_place:
                    done = max(e.marks["switched"] for e in edges) - t0
                    print(
                        f"warm-up: every edge's Deployment says its pods serve {revision.digest[:19]} "
                        f"after {done:.2f}s"
                    )
                else:
                    done = max(e.marks["endpoints"] for e in edges) - t0
                    print(
                        f"warm-up: every edge's endpoints list only {revision.digest[:19]} after {done:.2f}s"
                    )
                dep = edges[0].deploy_watch.objects[f"{scope.ns}/{deployment}"]
                probe = dep["spec"]["template"]["spec"]["containers"][0].get("readinessProbe", {})
                await asyncio.gather(*(e.start_poller(provider.setup.image, RC_NAME) for e in edges))
                print("pollers answer the warm-up digest in every edge", flush=True)
            else:
                times: list[KindEdgeTimes | KindInPlaceTimes] = list(
                    await asyncio.gather(*((e.in_place_times if in_place else e.times)(t0) for e in edges))
                )
                slowest = max(times, key=lambda t: t.done_s)
                run_ = KindRun(
                    i,
                    revision.digest,
                    round(slowest.done_s, 3),
                    round(apply_s, 3),
                    None if status_s is None else round(status_s, 3),
                    slowest.cluster,
                    times,
                    loadavg()[0],
                )
                runs.append(run_)
                parts = slowest.parts()
                if isinstance(slowest, KindInPlaceTimes):
                    checks = {k: sum(getattr(t, k) for t in times) for k in IN_PLACE_CHECKS}
                    pods = slowest.pods_switched_s
                    extra = (
                        f"; first new answer {slowest.first_answer_s:.2f}s, pods switched "
                        f"{float('nan') if pods is None else pods:.2f}s; every edge: "
                        + ", ".join(f"{k} {v}" for k, v in checks.items())
                    )
                else:
                    extra = f"; first new answer {slowest.first_answer_s:.2f}s"
                print(
                    f"update {i:2d}: {run_.latency_s:6.3f}s (slowest {slowest.cluster}: "
                    + ", ".join(f"{k} +{v:.2f}" for k, v in parts.items())
                    + f"{extra}; RouterConfig Ready "
                    f"{status_s or float('nan'):.2f}s) load1={run_.load1}",
                    flush=True,
                )
                if i % 2 == 0:
                    baseline.append(routers.run(i, revision.body))
                print(f"  baseline {baseline[-1].latency_s:6.3f}s", flush=True)
            await asyncio.sleep(rng.uniform(1.0, 3.0))  # a random phase against the operator's timers
    except Exception:
        if in_place:  # what the cache pods said, before their clusters go
            for edge in edges:
                with contextlib.suppress(Exception):
                    print(
                        f"{edge.cluster} cache pods' log (tail):\n{edge.cache_logs_tail()}", file=sys.stderr
                    )
        raise
    finally:
        for edge in edges:
            with contextlib.suppress(Exception):
                await edge.close()
        with contextlib.suppress(Exception):
            await hub.stop()
        cleanup_kind(provider, operator, scope, ec_names, names)

    statuses = [r.status_ready_s for r in runs if r.status_ready_s is not None]
    shared = {
        "provider": "kind",
        **latency_figures([r.latency_s for r in runs], [b.latency_s for b in baseline]),
        "goal": {"p99_s": GOAL_KIND_P99_S, "ratio_p99_to_baseline_p99": GOAL_KIND_RATIO},
        "kubectl_apply_s": distribution([r.apply_s for r in runs]),
        "status_ready_s": distribution(statuses) if statuses else {},
        "config_bytes": len(make_revision(ConfigFormat.COSMO, config_variant(base, "size")).body),
        "clusters": names,
        "readiness_probe": probe,
        "operator_timings": dict(kp.OPERATOR_TIMINGS),
        "kube_proxy": kube_proxy_config(clusters, names[0]) if names else {},
        "baseline_model": {
            "poll_interval_s": POLL_INTERVAL_S,
            "poll_jitter_s": POLL_JITTER_S,
            "routers": len(names),
            "phases_s": [round(p, 3) for p in routers.phases],
            "s3": "the kind SeaweedFS container through its host port",
        },
        "baseline_details": [asdict(b) for b in baseline],
    }
    return {**shared, **(in_place_summary(runs) if in_place else restart_summary(runs))}


def latency_figures(latencies: list[float], base_latencies: list[float]) -> dict[str, Any]:
    p99, base_p99 = percentile(latencies, 99), percentile(base_latencies, 99)
    p50, base_p50 = percentile(latencies, 50), percentile(base_latencies, 50)
    return {
        "runs": len(latencies),
        "p50_s": round(p50, 3),
        "p99_s": round(p99, 3),
        "mean_s": round(sum(latencies) / len(latencies), 3),
        "baseline_p50_s": round(base_p50, 3),
        "baseline_p99_s": round(base_p99, 3),
        "baseline_mean_s": round(sum(base_latencies) / len(base_latencies), 3),
        "ratio_p50": ratio(p50, base_p50),
        "ratio_p99": ratio(p99, base_p99),
    }


def slowest_of(run: KindRun) -> KindEdgeTimes | KindInPlaceTimes:
    return next(t for t in run.edges if t.cluster == run.slowest)


def restart_summary(runs: list[KindRun]) -> dict[str, Any]:
    """What only a Restart run reports: the pod start, the endpoints moving to the new pod."""
    every_edge = [t for r in runs for t in r.edges if isinstance(t, KindEdgeTimes)]
    slowest = [t for t in map(slowest_of, runs) if isinstance(t, KindEdgeTimes)]
    slowest_parts = [t.parts() for t in slowest]
    pod_parts = [p for p in (t.pod_parts() for t in slowest) if p]
    return {
        "parts": PARTS,
        "parts_slowest_edge": {k: distribution([p[k] for p in slowest_parts]) for k in PARTS},
        "parts_every_edge": {k: distribution([t.parts()[k] for t in every_edge]) for k in PARTS},
        "done_every_edge": distribution([t.done_s for t in every_edge]),
        "pod_parts": POD_PARTS,
        "pod_parts_slowest_edge": {k: distribution([p[k] for p in pod_parts]) for k in POD_PARTS}
        if pod_parts
        else {},
        "first_answer_every_edge": distribution([t.first_answer_s for t in every_edge]),
        "other_answers_after_first_new": sum(t.other_answers for t in every_edge),
        "endpoint_flaps": sum(t.endpoint_flaps for t in every_edge),
        "run_details": [{**asdict(r), "parts": slowest_of(r).parts()} for r in runs],
    }


def in_place_summary(runs: list[KindRun]) -> dict[str, Any]:
    """What an InPlace run reports: the switch's parts, and the checks that nothing else moved."""
    every_edge = [t for r in runs for t in r.edges if isinstance(t, KindInPlaceTimes)]
    slowest = [t for t in map(slowest_of, runs) if isinstance(t, KindInPlaceTimes)]
    slowest_parts = [t.parts() for t in slowest]
    switch_parts = [p for p in (t.switch_parts() for t in slowest) if p]
    return {
        "revision_switch": "InPlace",
        "served_definition": (
            "the poller's last switch to the new digest, known once the edge Deployment's own "
            f"edgeroll.io/digest annotation is the new digest and the poller has answered only it "
            f"{SETTLE_ANSWERS} times in a row after that"
        ),
        "settle_answers": SETTLE_ANSWERS,
        "parts": IN_PLACE_PARTS,
        "parts_slowest_edge": {k: distribution([p[k] for p in slowest_parts]) for k in IN_PLACE_PARTS},
        "parts_every_edge": {k: distribution([t.parts()[k] for t in every_edge]) for k in IN_PLACE_PARTS},
        "done_every_edge": distribution([t.done_s for t in every_edge]),
        "switch_parts": SWITCH_PARTS,
        "switch_parts_slowest_edge": {k: distribution([p[k] for p in switch_parts]) for k in SWITCH_PARTS}
        if switch_parts
        else {},
        "switch_parts_runs": len(switch_parts),
        "first_answer_every_edge": distribution([t.first_answer_s for t in every_edge]),
        "served_every_edge": distribution([t.served_s for t in every_edge]),
        "switched_every_edge": distribution([t.switched_s for t in every_edge]),
        "other_answers_after_first_new": sum(t.other_answers for t in every_edge),
        "checks": IN_PLACE_CHECKS,
        "checks_total": {k: sum(getattr(t, k) for t in every_edge) for k in IN_PLACE_CHECKS},
        "run_details": [{**asdict(r), "parts": slowest_of(r).parts()} for r in runs],
    }


def cleanup_kind(provider: Any, operator: Any, scope: Any, ecs: list[str], edges: list[str]) -> None:
    """What this run created inside the clusters (they go too when the provider created them)."""
    clusters = provider.clusters
    try:
        if operator is not None:
            clusters.kubectl("hub", "-n", scope.ns, "delete", "rtc", "--all", "--wait=false", check=False)
            with contextlib.suppress(TimeoutError):
                wait_for(
                    lambda: (
                        not clusters.kubectl(
                            "hub", "-n", scope.ns, "get", "rtc", "-o", "name", check=False
                        ).stdout.strip()
                    ),
                    timeout=60,
                    interval=0.5,
                    what="RouterConfigs finalized",
                )
    finally:
        if operator is not None:
            with contextlib.suppress(Exception):
                operator.stop()
        with contextlib.suppress(Exception):
            provider.uninstall_operator(scope)
        for ec in ecs:
            clusters.kubectl("hub", "delete", "edgecluster", ec, "--wait=false", check=False)
        clusters.kubectl("hub", "delete", "namespace", scope.ns, "--wait=false", check=False)
        clusters.kubectl("hub", "delete", "namespace", scope.tenant_ns, "--wait=false", check=False)
        for edge in edges:
            clusters.kubectl(
                edge, "delete", "namespace", scope.ns, "--wait=false", "--ignore-not-found", check=False
            )
        with contextlib.suppress(Exception):
            delete_s3_prefix(clusters, scope.prefix)


def main_kind(args: argparse.Namespace) -> int:
    kp = kind_provider_module()
    machine = machine_info()
    others = [n for n in docker_names() if not n.startswith(kp.PREFIX + "-")]
    print(f"kind prefix {kp.PREFIX}; other containers running: {', '.join(others) or 'none'}", flush=True)
    used, limit = inotify_headroom()
    if limit - used < INOTIFY_PER_RUN:
        print(
            f"warning: {used} of root's {limit} inotify instances are in use and four kind nodes take about "
            f"{INOTIFY_PER_RUN}: the last cluster's kubelet may fail with 'too many open files' "
            "(sysctl fs.inotify.max_user_instances=512, as kind's known issues say, or wait)",
            file=sys.stderr,
            flush=True,
        )
    with tempfile.TemporaryDirectory(prefix="edgeroll-bench-prop-kind-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        provider = kp.KindProvider.create(work)
        setup_s = time.monotonic() - started
        print(f"kind clusters, image load and S3 ready in {setup_s:.0f}s", flush=True)
        try:
            data = asyncio.run(measure_kind(args, kp, provider, work))
        except BaseException:
            log = work / "operator.log"
            if log.exists():
                print(
                    "operator log (tail):\n" + "\n".join(log.read_text().splitlines()[-60:]), file=sys.stderr
                )
            raise
        finally:
            others_end = [n for n in docker_names() if not n.startswith(kp.PREFIX + "-")]
            image_id = docker_image_id(provider.setup.image)
            provider.close()
    left = [n for n in docker_names() if n.startswith(kp.PREFIX + "-")]
    if left and not os.environ.get("EDGEROLL_E2E_KIND_KEEP"):
        print(f"warning: containers of {kp.PREFIX} still running: {', '.join(left)}", file=sys.stderr)
    data["kind"] = {
        "prefix": kp.PREFIX,
        "path": provider.setup.path,
        "node_image": provider.setup.node_image,
        "image": provider.setup.image,
        "image_id": image_id,
        "clusters_created": provider.created,
        "setup_s": round(setup_s, 1),
    }
    data["machine"] = machine
    data["inotify_at_start"] = {"in_use": used, "max_user_instances": limit}
    data["other_containers"] = {"at_start": others, "at_end": others_end}
    data["loadavg_at_end"] = loadavg()
    data["load1_during"] = distribution([r["load1"] for r in data["run_details"]])
    if args.revision_switch == "InPlace":
        return report_in_place(data)
    path = write_result(KIND_NAME, data)
    print(f"wrote {path.relative_to(REPO)}")
    parts = data["parts_slowest_edge"]
    print(
        f"edgeroll on kind p50 {data['p50_s']}s p99 {data['p99_s']}s | "
        f"baseline p50 {data['baseline_p50_s']}s p99 {data['baseline_p99_s']}s | "
        f"ratio p99 {data['ratio_p99']} | goal p99 <= {GOAL_KIND_P99_S} s "
        f"and <= {GOAL_KIND_RATIO} x baseline"
    )
    print(
        "  slowest edge, median (p99): " + ", ".join(f"{k} {v['p50']} ({v['p99']})" for k, v in parts.items())
    )
    pod = data["pod_parts_slowest_edge"]
    print(
        "  its pod Ready part, median (p99): "
        + ", ".join(f"{k} {v['p50']} ({v['p99']})" for k, v in pod.items())
    )
    figures: dict[str, float | int | str] = {
        "runs": data["runs"],
        "p50_s": data["p50_s"],
        "p99_s": data["p99_s"],
        "baseline_p50_s": data["baseline_p50_s"],
        "baseline_p99_s": data["baseline_p99_s"],
        "ratio_p99": data["ratio_p99"],
    }
    figures.update({f"{k}_p50_s": v["p50"] for k, v in parts.items()})
    figures.update({f"{k}_p99_s": v["p99"] for k, v in parts.items()})
    print(bench_line(KIND_NAME, figures))
    return 0


def report_in_place(data: dict[str, Any]) -> int:
    path = write_result(KIND_INPLACE_NAME, data)
    print(f"wrote {path.relative_to(REPO)}")
    parts, switch = data["parts_slowest_edge"], data["switch_parts_slowest_edge"]
    print(
        f"edgeroll on kind, in place: p50 {data['p50_s']}s p99 {data['p99_s']}s | "
        f"baseline p50 {data['baseline_p50_s']}s p99 {data['baseline_p99_s']}s | "
        f"ratio p99 {data['ratio_p99']} | goal p99 <= {GOAL_KIND_P99_S} s "
        f"and <= {GOAL_KIND_RATIO} x baseline"
    )
    print(
        "  slowest edge, median (p99): " + ", ".join(f"{k} {v['p50']} ({v['p99']})" for k, v in parts.items())
    )
    print(
        f"  its switch part, median (p99), {data['switch_parts_runs']} of {data['runs']} updates: "
        + ", ".join(f"{k} {v['p50']} ({v['p99']})" for k, v in switch.items())
    )
    checks = data["checks_total"]
    print("  over every edge and update (0 expected): " + ", ".join(f"{k} {v}" for k, v in checks.items()))
    load = data["load1_during"]
    figures: dict[str, float | int | str] = {
        "revision_switch": "InPlace",
        "runs": data["runs"],
        "p50_s": data["p50_s"],
        "p99_s": data["p99_s"],
        "baseline_p50_s": data["baseline_p50_s"],
        "baseline_p99_s": data["baseline_p99_s"],
        "ratio_p50": data["ratio_p50"],
        "ratio_p99": data["ratio_p99"],
        "load1_min": load["min"],
        "load1_max": load["max"],
    }
    figures.update({f"{k}_p50_s": v["p50"] for k, v in parts.items()})
    figures.update({f"{k}_p99_s": v["p99"] for k, v in parts.items()})
    figures.update({k: checks[k] for k in ("endpoint_changes", "pod_changes", "restarts")})
    print(bench_line(KIND_INPLACE_NAME, figures))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--provider",
        choices=("lab", "kind"),
        default="lab",
        help="lab: the kwok lab, cache processes started from the pod spec (default); kind: real pods",
    )
    parser.add_argument("--updates", type=int, default=None, help="timed updates (lab 20, kind 10)")
    parser.add_argument("--config-bytes", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--config-source",
        choices=("inline", "configmap"),
        default="inline",
        help="lab only: the config inline in the RouterConfig (default), or in a ConfigMap it reads "
        "(spec.configFrom; each update applies the ConfigMap, so status patches stay small; results in "
        "propagation_configmap.json)",
    )
    parser.add_argument(
        "--revision-switch",
        choices=("Restart", "InPlace"),
        default="Restart",
        help="kind only: the EdgeClusters' spec.revisionSwitch (default Restart, a rolling update per "
        "revision; InPlace: the running pods switch, results in propagation_kind_inplace.json)",
    )
    args = parser.parse_args()
    exit_on_sigterm()
    if args.revision_switch == "InPlace" and args.provider != "kind":
        parser.error(
            "--revision-switch InPlace needs --provider kind: the lab's kwok pods run no container, so "
            "nothing would answer the operator's POST /-/revision through the pod proxy (the lab "
            "benchmark is Restart only)"
        )
    if args.config_source != "inline" and args.provider != "lab":
        parser.error("--config-source configmap is measured on the lab only")
    if args.provider == "kind":
        args.updates = 10 if args.updates is None else args.updates
        return main_kind(args)
    args.updates = 20 if args.updates is None else args.updates

    machine = machine_info()
    lab = up().lab
    with tempfile.TemporaryDirectory(prefix="edgeroll-bench-prop-") as tmp:
        work = Path(tmp)
        try:
            data = asyncio.run(measure(args, lab, work))
        except Exception:
            log = work / "operator.log"
            if log.exists():
                print(
                    "operator log (tail):\n" + "\n".join(log.read_text().splitlines()[-60:]), file=sys.stderr
                )
            raise
    data["machine"] = machine
    data["loadavg_at_end"] = loadavg()
    path = write_result(NAME if args.config_source == "inline" else f"{NAME}_configmap", data)
    print(f"wrote {path.relative_to(REPO)}")
    print(
        f"edgeroll p50 {data['p50_s']}s p99 {data['p99_s']}s | baseline (bare put_object + 10 s/5 s polling) "
        f"p50 {data['baseline_p50_s']}s p99 {data['baseline_p99_s']}s | goal p99 <= 5 s"
    )
    print(
        bench_line(
            NAME,
            {
                "runs": data["runs"],
                "p50_s": data["p50_s"],
                "p99_s": data["p99_s"],
                "baseline_p50_s": data["baseline_p50_s"],
                "baseline_p99_s": data["baseline_p99_s"],
                "ready_after_available_p99_s": data["ready_after_available_s"]["p99"],
            },
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
