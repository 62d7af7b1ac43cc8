"""Shard Leases and fenced status writes against the lab's real hub apiserver.

Two electors in one namespace split two shards; one crashes (its loop ends without handing back)
and the other takes its shard once the lease has expired by its own clock; a replica that comes back
gets its share back; a clean shutdown hands back at once. A status write conditioned on a stale
resourceVersion is refused by the apiserver (409), which is what keeps a deposed owner's late
write out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import yaml
from tests.e2e.operator.operator_e2e_kit import kubeconfig_text, prepare_hub

from edgeroll.clusters.hub import HubStatusWriter, StatusConflict
from edgeroll.clusters.kube import KubeClient
from edgeroll.lab import Lab
from edgeroll.sharding.elector import ElectionTimings, ShardElector
from edgeroll.sharding.kube_store import KubeLeaseStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TIMINGS = ElectionTimings(lease_duration=4.0, renew_deadline=3.0, retry_period=0.5)


async def until(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until `check()` held; fails past `timeout`."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "condition not met in time"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


@contextlib.asynccontextmanager
async def hub_namespace(lab: Lab) -> AsyncIterator[tuple[KubeClient, str]]:
    ns = f"it-lease-{uuid.uuid4().hex[:6]}"
    prepare_hub(lab, ns)
    hub = await KubeClient.from_kubeconfig_dict(yaml.safe_load(kubeconfig_text(lab.kubeconfig("hub"))), 5.0)
    try:
        yield hub, ns
    finally:
        await hub.close()
        lab.kubectl("hub", "delete", "namespace", ns, "--wait=false", check=False)


class Replica:
    def __init__(self, hub: KubeClient, ns: str, identity: str, shards: int) -> None:
        self.elector = ShardElector(KubeLeaseStore(hub, ns), identity, shards, TIMINGS)
        self.task = asyncio.create_task(self.elector.run(lambda: False))

    async def crash(self) -> None:
        """The process dies: no more renewals, nothing handed back."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def shut_down(self) -> None:
        await self.crash()
        await self.elector.release_all()

    def held(self) -> set[int]:
        return set(self.elector.acting())


async def test_shards_spread_fail_over_after_expiry_come_back_and_are_handed_back(lab: Lab) -> None:
    async with hub_namespace(lab) as (hub, ns):
        a, b = Replica(hub, ns, "pod-a/1", 2), Replica(hub, ns, "pod-b/1", 2)
        await until(lambda: len(a.held()) == 1 and len(b.held()) == 1, timeout=20)
        assert a.held() | b.held() == {0, 1}

        crashed = a.held()
        await a.crash()
        took = await until(lambda: b.held() == {0, 1}, timeout=20)
        # Not before the lease expired by b's clock (4 s from its last sight of a renewal), and not much
        # after (one retry period, one round).
        assert TIMINGS.lease_duration - TIMINGS.retry_period <= took <= TIMINGS.lease_duration + 3, took
        assert not a.elector.acting()  # a stood down at its renew deadline, before b took over

        c = Replica(hub, ns, "pod-c/1", 2)  # a replica comes back: b gives one shard up to it
        await until(lambda: len(b.held()) == 1 and len(c.held()) == 1, timeout=20)
        assert crashed  # (the shard a held is in one of theirs again)

        handed = time.monotonic()
        await b.shut_down()
        await until(lambda: c.held() == {0, 1}, timeout=20)
        assert time.monotonic() - handed < TIMINGS.lease_duration  # handed back, not expired
        await c.shut_down()


async def test_a_status_write_on_a_stale_resource_version_is_refused(lab: Lab) -> None:
    async with hub_namespace(lab) as (hub, ns):
        rc = {
            "apiVersion": "edgeroll.io/v1alpha1",
            "kind": "RouterConfig",
            "metadata": {"name": "fenced", "namespace": ns},
            "spec": {
                "format": "json",
                "config": {"a": 1},
                "targets": {"clusterSelector": {"matchLabels": {"x": "y"}}},
                "signing": {"secretRef": {"name": "signing", "key": "key"}},
            },
        }
        path = f"/apis/edgeroll.io/v1alpha1/namespaces/{ns}/routerconfigs"
        created = await hub.create(path, rc)
        writer = HubStatusWriter(hub)
        version = created["metadata"]["resourceVersion"]
        owner_b = {"shard": 0, "replica": "pod-b/1", "term": 2}
        newer = await writer.patch_status(ns, "fenced", {"owner": owner_b}, version)  # the new owner
        assert newer and newer != version
        with pytest.raises(StatusConflict):  # the deposed owner, still at the old version
            await writer.patch_status(
                ns, "fenced", {"owner": {**owner_b, "replica": "pod-a/1", "term": 1}}, version
            )
        fresh = await writer.read_status(ns, "fenced")
        assert fresh == ({"owner": owner_b}, newer)
