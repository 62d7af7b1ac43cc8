"""No silent loss (issue 11): a status that does not parse is kept as far as it does, with a warning;
a damaged manifest is rebuilt from the listing. Pure salvage first, then end to end on in-memory fakes."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pipeline_fakes import COSMO, World

from edgeroll.api.routerconfig import ClusterPhase
from edgeroll.clusters.registry import EdgeClusterInfo
from edgeroll.pipeline.reconciler import salvage_status
from edgeroll.publish.history import manifest_key

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "a" * 64
GOOD: dict[str, Any] = {
    "observedGeneration": 3,
    "phase": "Ready",
    "clusters": [
        {"name": "edge-eu", "phase": "Ready", "digest": DIGEST, "readyReplicas": 2, "replicas": 2},
        {"name": "edge-us", "phase": "Ready", "digest": DIGEST},
    ],
}


def test_a_status_that_parses_has_no_problems() -> None:
    status, problems = salvage_status(GOOD)
    assert problems == [] and [c.name for c in status.clusters] == ["edge-eu", "edge-us"]
    assert salvage_status({})[1] == [] and salvage_status(None)[1] == []


def test_clusters_with_unknown_phases_or_bad_fields_are_kept_by_name() -> None:
    raw = copy.deepcopy(GOOD)
    raw["clusters"][0]["phase"] = "Draining"  # a newer version's phase, after a downgrade
    raw["clusters"][1]["readyReplicas"] = "two"
    raw["clusters"].append({"phase": "Ready"})  # no name: nothing to keep
    raw["observedGeneration"] = "three"
    status, problems = salvage_status(raw)
    assert [(c.name, c.phase, c.digest) for c in status.clusters] == [
        ("edge-eu", ClusterPhase.PENDING, DIGEST),
        ("edge-us", ClusterPhase.READY, DIGEST),
    ]
    assert status.phase == "Ready" and status.observed_generation is None
    text = "; ".join(problems)
    for path in (
        "status.clusters[0]: phase",
        "status.clusters[1]: readyReplicas",
        "status.clusters[2]",
        "status.observedGeneration",
    ):
        assert path in text, (path, text)


@pytest.mark.parametrize(
    "raw",
    [
        "garbage",
        7,
        ["a"],
        {"clusters": "edge-eu"},
        {"clusters": [None, 3, "x", {"name": 5}, {"name": ""}]},
        {"conditions": [{"type": 1}], "rollout": {"phase": "Sideways"}, "summary": []},
        {"clusters": [{"name": "edge-eu", "phase": {"deep": [[[[[[[[[[[]]]]]]]]]]]}}]},
    ],
)
def test_salvage_never_raises_and_always_says_what_it_dropped(raw: Any) -> None:
    status, problems = salvage_status(raw)
    assert problems
    assert all(c.name for c in status.clusters)


def test_a_deeply_nested_status_does_not_crash() -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    status, problems = salvage_status({"clusters": [{"name": "edge-eu", "phase": "Ready"}], "summary": deep})
    assert problems and [c.name for c in status.clusters] == ["edge-eu"]


def _new_version(w: World, n: int) -> None:
    config = copy.deepcopy(COSMO)
    config["engineConfig"]["graphqlSchema"] += f" # v{n}"
    w.update(config=config)


def _break_status(w: World) -> None:
    """What a downgrade leaves: phases this version does not know, and a field of the wrong type."""
    for c in w.statuses.status["clusters"]:
        c["phase"] = "Draining"
    w.statuses.status["summary"] = "n/a"


async def test_an_unparsable_status_still_removes_the_cache_of_an_untargeted_cluster() -> None:
    w = World()
    await w.converge()
    _break_status(w)
    w.restart()  # nothing in memory: the stored status is all there is
    w.clusters["edge-ap"] = EdgeClusterInfo("edge-ap", {"tier": "core"}, w.clusters["edge-ap"].spec)
    status = await w.reconcile()
    assert w.edges["edge-ap"].deployments() == []  # not forgotten: removed
    assert [c.name for c in status.clusters] == ["edge-eu", "edge-us"]
    warnings = [e for e in w.events if e.reason == "InvalidStatus"]
    assert len(warnings) == 1 and warnings[0].type == "Warning"
    assert "status.clusters[0]: phase" in warnings[0].message and "status.summary" in warnings[0].message
    await w.reconcile()  # rewritten now: no second warning
    assert w.reasons()["InvalidStatus"] == 1


async def test_an_unparsable_status_still_lets_deletion_wait_for_every_cache() -> None:
    w = World()
    await w.converge()
    _break_status(w)
    w.restart()
    w.clusters.pop("edge-ap")  # its EdgeCluster is gone: only the status remembers the cache
    w.edges["edge-eu"].unreachable = True
    result = await w.controller.finalize(w.obj(), w.clusters, w.events.append)
    assert not result.done and result.pending == ["edge-eu"]  # not dropped as "never had a cache"
    assert w.reasons()["InvalidStatus"] == 1
    assert any(e.reason == "CleanupSkipped" and "edge-ap" in e.message for e in w.events)


async def test_garbage_collection_waits_for_the_status_to_parse() -> None:
    w = World()
    w.spec["revisionHistoryLimit"] = 1
    first = (await w.converge()).revision
    for n in (2, 3):
        _new_version(w, n)
        await w.converge()
    assert first is not None  # history limit 1, no rollback needs it: the first revision is garbage now
    _break_status(w)
    w.restart()
    first_key = f"edgeroll/prod/graph/{first.digest.removeprefix('sha256:')}.json"
    assert first_key in w.store.objects
    await w.reconcile()
    assert first_key in w.store.objects  # nothing deleted while part of the status is unknown
    await w.reconcile()  # the status is whole again
    assert first_key not in w.store.objects


async def test_a_damaged_manifest_is_rebuilt_with_a_warning_naming_its_key() -> None:
    w = World()
    await w.converge()
    _new_version(w, 2)
    await w.converge()
    key = manifest_key("edgeroll", "prod", "graph")
    before = [e["digest"] for e in json.loads(w.store.objects[key][0])["revisions"]]
    assert len(before) == 2
    w.store.objects[key] = (b"{garbage", None)
    _new_version(w, 3)
    await w.reconcile()
    after = [e["digest"] for e in json.loads(w.store.objects[key][0])["revisions"]]
    assert after[1:] == before and len(after) == 3
    rebuilt = [e for e in w.events if e.reason == "ManifestRebuilt"]
    assert len(rebuilt) == 1 and rebuilt[0].type == "Warning"
    assert f"s3://bucket/{key}" in rebuilt[0].message and "2 revisions recovered" in rebuilt[0].message


async def test_a_status_that_lost_its_clusters_still_removes_an_untargeted_cache_by_its_objects() -> None:
    w = World()
    await w.converge()
    w.statuses.status["clusters"] = "lost"  # nothing of the list parses: only the edges remember
    w.restart()
    w.clusters["edge-ap"] = EdgeClusterInfo("edge-ap", {"tier": "core"}, w.clusters["edge-ap"].spec)
    status = await w.reconcile()
    assert w.edges["edge-ap"].deployments() == []
    assert [c.name for c in status.clusters] == ["edge-eu", "edge-us"]
    assert any(e.reason == "Removed" and "edge-ap" in e.message for e in w.events)


async def test_deletion_finds_every_cache_by_its_objects_even_with_an_empty_status() -> None:
    w = World()
    await w.converge()
    w.statuses.status = {}  # e.g. wiped by hand
    w.spec["targets"] = {"clusterSelector": {"matchLabels": {"tier": "nowhere"}}}
    w.restart()
    result = await w.controller.finalize(w.obj(), w.clusters, w.events.append)
    assert result is not None and result.done
    assert all(edge.deployments() == [] for edge in w.edges.values())


async def test_a_status_edited_by_hand_while_no_operator_ran_is_checked_against_the_edges_at_start() -> None:
    w = World()
    await w.converge()
    w.statuses.status["clusters"] = [c for c in w.statuses.status["clusters"] if c["name"] != "edge-ap"]
    w.clusters["edge-ap"] = EdgeClusterInfo("edge-ap", {"tier": "core"}, w.clusters["edge-ap"].spec)
    w.restart()  # the status parses, so only a look at the edges finds edge-ap's cache
    await w.reconcile()
    assert w.edges["edge-ap"].deployments() == []
    gets = w.edges["edge-ap"].calls["get"]
    await w.reconcile()  # once per process: the next resync does not look again
    assert w.edges["edge-ap"].calls["get"] == gets
