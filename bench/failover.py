"""Failover: kill -9 the replica holding the shard during a rollout's soak; time until the next wave.

On the lab (started or reused with `edgeroll.lab.up()`), scoped to a hub namespace of this run:

- 3 EdgeClusters, one per lab edge apiserver (edge-ap, edge-eu, edge-us), each with this run's
  edge namespace, labelled with the run id only;
- 2 `edgeroll operator` replicas (processes) with `--namespace <run> --shards 1` and client-go's lease
  timings (`--lease-duration-seconds 15 --renew-deadline-seconds 10 --retry-period-seconds 2`); the
  shard Lease `edgeroll-shard-0` lives in the run's namespace. Other timings are the operator's
  defaults (progress 2 s, resync 60 s, probe 15 s);
- one Cosmo RouterConfig (`--config-bytes`, inline, 1 replica) with a progressive rollout of three
  waves of one cluster each (`canary: 1, batchSize: 1`) and `soakSeconds` (`--soak-seconds`, 5).

A warm-up rollout creates everything (not timed). Then `--kills` (20) rounds: apply a new config (a
new revision, a new rollout), wait until the first wave is healthy and soaking (status.rollout phase
Soaking, wave 0, for the new revision), read the Lease `edgeroll-shard-0`, `kill -9` the process its
`spec.holderIdentity` ("<host>/<pid>") names, and start a replacement process at once (as a
Deployment would), so two replicas run again. Measured from the kill (the benchmark's wall clock; the
operator's timestamps come from the same machine's clock):

- `kill_to_next_wave_s`: until the second wave's `status.rollout.waves[1].startedAt` (written by the
  operator when the wave's gate opened). The goal: at most the lease duration + 5 s (20 s);
- `kill_to_lease_s`: until the Lease's `spec.acquireTime` with a new holder, and
  `kill_to_lease_seen_s`, until this process's watch of the Lease saw the new holder;
- `kill_to_completed_s`: until `status.rollout.completedAt` (every wave done);
- `delay_past_soak_s` = next wave start - max(soak end, kill), where soak end = waves[0].healthyAt +
  soakSeconds: when the next wave would have started without the kill, or the kill itself if the soak
  had ended already;
- where the time goes: the dead holder's last renewal before the kill (`renewTime`), the new
  `acquireTime` after that last renewal (expiry: 15 s from when the survivor first saw it, checked at
  its rounds every retry period), and the reconcile from `acquireTime` to the next wave's start.

Same-run baseline, `--baselines` (5) rounds spread among the kills: the same rollout with no kill,
timed from the moment the first wave was seen soaking (where a kill round kills): until the next wave
(`soaking_to_next_wave_s`), how long after the soak's end it started (`next_wave_after_soak_end_s`:
the operator's reaction without a failover), and until Completed.

Each round also checks what must not happen: the waves in order (each started only after the previous
was healthy for soakSeconds, every cluster moved only once its wave had started), the first wave's
timestamps unchanged by the takeover (the soak clock survived), every edge Deployment's generation
moved exactly once for the revision, and status.owner naming the new Lease holder with a higher term.
A failed check goes into `violations`; a round whose rollout does not complete within
`--round-timeout` ends the run. Either way every replica's log is kept in
bench/results/failover-operator-<n>.log: the figures are not papered over.

Usage: .venv/bin/python bench/failover.py [--kills 20] [--baselines 5] [--soak-seconds 5]
       [--config-bytes 50000] [--round-timeout 120] [--log-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import itertools
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_RUN_LABEL,
    REPO,
    RESULTS_DIR,
    KubeWatch,
    OperatorProcess,
    bench_line,
    edgecluster,
    exit_on_sigterm,
    install_crds,
    kubeconfig_secret,
    kubectl_apply,
    loadavg,
    machine_info,
    new_run_id,
    operator_env,
    percentile,
    realistic_router_config,
    tear_down_run,
    wait_for,
    write_result,
)
from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.lab import Lab, up
from edgeroll.render.revision import make_revision
from edgeroll.rollout.resources import ANNOTATION_DIGEST, LABEL_RC_NAMESPACE, label_value

NAME = "failover"
RC_NAME = "graph"
SHARD_LEASE = "edgeroll-shard-0"
SIGNING_KEY = "bench-signing-key-0123456789abcd"
REPLICAS = 2
GOAL_MARGIN_S = 5.0  # the goal: the next wave within the lease duration + this


class Misbehaviour(Exception):
    """The operator did something the benchmark must report, not time (no takeover, a wave skipped)."""


def when(value: str | None) -> float | None:
    """An RFC 3339 timestamp of the operator's (status.rollout, a Lease) as epoch seconds."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def stats(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None, "min": None}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3),
        "min": round(min(values), 3),
    }


def config_variant(base: dict[str, Any], tag: str) -> dict[str, Any]:
    """The same graph with a comment in its schema: a new revision, same shape."""
    config = copy.deepcopy(base)
    config["engineConfig"]["graphqlSchema"] += f"\n# {tag}"
    return config


def routerconfig(ns: str, run: str, config: dict[str, Any], soak: int) -> dict[str, Any]:
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
            # Three waves of one cluster each: the canary (first by name), then batches of one.
            "rollout": {"strategy": "Progressive", "canary": 1, "batchSize": 1, "soakSeconds": soak},
        },
    }


def wave_violations(rollout: dict[str, Any], soak: float, snapshot: dict[str, Any]) -> list[str]:
    """What the persisted rollout says went wrong: a gate skipped, a cluster moved early, the first
    wave's record rewritten by the takeover (tests/e2e/rollout's assert_waves_in_order, as findings)."""
    out: list[str] = []
    waves = rollout.get("waves") or []
    if len(waves) != 3:
        out.append(f"{len(waves)} waves, expected 3")
    for i, (before, after) in enumerate(itertools.pairwise(waves)):
        started, healthy = when(after.get("startedAt")), when(before.get("healthyAt"))
        completed = when(before.get("completedAt"))
        if started is None or healthy is None or completed is None:
            out.append(f"wave {i + 1}: startedAt, or the healthyAt/completedAt of wave {i}, missing")
            continue
        if not before.get("promoted") and started - healthy < soak - 1e-3:
            out.append(
                f"wave {i + 1} started {started - healthy:.3f}s after wave {i} was healthy (soak {soak}s)"
            )
        if completed > started:
            out.append(f"wave {i + 1} started before wave {i} completed")
    for record in rollout.get("clusters") or []:
        wave = waves[record["wave"]] if record.get("wave", 99) < len(waves) else {}
        moved, started = when(record.get("movedAt")), when(wave.get("startedAt"))
        if moved is None or started is None or moved < started:
            out.append(
                f"cluster {record.get('name')} moved at {record.get('movedAt')}, its wave started at "
                f"{wave.get('startedAt')}"
            )
    first, was = (waves or [{}])[0], (snapshot.get("waves") or [{}])[0]
    for key in ("startedAt", "healthyAt"):
        if first.get(key) != was.get(key):
            out.append(f"wave 0 {key} changed across the kill: {was.get(key)} -> {first.get(key)}")
    return out


@dataclass
class Round:
    index: int
    kind: str  # "kill" or "baseline"
    digest: str
    load1: float
    soak_end: float | None = None  # epoch seconds: waves[0].healthyAt + soak
    t0: float = 0.0  # epoch seconds: the kill, or (baseline) the first wave seen soaking
    to_next_wave_s: float | None = None
    to_completed_s: float | None = None
    delay_past_soak_s: float | None = None
    next_wave_after_soak_end_s: float | None = None
    # kill rounds only
    killed: str | None = None
    new_holder: str | None = None
    new_holder_was: str | None = None  # "survivor" or "replacement"
    to_lease_s: float | None = None
    to_lease_seen_s: float | None = None
    last_renew_before_kill_s: float | None = None
    lease_after_last_renew_s: float | None = None
    lease_to_next_wave_s: float | None = None
    term: tuple[int | None, int | None] | None = None
    replacement_live_s: float | None = None
    violations: list[str] = field(default_factory=list)


@dataclass
class Killed:
    t0_mono: float
    survivor: OperatorProcess  # the other replica running at the kill
    spawned: OperatorProcess  # the replacement started right after it
    owner_before: dict[str, Any]  # status.owner at the kill
    live: asyncio.Future[float]  # seconds from the kill until the replacement answered /healthz


class Replicas:
    """The operator processes of the run: started with the same flags, each with a log of its own."""

    def __init__(self, env: dict[str, str], args: list[str], work: Path) -> None:
        self.env = env
        self.args = args
        self.work = work
        self.running: list[OperatorProcess] = []
        self.every: list[OperatorProcess] = []

    def spawn(self, wait_live: bool) -> OperatorProcess:
        proc = OperatorProcess(self.env, self.args, self.work / f"operator-{len(self.every)}.log")
        self.every.append(proc)
        self.running.append(proc)
        proc.start(wait_live=wait_live)
        return proc

    def holding(self, holder: str) -> OperatorProcess | None:
        """The process an identity "<host>/<pid>" names, among ours."""
        pid = holder.rsplit("/", 1)[-1]
        return next((p for p in self.running if str(p.pid) == pid), None)

    def kill(self, proc: OperatorProcess) -> None:
        proc.kill9()
        self.running.remove(proc)

    def stop(self) -> None:
        for proc in self.running:
            proc.stop()

    def keep_logs(self) -> list[str]:
        kept = []
        for i, proc in enumerate(self.every):
            keep = RESULTS_DIR / f"{NAME}-operator-{i}.log"
            with contextlib.suppress(OSError):
                shutil.copyfile(proc.log_path, keep)
                kept.append(str(keep.relative_to(REPO)))
        return kept


class Failover:
    def __init__(self, lab: Lab, args: argparse.Namespace, work: Path) -> None:
        self.lab = lab
        self.args = args
        self.run = new_run_id()
        self.ns = f"bench-fo-{self.run}"
        self.prefix = f"bench-fo-{self.run}"
        self.edges = sorted(lab.edge_kubeconfigs)
        self.clusters = [f"{self.ns}-{e.removeprefix('edge-')}" for e in self.edges]
        timings = [
            "--lease-duration-seconds",
            f"{args.lease_duration_seconds:g}",
            "--renew-deadline-seconds",
            f"{args.renew_deadline_seconds:g}",
            "--retry-period-seconds",
            f"{args.retry_period_seconds:g}",
        ]
        self.replicas = Replicas(
            operator_env(lab, self.prefix), ["--namespace", self.ns, "--shards", "1", *timings], work
        )
        self.base = realistic_router_config(args.config_bytes, seed=11)
        self.rc_watch: KubeWatch | None = None
        self.lease_watch: KubeWatch | None = None
        self.deployments: dict[str, KubeWatch] = {}

    # ---- setup and teardown ---------------------------------------------------------------------------

    def create(self) -> None:
        lab = self.lab
        install_crds(lab)
        lab.kubectl("hub", "create", "namespace", self.ns)
        objects: list[dict[str, Any]] = [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "signing", "namespace": self.ns},
                "stringData": {"key": SIGNING_KEY},
            }
        ]
        for edge, name in zip(self.edges, self.clusters, strict=True):
            text = lab.kubectl(edge, "config", "view", "--raw", "--flatten").stdout
            objects.append(kubeconfig_secret(self.ns, f"kubeconfig-{name}", text))
            objects.append(
                edgecluster(name, {BENCH_RUN_LABEL: self.run}, self.ns, f"kubeconfig-{name}", self.ns)
            )
        kubectl_apply(lab, "hub", objects)

    def edgeclusters_ready(self) -> bool:
        out = self.lab.kubectl(
            "hub", "get", "edgeclusters", "-l", f"{BENCH_RUN_LABEL}={self.run}", "-o", "json"
        ).stdout
        items = json.loads(out)["items"]
        return len(items) == len(self.clusters) and all(
            any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (i.get("status") or {}).get("conditions", [])
            )
            for i in items
        )

    async def start_watches(self) -> None:
        hub = self.lab.kubeconfig("hub")
        self.rc_watch = KubeWatch(hub, f"/apis/edgeroll.io/v1alpha1/namespaces/{self.ns}/routerconfigs")
        self.lease_watch = KubeWatch(
            hub, f"/apis/coordination.k8s.io/v1/namespaces/{self.ns}/leases", keep=True
        )
        selector = {"labelSelector": f"{LABEL_RC_NAMESPACE}={label_value(self.ns)}"}
        for edge in self.edges:
            self.deployments[edge] = KubeWatch(
                self.lab.kubeconfig(edge), "/apis/apps/v1/deployments", selector
            )
        await asyncio.gather(*(w.start() for w in self.watches()))

    def watches(self) -> list[KubeWatch]:
        hub = [w for w in (self.rc_watch, self.lease_watch) if w is not None]
        return [*hub, *self.deployments.values()]

    async def stop_watches(self) -> None:
        for watch in self.watches():
            with contextlib.suppress(Exception):
                await watch.stop()

    def destroy(self) -> None:
        """Delete the RouterConfig while a replica runs, stop every replica, then the rest (the Leases
        go with the hub namespace)."""
        tear_down_run(
            self.lab,
            self.ns,
            operator_running=bool(self.replicas.running),
            stop_operator=self.replicas.stop,
            edgeclusters=self.clusters,
            edges=self.edges,
            prefix=self.prefix,
        )

    # ---- what the watches hold ---------------------------------------------------------------------

    def rc(self) -> dict[str, Any]:
        assert self.rc_watch is not None
        return self.rc_watch.objects.get(f"{self.ns}/{RC_NAME}") or {}

    def rollout(self) -> dict[str, Any]:
        return dict((self.rc().get("status") or {}).get("rollout") or {})

    def lease(self) -> dict[str, Any]:
        assert self.lease_watch is not None
        return self.lease_watch.objects.get(f"{self.ns}/{SHARD_LEASE}") or {}

    def generations(self, digest: str | None = None) -> dict[str, int]:
        """Edge Deployment generations by edge (only those whose template carries `digest`, if given)."""
        out = {}
        for edge, watch in self.deployments.items():
            for obj in watch.objects.values():
                annotations = obj["spec"]["template"]["metadata"].get("annotations") or {}
                if digest is None or annotations.get(ANNOTATION_DIGEST) == digest:
                    out[edge] = int(obj["metadata"]["generation"])
        return out

    async def until(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Wait for `predicate()` over the watches' state, woken by their events (no polling)."""
        deadline = time.monotonic() + timeout
        while True:
            for watch in self.watches():
                watch.changed.clear()
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise Misbehaviour(f"timed out after {timeout:g}s waiting for {what}")
            waits = [asyncio.ensure_future(w.changed.wait()) for w in self.watches()]
            await asyncio.wait(waits, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                waiting.cancel()

    # ---- rounds -------------------------------------------------------------------------------------

    async def apply(self, index: int) -> str:
        config = config_variant(self.base, f"failover round {index}")
        body = json.dumps(routerconfig(self.ns, self.run, config, self.args.soak_seconds))
        await asyncio.to_thread(
            self.lab.kubectl, "hub", "apply", "--server-side", "--field-manager=bench", "-f", "-", input=body
        )
        return make_revision(ConfigFormat.COSMO, config).digest

    def phase(self, digest: str, phase: str, wave: int | None = None) -> dict[str, Any] | None:
        r = self.rollout()
        if (
            r.get("revision") == digest
            and r.get("phase") == phase
            and (wave is None or r.get("wave") == wave)
        ):
            return r
        return None

    async def warm_up(self) -> None:
        digest = await self.apply(0)
        await self.until(
            lambda: self.phase(digest, "Completed"), self.args.round_timeout, "the warm-up rollout"
        )

    async def round(self, index: int, kill: bool) -> Round:
        before = self.generations()
        digest = await self.apply(index)
        timeout = self.args.round_timeout
        snapshot = await self.until(
            lambda: self.phase(digest, "Soaking", 0), timeout, "the first wave soaking"
        )
        rnd = Round(index, "kill" if kill else "baseline", digest, loadavg()[0])
        healthy = when(snapshot["waves"][0].get("healthyAt"))
        rnd.soak_end = None if healthy is None else healthy + self.args.soak_seconds
        killed = self.kill_holder(rnd) if kill else None
        if killed is None:
            rnd.t0 = time.time()
        try:
            final = await self.until(
                lambda: self.phase(digest, "Completed"), timeout, "the rollout Completed"
            )
            done = await self.until(
                lambda: len(self.generations(digest)) == len(self.edges) and self.generations(digest),
                30,
                "every edge Deployment on the new digest",
            )
        except Misbehaviour as exc:
            raise Misbehaviour(
                f"round {index} ({rnd.kind}): {exc}; rollout {json.dumps(self.rollout())}"
            ) from None
        next_wave = when(final["waves"][1].get("startedAt")) if len(final.get("waves", [])) > 1 else None
        completed = when(final.get("completedAt"))
        rnd.to_next_wave_s = None if next_wave is None else round(next_wave - rnd.t0, 3)
        rnd.to_completed_s = None if completed is None else round(completed - rnd.t0, 3)
        if next_wave is not None and rnd.soak_end is not None:
            rnd.delay_past_soak_s = round(next_wave - max(rnd.soak_end, rnd.t0), 3)
            rnd.next_wave_after_soak_end_s = round(next_wave - rnd.soak_end, 3)
        rnd.violations = wave_violations(final, self.args.soak_seconds, snapshot)
        moved = {e: done[e] - before.get(e, 0) for e in done}
        if any(n != 1 for n in moved.values()):
            rnd.violations.append(f"edge Deployment generations moved by {moved} (expected 1 each)")
        if killed is not None:
            self.takeover(rnd, killed, next_wave)
            rnd.replacement_live_s = round(await killed.live, 2)
        return rnd

    def kill_holder(self, rnd: Round) -> Killed:
        """kill -9 the replica the shard Lease names, and start a replacement at once (as a Deployment
        would); the replacement's liveness is timed in the background."""
        lease = self.lease()
        holder = str((lease.get("spec") or {}).get("holderIdentity") or "")
        victim = self.replicas.holding(holder)
        if victim is None:
            raise Misbehaviour(f"{SHARD_LEASE} is held by {holder!r}, none of this run's replicas")
        survivor = next(p for p in self.replicas.running if p is not victim)
        owner = (self.rc().get("status") or {}).get("owner") or {}
        last_renew = when(lease["spec"].get("renewTime"))
        rnd.killed = holder
        t0_mono, rnd.t0 = time.monotonic(), time.time()
        self.replicas.kill(victim)
        spawned = self.replicas.spawn(wait_live=False)
        rnd.last_renew_before_kill_s = None if last_renew is None else round(rnd.t0 - last_renew, 3)

        async def live() -> float:
            what = f"replacement liveness ({spawned.log_path})"
            await asyncio.to_thread(wait_for, spawned.live, 90, 0.1, what)
            return time.monotonic() - t0_mono

        return Killed(t0_mono, survivor, spawned, owner, asyncio.ensure_future(live()))

    def takeover(self, rnd: Round, killed: Killed, next_wave: float | None) -> None:
        """Who took the Lease and when (acquireTime, and this watch's first sight of it); status.owner."""
        assert self.lease_watch is not None
        seen = next(
            (
                (at, obj)
                for at, _, obj in self.lease_watch.history
                if at > killed.t0_mono
                and obj["metadata"]["name"] == SHARD_LEASE
                and (obj.get("spec") or {}).get("holderIdentity") not in ("", None, rnd.killed)
            ),
            None,
        )
        if seen is None:
            rnd.violations.append(f"the rollout completed but {SHARD_LEASE} was never seen taken over")
            return
        at, obj = seen
        spec = obj["spec"]
        rnd.new_holder = str(spec["holderIdentity"])
        pid = rnd.new_holder.rsplit("/", 1)[-1]
        roles = {str(killed.survivor.pid): "survivor", str(killed.spawned.pid): "replacement"}
        rnd.new_holder_was = roles.get(pid, "other")
        acquired = when(spec.get("acquireTime"))
        rnd.to_lease_seen_s = round(at - killed.t0_mono, 3)
        if acquired is not None:
            rnd.to_lease_s = round(acquired - rnd.t0, 3)
            if rnd.last_renew_before_kill_s is not None:
                rnd.lease_after_last_renew_s = round(rnd.to_lease_s + rnd.last_renew_before_kill_s, 3)
            if next_wave is not None:
                rnd.lease_to_next_wave_s = round(next_wave - acquired, 3)
        owner = (self.rc().get("status") or {}).get("owner") or {}
        was = killed.owner_before.get("term")
        rnd.term = (was, owner.get("term"))
        if owner.get("replica") != rnd.new_holder:
            rnd.violations.append(f"status.owner is {owner}, the Lease holder {rnd.new_holder}")
        if was is not None and (owner.get("term") or -1) <= was:
            rnd.violations.append(f"status.owner term went {was} -> {owner.get('term')}")


def schedule(kills: int, baselines: int) -> list[bool]:
    """True for a kill round; the baseline rounds spread evenly among the kills (one first)."""
    rounds = [True] * kills
    if baselines:
        step = max(1, kills // baselines)
        for b in range(baselines):
            rounds.insert(min(len(rounds), b * (step + 1)), False)
    return rounds


async def measure(lab: Lab, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    bench = Failover(lab, args, work)
    print(
        f"run {bench.run}: hub namespace {bench.ns}, {REPLICAS} replicas, --shards 1, lease "
        f"{args.lease_duration_seconds:g}/{args.renew_deadline_seconds:g}/{args.retry_period_seconds:g} s, "
        f"EdgeClusters {', '.join(bench.clusters)}",
        flush=True,
    )
    rounds: list[Round] = []
    failure: str | None = None
    kept: list[str] = []
    try:
        bench.create()
        await bench.start_watches()
        for _ in range(REPLICAS):
            bench.replicas.spawn(wait_live=True)
        await asyncio.to_thread(wait_for, bench.edgeclusters_ready, 120, 1.0, "EdgeClusters Ready")
        await bench.warm_up()
        print(f"warm-up rollout completed; {SHARD_LEASE} held by {bench.lease()['spec']['holderIdentity']}")
        for index, kill in enumerate(schedule(args.kills, args.baselines), start=1):
            rnd = await bench.round(index, kill)
            rounds.append(rnd)
            report_round(rnd)
    except (Misbehaviour, TimeoutError, RuntimeError) as exc:
        failure = str(exc)
        print(f"FAILED: {failure}", flush=True)
        kept = bench.replicas.keep_logs()
        print(f"kept the operator logs: {', '.join(kept)}")
        for proc in bench.replicas.every:
            print(f"--- {proc.log_path.name} (pid {proc.pid if proc.proc else '-'}) ---\n{proc.tail(25)}")
    finally:
        await bench.stop_watches()
        bench.destroy()
    if any(r.violations for r in rounds) and not kept:
        kept = bench.replicas.keep_logs()
    return summarise(rounds, args, failure, kept)


def flagged(r: Round) -> str:
    return f" VIOLATIONS {r.violations}" if r.violations else ""


def report_round(r: Round) -> None:
    if r.kind == "kill":
        print(
            f"round {r.index:2d} kill: next wave +{r.to_next_wave_s}s, lease +{r.to_lease_s}s (seen "
            f"+{r.to_lease_seen_s}s, by the {r.new_holder_was}), completed +{r.to_completed_s}s, past soak "
            f"{r.delay_past_soak_s}s, load1 {r.load1}{flagged(r)}",
            flush=True,
        )
    else:
        print(
            f"round {r.index:2d} baseline (no kill): next wave +{r.to_next_wave_s}s after soaking was seen, "
            f"{r.next_wave_after_soak_end_s}s after the soak's end, completed +{r.to_completed_s}s, "
            f"load1 {r.load1}{flagged(r)}",
            flush=True,
        )


def summarise(
    rounds: list[Round], args: argparse.Namespace, failure: str | None, kept: list[str]
) -> dict[str, Any]:
    kills = [r for r in rounds if r.kind == "kill"]
    base = [r for r in rounds if r.kind == "baseline"]

    def of(rs: list[Round], attr: str) -> list[float]:
        return [v for r in rs if (v := getattr(r, attr)) is not None]

    next_wave = stats(of(kills, "to_next_wave_s"))
    goal = args.lease_duration_seconds + GOAL_MARGIN_S
    violations = [f"round {r.index}: {v}" for r in rounds for v in r.violations]
    met = (
        failure is None
        and len(kills) == args.kills
        and next_wave["p99"] is not None
        and float(next_wave["p99"]) <= goal
    )
    return {
        "kills": len(kills),
        "kills_planned": args.kills,
        "kill_to_next_wave_s": next_wave,
        "kill_to_lease_s": stats(of(kills, "to_lease_s")),
        "kill_to_lease_seen_s": stats(of(kills, "to_lease_seen_s")),
        "kill_to_completed_s": stats(of(kills, "to_completed_s")),
        "delay_past_soak_s": stats(of(kills, "delay_past_soak_s")),
        "where_the_time_goes": {
            "last_renew_before_kill_s": stats(of(kills, "last_renew_before_kill_s")),
            "lease_acquired_after_last_renew_s": stats(of(kills, "lease_after_last_renew_s")),
            "lease_acquired_to_next_wave_s": stats(of(kills, "lease_to_next_wave_s")),
            "replacement_live_after_kill_s": stats(of(kills, "replacement_live_s")),
        },
        "goal_s": goal,
        "goal": "kill -> next wave start <= lease duration + 5 s, at p99 (with 20 kills: every kill)",
        "met": met,
        "baseline": {
            "rounds": len(base),
            "what": "the same rollout, no kill; timed from the moment the first wave was seen soaking",
            "soaking_to_next_wave_s": stats(of(base, "to_next_wave_s")),
            "next_wave_after_soak_end_s": stats(of(base, "next_wave_after_soak_end_s")),
            "soaking_to_completed_s": stats(of(base, "to_completed_s")),
        },
        "new_holder": dict(Counter(r.new_holder_was for r in kills)),
        "violations": violations,
        "failure": failure,
        "kept_logs": kept,
        "settings": {
            "replicas": REPLICAS,
            "shards": 1,
            "lease_duration_s": args.lease_duration_seconds,
            "renew_deadline_s": args.renew_deadline_seconds,
            "retry_period_s": args.retry_period_seconds,
            "soak_s": args.soak_seconds,
            "waves": "3 of one cluster each (canary 1, batchSize 1)",
            "clusters": 3,
            "config_bytes": args.config_bytes,
            "cache_replicas": 1,
            "operator_defaults": "progress 2 s, resync 60 s, probe 15 s",
            "replacement": "started right after the kill, not waited for",
        },
        "load1_range": [min(r.load1 for r in rounds), max(r.load1 for r in rounds)] if rounds else None,
        "rounds": [asdict(r) for r in rounds],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--baselines", type=int, default=5, help="rollouts without a kill, among the kills")
    parser.add_argument("--soak-seconds", type=int, default=5)
    parser.add_argument("--config-bytes", type=int, default=50_000)
    parser.add_argument("--round-timeout", type=float, default=120)
    parser.add_argument("--log-dir", type=Path, help="keep the operator logs here (default: a temporary dir)")
    parser.add_argument("--lease-duration-seconds", type=float, default=15)
    parser.add_argument("--renew-deadline-seconds", type=float, default=10)
    parser.add_argument("--retry-period-seconds", type=float, default=2)
    args = parser.parse_args()
    exit_on_sigterm()

    machine = machine_info()
    lab = up().lab
    with tempfile.TemporaryDirectory(prefix="edgeroll-bench-failover-") as tmp:
        work = Path(tmp)
        if args.log_dir is not None:
            work = args.log_dir
            work.mkdir(parents=True, exist_ok=True)
        data = asyncio.run(measure(lab, args, work))
    data["machine"] = machine
    data["loadavg_at_end"] = loadavg()
    path = write_result(NAME, data)
    print(f"wrote {path.relative_to(REPO)}")
    nw, lease = data["kill_to_next_wave_s"], data["kill_to_lease_s"]
    print(
        f"kill -> next wave: p50 {nw['p50']} s, p99 {nw['p99']} s, max {nw['max']} s "
        f"(goal {data['goal_s']:g} s); "
        f"kill -> lease taken: p50 {lease['p50']} s, p99 {lease['p99']} s, max {lease['max']} s; "
        f"past the soak's end: p50 {data['delay_past_soak_s']['p50']} s; "
        f"baseline (no kill): next wave {data['baseline']['next_wave_after_soak_end_s']['p50']} s "
        "after the soak's end"
    )
    if data["violations"]:
        print(f"violations: {data['violations']}")
    print(
        bench_line(
            NAME,
            {
                "kills": data["kills"],
                "p50_s": nw["p50"],
                "p99_s": nw["p99"],
                "max_s": nw["max"],
                "goal_s": f"{data['goal_s']:g}",
                "met": data["met"],
            },
        )
    )
    return 0 if data["failure"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
