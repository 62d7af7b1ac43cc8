"""The shared watch of edge Deployments: one list, then events; a cache that vouches only for what it
has seen while current; every change wakes the RouterConfig the Deployment belongs to; a broken watch
relists with backoff and never claims stale state meanwhile; a watch the server ends at its timeout
resumes where it stopped, without a list."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from edgeroll.api.edgecluster import EdgeClusterSpec
from edgeroll.clusters.edge_watch import EdgeWatches
from edgeroll.clusters.kube import ClusterUnreachable
from edgeroll.clusters.registry import EdgeClusterInfo

pytestmark = pytest.mark.unit

NS = "edgeroll-system"
INFO = EdgeClusterInfo(
    "edge-eu",
    {"region": "eu"},
    EdgeClusterSpec.model_validate({"kubeconfigSecretRef": {"namespace": "hub", "name": "eu", "key": "k"}}),
)


def deployment(name: str, rv: int, rc: str = "storefront", digest: str = "sha256:a") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "resourceVersion": str(rv),
            "labels": {"edgeroll.io/routerconfig-namespace": "team", "edgeroll.io/routerconfig-name": rc},
        },
        "spec": {"template": {"metadata": {"annotations": {"edgeroll.io/digest": digest}}}},
    }


class FakeEdge:
    """An apiserver's list and watch of Deployments: events are fed by the test."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.events: asyncio.Queue[dict[str, Any] | Exception | None] = asyncio.Queue()
        self.lists = 0
        self.queries: list[list[tuple[str, str]]] = []
        self.timeouts: list[int] = []

    async def list_objects(self, path: str, query: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        self.queries.append(query)
        if isinstance(self.items, Exception):
            raise self.items
        return list(self.items), "100"

    async def watch(
        self, path: str, query: list[tuple[str, str]], seconds: int
    ) -> AsyncIterator[dict[str, Any]]:
        self.queries.append(query)
        self.timeouts.append(seconds)
        while True:
            event = await self.events.get()
            if event is None:  # the server's timeout: the response ends cleanly
                return
            if isinstance(event, Exception):
                raise event
            yield event


async def until(check: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


def watches_of(woken: list[tuple[str, str]]) -> EdgeWatches:
    return EdgeWatches(lambda ns, name: woken.append((ns, name)), backoff_initial=0.01, rand=lambda: 0.0)


async def test_the_cache_answers_after_the_list_and_follows_events_waking_the_owner() -> None:
    edge, woken = FakeEdge(), []
    edge.items = [deployment("edgeroll-team-storefront", 5)]
    watches = watches_of(woken)
    assert watches.lookup("edge-eu", NS, "edgeroll-team-storefront") is None  # nothing listed yet
    watches.ensure(INFO, edge)
    await until(lambda: watches.lookup("edge-eu", NS, "edgeroll-team-storefront") is not None)
    assert woken == [("team", "storefront")]
    assert ("labelSelector", "app.kubernetes.io/managed-by=edgeroll") in edge.queries[0]
    assert ("resourceVersion", "100") in edge.queries[1]  # the watch starts where the list ended

    await edge.events.put(
        {"type": "MODIFIED", "object": deployment("edgeroll-team-storefront", 6, digest="sha256:b")}
    )
    await until(lambda: len(woken) == 2)
    cached = watches.lookup("edge-eu", NS, "edgeroll-team-storefront")
    assert cached is not None and cached["metadata"]["resourceVersion"] == "6"

    await edge.events.put({"type": "DELETED", "object": deployment("edgeroll-team-storefront", 7)})
    await until(lambda: len(woken) == 3)
    assert watches.lookup("edge-eu", NS, "edgeroll-team-storefront") is None  # read it: it may be back
    await watches.close()


async def test_a_name_never_seen_and_another_namespace_are_not_vouched_for() -> None:
    edge, woken = FakeEdge(), []
    watches = watches_of(woken)
    watches.ensure(INFO, edge)
    await until(lambda: edge.lists == 1)
    await asyncio.sleep(0)
    assert watches.lookup("edge-eu", NS, "someone-elses") is None
    assert watches.lookup("edge-eu", "other-ns", "x") is None
    assert watches.lookup("edge-us", NS, "x") is None
    await watches.close()


async def test_an_applied_object_is_kept_until_the_watch_brings_a_newer_one() -> None:
    edge, woken = FakeEdge(), []
    edge.items = [deployment("d", 5)]
    watches = watches_of(woken)
    watches.ensure(INFO, edge)
    await until(lambda: watches.lookup("edge-eu", NS, "d") is not None)
    watches.saw("edge-eu", deployment("d", 9, digest="sha256:new"))
    await edge.events.put({"type": "MODIFIED", "object": deployment("d", 8)})  # the version before the apply
    await until(lambda: len(woken) == 2)
    assert watches.lookup("edge-eu", NS, "d")["metadata"]["resourceVersion"] == "9"  # type: ignore[index]
    await edge.events.put({"type": "MODIFIED", "object": deployment("d", 10)})
    await until(lambda: watches.lookup("edge-eu", NS, "d")["metadata"]["resourceVersion"] == "10")  # type: ignore[index]
    await watches.close()


async def test_a_broken_watch_stops_vouching_and_relists_with_what_changed_meanwhile() -> None:
    edge, woken = FakeEdge(), []
    edge.items = [deployment("d", 5)]
    watches = watches_of(woken)
    watches.ensure(INFO, edge)
    await until(lambda: watches.lookup("edge-eu", NS, "d") is not None)
    edge.items = [deployment("d", 12, digest="sha256:changed-while-down")]
    await edge.events.put(ClusterUnreachable("watch: ServerDisconnectedError"))
    await until(lambda: edge.lists == 2)
    await until(
        lambda: (watches.lookup("edge-eu", NS, "d") or {}).get("metadata", {}).get("resourceVersion") == "12"
    )
    assert watches.relists == 1
    assert woken.count(("team", "storefront")) == 2  # the relist's difference woke its owner
    await watches.close()


async def test_a_watch_ended_by_its_timeout_resumes_from_the_last_version_without_a_list() -> None:
    edge, woken = FakeEdge(), []
    edge.items = [deployment("d", 5)]
    watches = EdgeWatches(lambda ns, name: woken.append((ns, name)), rand=lambda: 0.5)
    watches.ensure(INFO, edge)
    await until(lambda: len(edge.queries) == 2)
    await edge.events.put({"type": "MODIFIED", "object": deployment("d", 140)})
    await edge.events.put({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "150"}}})
    await edge.events.put(None)
    await until(lambda: len(edge.queries) == 3)
    assert ("resourceVersion", "150") in edge.queries[2]  # the bookmark's, not the list's
    assert edge.lists == 1 and watches.relists == 0
    assert watches.lookup("edge-eu", NS, "d")["metadata"]["resourceVersion"] == "140"  # type: ignore[index]
    assert edge.timeouts == [450, 450]  # 300 s, jittered by half: a fleet's watches end apart

    await edge.events.put(None)  # a watch that delivered nothing resumes from where it started
    await until(lambda: len(edge.queries) == 4)
    assert ("resourceVersion", "150") in edge.queries[3]
    await watches.close()


async def test_watches_that_end_at_once_with_nothing_are_resumed_after_growing_delays() -> None:
    # A proxy that closes every watch cleanly and at once: no hot loop, no relist, and no vouching
    # for the cache while no watch is open.
    edge, delays = FakeEdge(), []
    edge.items = [deployment("d", 5)]
    permits: asyncio.Queue[None] = asyncio.Queue()
    vouched: list[bool] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        vouched.append(watches.lookup("edge-eu", NS, "d") is not None)
        await permits.get()

    watches = EdgeWatches(
        lambda ns, n: None, backoff_initial=0.01, backoff_max=0.05, rand=lambda: 0.0, sleep=sleep
    )
    watches.ensure(INFO, edge)
    for quiet in range(1, 5):
        await edge.events.put(None)
        await until(lambda n=quiet: len(delays) == n)
        permits.put_nowait(None)
    assert delays == [0.005, 0.01, 0.02, 0.025]  # growing, up to the maximum
    assert vouched == [False] * 4
    await until(lambda: len(edge.queries) == 6)  # the list, then five watches
    assert watches.lookup("edge-eu", NS, "d") is not None  # a watch is open again
    await edge.events.put({"type": "MODIFIED", "object": deployment("d", 160)})
    await edge.events.put(None)  # one that delivered something resumes at once, and resets the delay
    await until(lambda: len(edge.queries) == 7)
    await edge.events.put(None)
    await until(lambda: len(delays) == 5)
    assert delays[4] == 0.005
    assert edge.lists == 1 and watches.relists == 0
    await watches.close()


async def test_a_410_gone_relists() -> None:
    edge, woken = FakeEdge(), []
    watches = watches_of(woken)
    watches.ensure(INFO, edge)
    await until(lambda: edge.lists == 1)
    await edge.events.put(
        {"type": "ERROR", "object": {"code": 410, "reason": "Expired", "message": "too old"}}
    )
    await until(lambda: edge.lists == 2)
    await watches.close()


async def test_an_unreachable_cluster_retries_alone_with_growing_delays() -> None:
    edge, woken = FakeEdge(), []
    edge.items = ClusterUnreachable("unreachable: timed out")  # type: ignore[assignment]
    watches = EdgeWatches(lambda ns, n: woken.append((ns, n)), backoff_initial=0.01)
    watches.ensure(INFO, edge)
    await until(lambda: edge.lists >= 4)
    assert watches.lookup("edge-eu", NS, "d") is None and woken == []
    await watches.close()
    assert edge.lists < 20  # backoff, not a hot loop


async def test_the_backoff_starts_afresh_only_after_the_watch_ran_well_for_a_while() -> None:
    edge, woken, delays = FakeEdge(), [], []
    permits: asyncio.Queue[None] = asyncio.Queue()
    edge.items = ClusterUnreachable("unreachable: timed out")  # type: ignore[assignment]

    async def sleep(seconds: float) -> None:  # the test says when each retry may go
        delays.append(seconds)
        await permits.get()

    watches = EdgeWatches(
        lambda ns, n: woken.append((ns, n)),
        backoff_initial=0.01,
        backoff_max=0.2,
        rand=lambda: 0.0,
        sleep=sleep,
    )
    watches.ensure(INFO, edge)
    for failures in (1, 2, 3):
        await until(lambda n=failures: len(delays) == n)
        if failures < 3:
            permits.put_nowait(None)
    assert delays == [0.005, 0.01, 0.02]  # growing while the cluster does not answer
    edge.items = [deployment("d", 5)]
    permits.put_nowait(None)
    await until(lambda: watches.lookup("edge-eu", NS, "d") is not None)
    await edge.events.put(ClusterUnreachable("watch: ServerDisconnectedError"))  # at once: still growing
    await until(lambda: len(delays) == 4)
    assert delays[3] == 0.04
    permits.put_nowait(None)
    await until(lambda: watches.lookup("edge-eu", NS, "d") is not None)
    began = asyncio.get_running_loop().time()
    await until(lambda: asyncio.get_running_loop().time() - began > 0.25)  # watching for over the max
    await edge.events.put(ClusterUnreachable("watch: ServerDisconnectedError"))
    await until(lambda: len(delays) == 5)
    assert delays[4] == 0.005  # after a healthy stretch, a break starts again from the first delay
    await watches.close()


async def test_forget_stops_the_watch() -> None:
    edge, woken = FakeEdge(), []
    watches = watches_of(woken)
    watches.ensure(INFO, edge)
    await until(lambda: edge.lists == 1)
    watches.forget("edge-eu")
    await edge.events.put({"type": "ADDED", "object": deployment("d", 2)})
    for _ in range(20):  # let every ready task run: none reads the event any more
        await asyncio.sleep(0)
    assert edge.events.qsize() == 1
    assert woken == [] and watches.lookup("edge-eu", NS, "d") is None


async def test_a_new_client_restarts_the_watch_and_the_old_cache_is_not_trusted() -> None:
    old, new, woken = FakeEdge(), FakeEdge(), []
    old.items = [deployment("d", 5, digest="sha256:old")]
    new.items = [deployment("d", 9, digest="sha256:new")]
    watches = watches_of(woken)
    watches.ensure(INFO, old)
    await until(lambda: watches.lookup("edge-eu", NS, "d") is not None)
    watches.ensure(INFO, new)  # the registry rebuilt the client: the kubeconfig changed
    assert watches.lookup("edge-eu", NS, "d") is None  # not vouched for until the new list
    await until(lambda: watches.lookup("edge-eu", NS, "d") is not None)
    assert watches.lookup("edge-eu", NS, "d")["metadata"]["resourceVersion"] == "9"  # type: ignore[index]
    await old.events.put({"type": "MODIFIED", "object": deployment("d", 50)})  # the old watch is gone
    for _ in range(20):
        await asyncio.sleep(0)
    assert old.events.qsize() == 1
    await watches.close()


async def test_a_client_without_watches_is_read_as_before() -> None:
    watches = watches_of([])
    watches.ensure(INFO, object())
    assert watches.lookup("edge-eu", NS, "d") is None
    await watches.close()


async def test_the_cache_keeps_no_managed_fields() -> None:
    edge, woken = FakeEdge(), []
    listed = deployment("d", 5)
    listed["metadata"]["managedFields"] = [{"manager": "edgeroll", "fieldsV1": {"f:spec": {}}}]
    edge.items = [listed]
    watches = watches_of(woken)
    watches.ensure(INFO, edge)
    await until(lambda: watches.lookup("edge-eu", NS, "d") is not None)
    assert "managedFields" not in watches.lookup("edge-eu", NS, "d")["metadata"]  # type: ignore[index]
    assert "managedFields" in listed["metadata"]  # the list's own object is not changed
    applied = deployment("d", 6)
    applied["metadata"]["managedFields"] = [{"manager": "edgeroll"}]
    watches.saw("edge-eu", applied)
    cached = watches.lookup("edge-eu", NS, "d")
    assert cached is not None and cached["metadata"]["resourceVersion"] == "6"
    assert "managedFields" not in cached["metadata"]
    await watches.close()


async def test_an_event_it_cannot_read_stops_vouching_and_relists() -> None:
    edge, woken = FakeEdge(), []
    edge.items = [deployment("d", 5)]
    watches = watches_of(woken)
    watches.ensure(INFO, edge)
    await until(lambda: watches.lookup("edge-eu", NS, "d") is not None)
    await edge.events.put({"type": "MODIFIED", "object": "not an object"})
    await until(lambda: edge.lists == 2)
    assert watches.relists == 1
    await until(lambda: watches.lookup("edge-eu", NS, "d") is not None)
    await watches.close()
