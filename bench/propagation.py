"""Propagation: `kubectl apply` of a changed RouterConfig until every target edge serves the new digest.

On the lab (started or reused with `edgeroll.lab.up()`), with a real `edgeroll operator` process
(its default --progress-seconds and --resync-seconds) scoped to a hub namespace of this run:

- 3 EdgeClusters, one per lab edge apiserver, each with the edge namespace of this run;
- one Cosmo RouterConfig (`--config-bytes`, 500 KB by default, inline, AllAtOnce, 1 replica);
- `--updates` (20) changes, each a `kubectl apply --server-side` of a new config.

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

Usage: .venv/bin/python bench/propagation.py [--updates 20] [--config-bytes 500000] [--seed 1]
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
from collections.abc import Awaitable
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
    realistic_router_config,
    wait_for,
    write_result,
)
from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.clusters.kube import KubeClient
from edgeroll.clusters.objects import ObjectRef
from edgeroll.lab import Lab, up
from edgeroll.lab.pod_runner import LocalEdgeCache, cache_container, fetch_and_verify, local_argv, resolve_env
from edgeroll.render.revision import make_revision
from edgeroll.rollout.health import read_health
from edgeroll.rollout.resources import ANNOTATION_DIGEST, edge_name

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


def routerconfig(ns: str, run: str, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "edgeroll.io/v1alpha1",
        "kind": "RouterConfig",
        "metadata": {"name": RC_NAME, "namespace": ns},
        "spec": {
            "format": "cosmo",
            "config": config,
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
        self.kubeconfig = yaml.safe_load(lab.kubeconfig(cluster).read_text())
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
        deadline = time.monotonic() + 60
        while True:
            if cache.proc is not None and cache.proc.poll() is not None:
                raise RuntimeError(f"{self.cluster}: edge cache exited; see {cache.log_path}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
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
        async with aiohttp.ClientSession() as session:
            for i in range(args.updates + 1):  # update 0 creates the RouterConfig: warm-up, not timed
                config = config_variant(base, f"bench update {i}")
                revision = make_revision(ConfigFormat.COSMO, config)
                manifest = json.dumps(routerconfig(ns, run, config))
                if i > 0 and i % 2 == 1:  # alternate which goes first, so load drifts hit both alike
                    baseline.append(routers.run(i, revision.body))
                t0 = time.monotonic()
                applied = await asyncio.create_subprocess_exec(
                    str(lab.bin_dir / "kubectl"),
                    "--kubeconfig",
                    str(lab.kubeconfig("hub")),
                    "apply",
                    "--server-side",
                    "--field-manager=bench",
                    "-f",
                    "-",
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                    env={**os.environ, **lab.env(), "KUBECACHEDIR": str(lab.paths.kube_cache)},
                )
                apply_task = asyncio.create_task(timed(applied.communicate(manifest.encode()), t0))
                status_task = asyncio.create_task(status_ready(hub, ns, revision.digest, t0, 120))
                times = await asyncio.gather(
                    *(e.wait_for_digest(revision.digest, t0, session) for e in edges)
                )
                (_, err), apply_s = await apply_task
                if applied.returncode != 0:
                    raise RuntimeError(f"kubectl apply failed: {err.decode()}")
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
    finally:
        for edge in edges:
            with contextlib.suppress(Exception):
                await edge.close()
        with contextlib.suppress(Exception):
            await hub.stop()
        cleanup(lab, operator, ns, ec_names, clusters, prefix)

    latencies = [r.latency_s for r in runs]
    base_latencies = [b.latency_s for b in baseline]

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
        "config_bytes": len(make_revision(ConfigFormat.COSMO, config_variant(base, "size")).body),
        "clusters": clusters,
        "operator": {
            "args": operator.args[:-2],
            "defaults": "progress 2 s, resync 60 s, probe 15 s (flags not given)",
            "cpu_s": round(operator_cpu, 2),
            "peak_rss_mib": operator_rss,
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
    """Delete what this run created: the RouterConfig (its finalizer removes the edge objects), the
    EdgeClusters, the namespaces in the hub and every edge, and the S3 prefix."""
    try:
        if operator.proc is not None and operator.proc.poll() is None:
            lab.kubectl("hub", "-n", ns, "delete", "rtc", "--all", "--wait=false", check=False)
            with contextlib.suppress(TimeoutError):
                wait_for(
                    lambda: (
                        not lab.kubectl(
                            "hub", "-n", ns, "get", "rtc", "-o", "name", check=False
                        ).stdout.strip()
                    ),
                    timeout=60,
                    interval=0.5,
                    what="RouterConfigs finalized",
                )
    finally:
        operator.stop()
        for name in lab.kubectl("hub", "-n", ns, "get", "rtc", "-o", "name", check=False).stdout.split():
            lab.kubectl(
                "hub",
                "-n",
                ns,
                "patch",
                name,
                "--type=merge",
                "-p",
                '{"metadata":{"finalizers":null}}',
                check=False,
            )
        for ec in ecs:
            lab.kubectl("hub", "delete", "edgecluster", ec, "--wait=false", check=False)
        lab.kubectl("hub", "delete", "namespace", ns, "--wait=false", check=False)
        for cluster in clusters:
            lab.kubectl(cluster, "delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)
        with contextlib.suppress(Exception):
            delete_s3_prefix(lab, prefix)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--config-bytes", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

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
    path = write_result(NAME, data)
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
            },
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
