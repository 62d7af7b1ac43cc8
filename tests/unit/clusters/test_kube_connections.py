"""The kube adapter holds a few connections per cluster, however many requests are in flight."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from edgeroll.clusters.kube import (
    CALLER_BOUND,
    EDGE_CONNECTIONS,
    HUB_CONNECTIONS,
    ClusterUnreachable,
    KubeClient,
)
from edgeroll.clusters.objects import ObjectRef

pytestmark = pytest.mark.unit


async def fake_apiserver(delay: float = 0.02) -> tuple[web.AppRunner, int, set[Any], list[int]]:
    """A plain-HTTP stand-in that answers every GET after `delay` and records the client's connections."""
    peers: set[Any] = set()
    in_flight = [0, 0]  # now, max

    async def handle(request: web.Request) -> web.Response:
        peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        await asyncio.sleep(delay)
        in_flight[0] -= 1
        return web.json_response({"kind": "ConfigMap", "metadata": {"name": request.match_info["name"]}})

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{ns}/configmaps/{name}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port, peers, in_flight


def kubeconfig(port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }


async def test_many_concurrent_requests_share_a_few_connections() -> None:
    runner, port, peers, in_flight = await fake_apiserver()
    client = await KubeClient.from_kubeconfig_dict(kubeconfig(port), timeout=10.0, name="edge")
    try:
        got = await asyncio.gather(
            *(client.get(ObjectRef("v1", "ConfigMap", "ns", f"cm-{i}")) for i in range(60))
        )
        assert [g["metadata"]["name"] for g in got if g] == [f"cm-{i}" for i in range(60)]
        assert 1 < len(peers) <= EDGE_CONNECTIONS
        assert in_flight[1] <= EDGE_CONNECTIONS
    finally:
        await client.close()
        await runner.cleanup()


async def test_connection_limits_are_configurable_and_the_hub_gets_more() -> None:
    runner, port, peers, _ = await fake_apiserver()
    client = await KubeClient.from_kubeconfig_dict(kubeconfig(port), timeout=10.0, connections=1)
    try:
        await asyncio.gather(*(client.get(ObjectRef("v1", "ConfigMap", "ns", f"c{i}")) for i in range(10)))
        assert len(peers) == 1
    finally:
        await client.close()
        await runner.cleanup()
    assert HUB_CONNECTIONS > EDGE_CONNECTIONS >= 2


async def test_waiting_for_a_connection_does_not_count_against_the_deadline() -> None:
    # 8 requests of 0.3 s each over one connection take 2.4 s, the deadline is 1 s per request:
    # each one must still succeed, because the cluster answers every request in time.
    runner, port, peers, _ = await fake_apiserver(delay=0.3)
    client = await KubeClient.from_kubeconfig_dict(kubeconfig(port), timeout=1.0, connections=1)
    try:
        got = await asyncio.gather(
            *(client.get(ObjectRef("v1", "ConfigMap", "ns", f"c{i}")) for i in range(8))
        )
        assert all(g is not None for g in got) and len(peers) == 1
    finally:
        await client.close()
        await runner.cleanup()


async def test_clients_of_many_clusters_share_one_bound_on_requests_in_flight() -> None:
    # Three "clusters" behind one fake apiserver: its peak of concurrent requests is the fleet's.
    runner, port, _, in_flight = await fake_apiserver()
    overall = asyncio.Semaphore(5)
    clients = [
        await KubeClient.from_kubeconfig_dict(
            kubeconfig(port), timeout=10.0, name=f"edge-{i}", overall=overall
        )
        for i in range(3)
    ]
    try:
        await asyncio.gather(
            *(c.get(ObjectRef("v1", "ConfigMap", "ns", f"cm-{i}")) for c in clients for i in range(20))
        )
        assert 2 <= in_flight[1] <= 5 < 3 * EDGE_CONNECTIONS  # each client alone would allow EDGE_CONNECTIONS
    finally:
        for client in clients:
            await client.close()
        await runner.cleanup()


async def test_a_callers_bound_does_not_run_while_its_request_waits_for_a_connection() -> None:
    # Eight reconciles, each with a 0.5 s bound on its work, share one connection whose requests take
    # 0.15 s: the last one waits ~1 s in the queue, and every one must still finish within its bound.
    runner, port, _, in_flight = await fake_apiserver(delay=0.15)
    client = await KubeClient.from_kubeconfig_dict(kubeconfig(port), timeout=1.0, connections=1)

    async def reconcile(i: int) -> dict[str, Any] | None:
        async with asyncio.timeout(0.5) as bound:
            CALLER_BOUND.set(bound)  # this task's own context, as the reconciler's per-cluster task
            return await client.get(ObjectRef("v1", "ConfigMap", "ns", f"c{i}"))

    try:
        got = await asyncio.gather(*(reconcile(i) for i in range(8)))
        assert [g["metadata"]["name"] for g in got if g] == [f"c{i}" for i in range(8)]
        assert in_flight[1] == 1
    finally:
        await client.close()
        await runner.cleanup()


async def test_requests_queued_behind_one_that_found_the_cluster_down_fail_at_once() -> None:
    # An apiserver that takes every request and never answers: the first request times out, and the
    # five queued behind it fail with it instead of each waiting out 0.3 s on the wire.
    arrived: list[str] = []
    answer = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        arrived.append(request.match_info["name"])
        await answer.wait()
        return web.json_response({"kind": "ConfigMap", "metadata": {"name": request.match_info["name"]}})

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{ns}/configmaps/{name}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = await KubeClient.from_kubeconfig_dict(kubeconfig(port), timeout=0.3, connections=1)
    try:
        got = await asyncio.gather(
            *(client.get(ObjectRef("v1", "ConfigMap", "ns", f"c{i}")) for i in range(6)),
            return_exceptions=True,
        )
        assert all(isinstance(g, ClusterUnreachable) for g in got)
        assert {str(g) for g in got} == {"unreachable: timed out after 0.3s"}
        assert arrived == ["c0"]
        # A request made after the failure tries the cluster again: it answers now.
        answer.set()
        again = await client.get(ObjectRef("v1", "ConfigMap", "ns", "later"))
        assert again is not None and again["metadata"]["name"] == "later"
    finally:
        await client.close()
        await runner.cleanup()
