"""The controller under shard ownership: it acts only while it holds the RouterConfig's shard, stamps
status.owner, and its status writes are conditioned on the resourceVersion it last saw, so a deposed
owner's late write is refused while an unrelated change (kopf's annotations) only costs a re-read."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from pipeline_fakes import World

from edgeroll.api.routerconfig import OwnerStatus
from edgeroll.sharding.assignment import Acting

pytestmark = pytest.mark.unit


class Lease:
    """What the elector says: our term for the one shard, or None once another replica holds it."""

    def __init__(self, replica: str, term: int | None) -> None:
        self.replica, self.term = replica, term
        self.deposed: list[int] = []

    def acting(self, namespace: str, name: str, labels: Mapping[str, str]) -> Acting | None:
        if self.term is None:
            return None
        return Acting(OwnerStatus(shard=0, replica=self.replica, term=self.term))

    def probes_here(self) -> bool:
        return self.term is not None

    def depose(self, shard: int, term: int) -> None:
        self.deposed.append(shard)
        if term == self.term:
            self.term = None


async def test_a_replica_without_the_shard_writes_nothing() -> None:
    w = World()
    w.controller.ownership = Lease("pod-b/2", None)
    assert await w.controller.reconcile(w.obj(), w.clusters, w.events.append) is None
    assert w.statuses.patches == 0 and w.edge_writes() == 0


async def test_the_owner_stamps_status_owner() -> None:
    w = World()
    w.controller.ownership = Lease("pod-a/1", 3)
    await w.converge()
    assert w.statuses.status["owner"] == {"shard": 0, "replica": "pod-a/1", "term": 3}


async def test_a_change_by_someone_else_costs_a_reread_not_the_write() -> None:
    w = World()
    w.controller.ownership = Lease("pod-a/1", 3)
    await w.converge()
    w.statuses.version += 1  # kopf wrote its annotations: a new resourceVersion, same status
    w.update(cache={"replicas": 2})  # and a change to roll out
    patches = w.statuses.patches
    await w.reconcile()
    assert w.statuses.refused >= 1  # the first try was on the old version
    assert w.statuses.patches > patches  # the retry after re-reading landed


async def test_a_deposed_owners_late_write_is_refused() -> None:
    w = World()
    old = Lease("pod-a/1", 3)
    w.controller.ownership = old
    await w.converge()
    before = dict(w.statuses.status)
    # pod-b took the shard over (term 4) and wrote; pod-a, paused meanwhile, has not noticed yet
    w.statuses.status = {**before, "owner": {"shard": 0, "replica": "pod-b/2", "term": 4}}
    w.statuses.version += 1
    w.update(cache={"replicas": 2})
    # pod-a's lease check still passes when it starts; by the re-read after the conflict it does not
    calls = 0

    def acting(namespace: str, name: str, labels: Mapping[str, str]) -> Acting | None:
        nonlocal calls
        calls += 1
        return Acting(OwnerStatus(shard=0, replica="pod-a/1", term=3)) if calls <= 2 else None

    old.acting = acting  # type: ignore[method-assign]
    w.controller.ownership = old
    stale = w.obj()
    stale = type(stale)(**{**stale.__dict__, "resource_version": "1"})  # pod-a's last sight
    w.controller._memos.clear()
    writes = w.edge_writes()
    await w.controller.reconcile(stale, w.clusters, w.events.append)
    assert w.statuses.status["owner"] == {"shard": 0, "replica": "pod-b/2", "term": 4}  # untouched
    assert set(old.deposed) == {0}
    assert w.edge_writes() == writes  # the plan was not persisted, so none of it ran
