"""Fan-out: N EdgeClusters x 20 RouterConfigs, from a cold operator start to every cluster Ready.

On the lab (started or reused with `edgeroll.lab.up()`), for each size in `--sizes` (25, 50, 100;
200 too, e.g. `--sizes 25,50,100,200`), from nothing, with a run id of its own:

- N EdgeClusters spread round-robin over the lab's three edge apiservers, each with its own
  kubeconfig Secret and its own edge namespace (`spec.namespace`), labelled with the run id only;
- 20 Cosmo RouterConfigs (`--config-bytes` each, inline, distinct) selecting all N;
- first the **baseline** (below), then a real `edgeroll operator` process (defaults: progress 2 s,
  resync 60 s, probe 15 s) scoped to the run's hub namespace, started once the baseline's edge
  objects are gone: a cold start.

Baseline (`baseline_s`, same run, same size): a bare asyncio loop writes exactly the edge objects
the operator would: for every (RouterConfig, EdgeCluster) pair the ServiceAccount, Secret, Service
and Deployment of `edge_manifests()`, built from the operator's own settings (`settings_from_env`
on the operator's environment), each RouterConfig's uid, cache spec and rendered revision (digest,
S3 key, signature), so the bytes are the operator's; plus each edge namespace (`namespace_manifest`,
which the operator creates on first use). It server-side applies them with one `KubeClient` per
EdgeCluster (`from_kubeconfig_dict` on the same kubeconfig, `EDGE_CONNECTIONS` connections, the
operator's field manager and edge timeout), all clusters and all 20 pairs of a cluster at once,
each pair in `edge_manifests` order, retrying a refused or timed-out request as the operator would.
It is timed from the first request until every Deployment is Ready by the operator's own test
(`phase_for(read_health(...))`: observedGeneration current, Available; with replicas 0 the
Deployment controller still reports it), seen from watches of the edge Deployments started before
the clock; the manifests and clients are built before it (`baseline_setup_s`). That is the
operator run's end condition: a RouterConfig is Ready when every target Deployment is. Then its
edge namespaces are deleted and the run waits until they are gone.

Why the baseline first: it and the operator's convergence are then next to each other (only the
cleanup between), where after they would be minutes apart at the largest size (idle window,
restart, cleanup); and what the cleanup leaves running (namespace controller, garbage collector,
etcd compaction) lands on the operator's run, so a residue can only raise the ratio, never flatter
edgeroll. The operator still starts cold: the edge namespaces are checked gone, and the hub objects
and Service range are the same for both.

Measured per size: time from the operator's start until every RouterConfig reports Ready with
N/N clusters for its current generation (`converge_s`), `baseline_s`, `ratio` = converge_s /
baseline_s, the cost per cluster (`cost_per_cluster_s` = converge_s / N, and the baseline's), the
operator's peak RSS (VmHWM) and CPU time. At the largest size, also:

- idle writes: after convergence, for `resync + 15 s` (every RouterConfig does a full resync in
  that window), every change to anything the run owns is counted from watches: RouterConfigs,
  EdgeClusters and Events in the hub; Deployments, Services, Secrets, ServiceAccounts and
  namespaces in every edge (a change = a new resourceVersion). Cross-check: the apiservers'
  `apiserver_request_total` for write verbs on those resources (counts no-op writes too, but
  from every client of the shared lab);
- S3 PUTs on a restart with nothing changed: the operator is stopped and started again; once it
  has resumed every RouterConfig (kopf's "Resuming is processed" per object in its log), the
  S3 objects under the run's prefix are compared (key, ETag, LastModified) with before, and the
  watches count the writes of the restart.

Goals (issue 13, in the result's `goals` and `outcome`): converge <= 60 s at 100 clusters, ratio
<= 2 at every size, peak RSS <= 250 MiB, a cost per cluster that does not rise from one size to the
next (within COST_TOLERANCE, for the shared lab's noise), 0 idle writes, 0 restart S3 PUTs.

Edge caches get `replicas: 0`: the lab's six fake nodes hold 110 pods each, so 2 000 pods would
not fit, and this measures the operator, not the scheduler. The Deployment controller still
observes every Deployment and reports it Available. Every pair has a ClusterIP Service: the run
adds a ServiceCIDR (`--service-cidr`) to each edge apiserver, checked up front to hold the largest
size's Services per apiserver (the baseline's are gone before the operator's are created).

By replica count (`--replicas 1,2,4`, results in bench/results/fanout_replicas.json; fanout.json is
left as it is): one size (`--sizes`, 50 by default), measured as above (each count from nothing, a
run of its own, its same-run baseline first), but the operator is R processes started at once, each
`--namespace <run> --shards S` (S = `--shards`, the replica count by default), which split the
RouterConfigs by shard Lease (docs/architecture.md, High availability and sharding). Per count:
converge_s, baseline_s and ratio, peak RSS and CPU summed over the processes and per process, and
who acted on what at the end (the shard Leases' holders, their transitions, each RouterConfig's
status.owner). No idle window or restart check.

Usage: .venv/bin/python bench/fanout.py [--sizes 25,50,100,200] [--routerconfigs 20]
       [--config-bytes 50000] [--no-baseline]
       .venv/bin/python bench/fanout.py --replicas 1,2,4 [--sizes 50] [--shards S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import itertools
import json
import math
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_RUN_LABEL,
    REPO,
    RESULTS_DIR,
    KubeWatch,
    OperatorProcess,
    bench_line,
    delete_s3_prefix,
    edgecluster,
    exit_on_sigterm,
    install_crds,
    kubeconfig_secret,
    kubectl_apply,
    loadavg,
    machine_info,
    new_run_id,
    operator_env,
    realistic_router_config,
    s3_listing,
    wait_for,
    write_result,
)
from edgeroll.api.routerconfig import ClusterPhase, ConfigFormat, RouterConfigSpec
from edgeroll.clusters.kube import EDGE_CONNECTIONS, ClusterUnreachable, KubeApiError, KubeClient
from edgeroll.lab import Lab, up
from edgeroll.publish.history import revision_key
from edgeroll.render.revision import make_revision
from edgeroll.render.signing import sign
from edgeroll.rollout.health import phase_for, read_health
from edgeroll.rollout.resources import (
    LABEL_RC_NAMESPACE,
    EdgeCacheParams,
    EdgeS3,
    edge_manifests,
    label_value,
    namespace_manifest,
)
from edgeroll.settings import OperatorSettings, settings_from_env

NAME = "fanout"
REPLICAS_NAME = "fanout_replicas"  # --replicas: a file of its own, fanout.json stays as it is
SIGNING_KEY = "bench-signing-key-0123456789abcd"
EDGE_KINDS = {
    "deployments": "/apis/apps/v1/deployments",
    "services": "/api/v1/services",
    "secrets": "/api/v1/secrets",
    "serviceaccounts": "/api/v1/serviceaccounts",
}
WRITE_VERBS = {"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"}
METRIC = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$")
# The per-cluster cost "does not rise" when each size's is within this of the size before it: runs
# of the same code on the shared lab move by more than that (docs/benchmarks.md, fan-out).
COST_TOLERANCE = 0.10
# Per request, backing off 1, 2, 4, 8, 10, 10... s: an apiserver of a saturated lab may not answer for
# a minute (as at 200 clusters on 2 cores); the operator retries a failed apply on its next pass.
BASELINE_ATTEMPTS = 10
RETRY_STATUSES = {409, 429, 500, 502, 503, 504}


def routerconfig(ns: str, run: str, index: int, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "edgeroll.io/v1alpha1",
        "kind": "RouterConfig",
        "metadata": {"name": f"rc-{index:02d}", "namespace": ns},
        "spec": {
            "format": "cosmo",
            "config": config,
            "targets": {"clusterSelector": {"matchLabels": {BENCH_RUN_LABEL: run}}},
            "signing": {"secretRef": {"name": "signing", "key": "key"}},
            "cosmo": {"organizationId": "org-bench", "federatedGraphId": f"graph-{index:02d}"},
            "cache": {"replicas": 0},
        },
    }


def ready(rc: dict[str, Any], clusters: int) -> bool:
    status = rc.get("status") or {}
    summary = status.get("summary") or {}
    return (
        status.get("observedGeneration") == rc["metadata"].get("generation")
        and any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
        and summary.get("ready") == clusters
        and summary.get("desired") == clusters
    )


def write_requests(lab: Lab, cluster: str) -> Counter[str]:
    """apiserver_request_total of write verbs on the resources the operator writes, by resource."""
    text = lab.kubectl(cluster, "get", "--raw", "/metrics", timeout=60).stdout
    out: Counter[str] = Counter()
    wanted = {"deployments", "services", "secrets", "serviceaccounts", "namespaces"}
    wanted |= {"routerconfigs", "edgeclusters", "events"}
    for line in text.splitlines():
        match = METRIC.match(line)
        if not match:
            continue
        labels = dict(kv.split("=", 1) for kv in re.findall(r'\w+="[^"]*"', match.group(1)))
        labels = {k: v.strip('"') for k, v in labels.items()}
        if labels.get("verb") in WRITE_VERBS and labels.get("resource") in wanted:
            key = labels["resource"] + ("/" + labels["subresource"] if labels.get("subresource") else "")
            out[key] += int(float(match.group(2)))
    return out


class Fleet:
    """Everything one size creates, and the watches that see it change."""

    def __init__(
        self, lab: Lab, size: int, args: argparse.Namespace, work: Path, replicas: int | None = None
    ) -> None:
        self.lab = lab
        self.size = size
        self.args = args
        self.replicas = replicas  # None: one operator, as ever; else that many replica processes
        self.run = new_run_id()
        self.ns = f"bench-fan-{self.run}"
        self.prefix = f"bench-fan-{self.run}"
        self.edges = sorted(lab.edge_kubeconfigs)
        self.clusters = [f"bf-{self.run}-{i:03d}" for i in range(size)]  # EdgeCluster = edge namespace
        self.where = {name: self.edges[i % len(self.edges)] for i, name in enumerate(self.clusters)}
        profile = diagnostic_python_args(args)
        if replicas is None:
            self.operators = [
                OperatorProcess(
                    operator_env(lab, self.prefix),
                    ["--namespace", self.ns],
                    work / f"operator-{size}.log",
                    profile,
                )
            ]
        else:  # the shard Leases live in the run's namespace (the first --namespace)
            flags = ["--namespace", self.ns, "--shards", str(self.shards)]
            self.operators = [
                OperatorProcess(
                    operator_env(lab, self.prefix), flags, work / f"operator-{size}-r{replicas}-{i}.log"
                )
                for i in range(replicas)
            ]
        self.operator = self.operators[0]  # the one operator of the single-replica checks (idle, restart)
        self.watches: dict[str, KubeWatch] = {}
        self.configs: list[dict[str, Any]] = []  # the RouterConfigs' inline configs, by index
        self.kubeconfig_texts: dict[str, str] = {}  # edge apiserver -> what its EdgeClusters' Secrets hold
        self.waiting: list[str] = []  # replicas: why RouterConfigs were not Ready, every 10 s of converging

    # ---- setup and teardown ---------------------------------------------------------------------------

    @property
    def shards(self) -> int:
        return self.args.shards or self.replicas or 1

    def rss_mib(self) -> float:
        return round(sum(p.rss_mib() for p in self.operators), 1)

    def peak_rss_mib(self) -> list[float]:
        return [p.peak_rss_mib() for p in self.operators]

    def cpu_seconds(self) -> list[float]:
        return [round(p.cpu_seconds(), 1) for p in self.operators]

    def owners(self, started: float) -> dict[str, Any]:
        """Who acts on what once converged: the shard Leases' holders and every change of holder since
        `started` (seconds after it), and each RouterConfig's status.owner, by replica index in this run."""
        index = {str(p.pid): i for i, p in enumerate(self.operators)}

        def who(identity: str) -> str:  # "<host>/<pid>"
            pid = identity.rsplit("/", 1)[-1]
            return f"replica-{index[pid]}" if pid in index else identity or "(released)"

        watch = self.watches["hub/leases"]
        leases = sorted(watch.objects.values(), key=lambda lease: str(lease["metadata"]["name"]))
        holders: dict[str, str] = {}
        moves = []
        for at, _, lease in watch.history:
            name, holder = lease["metadata"]["name"], who(str(lease["spec"].get("holderIdentity") or ""))
            if holders.get(name) != holder:
                holders[name] = holder
                moves.append(f"{at - started:.1f}s {name} -> {holder}")
        owners = [
            (rc.get("status") or {}).get("owner") or {}
            for rc in self.watches["hub/routerconfigs"].objects.values()
        ]
        return {
            "shard_holders": {
                lease["metadata"]["name"]: who(str(lease["spec"].get("holderIdentity") or ""))
                for lease in leases
            },
            "shard_holder_changes": moves,
            "lease_transitions": sum(int(lease["spec"].get("leaseTransitions") or 0) for lease in leases),
            "routerconfigs_by_replica": dict(Counter(who(str(o.get("replica", ""))) for o in owners)),
            "routerconfigs_by_shard": dict(sorted(Counter(str(o.get("shard")) for o in owners).items())),
            "edgeclusters_not_ready": self.edgeclusters_not_ready(started),
            "waiting": self.waiting,
        }

    def edgeclusters_not_ready(self, started: float, limit: int = 12) -> dict[str, Any]:
        """EdgeCluster statuses written with Ready not True since `started` (the prober is shard 0's
        holder), and a few of them: an unreachable cluster holds its RouterConfigs' Ready."""
        samples, names = [], set()
        for at, _, obj in self.watches["hub/edgeclusters"].history:
            conditions = (obj.get("status") or {}).get("conditions") or []
            ready = next((c for c in conditions if c.get("type") == "Ready"), None)
            if at > started and ready is not None and ready.get("status") != "True":
                names.add(obj["metadata"]["name"])
                if len(samples) < limit:
                    message = str(ready.get("message") or "")[:100]
                    samples.append(
                        f"{at - started:.1f}s {obj['metadata']['name']}: {ready.get('reason')} {message}"
                    )
        return {"clusters": len(names), "samples": samples}

    @property
    def service_cidr(self) -> str:
        return f"bench-fanout-{self.run}"

    def create(self) -> None:
        lab = self.lab
        install_crds(lab)
        # Every RouterConfig x EdgeCluster gets a ClusterIP Service, and each lab apiserver has the
        # default /24 (254 addresses) for all the sessions sharing it. An extra ServiceCIDR of this
        # run's own (networking.k8s.io/v1, deleted at the end) makes room without touching the lab.
        cidr = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "ServiceCIDR",
            "metadata": {"name": self.service_cidr, "labels": {BENCH_RUN_LABEL: self.run}},
            "spec": {"cidrs": [self.args.service_cidr]},
        }
        for edge in self.edges:
            kubectl_apply(lab, edge, [cidr])
        lab.kubectl("hub", "create", "namespace", self.ns)
        texts = {e: lab.kubectl(e, "config", "view", "--raw", "--flatten").stdout for e in self.edges}
        self.kubeconfig_texts = texts
        objects: list[dict[str, Any]] = [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "signing", "namespace": self.ns},
                "stringData": {"key": SIGNING_KEY},
            }
        ]
        for name in self.clusters:
            objects.append(kubeconfig_secret(self.ns, f"kubeconfig-{name}", texts[self.where[name]]))
            objects.append(
                edgecluster(name, {BENCH_RUN_LABEL: self.run}, self.ns, f"kubeconfig-{name}", name)
            )
        kubectl_apply(lab, "hub", objects)
        self.configs = [
            realistic_router_config(self.args.config_bytes, seed=100 + i)
            for i in range(self.args.routerconfigs)
        ]
        rcs = [routerconfig(self.ns, self.run, i, config) for i, config in enumerate(self.configs)]
        kubectl_apply(lab, "hub", rcs, "--server-side", "--field-manager=bench")

    def routerconfigs(self) -> list[dict[str, Any]]:
        """The run's RouterConfigs as the hub holds them (uid included), by name."""
        out = self.lab.kubectl("hub", "-n", self.ns, "get", "rtc", "-o", "json", timeout=120).stdout
        return sorted(json.loads(out)["items"], key=lambda rc: rc["metadata"]["name"])

    def delete_edge_namespaces(self) -> None:
        for edge in self.edges:
            names = [n for n in self.clusters if self.where[n] == edge]
            self.lab.kubectl(
                edge, "delete", "namespace", *names, "--wait=false", "--ignore-not-found", check=False
            )

    def edge_namespaces_gone(self, timeout: float) -> bool:
        """Wait until the run's edge namespaces are deleted; False when they are not within `timeout`."""

        def gone() -> bool:
            for edge in self.edges:
                out = self.lab.kubectl(edge, "get", "namespaces", "-o", "name", check=False).stdout
                if f"namespace/bf-{self.run}-" in out:
                    return False
            return True

        try:
            wait_for(gone, timeout=timeout, interval=2.0, what="edge namespaces deleted")
        except TimeoutError:
            return False
        return True

    def destroy(self) -> None:
        lab = self.lab
        for operator in self.operators:
            operator.stop()
        for name in lab.kubectl("hub", "-n", self.ns, "get", "rtc", "-o", "name", check=False).stdout.split():
            lab.kubectl(
                "hub",
                "-n",
                self.ns,
                "patch",
                name,
                "--type=merge",
                "-p",
                '{"metadata":{"finalizers":null}}',
                check=False,
            )
        lab.kubectl(
            "hub",
            "delete",
            "edgeclusters",
            "-l",
            f"{BENCH_RUN_LABEL}={self.run}",
            "--wait=false",
            check=False,
        )
        lab.kubectl("hub", "delete", "namespace", self.ns, "--wait=false", check=False)
        self.delete_edge_namespaces()
        with contextlib.suppress(Exception):
            delete_s3_prefix(lab, self.prefix)

    def wait_gone(self, timeout: float) -> float:
        """Wait until the edge namespaces are deleted, so the next size starts from a clean lab."""
        started = time.monotonic()
        self.edge_namespaces_gone(timeout)
        for edge in self.edges:  # released once no Service holds one of its addresses
            self.lab.kubectl(edge, "delete", "servicecidr", self.service_cidr, "--wait=false", check=False)
        return time.monotonic() - started

    # ---- watches --------------------------------------------------------------------------------------

    async def start_watches(self) -> None:
        lab = self.lab
        hub = lab.kubeconfig("hub")
        self.watches["hub/routerconfigs"] = KubeWatch(
            hub, f"/apis/edgeroll.io/v1alpha1/namespaces/{self.ns}/routerconfigs", keep=True
        )
        if self.replicas is not None:  # the shard Leases: who holds what, and each handover
            self.watches["hub/leases"] = KubeWatch(
                hub,
                f"/apis/coordination.k8s.io/v1/namespaces/{self.ns}/leases",
                {"labelSelector": "edgeroll.io/lease=shard"},
                keep=True,
            )
        self.watches["hub/edgeclusters"] = KubeWatch(
            hub,
            "/apis/edgeroll.io/v1alpha1/edgeclusters",
            {"labelSelector": f"{BENCH_RUN_LABEL}={self.run}"},
            keep=True,
        )
        self.watches["hub/events"] = KubeWatch(hub, f"/api/v1/namespaces/{self.ns}/events", keep=True)
        for edge in self.edges:
            config = lab.kubeconfig(edge)
            for kind, path in EDGE_KINDS.items():
                self.watches[f"{edge}/{kind}"] = KubeWatch(
                    config, path, {"labelSelector": f"{LABEL_RC_NAMESPACE}={self.ns}"}
                )
            self.watches[f"{edge}/namespaces"] = KubeWatch(config, "/api/v1/namespaces")
        await asyncio.gather(*(w.start() for w in self.watches.values()))

    async def stop_watches(self) -> None:
        for watch in self.watches.values():
            with contextlib.suppress(Exception):
                await watch.stop()

    def changes_since(self, since: float) -> dict[str, int]:
        """Changes (ADDED/MODIFIED/DELETED) to this run's objects after `since`, by watch.

        EdgeCluster status writes are split out when they are (a) a probe heartbeat, the same status
        with only `lastProbeTime` moved (by design, every EDGEROLL_PROBE_HEARTBEAT_SECONDS = 300 s),
        or (b) another session's operator that cannot read this run's kubeconfig Secrets (they probe
        every EdgeCluster: see docs/benchmarks.md) and this operator's correction right after it.
        """
        out: dict[str, int] = {}
        for name, watch in self.watches.items():
            if name == "hub/edgeclusters":
                continue
            mine = f"/bf-{self.run}-" if name.endswith("/namespaces") else ""
            n = sum(1 for at, _, key, _ in watch.log if at > since and mine in key)
            if n:
                out[name] = n
        out.update({k: v for k, v in self.edgecluster_changes(since).items() if v})
        return out

    def edgecluster_changes(self, since: float) -> dict[str, int]:
        counts = {"hub/edgeclusters": 0, "hub/edgeclusters heartbeat": 0, "hub/edgeclusters foreign": 0}
        before: dict[str, dict[str, Any]] = {}
        foreign_last: set[str] = set()

        def strip(status: dict[str, Any] | None) -> dict[str, Any]:
            return {k: v for k, v in (status or {}).items() if k != "lastProbeTime"}

        for at, _, obj in self.watches["hub/edgeclusters"].history:
            name, status = obj["metadata"]["name"], obj.get("status") or {}
            prev = before.get(name)
            before[name] = status
            if at <= since:
                continue
            foreign = "403 Forbidden" in json.dumps(status)
            if prev is not None and strip(prev) == strip(status):
                counts["hub/edgeclusters heartbeat"] += 1
            elif foreign or name in foreign_last:
                counts["hub/edgeclusters foreign"] += 1
            else:
                counts["hub/edgeclusters"] += 1
            if foreign:
                foreign_last.add(name)
            else:
                foreign_last.discard(name)
        return counts

    def own_changes(self, changes: dict[str, int]) -> int:
        return sum(v for k, v in changes.items() if not k.endswith((" heartbeat", " foreign")))

    def routerconfig_phases(self, since: float, limit: int = 8) -> list[str]:
        """What each RouterConfig status change after `since` said: cluster phases and messages."""
        out = []
        for at, _, obj in self.watches["hub/routerconfigs"].history:
            if at > since and len(out) < limit:
                clusters = (obj.get("status") or {}).get("clusters", [])
                phases = Counter(f"{c.get('phase')}: {(c.get('message') or '')[:60]}" for c in clusters)
                out.append(f"{obj['metadata']['name']}: {dict(phases.most_common(3))}")
        return out

    def event_reasons(self, since: float) -> dict[str, int]:
        reasons: Counter[str] = Counter()
        for at, _, obj in self.watches["hub/events"].history:
            if at > since:
                reasons[f"{obj.get('reason')}: {str(obj.get('message', ''))[:90]}"] += 1
        return dict(reasons.most_common(6))

    def change_samples(self, since: float, limit: int = 10) -> list[str]:
        samples = []
        for name, watch in self.watches.items():
            mine = f"/bf-{self.run}-" if name.endswith("/namespaces") else ""
            for at, kind, key, rv in watch.log:
                if at > since and mine in key and len(samples) < limit:
                    samples.append(f"{name} {kind} {key} rv={rv}")
        return samples

    def edge_objects(self) -> int:
        """Edge objects of this run (Deployments, Services, Secrets, ServiceAccounts)."""
        return sum(
            len(w.objects)
            for n, w in self.watches.items()
            if not n.startswith("hub/") and not n.endswith("/namespaces")
        )

    def edgecluster_writes(self, since: float, limit: int = 6) -> list[dict[str, Any]]:
        """What the EdgeCluster changes after `since` were: the status each one left, with its manager."""
        out = []
        for at, kind, obj in self.watches["hub/edgeclusters"].history:
            if at > since and len(out) < limit:
                managers = [
                    {"manager": m.get("manager"), "operation": m.get("operation"), "time": m.get("time")}
                    for m in obj.get("metadata", {}).get("managedFields", [])
                ]
                out.append(
                    {
                        "kind": kind,
                        "name": obj["metadata"]["name"],
                        "status": obj.get("status"),
                        "managers": managers,
                    }
                )
        return out

    def ready_count(self) -> int:
        rcs = self.watches["hub/routerconfigs"].objects.values()
        return sum(1 for rc in rcs if ready(rc, self.size))

    async def wait_converged(self, started: float, timeout: float) -> float | None:
        watch = self.watches["hub/routerconfigs"]
        deadline = started + timeout
        first_ready: float | None = None
        last_print = 0.0
        progress, progress_at = (-1, -1), started
        while time.monotonic() < deadline:
            watch.changed.clear()
            n = self.ready_count()
            now = time.monotonic()
            if (n, self.edge_objects()) != progress:
                progress, progress_at = (n, self.edge_objects()), now
            elif now - progress_at > self.args.stall_seconds:
                print(f"  no progress for {self.args.stall_seconds:.0f} s: giving up", flush=True)
                return None
            if n and first_ready is None:
                first_ready = now - started
            if n == self.args.routerconfigs:
                return now - started
            if now - last_print > 10:
                last_print = now
                if self.replicas is not None:
                    self.waiting.append(f"{now - started:.0f}s {n} Ready: {self.not_ready_reasons()}")
                print(
                    f"  {now - started:6.1f}s: {n}/{self.args.routerconfigs} RouterConfigs Ready, "
                    f"{self.edge_objects()} edge objects, operator RSS {self.rss_mib()} MiB, "
                    f"load1 {loadavg()[0]}",
                    flush=True,
                )
            await watch.wait_changed(1.0)
        return None

    def not_ready_reasons(self) -> dict[str, int]:
        """Why clusters are not Ready, over every RouterConfig (for a run that did not converge)."""
        reasons: Counter[str] = Counter()
        for rc in self.watches["hub/routerconfigs"].objects.values():
            for c in (rc.get("status") or {}).get("clusters", []):
                if c.get("phase") != "Ready":
                    reasons[f"{c.get('phase')}: {(c.get('message') or '')[:120]}"] += 1
        return dict(reasons.most_common(8))

    def resumed(self, count: int) -> bool:
        log = self.operator.log_path.read_text(errors="replace")
        since = log.rsplit(f"===== start {self.operator.starts} =====", 1)[-1]
        return since.count("Resuming is processed") >= count


class Baseline:
    """The operator's edge objects for one size, server-side applied by a bare asyncio loop.

    What the apiservers cost for the work edgeroll does, measured in the same run (module docstring).
    """

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.settings: OperatorSettings = settings_from_env(operator_env(fleet.lab, fleet.prefix))
        self.expected: dict[tuple[str, str], str] = {}  # (edge, "namespace/name") of a Deployment -> digest
        self.pending: set[tuple[str, str]] = set()
        self.watches: dict[str, KubeWatch] = {}
        self.cursor: dict[str, int] = {}
        self.requests = 0
        self.retries = 0

    def params(self, rc: dict[str, Any], config: dict[str, Any]) -> list[EdgeCacheParams]:
        """What the operator's `_params` gives this RouterConfig in each EdgeCluster on a cold start."""
        meta, spec = rc["metadata"], RouterConfigSpec.model_validate(rc["spec"])
        settings, signing_key = self.settings, SIGNING_KEY.encode()
        revision = make_revision(ConfigFormat(spec.format), config)  # no overlays: one revision
        key = revision_key(settings.s3.prefix, meta["namespace"], meta["name"], revision.digest)
        edge = settings.edge_s3
        s3 = EdgeS3(
            settings.s3.bucket, edge.endpoint, edge.region, edge.access_key_id, edge.secret_access_key
        )
        cosmo = spec.cosmo
        return [
            EdgeCacheParams(
                rc_namespace=meta["namespace"],
                rc_name=meta["name"],
                rc_uid=meta["uid"],
                cluster=cluster,
                namespace=cluster,  # spec.namespace of the EdgeCluster
                digest=revision.digest,
                key=key,
                signature=sign(signing_key, revision.body),
                signing_key=signing_key,
                s3=s3,
                image=spec.cache.image or settings.cache_image,
                replicas=spec.cache.replicas,
                port=spec.cache.port,
                resources=spec.cache.resources,
                cosmo_organization_id=cosmo.organization_id if cosmo else None,
                cosmo_federated_graph_id=cosmo.federated_graph_id if cosmo else None,
                public_read=spec.cache.public_read,
            )
            for cluster in self.fleet.clusters
        ]

    def pairs(self) -> dict[str, list[list[dict[str, Any]]]]:
        """EdgeCluster -> the manifests of each of its pairs, in `edge_manifests` order."""
        fleet = self.fleet
        out: dict[str, list[list[dict[str, Any]]]] = {c: [] for c in fleet.clusters}
        for rc, config in zip(fleet.routerconfigs(), fleet.configs, strict=True):
            for p in self.params(rc, config):
                out[p.cluster].append(edge_manifests(p))
                self.expected[(fleet.where[p.cluster], f"{p.namespace}/{p.name}")] = p.digest
        self.pending = set(self.expected)
        return out

    async def apply(self, client: KubeClient, manifest: dict[str, Any]) -> None:
        for attempt in range(1, BASELINE_ATTEMPTS + 1):
            try:
                await client.apply(manifest)
                self.requests += 1
                return
            except (ClusterUnreachable, KubeApiError) as exc:
                status = exc.status if isinstance(exc, KubeApiError) else 0
                if attempt == BASELINE_ATTEMPTS or (status and status not in RETRY_STATUSES):
                    raise
                self.retries += 1
                await asyncio.sleep(min(2.0 ** (attempt - 1), 10.0))

    async def apply_cluster(
        self, client: KubeClient, cluster: str, pairs: list[list[dict[str, Any]]]
    ) -> None:
        """The namespace, then every pair at once, each in order: what the operator's 20 reconciles
        sharing this cluster's client write on a cold start."""

        async def pair(manifests: list[dict[str, Any]]) -> None:
            for manifest in manifests:
                await self.apply(client, manifest)

        await self.apply(client, namespace_manifest(cluster))
        await asyncio.gather(*(pair(m) for m in pairs))

    def advance(self) -> float | None:
        """Take the watch events since the last call; the time of the event that made the last
        Deployment Ready, once none is pending."""
        last = None
        for edge, watch in self.watches.items():
            for at, _, key, _ in watch.log[self.cursor[edge] :]:
                digest, obj = self.expected.get((edge, key)), watch.objects.get(key)
                if digest is None or obj is None or (edge, key) not in self.pending:
                    continue
                if phase_for(read_health(obj), digest)[0] is ClusterPhase.READY:
                    self.pending.discard((edge, key))
                    last = at
            self.cursor[edge] = len(watch.log)
        return last if not self.pending else None

    async def wait_ready(
        self, applying: asyncio.Future[Any], started: float, args: argparse.Namespace
    ) -> float:
        """Seconds from `started` until every Deployment is Ready; raises when the applies failed,
        on the timeout or after `--stall-seconds` without progress."""
        deadline, last_print = started + args.converge_timeout, started
        progress, progress_at = len(self.pending), started
        total = len(self.expected)
        while True:
            for watch in self.watches.values():
                watch.changed.clear()
            done_at = self.advance()
            if done_at is not None:
                return done_at - started
            if applying.done() and applying.exception() is not None:
                raise RuntimeError(f"baseline apply failed: {applying.exception()!r}")
            now = time.monotonic()
            if len(self.pending) != progress:
                progress, progress_at = len(self.pending), now
            if now > deadline or now - progress_at > args.stall_seconds:
                raise TimeoutError(f"baseline: {len(self.pending)}/{total} Deployments not Ready")
            if now - last_print > 10:
                last_print = now
                print(
                    f"  baseline {now - started:6.1f}s: {total - len(self.pending)}/{total} Deployments "
                    f"Ready, {self.requests} applies, load1 {loadavg()[0]}",
                    flush=True,
                )
            waits = [asyncio.ensure_future(w.changed.wait()) for w in self.watches.values()]
            await asyncio.wait(waits, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                waiting.cancel()

    async def clients(self) -> dict[str, KubeClient]:
        """One client per EdgeCluster, as the operator's registry makes them (one per kubeconfig Secret)."""
        fleet, timeout = self.fleet, self.settings.edge_timeout_seconds
        parsed = {edge: yaml.safe_load(text) for edge, text in fleet.kubeconfig_texts.items()}
        return {
            c: await KubeClient.from_kubeconfig_dict(parsed[fleet.where[c]], timeout, c, EDGE_CONNECTIONS)
            for c in fleet.clusters
        }

    async def measure(self, args: argparse.Namespace) -> dict[str, Any]:
        fleet, setup_from = self.fleet, time.monotonic()
        pairs = self.pairs()
        selector = {"labelSelector": f"{LABEL_RC_NAMESPACE}={label_value(fleet.ns)}"}
        for edge in fleet.edges:
            self.watches[edge] = KubeWatch(fleet.lab.kubeconfig(edge), EDGE_KINDS["deployments"], selector)
        self.cursor = dict.fromkeys(fleet.edges, 0)
        clients: dict[str, KubeClient] = {}
        tasks: list[asyncio.Task[None]] = []
        result: dict[str, Any] = {}
        try:
            clients = await self.clients()
            await asyncio.gather(*(w.start() for w in self.watches.values()))
            result["baseline_setup_s"] = round(time.monotonic() - setup_from, 2)
            result["baseline_load_before"] = loadavg()
            started = time.monotonic()  # the clock: from the first request to the last Deployment Ready
            tasks = [asyncio.create_task(self.apply_cluster(clients[c], c, pairs[c])) for c in fleet.clusters]
            elapsed = await self.wait_ready(asyncio.gather(*tasks), started, args)
        finally:
            # Each task, not the gather: a gather that failed is done while its other tasks still run,
            # and they would write on (through sessions they reopen) into the operator's measurement.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for client in clients.values():
                await client.close()
            for watch in self.watches.values():
                await watch.stop()
        result.update(
            baseline_s=round(elapsed, 2),
            baseline_load_after=loadavg(),
            baseline_applies=self.requests,
            baseline_retries=self.retries,
            baseline_deployments=len(self.expected),
        )
        return result

    async def clean(self) -> float:
        """Delete the baseline's edge namespaces and wait until they are gone: the operator starts cold."""
        started = time.monotonic()
        self.fleet.delete_edge_namespaces()
        if not await asyncio.to_thread(self.fleet.edge_namespaces_gone, 600):
            raise RuntimeError("the baseline's edge namespaces were not gone after 600 s")
        return round(time.monotonic() - started, 1)


async def measure_converge(fleet: Fleet, args: argparse.Namespace, result: dict[str, Any]) -> bool:
    """Cold start the operator and time it to every RouterConfig Ready; True when it converged."""
    await fleet.start_watches()
    load_before = loadavg()
    started = time.monotonic()
    for operator in fleet.operators:  # replicas: all at once, as a Deployment's pods come up
        operator.start(wait_live=False)
    converge = await fleet.wait_converged(started, args.converge_timeout)
    size = fleet.size
    result.update(
        converge_s=None if converge is None else round(converge, 2),
        converged=converge is not None,
        cost_per_cluster_s=None if converge is None else round(converge / size, 3),
        ready_routerconfigs=fleet.ready_count(),
        edge_objects=fleet.edge_objects(),
        rss_mib=round(sum(fleet.peak_rss_mib()), 1),  # one operator: its own; replicas: the sum
        cpu_s=round(sum(fleet.cpu_seconds()), 1),
        load_before=load_before,
        load_at_converge=loadavg(),
    )
    baseline = result.get("baseline_s")
    if converge is not None and baseline:
        result["ratio"] = round(converge / baseline, 3)
    if fleet.replicas is not None:
        result.update(
            replicas=fleet.replicas,
            shards=fleet.shards,
            rss_mib_per_process=fleet.peak_rss_mib(),
            cpu_s_per_process=fleet.cpu_seconds(),
            **fleet.owners(started),
        )
    print(
        f"  converged: {result['converge_s']} s (baseline {baseline} s, ratio {result.get('ratio')}), "
        f"peak RSS {result['rss_mib']} MiB, CPU {result['cpu_s']} s, {result['edge_objects']} edge objects",
        flush=True,
    )
    if converge is None:
        result["not_ready_reasons"] = fleet.not_ready_reasons()
        logs = "\n".join(operator.tail(20) for operator in fleet.operators)
        print(f"  not converged: {result['not_ready_reasons']}\n  operator log:\n{logs}")
    return converge is not None


async def measure_idle(fleet: Fleet, args: argparse.Namespace, result: dict[str, Any]) -> float:
    """A full resync of every RouterConfig with nothing changed: nothing should be written."""
    lab = fleet.lab
    await asyncio.sleep(10)  # let in-flight status patches of the last reconciles land first
    window = args.resync_seconds + 15
    before_metrics = {c: await asyncio.to_thread(write_requests, lab, c) for c in ["hub", *fleet.edges]}
    idle_from = time.monotonic()
    print(f"  idle window: {window:.0f} s (a full resync of every RouterConfig) ...", flush=True)
    await asyncio.sleep(window)
    idle_to = time.monotonic()
    after_metrics = {c: await asyncio.to_thread(write_requests, lab, c) for c in ["hub", *fleet.edges]}
    idle = fleet.changes_since(idle_from)
    result["idle_writes"] = fleet.own_changes(idle)
    result["idle_writes_by_watch"] = idle
    result["idle_write_samples"] = fleet.change_samples(idle_from)
    result["idle_edgecluster_writes"] = fleet.edgecluster_writes(idle_from)
    result["idle_window_s"] = round(idle_to - idle_from, 1)
    result["idle_apiserver_write_requests_all_clients"] = {
        c: dict(+(after_metrics[c] - before_metrics[c])) for c in after_metrics
    }
    result["rss_mib_after_idle"] = fleet.operator.peak_rss_mib()
    print(f"  idle writes: {result['idle_writes']} {idle or ''}", flush=True)
    return idle_from


async def measure_restart(
    fleet: Fleet, args: argparse.Namespace, result: dict[str, Any], idle_from: float
) -> None:
    """Restart with nothing changed: no S3 PUT, no write."""
    s3_before = s3_listing(fleet.lab, fleet.prefix)
    fleet.operator.stop()
    restarted = time.monotonic()
    fleet.operator.start(wait_live=False)
    await asyncio.to_thread(
        wait_for,
        lambda: fleet.resumed(args.routerconfigs),
        args.converge_timeout,
        0.5,
        "every RouterConfig resumed",
    )
    resumed = time.monotonic() - restarted
    await asyncio.sleep(10)  # anything the resume reconciles would write has landed by now
    s3_after = s3_listing(fleet.lab, fleet.prefix)
    changed = [k for k, v in s3_after.items() if s3_before.get(k) != v]
    result["restart_s3_puts"] = len(changed)
    result["restart_s3_changed_keys"] = changed[:10]
    result["s3_objects"] = len(s3_after)
    result["restart_resumed_s"] = round(resumed, 2)
    restart_writes = fleet.changes_since(restarted)
    result["restart_writes"] = fleet.own_changes(restart_writes)
    result["restart_event_reasons"] = fleet.event_reasons(restarted)
    result["restart_routerconfig_changes"] = fleet.routerconfig_phases(restarted)
    result["idle_event_reasons"] = fleet.event_reasons(idle_from)
    result["restart_writes_by_watch"] = restart_writes
    result["restart_write_samples"] = fleet.change_samples(restarted)
    result["restart_edgecluster_writes"] = fleet.edgecluster_writes(restarted)
    print(
        f"  restart: every RouterConfig resumed after {resumed:.1f} s; S3 PUTs {len(changed)} "
        f"({len(s3_after)} objects); writes {result['restart_writes']} {restart_writes or ''}",
        flush=True,
    )


async def measure_baseline(fleet: Fleet, args: argparse.Namespace, result: dict[str, Any]) -> None:
    """The same-run baseline, then its cleanup. A baseline that fails is recorded (no ratio) and the
    operator is measured all the same; a cleanup that fails ends the size (no cold start possible)."""
    baseline = Baseline(fleet)
    print(f"  baseline: a bare loop applies the same {fleet.size * args.routerconfigs} pairs ...", flush=True)
    try:
        result.update(await baseline.measure(args))
        result["baseline_per_cluster_s"] = round(result["baseline_s"] / fleet.size, 3)
        print(
            f"  baseline: {result['baseline_s']} s, {baseline.requests} applies, {baseline.retries} retries",
            flush=True,
        )
    except (TimeoutError, RuntimeError, ClusterUnreachable, KubeApiError) as exc:
        result["baseline_error"] = str(exc)
        print(f"  baseline failed: {exc}", flush=True)
    finally:
        result["baseline_cleanup_s"] = await baseline.clean()


async def measure_size(
    lab: Lab, size: int, args: argparse.Namespace, work: Path, checks: bool, replicas: int | None = None
) -> dict[str, Any]:
    fleet = Fleet(lab, size, args, work, replicas)
    scale = "" if replicas is None else f", {replicas} replica(s) with --shards {fleet.shards}"
    print(
        f"size {size}: run {fleet.run}, hub namespace {fleet.ns}, {args.routerconfigs} RouterConfigs "
        f"x {size} EdgeClusters over {', '.join(fleet.edges)}{scale}",
        flush=True,
    )
    result: dict[str, Any] = {"clusters": size, "routerconfigs": args.routerconfigs, "run": fleet.run}
    try:
        fleet.create()
        if args.baseline:
            await measure_baseline(fleet, args, result)
        if await measure_converge(fleet, args, result) and checks:
            idle_from = await measure_idle(fleet, args, result)
            await measure_restart(fleet, args, result, idle_from)
        return result
    finally:
        await fleet.stop_watches()
        fleet.destroy()
        result["cleanup_s"] = round(await asyncio.to_thread(fleet.wait_gone, 600), 1)


def check_service_cidr(args: argparse.Namespace, sizes: list[int], edges: int) -> None:
    """The run's ServiceCIDR must hold the largest size's Services on one edge apiserver (round-robin,
    so ceil(N / edges) clusters x RouterConfigs); the baseline's are gone before the operator's exist."""
    network = ipaddress.ip_network(args.service_cidr, strict=True)
    usable = network.num_addresses - 2  # the network and broadcast addresses are never allocated
    needed = math.ceil(max(sizes) / edges) * args.routerconfigs
    if needed > usable:
        prefix = network.max_prefixlen - math.ceil(math.log2(needed + 2))
        raise SystemExit(
            f"--service-cidr {network} holds {usable} Services per edge apiserver; {max(sizes)} clusters "
            f"over {edges} apiservers need {needed}: give a /{prefix} or wider"
        )


def outcome(curve: list[dict[str, Any]]) -> dict[str, Any]:
    """Each goal of issue 13 met (True), missed (False), or not measured (None)."""
    at_100 = next((p for p in curve if p["clusters"] == 100), None)
    costs = [p.get("cost_per_cluster_s") for p in curve]
    ratios = [p.get("ratio") for p in curve]
    rss = [p.get("rss_mib") for p in curve]
    top = curve[-1]
    return {
        "converge_s_at_100": None
        if at_100 is None or at_100.get("converge_s") is None
        else at_100["converge_s"] <= 60,
        "ratio": None if None in ratios else all(r <= 2 for r in ratios),
        "rss_mib": None if None in rss else all(r <= 250 for r in rss),
        "cost_per_cluster_not_rising": None
        if None in costs or len(costs) < 2
        else all(b <= a * (1 + COST_TOLERANCE) for a, b in itertools.pairwise(costs)),
        "idle_writes": None if top.get("idle_writes") is None else top["idle_writes"] == 0,
        "restart_s3_puts": None if top.get("restart_s3_puts") is None else top["restart_s3_puts"] == 0,
    }


def summary(curve: list[dict[str, Any]], args: argparse.Namespace, machine: dict[str, Any]) -> dict[str, Any]:
    top = curve[-1]
    at_100 = next((p for p in curve if p["clusters"] == 100), {})
    return {
        "clusters": top["clusters"],
        "routerconfigs": top["routerconfigs"],
        "converge_s": top.get("converge_s"),
        "baseline_s": top.get("baseline_s"),
        "ratio": top.get("ratio"),
        "converge_s_at_100": at_100.get("converge_s"),
        "cost_per_cluster_s": {p["clusters"]: p.get("cost_per_cluster_s") for p in curve},
        "rss_mib": top.get("rss_mib"),
        "idle_writes": top.get("idle_writes"),
        "restart_s3_puts": top.get("restart_s3_puts"),
        "goals": {
            "converge_s": 60,  # at 100 clusters
            "ratio": 2,
            "rss_mib": 250,
            "cost_per_cluster": f"not rising from one size to the next (within {COST_TOLERANCE:.0%})",
            "idle_writes": 0,
            "restart_s3_puts": 0,
        },
        "outcome": outcome(curve),
        "curve": curve,
        "config_bytes": args.config_bytes,
        "operator": {"args": "--namespace <run>", "defaults": "progress 2 s, resync 60 s, probe 15 s"},
        "baseline": (
            "bare asyncio loop, one KubeClient per EdgeCluster (EDGE_CONNECTIONS connections), "
            "server-side apply of the operator's namespace + edge_manifests(), timed to every "
            "Deployment Ready; run before the operator, its namespaces deleted in between"
        )
        if args.baseline
        else None,
        "machine": machine,
        "loadavg_at_end": loadavg(),
    }


def diagnostic(args: argparse.Namespace) -> bool:
    return bool(args.profile or args.tracemalloc)


def diagnostic_python_args(args: argparse.Namespace) -> list[str]:
    """What runs the operator's module when the run is a diagnosis rather than a result."""
    if args.profile:
        return ["-m", "cProfile", "-o", str(args.profile)]
    if args.tracemalloc:
        return [str(Path(__file__).with_name("memtrace.py")), "--out", str(args.tracemalloc), "--keep"]
    return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", help="EdgeCluster counts, comma-separated (25,50,100; with --replicas one size, 50)"
    )
    parser.add_argument("--routerconfigs", type=int, default=20)
    parser.add_argument("--config-bytes", type=int, default=50_000)
    parser.add_argument("--converge-timeout", type=float, default=900)
    parser.add_argument("--resync-seconds", type=float, default=60, help="the operator's (default) resync")
    parser.add_argument(
        "--stall-seconds", type=float, default=180, help="give up after this long without progress"
    )
    parser.add_argument("--profile", type=Path, help="run the operator under cProfile, stats to this file")
    parser.add_argument(
        "--tracemalloc",
        type=Path,
        help="run the operator under bench/memtrace.py, its snapshot nearest the peak RSS to this file",
    )
    parser.add_argument("--service-cidr", default="10.200.0.0/20", help="extra Service range for the run")
    parser.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip the same-run baseline (a bare loop applying the same edge objects)",
    )
    parser.add_argument(
        "--replicas",
        help="replica counts, comma-separated (e.g. 1,2,4): the cold start at one size with that many "
        f"operator processes, results in bench/results/{REPLICAS_NAME}.json",
    )
    parser.add_argument(
        "--shards", type=int, help="with --replicas: every replica's --shards (default: the count)"
    )
    parser.add_argument("--log-dir", type=Path, help="with --replicas: keep the operator logs here")
    args = parser.parse_args()
    exit_on_sigterm()
    if args.replicas:
        return main_replicas(args)
    sizes = sorted(int(s) for s in (args.sizes or "25,50,100").split(","))

    machine = machine_info()
    lab = up().lab
    check_service_cidr(args, sizes, len(lab.edge_kubeconfigs))
    curve = []
    with tempfile.TemporaryDirectory(prefix="edgeroll-bench-fanout-") as tmp:
        for size in sizes:
            point = asyncio.run(
                measure_size(lab, size, args, Path(tmp), checks=size == max(sizes) and not diagnostic(args))
            )
            curve.append(point)
            if not point.get("converged"):
                log = Path(tmp) / f"operator-{size}.log"
                keep = REPO / "bench" / "results" / f"fanout-operator-{size}.log"
                keep.write_text(log.read_text(errors="replace")[-200_000:])
                print(f"kept the operator log in {keep.relative_to(REPO)}")
    data = summary(curve, args, machine)
    if diagnostic(args):  # a profiled or traced operator is slower: its figures are not results
        print(f"profile in {args.profile or args.tracemalloc}; bench/results/{NAME}.json left as it was")
    else:
        path = write_result(NAME, data)
        print(f"wrote {path.relative_to(REPO)}")
    report(curve, data)
    return 0


def main_replicas(args: argparse.Namespace) -> int:
    """`--replicas 1,2,4`: one size, cold start with R replica processes sharing `--shards` (R by default)."""
    counts = [int(r) for r in args.replicas.split(",")]
    sizes = [int(s) for s in (args.sizes or "50").split(",")]
    if len(sizes) != 1:
        raise SystemExit("--replicas measures one size: give one --sizes value")
    if diagnostic(args):
        raise SystemExit("--profile and --tracemalloc run one operator: not with --replicas")
    size = sizes[0]
    machine = machine_info()
    lab = up().lab
    check_service_cidr(args, sizes, len(lab.edge_kubeconfigs))
    points = []
    with tempfile.TemporaryDirectory(prefix="edgeroll-bench-fanout-") as tmp:
        work = Path(tmp)
        if args.log_dir is not None:
            work = args.log_dir
            work.mkdir(parents=True, exist_ok=True)
        for count in counts:
            point = asyncio.run(measure_size(lab, size, args, work, checks=False, replicas=count))
            points.append(point)
            if not point.get("converged"):
                for log in sorted(work.glob(f"operator-{size}-r{count}-*.log")):
                    keep = RESULTS_DIR / f"fanout-replicas-{log.name}"
                    keep.write_text(log.read_text(errors="replace")[-200_000:])
                    print(f"kept the operator log in {keep.relative_to(REPO)}")
    data = summary_replicas(points, args, machine)
    path = write_result(REPLICAS_NAME, data)
    print(f"wrote {path.relative_to(REPO)}")
    report_replicas(points, data)
    return 0


def summary_replicas(
    points: list[dict[str, Any]], args: argparse.Namespace, machine: dict[str, Any]
) -> dict[str, Any]:
    one = next((p.get("converge_s") for p in points if p.get("replicas") == 1), None)
    return {
        "clusters": points[0]["clusters"],
        "routerconfigs": args.routerconfigs,
        "replicas": [p.get("replicas") for p in points],
        "shards": [p.get("shards") for p in points],
        "points": points,
        "speedup_vs_1_replica": {
            p["replicas"]: round(one / p["converge_s"], 3) for p in points if one and p.get("converge_s")
        },
        "measured": (
            "per replica count, from nothing with a run of its own: the same-run baseline, then R "
            "operator processes started at once (cold), timed to every RouterConfig Ready; rss_mib and "
            "cpu_s are sums over the processes (each one's own peak, VmHWM: the peaks need not coincide)"
        ),
        "config_bytes": args.config_bytes,
        "operator": {
            "args": "--namespace <run> --shards <shards>",
            "defaults": "progress 2 s, resync 60 s, probe 15 s; leases 15/10/2 s",
        },
        "baseline": None if not args.baseline else "as bench-fanout's (bench/fanout.py docstring)",
        "machine": machine,
        "loadavg_at_end": loadavg(),
    }


def report_replicas(points: list[dict[str, Any]], data: dict[str, Any]) -> None:
    figures: dict[str, float | int | str] = {
        "clusters": data["clusters"],
        "routerconfigs": data["routerconfigs"],
        "replicas": ",".join(str(r) for r in data["replicas"]),
    }
    for p in points:
        r = p.get("replicas")
        print(
            f"{r} replica(s), --shards {p.get('shards')}: converge {p.get('converge_s')} s, baseline "
            f"{p.get('baseline_s')} s, ratio {p.get('ratio')}, peak RSS {p.get('rss_mib')} MiB in all "
            f"({p.get('rss_mib_per_process')}), CPU {p.get('cpu_s')} s ({p.get('cpu_s_per_process')}); "
            f"RouterConfigs by replica {p.get('routerconfigs_by_replica')}, lease transitions "
            f"{p.get('lease_transitions')}"
        )
        figures[f"converge_s_r{r}"] = str(p.get("converge_s"))
        figures[f"ratio_r{r}"] = str(p.get("ratio"))
        figures[f"rss_mib_r{r}"] = str(p.get("rss_mib"))
    print(bench_line(REPLICAS_NAME, figures))


def report(curve: list[dict[str, Any]], data: dict[str, Any]) -> None:
    for p in curve:
        print(
            f"{p['clusters']:4d} clusters: converge {p.get('converge_s')} s, "
            f"baseline {p.get('baseline_s')} s, "
            f"ratio {p.get('ratio')}, {p.get('cost_per_cluster_s')} s/cluster, "
            f"peak RSS {p.get('rss_mib')} MiB, CPU {p.get('cpu_s')} s"
        )
    print(f"goals met: {data['outcome']}")
    print(
        bench_line(
            NAME,
            {
                "clusters": data["clusters"],
                "routerconfigs": data["routerconfigs"],
                "converge_s": data["converge_s"],
                "baseline_s": data["baseline_s"],
                "ratio": data["ratio"],
                "rss_mib": data["rss_mib"],
                "idle_writes": data["idle_writes"],
                "restart_s3_puts": data["restart_s3_puts"],
            },
        )
    )


if __name__ == "__main__":
    sys.exit(main())
