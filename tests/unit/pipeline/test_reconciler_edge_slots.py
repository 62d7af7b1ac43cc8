"""The pairs (RouterConfig, cluster) writing to one cluster at once are bounded over every RouterConfig
of the process: at a cold start they queue for a place, each without its manifests built yet, and the
wait is off the pair's clock, so a queue behind other RouterConfigs never reads as an unreachable
cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from pipeline_fakes import World

from edgeroll.api.routerconfig import ClusterPhase
from edgeroll.pipeline.controller import RouterConfigController
from edgeroll.pipeline.reconciler import EDGE_PAIRS_PER_CLUSTER
from edgeroll.rollout.resources import LABEL_RC_NAME

pytestmark = pytest.mark.unit

CONFIGS = EDGE_PAIRS_PER_CLUSTER + 3


def one_process(count: int) -> list[World]:
    """`count` RouterConfigs in one hub, reconciled by one operator process (one Reconciler)."""
    first = World(name="graph-0")
    worlds = [first]
    for i in range(1, count):
        w = World(name=f"graph-{i}", share=first)
        w.registry, w.reconciler = first.registry, first.reconciler
        w.controller = RouterConfigController(first.reconciler, w.statuses, w.settings)
        worlds.append(w)
    return worlds


async def test_at_most_a_few_pairs_write_to_one_cluster_at_once_and_all_converge() -> None:
    worlds = one_process(CONFIGS)
    eu = worlds[0].edges["edge-eu"]
    held: set[str] = set()
    peak = 0
    opened = asyncio.Event()
    apply = eu.apply

    async def gated(manifest: Mapping[str, Any]) -> dict[str, Any]:  # every pair's write waits here
        nonlocal peak
        rc = manifest["metadata"].get("labels", {}).get(LABEL_RC_NAME)
        if rc is not None:
            held.add(rc)
        peak = max(peak, len(held))
        await opened.wait()
        return await apply(manifest)

    eu.apply = gated  # type: ignore[method-assign]
    passes = [asyncio.ensure_future(w.reconcile()) for w in worlds]
    us = worlds[0].edges["edge-us"]
    deadline = asyncio.get_running_loop().time() + 5
    while len(held) < EDGE_PAIRS_PER_CLUSTER or len(us.deployments()) < CONFIGS:
        assert asyncio.get_running_loop().time() < deadline, (held, len(us.deployments()))
        await asyncio.sleep(0.001)
    assert peak == EDGE_PAIRS_PER_CLUSTER  # the rest queue, while the other clusters were all written
    opened.set()
    await asyncio.gather(*passes)

    assert len(eu.deployments()) == CONFIGS
    for w in worlds:
        status = await w.converge()
        assert {c.name: c.phase for c in status.clusters} == dict.fromkeys(w.edges, ClusterPhase.READY)


async def test_the_wait_for_a_place_is_off_the_pairs_clock() -> None:
    reconciler = World().reconciler
    loop = asyncio.get_running_loop()
    taken = [reconciler._edge_slot("edge-eu", None) for _ in range(EDGE_PAIRS_PER_CLUSTER)]
    for place in taken:
        await place.__aenter__()

    async def pair() -> str:
        async with asyncio.timeout(0.05) as bound, reconciler._edge_slot("edge-eu", bound):
            return "wrote"

    waiting = asyncio.ensure_future(pair())
    began = loop.time()
    while loop.time() - began < 0.2:  # queued four times longer than its bound
        assert not waiting.done()
        await asyncio.sleep(0.01)
    await taken[0].__aexit__(None, None, None)
    assert await waiting == "wrote"
    for place in taken[1:]:
        await place.__aexit__(None, None, None)
