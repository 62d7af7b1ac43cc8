"""How many status writes a reconcile makes, and in which order with the edge writes (issue 13).

A pass whose actions write something puts the plan on record first (status.rollout), then acts, then
reports; a pass that writes nothing at the edges (a wake-up that only sees the Deployments turn
Available) writes its status once, after the actions, still conditioned on the resourceVersion.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest
from pipeline_fakes import COSMO, StatusStore, World, foreign_deployment

from edgeroll.api.edgecluster import DEFAULT_NAMESPACE as EDGE_NS
from edgeroll.api.routerconfig import OwnerStatus
from edgeroll.clusters.registry import EdgeClusterInfo
from edgeroll.sharding.assignment import Acting

pytestmark = pytest.mark.unit


def phase_of(status: Mapping[str, Any]) -> str:
    return str(status.get("phase"))


def stalled(status: Mapping[str, Any]) -> bool:
    return any(c["type"] == "Stalled" and c["status"] == "True" for c in status.get("conditions", []))


def since(w: World, mark: int) -> list[str]:
    return w.journal[mark:]


def statuses(entries: list[str]) -> list[str]:
    return [e for e in entries if e.startswith("status")]


async def test_a_wake_up_that_only_sees_readiness_writes_the_status_once() -> None:
    """The wake-up of issue 13. Its planned status was already the reported one (the report step found
    nothing to add), so it wrote once before this change too, in the plan step; it must stay one."""
    w = World()
    await w.reconcile()  # creates every edge cache: the plan on record, the applies, the report
    for edge in w.edges.values():
        edge.finish_rollouts()  # the Deployments turn Available: the shared watch wakes the loop
    mark, patches, writes = len(w.journal), w.statuses.patches, w.edge_writes()
    status = await w.reconcile(full=False)
    assert status.phase == "Ready"
    assert w.edge_writes() == writes
    assert w.statuses.patches == patches + 1, since(w, mark)  # not the plan, then the report
    # The one write carries what the plan's would have: status.rollout (Completed) and the phases.
    assert since(w, mark) == ["status.rollout"]
    assert w.statuses.status["rollout"]["phase"] == "Completed"
    assert {c["name"]: c["phase"] for c in w.statuses.status["clusters"]} == dict.fromkeys(w.edges, "Ready")
    assert w.statuses.history[-1] == w.statuses.status


async def test_a_stalled_rollout_whose_passes_write_nothing_at_the_edges_writes_no_status() -> None:
    """An edge object of another owner stalls a progressive rollout: every pass holds that cluster and
    writes nothing at the edges. The plan's status (no Stalled: the rollout is in flight) and the
    report's (Stalled, naming the owner) used to be written one after the other on every pass, so
    Stalled went and came back each time; now the pass writes the report alone, and nothing at all
    once it is on record."""
    w = World()
    w.spec["rollout"] = {"strategy": "Progressive", "canary": 1, "soakSeconds": 30}
    w.edges["edge-eu"].namespaces.add(EDGE_NS)
    w.edges["edge-eu"].put(foreign_deployment())
    assert (await w.reconcile()).phase == "Stalled"
    for edge in w.edges.values():
        edge.finish_rollouts()
    mark, patches, writes = len(w.statuses.history), w.statuses.patches, w.edge_writes()
    for _ in range(3):
        assert (await w.reconcile(full=False)).phase == "Stalled"
    assert w.statuses.patches <= patches + 1 and w.edge_writes() == writes
    assert all(phase_of(s) == "Stalled" and stalled(s) for s in w.statuses.history[mark:])
    patches = w.statuses.patches
    await w.reconcile(full=False)
    assert w.statuses.patches == patches  # steady: no write at all


async def test_a_removal_that_must_wait_writes_the_status_once() -> None:
    """A cluster leaves the targets while its apiserver is away: its removal waits, nothing is written
    at the edges, and the status says "removal pending" in one write (it was the cluster as it was, then
    the pending removal)."""
    w = World()
    await w.converge()
    w.edges["edge-us"].unreachable = True
    info = w.clusters["edge-us"]
    w.clusters["edge-us"] = EdgeClusterInfo(info.name, {"tier": "elsewhere"}, info.spec)
    patches, writes = w.statuses.patches, w.edge_writes()
    await w.reconcile(full=False)
    assert w.statuses.patches == patches + 1 and w.edge_writes() == writes
    us = next(c for c in w.statuses.status["clusters"] if c["name"] == "edge-us")
    assert us["phase"] == "Deleting" and us["message"].startswith("removal pending")


async def test_the_single_write_posts_the_plans_events_once_and_before_the_transitions() -> None:
    w = World()
    await w.reconcile()
    for edge in w.edges.values():
        edge.finish_rollouts()
    mark = len(w.events)
    await w.reconcile(full=False)
    reasons = [e.reason for e in w.events[mark:]]
    assert reasons.count("RolloutCompleted") == 1 and reasons.count("Ready") == 1
    assert reasons.index("RolloutCompleted") < reasons.index("Ready")


async def test_a_pass_that_writes_records_the_plan_first_then_acts_then_reports() -> None:
    w = World()
    await w.converge()
    w.update(config={**copy.deepcopy(COSMO), "version": "ignored", "extra": 1})
    mark, patches = len(w.journal), w.statuses.patches
    await w.reconcile()
    entries = since(w, mark)
    assert w.statuses.patches == patches + 2, entries
    assert entries[0] == "status.rollout", entries  # on record before any edge is written
    applies = [i for i, e in enumerate(entries) if ": apply " in e]
    assert applies and min(applies) > 0
    assert entries[-1].startswith("status") and max(applies) < len(entries) - 1  # the report, after


async def test_a_steady_resync_writes_nothing() -> None:
    w = World()
    await w.converge()
    patches, writes = w.statuses.patches, w.edge_writes()
    await w.reconcile()  # full
    await w.reconcile(full=False)
    assert (w.statuses.patches, w.edge_writes()) == (patches, writes)


async def test_the_single_write_is_still_conditioned_on_the_resource_version() -> None:
    """A deposed owner's readiness-only write is refused like any other: nothing it wrote lands."""
    w = World()
    calls = 0

    class Lease:
        def acting(self, namespace: str, name: str, labels: Mapping[str, str]) -> Acting | None:
            nonlocal calls
            calls += 1
            return Acting(OwnerStatus(shard=0, replica="pod-a/1", term=3)) if calls <= 4 else None

        def probes_here(self) -> bool:
            return True

        def depose(self, shard: int, term: int) -> None:
            self.deposed = (shard, term)

    lease = Lease()
    w.controller.ownership = lease
    await w.reconcile()  # pod-a's first pass: 2 calls to `acting`
    # pod-b took the shard over (term 4) and wrote its status; pod-a has not noticed yet
    taken = {**w.statuses.status, "owner": {"shard": 0, "replica": "pod-b/2", "term": 4}}
    w.statuses.status, w.statuses.version = taken, w.statuses.version + 1
    for edge in w.edges.values():
        edge.finish_rollouts()
    patches, writes, refused = w.statuses.patches, w.edge_writes(), w.statuses.refused
    result = await w.controller.reconcile(w.obj(), w.clusters, w.events.append, full=False)
    assert result is not None and result.transient
    assert w.statuses.refused == refused + 1  # tried once, on pod-a's last resourceVersion
    assert w.statuses.patches == patches and w.statuses.status == taken
    assert w.edge_writes() == writes
    assert lease.deposed == (0, 3)


class SlowStatus:
    """Status writes that take `seconds` each (a busy hub)."""

    def __init__(self, inner: StatusStore, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds

    async def patch_status(
        self, namespace: str, name: str, patch: Mapping[str, Any], resource_version: str | None = None
    ) -> str | None:
        await asyncio.sleep(self.seconds)
        return await self.inner.patch_status(namespace, name, patch, resource_version)

    async def read_status(self, namespace: str, name: str) -> tuple[dict[str, Any], str] | None:
        return await self.inner.read_status(namespace, name)


async def test_a_slow_plan_record_is_not_counted_against_the_edges_time() -> None:
    """The edge's bound (4 x edge timeout) covers the edge's calls, not the wait for the hub's write."""
    w = World()
    w.settings = dataclasses.replace(w.settings, edge_timeout_seconds=0.02)
    w.restart()
    w.controller.writer = SlowStatus(w.statuses, 0.2)
    status = await w.reconcile()
    assert {c.name: c.phase.value for c in status.clusters} == dict.fromkeys(w.edges, "Progressing")
    assert all(w.template_digest(e) is not None for e in w.edges)


async def test_a_drift_correction_in_a_readiness_wake_up_waits_for_the_plan_on_record() -> None:
    """Nothing in the plan says a write is coming (every action is the level-triggered ApplyRevision
    of a cluster already on its digest), yet the executor finds a hand edit to put back: that write
    still goes out only after the plan is on record."""
    w = World()
    await w.reconcile()
    w.edges["edge-eu"].deployments()[0]["spec"]["replicas"] = 5  # a hand edit
    for edge in w.edges.values():
        edge.finish_rollouts()
    mark = len(w.journal)
    status = await w.reconcile(full=False)
    entries = since(w, mark)
    assert entries[0] == "status.rollout" and "edge-eu: apply Deployment" in entries, entries
    assert status.rollout is not None and status.rollout.phase == "Completed"


async def test_a_drift_correction_is_not_made_when_the_plan_cannot_be_recorded() -> None:
    w = World()
    await w.reconcile()
    for edge in w.edges.values():
        edge.finish_rollouts()
    w.edges["edge-eu"].deployments()[0]["spec"]["replicas"] = 5
    w.statuses.fail_with = RuntimeError("the hub refuses")
    writes = w.edge_writes()
    result = await w.controller.reconcile(w.obj(), w.clusters, w.events.append, full=False)
    assert result is not None and result.transient
    assert w.edge_writes() == writes
    assert "RolloutCompleted" not in {e.reason for e in w.events}  # the plan's events wait for its record
