"""Several operator replicas on the lab: kill -9 the holder of a busy shard again and again, a fourth
replica joins midway, and 20 progressive rollouts still converge in wave order with nothing lost.

Three replica processes share four shards (fast lease timings: 6 s / 4 s / 1 s). Two watches record,
from the apiserver's side, every change of the shard Leases and of the RouterConfigs: each status
write carries status.owner (shard, replica, term = the lease's leaseTransitions when the replica took
it). A write by a replica that did not hold the shard under that term, or a late write by a deposed
owner landing after its successor's (a lower term after a higher one), fails the test.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rollout_e2e_kit import (
    RolloutLab,
    add_targets,
    assert_waves_in_order,
    cosmo_variant,
    digest_of,
    wait_targets_ready,
)
from tests.e2e.operator.operator_e2e_kit import (
    OperatorE2E,
    OperatorProcess,
    _free_port,
    _teardown,
    cosmo_config,
    kubeconfig_text,
    operator_env,
    prepare_hub,
)
from tests.polling import wait_until

from edgeroll.lab import Lab

# Not on kind (docs/e2e.md): the chart's operator pods cannot be killed by pid, started as a fourth
# replica on cue, or given their own lease timings without a release of their own, and 20
# RouterConfigs on six targets are 120 edge cache pods per revision on four single-node kind clusters.
# test_kind_faults.py kills the operator pod that owns a rollout on kind; test_rollout_restarts.py too.
LAB_ONLY = (
    "kills operator processes by pid and starts more on cue; on kind, 20 RouterConfigs x 6 targets "
    "would be 120 cache pods per revision"
)
pytestmark = [pytest.mark.e2e, pytest.mark.lab_only(LAB_ONLY)]

SHARDS = 4
SOAK = 2
POLICY = {
    "strategy": "Progressive",
    "canary": 1,
    "batchSize": 3,
    "soakSeconds": SOAK,
    "progressDeadlineSeconds": 120,
}
LEASES = ["--lease-duration-seconds", "6", "--renew-deadline-seconds", "4", "--retry-period-seconds", "1"]
CONFIGS = [f"ha-{i:02d}" for i in range(20)]


class Watch:
    """`kubectl get --watch -o json --output-watch-events`, every event kept in arrival order."""

    def __init__(self, kubectl: list[str]) -> None:
        self.events: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(
            [*kubectl, "--watch", "-o", "json", "--output-watch-events"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        decoder, pending = json.JSONDecoder(), ""
        for line in self.proc.stdout:
            pending += line
            with contextlib.suppress(json.JSONDecodeError):
                event, end = decoder.raw_decode(pending.lstrip())
                self.events.append(event)
                pending = pending.lstrip()[end:]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@dataclass
class Replicas:
    lab: Lab
    env: dict[str, str]
    args: list[str]
    logs: Path
    running: list[OperatorProcess] = field(default_factory=list)
    killed: list[OperatorProcess] = field(default_factory=list)

    def start(self) -> OperatorProcess:
        index = len(self.running) + len(self.killed)
        port = _free_port()
        args = [*self.args, "--liveness", f"http://127.0.0.1:{port}/healthz"]
        replica = OperatorProcess(self.env, args, self.logs / f"replica-{index}.log", port)
        replica.start()
        self.running.append(replica)
        return replica

    def by_pid(self, pid: int) -> OperatorProcess | None:
        return next((r for r in self.running if r.proc is not None and r.proc.pid == pid), None)

    def stop(self) -> None:
        for replica in self.running:
            replica.stop()


@pytest.fixture(scope="module")
def ha(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RolloutLab, Replicas]]:
    run = uuid.uuid4().hex[:6]
    ns = f"e2e-ha-{run}"
    prepare_hub(lab, ns)
    logs = tmp_path_factory.mktemp("ha-operators")
    args = ["--namespace", ns, "--shards", str(SHARDS), *LEASES, "--resync-seconds", "10"]
    args += ["--progress-seconds", "1", "--probe-seconds", "2", "--edge-timeout-seconds", "3"]
    replicas = Replicas(lab, operator_env(lab, f"e2e-{run}"), args, logs)
    first = OperatorProcess(replicas.env, [], logs / "unused.log", 0)  # replaced below
    fleet = RolloutLab(OperatorE2E(lab, run, ns, f"e2e-{run}", {}, first), {})
    try:
        add_targets(fleet, lambda edge: kubeconfig_text(lab.edge_kubeconfigs[edge]), (ns, f"{ns}-b"))
        yield fleet, replicas
    finally:
        live = [r for r in replicas.running if r.proc is not None and r.proc.poll() is None]
        if live:
            fleet.e2e.operator = live[0]  # the teardown finalizes through a live replica
        _teardown(fleet.e2e)
        replicas.stop()
        for edge in lab.edge_kubeconfigs:
            lab.kubectl(edge, "delete", "namespace", f"{ns}-b", "--wait=false", check=False)
        sys.stderr.write(f"\noperator logs: {logs}\n")


def shard_holders(lab: Lab, ns: str) -> dict[int, str]:
    out = lab.kubectl("hub", "-n", ns, "get", "leases", "-l", "edgeroll.io/lease=shard", "-o", "json").stdout
    holders = {}
    for lease in json.loads(out)["items"]:
        holder = lease["spec"].get("holderIdentity") or ""
        holders[int(lease["metadata"]["name"].rsplit("-", 1)[1])] = holder
    return holders


def busiest_shard(fleet: RolloutLab, new: dict[str, str]) -> int | None:
    """The shard with the most rollouts of the new revisions still going."""
    out = fleet.e2e.hub("-n", fleet.e2e.ns, "get", "rtc", "-o", "json").stdout
    going: defaultdict[int, int] = defaultdict(int)
    for rc in json.loads(out)["items"]:
        status = rc.get("status") or {}
        rollout = status.get("rollout") or {}
        owner = status.get("owner")
        done = rollout.get("revision") == new[rc["metadata"]["name"]] and rollout.get("phase") == "Completed"
        if owner is not None and not done:
            going[int(owner["shard"])] += 1
    return max(going, key=lambda s: going[s]) if going else None


def check_writes(rc_events: list[dict[str, Any]], lease_events: list[dict[str, Any]]) -> int:
    """Every status write names a (replica, term) the shard's lease had, and no RouterConfig's term ever
    goes back: a deposed owner's write never lands after its successor's. Returns the writes checked."""
    held: defaultdict[int, set[tuple[str, int]]] = defaultdict(set)
    for event in lease_events:
        spec = event["object"]["spec"]
        if spec.get("holderIdentity"):
            shard = int(event["object"]["metadata"]["name"].rsplit("-", 1)[1])
            held[shard].add((spec["holderIdentity"], int(spec.get("leaseTransitions") or 0)))
    last_term: dict[str, int] = {}
    checked = 0
    for event in rc_events:
        name = event["object"]["metadata"]["name"]
        owner = (event["object"].get("status") or {}).get("owner")
        if owner is None or event["type"] == "DELETED":
            continue
        assert (owner["replica"], owner["term"]) in held[owner["shard"]], (name, owner, held[owner["shard"]])
        assert owner["term"] >= last_term.get(name, -1), (
            f"{name}: a write of term {owner['term']} after {last_term[name]}"
        )
        last_term[name] = owner["term"]
        checked += 1
    return checked


def test_kill9_of_busy_shard_holders_and_a_joining_replica_lose_nothing(
    ha: tuple[RolloutLab, Replicas],
) -> None:
    fleet, replicas = ha
    e2e, lab = fleet.e2e, fleet.e2e.lab
    kubectl = ["kubectl", "--kubeconfig", str(lab.kubeconfig("hub")), "-n", e2e.ns, "get"]
    leases = Watch([*kubectl, "leases", "-l", "edgeroll.io/lease=shard"])
    routerconfigs = Watch([*kubectl, "routerconfigs"])
    try:
        for _ in range(3):
            replicas.start()
        wait_targets_ready(fleet)
        wait_until(
            lambda: len(set(shard_holders(lab, e2e.ns).values()) - {""}) == 3,
            timeout=60,
            message="four shards spread over three replicas",
        )
        v1 = {name: cosmo_variant(cosmo_config(), f"{name}-v1") for name in CONFIGS}
        for name, config in v1.items():
            fleet.apply(name, config, POLICY)
        for name in CONFIGS:
            fleet.wait_phase(name, "Completed", digest_of(v1[name]), timeout=240)
        shards_used = {int(fleet.status(n)["owner"]["shard"]) for n in CONFIGS}
        assert len(shards_used) >= 3, shards_used  # the 20 RouterConfigs spread over the shards

        v2 = {name: cosmo_variant(cosmo_config(), f"{name}-v2") for name in CONFIGS}
        new = {name: digest_of(config) for name, config in v2.items()}
        for name, config in v2.items():
            fleet.apply(name, config, POLICY)
        kills = 0
        while kills < 6 and (shard := busiest_shard(fleet, new)) is not None:
            holder = shard_holders(lab, e2e.ns).get(shard, "")
            victim = replicas.by_pid(int(holder.rsplit("/", 1)[1])) if holder else None
            if victim is None:  # between holders: wait for the next one
                wait_until(lambda s=shard: shard_holders(lab, e2e.ns).get(s), timeout=30, message="a holder")  # type: ignore[misc]
                continue
            victim.kill9()
            replicas.running.remove(victim)
            replicas.killed.append(victim)
            kills += 1
            replicas.start()  # three replicas again
            if kills == 3:
                replicas.start()  # and a fourth joins midway
            wait_until(
                lambda s=shard, h=holder: shard_holders(lab, e2e.ns).get(s) not in ("", h),  # type: ignore[misc]
                timeout=30,
                message=f"shard {shard} taken over from {holder}",
            )
        assert kills >= 3, "the rollouts finished before the kills could interrupt them"

        for name in CONFIGS:
            status = fleet.wait_phase(name, "Completed", new[name], timeout=300)
            assert_waves_in_order(status["rollout"], SOAK)
            assert fleet.digests(name) == dict.fromkeys(fleet.names, new[name])  # no revision lost
            e2e.wait_ready(name)
        assert len(replicas.running) == 4
        pids = {r.proc.pid for r in replicas.running if r.proc is not None}

        def spread() -> bool:
            """Every shard held by a running replica, one each (4 shards, 4 replicas)."""
            holders = shard_holders(lab, e2e.ns)
            owners = [int(h.rsplit("/", 1)[1]) for h in holders.values() if h]
            return len(holders) == SHARDS and sorted(owners) == sorted(pids)

        wait_until(spread, timeout=60, message=lambda: f"shards spread: {shard_holders(lab, e2e.ns)}")
    finally:
        leases.stop()
        routerconfigs.stop()
    checked = check_writes(routerconfigs.events, leases.events)
    assert checked > len(CONFIGS) * 4, checked
