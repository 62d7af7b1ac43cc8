"""The reconciler end to end against in-memory apiservers and S3: issue 3's behaviours, without a lab."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import gzip
import json
from typing import Any

import pytest
from pipeline_fakes import COSMO, EDGES, KEY, World, configmap

from edgeroll.clusters.registry import EdgeClusterInfo
from edgeroll.publish.store import PublishError
from edgeroll.render.signing import verify

pytestmark = pytest.mark.unit


async def test_first_rollout_publishes_signs_and_reaches_every_cluster() -> None:
    w = World()
    status = await w.reconcile()
    assert status.phase == "Progressing" and status.ready_clusters == "0/3"
    assert status.revision is not None
    body, sig = w.store.objects[status.revision.key]
    assert verify(KEY, body, sig)
    assert status.revision.key == f"edgeroll/prod/graph/{status.revision.digest.removeprefix('sha256:')}.json"
    for edge in w.edges:
        assert w.template_digest(edge) == status.revision.digest
        kinds = {k for (k, _, _) in w.edges[edge].objects}
        assert kinds == {"Namespace", "ServiceAccount", "Secret", "Service", "Deployment"}
    for edge in w.edges.values():
        edge.finish_rollouts()
    status = await w.reconcile(full=False)
    assert status.phase == "Ready" and status.ready_clusters == "3/3"
    assert status.summary is not None and status.summary.ready == 3
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert ready.status == "True"
    # no Reconciling/Stalled when false; TokensVerified: the world serves Cosmo without a token secret
    assert {c.type for c in status.conditions} == {"Ready", "Published", "TokensVerified"}
    assert all(c.phase == "Ready" and c.digest == status.revision.digest for c in status.clusters)
    assert w.reasons()["Published"] == 1 and w.reasons()["Created"] == 3 and w.reasons()["Ready"] == 1


async def test_steady_state_and_restart_write_nothing() -> None:
    w = World()
    await w.converge()
    writes, puts, patches, events = (
        w.edge_writes(),
        w.store.counters["put"],
        w.statuses.patches,
        len(w.events),
    )
    await w.reconcile(full=True)  # a resync
    w.restart()  # kill -9 and start again: nothing in memory
    await w.reconcile(full=True)
    await w.reconcile(full=False)
    assert w.edge_writes() == writes
    assert w.store.counters["put"] == puts
    assert w.statuses.patches == patches
    assert len(w.events) == events


async def test_update_moves_every_cluster_and_keeps_history() -> None:
    w = World()
    first = (await w.converge()).revision
    config = copy.deepcopy(COSMO)
    config["engineConfig"]["graphqlSchema"] += " # v2"
    w.update(config=config)
    second = (await w.converge()).revision
    assert first is not None and second is not None and first.digest != second.digest
    assert all(w.template_digest(e) == second.digest for e in w.edges)
    manifest = json.loads(w.store.objects["edgeroll/prod/graph/manifest.json"][0])
    assert [r["digest"] for r in manifest["revisions"]] == [second.digest, first.digest]
    assert first.key in w.store.objects


async def test_overlay_gives_one_cluster_its_own_digest() -> None:
    w = World()
    base = (await w.converge()).revision
    writes = {e: w.edges[e].writes for e in w.edges}
    w.update(
        overlays=[
            {
                "clusterSelector": {"matchLabels": {"region": "eu"}},
                "patch": {"subgraphs": [{"id": "0", "name": "products-${cluster.labels.region}"}]},
            }
        ]
    )
    status = await w.converge()
    assert base is not None and status.revision is not None and status.revision.digest == base.digest
    eu = next(c for c in status.clusters if c.name == "edge-eu")
    assert eu.digest != base.digest and eu.desired_digest == eu.digest and eu.phase == "Ready"
    assert w.template_digest("edge-us") == base.digest == w.template_digest("edge-ap")
    assert w.edges["edge-us"].writes == writes["edge-us"] and w.edges["edge-ap"].writes == writes["edge-ap"]
    body = json.loads(w.store.objects[eu.key][0])  # type: ignore[index]
    assert body["subgraphs"][0]["name"] == "products-eu"


async def test_large_config_from_a_gzipped_configmap() -> None:
    w = World()
    big = copy.deepcopy(COSMO)
    big["engineConfig"]["stringStorage"] = {f"k{i}": "x" * 200 + str(i) for i in range(10_000)}  # ~2 MB
    raw = json.dumps(big).encode()
    assert len(raw) > 2_000_000
    w.hub.put(configmap("prod", "big", binary={"config.json.gz": gzip.compress(raw)}))
    del w.spec["config"]
    w.spec["configFrom"] = {"configMapKeyRef": {"name": "big", "key": "config.json.gz"}}
    status = await w.converge()
    assert status.phase == "Ready" and status.revision is not None and status.revision.size > 2_000_000


async def test_invalid_cosmo_config_stalls_publishes_nothing_and_keeps_edges() -> None:
    w = World()
    good = (await w.converge()).revision
    writes, puts = w.edge_writes(), w.store.counters["put"]
    bad = copy.deepcopy(COSMO)
    bad["engineConfig"]["datasourceConfigurations"][0]["kind"] = "SOAP"
    w.update(config=bad)
    status = await w.reconcile()
    stalled = next(c for c in status.conditions if c.type == "Stalled")
    assert stalled.status == "True" and stalled.reason == "InvalidConfig"
    assert "$.engineConfig.datasourceConfigurations[0].kind" in stalled.message
    assert status.phase == "Stalled" and status.observed_generation == w.generation
    assert status.revision == good
    assert w.edge_writes() == writes and w.store.counters["put"] == puts
    assert all(w.template_digest(e) == good.digest for e in w.edges)  # type: ignore[union-attr]
    assert w.reasons()["InvalidConfig"] == 1
    w.update(config=copy.deepcopy(COSMO))  # fixed: Stalled goes away
    status = await w.converge()
    assert status.phase == "Ready" and not any(c.type == "Stalled" for c in status.conditions)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (
            lambda w: w.spec.update(signing={"secretRef": {"name": "nope", "key": "key"}}),
            "SigningKeyNotFound",
        ),
        (
            lambda w: (
                w.spec.pop("config"),
                w.spec.update(configFrom={"configMapKeyRef": {"name": "x", "key": "k"}}),
            ),
            "ConfigMapNotFound",
        ),
        (
            lambda w: w.spec.update(
                overlays=[{"clusterSelector": {}, "patch": {"a": "${cluster.labels.zone}"}}]
            ),
            "InvalidOverlay",
        ),
    ],
)
async def test_missing_inputs_stall_with_a_reason(mutate: Any, reason: str) -> None:
    w = World()
    mutate(w)
    status = await w.reconcile()
    assert status.phase == "Stalled"
    assert next(c for c in status.conditions if c.type == "Stalled").reason == reason
    assert w.edge_writes() == 0 and w.store.counters["put"] == 0


async def test_unreachable_cluster_never_blocks_the_others() -> None:
    w = World()
    w.edges["edge-ap"].unreachable = True
    status = await w.converge()
    phases = {c.name: c.phase for c in status.clusters}
    assert phases == {"edge-eu": "Ready", "edge-us": "Ready", "edge-ap": "Unreachable"}
    assert status.summary is not None and status.summary.unreachable == 1 and status.ready_clusters == "2/3"
    assert status.phase == "Degraded"
    assert w.reasons()["ClusterUnreachable"] == 1
    w.edges["edge-ap"].unreachable = False
    await w.registry.probe(w.clusters["edge-ap"])
    status = await w.converge()
    assert status.phase == "Ready"


async def test_s3_down_is_retried_and_edges_untouched() -> None:
    w = World()
    w.store.fail_with = PublishError("S3Unavailable", "s3://bucket/x: connection refused")
    status = await w.reconcile()
    assert status.phase == "Progressing"
    published = next(c for c in status.conditions if c.type == "Published")
    assert published.status == "False" and published.reason == "S3Unavailable"
    assert w.edge_writes() == 0
    w.store.fail_with = None
    assert (await w.converge()).phase == "Ready"


async def test_hand_edited_deployment_is_put_back_on_resync() -> None:
    w = World()
    await w.converge()
    dep = w.edges["edge-us"].deployments()[0]
    dep["spec"]["replicas"] = 7
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    await w.reconcile(full=True)  # the periodic resync
    dep = w.edges["edge-us"].deployments()[0]
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/edgeroll/edgeroll:0.1.0"
    assert w.reasons()["DriftCorrected"] == 1


async def test_untargeted_cluster_loses_its_edge_cache() -> None:
    w = World()
    await w.converge()
    w.clusters["edge-ap"] = EdgeClusterInfo("edge-ap", {"tier": "core"}, w.clusters["edge-ap"].spec)
    status = await w.reconcile()
    assert [c.name for c in status.clusters] == ["edge-eu", "edge-us"]
    assert w.edges["edge-ap"].deployments() == []
    assert w.reasons()["Removed"] == 1


async def test_deletion_removes_everywhere_and_waits_for_unreachable() -> None:
    w = World()
    await w.converge()
    w.edges["edge-eu"].unreachable = True
    result = await w.controller.finalize(w.obj(), w.clusters, w.events.append)
    assert not result.done and result.pending == ["edge-eu"]
    assert w.statuses.status["phase"] == "Deleting"
    assert (
        "edge-eu" in next(c for c in w.statuses.status["conditions"] if c["type"] == "Reconciling")["message"]
    )
    assert w.edges["edge-us"].deployments() == [] and w.edges["edge-ap"].deployments() == []
    assert [k for (k, _, _) in w.edges["edge-us"].objects] == ["Namespace"]
    w.edges["edge-eu"].unreachable = False
    await w.registry.probe(w.clusters["edge-eu"])
    result = await w.controller.finalize(w.obj(), w.clusters, w.events.append)
    assert result.done and w.edges["edge-eu"].deployments() == []


async def test_paused_cluster_is_left_alone() -> None:
    w = World()
    spec = w.clusters["edge-us"].spec
    assert spec is not None
    w.clusters["edge-us"] = EdgeClusterInfo(
        "edge-us", EDGES["edge-us"], spec.model_copy(update={"paused": True})
    )
    status = await w.converge()
    assert {c.name: c.phase for c in status.clusters}["edge-us"] == "Paused"
    assert w.edges["edge-us"].writes == 0


async def test_secrets_never_reach_status_or_events() -> None:
    w = World()
    w.edges["edge-ap"].unreachable = True
    status = await w.converge()
    text = json.dumps(status.to_wire()) + " ".join(e.message for e in w.events)
    for secret_value in ("ro-secret", KEY.decode(), "kubeconfig-bearer-value"):
        assert secret_value not in text


async def test_nothing_reconciles_after_the_finalizer_ran() -> None:
    w = World()
    await w.converge()
    assert (await w.controller.finalize(w.obj(), w.clusters, w.events.append)).done
    late = await w.controller.reconcile(
        w.obj(), w.clusters, w.events.append
    )  # e.g. the daemon, one tick late
    assert late is None and all(e.deployments() == [] for e in w.edges.values())
    deleting = dataclasses.replace(w.obj(), uid="uid-2", deleting=True)
    assert await w.controller.reconcile(deleting, w.clusters, w.events.append) is None


async def test_the_loop_follows_a_rollout_until_ready_then_stops() -> None:
    w = World()
    w.settings = dataclasses.replace(w.settings, progress_seconds=0.05, resync_seconds=3600)
    w.restart()
    await w.reconcile()  # what the create handler does
    stop = asyncio.Event()
    loop = asyncio.create_task(w.controller.run_loop(w.obj, lambda: w.clusters, w.events.append, stop.is_set))
    for edge in w.edges.values():
        edge.finish_rollouts()
    deadline = asyncio.get_running_loop().time() + 10
    while w.statuses.status.get("phase") != "Ready":
        assert asyncio.get_running_loop().time() < deadline, w.statuses.status
        await asyncio.sleep(0.02)
    patches = w.statuses.patches
    stop.set()
    await asyncio.wait_for(loop, timeout=5)
    assert w.statuses.patches == patches
