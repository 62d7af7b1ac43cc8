"""The preview runs the operator's own steps: the digests and waves it shows are the ones the reconciler
then publishes and plans, and what it refuses the reconciler stalls on, in the same words.

Each test previews a spec against an in-memory hub, then lets the real reconciler (tests/unit/pipeline)
act on the same spec and compares. Edges sort edge-ap, edge-eu, edge-us.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from tests.unit.pipeline.pipeline_fakes import COSMO, World, configmap
from tests.unit.preview.preview_fakes import PreviewHub, preview

from edgeroll.api.routerconfig import RouterConfigStatus
from edgeroll.clusters.registry import EdgeClusterInfo
from edgeroll.preview.model import Preview

pytestmark = pytest.mark.unit

CANARY = {"strategy": "Progressive", "canary": 1, "soakSeconds": 30}
EU_OVERLAY = {
    "clusterSelector": {"matchLabels": {"region": "eu"}},
    "patch": {"engineConfig": {"defaultFlushInterval": "250"}},
}


def config(version: str) -> dict[str, Any]:
    out = copy.deepcopy(COSMO)
    out["engineConfig"]["graphqlSchema"] += f" # {version}"
    return out


def published(status: RouterConfigStatus) -> dict[str, tuple[str | None, str | None]]:
    return {c.name: (c.desired_digest, c.wave) for c in status.clusters}


def shown(p: Preview) -> dict[str, tuple[str | None, str | None]]:
    return {c.name: (c.digest, c.wave_name) for c in p.clusters}


async def test_a_new_routerconfig_previews_the_digests_and_waves_the_operator_then_uses() -> None:
    w = World()
    w.spec.update(config=config("v1"), rollout=CANARY, overlays=[EU_OVERLAY])
    hub = PreviewHub(w, exists=False)
    p = await preview(hub)
    assert p.refused is None and not p.exists
    assert p.waves == ("canary", "batch-1")
    assert [(c.name, c.wave, c.serving) for c in p.clusters] == [
        ("edge-ap", 1, None),
        ("edge-eu", 2, None),
        ("edge-us", 2, None),
    ]
    eu = p.clusters[1]
    assert eu.digest != p.base_digest and eu.baseline is not None  # a new object: what its overlay changes
    assert [ch.path for ch in eu.changes] == ["$.engineConfig.defaultFlushInterval", "$.version"]
    assert w.store.objects == {} and hub.calls.keys() <= {"get", "get_path", "list"}

    status = await w.reconcile()
    assert published(status) == shown(p)
    assert status.rollout is not None and status.rollout.revision == p.revision
    assert status.revision is not None and status.revision.digest == p.base_digest


async def test_a_change_shows_what_each_cluster_serves_what_it_would_serve_and_the_paths() -> None:
    w = World()
    w.spec["config"] = config("v1")
    before = await w.converge()
    served = {c.name: c.digest for c in before.clusters}
    spec = {**copy.deepcopy(w.spec), "overlays": [EU_OVERLAY]}
    p = await preview(PreviewHub(w), spec)
    assert p.exists and p.restarts
    by_name = {c.name: c for c in p.clusters}
    assert {n: c.serving for n, c in by_name.items()} == served
    assert [n for n, c in by_name.items() if c.moves] == ["edge-eu"]
    eu = by_name["edge-eu"]
    assert eu.baseline is not None and eu.baseline.digest == served["edge-eu"]
    assert eu.baseline.what == "what it serves"
    first = eu.changes[0]
    assert (first.path, first.old, first.new) == ("$.engineConfig.defaultFlushInterval", "500", "250")
    assert by_name["edge-us"].changes == () and by_name["edge-us"].baseline is not None

    w.update(overlays=[EU_OVERLAY])
    after = await w.converge()
    assert {c.name: c.digest for c in after.clusters} == {c.name: c.digest for c in p.clusters}


async def test_the_rollout_in_progress_keeps_its_frozen_waves_and_a_new_revision_recomputes_them() -> None:
    w = World()
    w.spec.update(
        config=config("v1"),
        rollout={
            "strategy": "Progressive",
            "steps": [{"name": "eu", "clusterSelector": {"matchLabels": {"region": "eu"}}}, {"name": "rest"}],
            "soakSeconds": 600,
        },
    )
    await w.reconcile()  # the rollout starts: edge-eu in wave eu, the others in rest
    us = w.clusters["edge-us"]
    w.clusters["edge-us"] = EdgeClusterInfo(us.name, {**us.labels, "region": "eu"}, us.spec)

    same = await preview(PreviewHub(w))
    assert not same.restarts and {c.name: c.wave_name for c in same.clusters}["edge-us"] == "rest"
    changed = await preview(PreviewHub(w), {**copy.deepcopy(w.spec), "config": config("v2")})
    assert changed.restarts and {c.name: c.wave_name for c in changed.clusters}["edge-us"] == "eu"

    w.update(config=config("v2"))
    status = await w.reconcile()
    assert published(status) == shown(changed)


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ({"rollout": {"strategy": "AllAtOnce", "canary": 1}}, "InvalidSpec", "spec.rollout"),
        (
            {
                "overlays": [
                    {"clusterSelector": {}, "patch": {"engineConfig": {"x": "${cluster.labels.missing}"}}}
                ]
            },
            "InvalidOverlay",
            "spec.overlays[0]",
        ),
        ({"config": {**COSMO, "engineConfig": {"graphqlSchema": ""}}}, "InvalidConfig", "graphqlSchema"),
        (
            {"config": None, "configFrom": {"configMapKeyRef": {"name": "nope", "key": "c"}}},
            "ConfigMapNotFound",
            "spec.configFrom.configMapKeyRef",
        ),
    ],
)
async def test_what_the_operator_refuses_the_preview_refuses_in_the_same_words(
    change: dict[str, Any], reason: str, field: str
) -> None:
    w = World()
    spec = {k: v for k, v in {**copy.deepcopy(w.spec), **change}.items() if v is not None}
    p = await preview(PreviewHub(w, exists=False), spec)
    assert p.refused is not None and p.refused.reason == reason and field in p.refused.message

    w.spec = spec
    status = await w.reconcile()
    stalled = next(c for c in status.conditions if c.type == "Stalled")
    assert (stalled.reason, stalled.message) == (p.refused.reason, p.refused.message)
    assert w.edge_writes() == 0


async def test_a_configmap_in_the_file_stands_in_for_the_hubs() -> None:
    w = World()
    w.hub.put(configmap("prod", "graph", {"config.json": config("v1")}))
    w.spec.pop("config")
    w.spec["configFrom"] = {"configMapKeyRef": {"name": "graph", "key": "config.json"}}
    await w.converge()
    v2 = configmap("prod", "graph", {"config.json": config("v2")})
    p = await preview(PreviewHub(w), config_maps={("prod", "graph"): v2})
    assert all(c.moves for c in p.clusters)
    assert [ch.path for ch in p.clusters[0].changes] == ["$.engineConfig.graphqlSchema", "$.version"]
    assert json.loads(w.hub.obj("ConfigMap", "prod", "graph")["data"]["config.json"]) == config("v1")

    w.hub.put(v2)
    w.update()
    status = await w.converge()
    assert {c.name: c.digest for c in status.clusters} == {c.name: c.digest for c in p.clusters}
