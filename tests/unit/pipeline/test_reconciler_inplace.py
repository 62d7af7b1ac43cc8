"""EdgeClusters with `revisionSwitch: InPlace`: a new revision moves the pointer and the running pods,
never the pod template; the Deployment says what every pod serves; a refusal fails the cluster at
once and rolls back. Against in-memory apiservers, S3 and cache pods that check what they are told."""

from __future__ import annotations

import base64

import pytest
from pipeline_fakes import World
from test_reconciler_rollout import CANARY, REST, complete, config, step, world

from edgeroll.api.edge_objects import ANNOTATION_DIGEST, ANNOTATION_WANTED, SECRET_CONFIG_DIGEST
from edgeroll.render.pointer import read_pointer
from edgeroll.rollout.planner import REASON_REVISION_REFUSED

pytestmark = pytest.mark.unit

ALL = (CANARY, *REST)


def deployment(w: World, edge: str) -> dict:
    (found,) = w.edges[edge].deployments()
    return found


def served_annotation(w: World, edge: str) -> str | None:
    return deployment(w, edge)["metadata"]["annotations"].get(ANNOTATION_DIGEST)


async def pointer_digest(w: World, edge: str) -> str:
    env = {
        e["name"]: e.get("value")
        for e in deployment(w, edge)["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    found = await w.store.get(env["EDGEROLL_CONFIG_POINTER_KEY"])
    assert found is not None
    return read_pointer(found[0], found[1], b"s" * 32, namespace=w.namespace, name=w.name).digest


async def test_a_new_revision_switches_running_pods_without_touching_the_template() -> None:
    w = world()
    caches = w.switch_in_place(*ALL)
    first = await complete(w)
    assert first.revision is not None
    v1 = first.revision.digest
    template = {e: deployment(w, e)["spec"]["template"] for e in ALL}
    generations = w.generations()
    assert all("edgeroll.io/digest" not in t["metadata"]["annotations"] for t in template.values())
    assert {e: served_annotation(w, e) for e in ALL} == dict.fromkeys(ALL, v1)
    assert {e: set(c.served.values()) for e, c in caches.items()} == {key: {v1} for key in ALL}

    w.update(config=config("v2"))
    status = await complete(w)
    assert status.revision is not None and status.revision.digest != v1
    v2 = status.revision.digest
    # Every pod serves v2, told in place: same template, same generation (no pod was restarted).
    assert {e: set(c.served.values()) for e, c in caches.items()} == {key: {v2} for key in ALL}
    assert w.generations() == generations
    assert {e: deployment(w, e)["spec"]["template"] for e in ALL} == template
    for e in ALL:
        assert served_annotation(w, e) == v2
        assert deployment(w, e)["metadata"]["annotations"][ANNOTATION_WANTED] == v2
        assert await pointer_digest(w, e) == v2
        secret = w.edges[e].obj("Secret", "edgeroll-system", deployment(w, e)["metadata"]["name"])
        assert secret is not None
        assert base64.b64decode(secret["data"][SECRET_CONFIG_DIGEST]).decode() == v2  # what a new pod reads
    assert {c.name: (c.phase, c.digest) for c in status.clusters} == dict.fromkeys(ALL, ("Ready", v2))
    assert w.reasons()["Switched"] >= 3


async def test_the_canary_refusing_a_revision_fails_it_at_once_and_rolls_it_back() -> None:
    w = world()
    caches = w.switch_in_place(*ALL)
    v1 = (await complete(w)).revision
    assert v1 is not None
    w.update(config=config("v2"))
    caches[CANARY].refuses = lambda pod, digest: digest != v1.digest
    await w.reconcile()  # applies, and records the refusal on the Deployment
    status = await w.reconcile(full=False)  # the pass its watch event wakes: no clock moved
    canary = next(c for c in status.clusters if c.name == CANARY)
    # No waiting for progressDeadlineSeconds: the refusal is the verdict.
    assert canary.phase == "Failed", canary
    assert "refused" in (canary.message or "") and "does not hash" in (canary.message or ""), canary
    status = await w.reconcile(full=False)  # the rollback's switch, then the pass that sees it done
    status = await w.reconcile(full=False)
    canary = next(c for c in status.clusters if c.name == CANARY)
    assert status.rollout is not None and status.rollout.phase == "RolledBack", status.rollout
    assert canary.phase == "RolledBack" and canary.digest == v1.digest, canary
    assert REASON_REVISION_REFUSED in {
        status.rollout.reason,
        *(c.failure_reason for c in status.rollout.clusters),
    }
    caches[CANARY].refuses = lambda pod, digest: False
    status = await step(w)
    assert await pointer_digest(w, CANARY) == v1.digest
    assert set(caches[CANARY].served.values()) == {v1.digest}  # it never served anything else
    assert all(set(caches[e].served.values()) == {v1.digest} for e in REST)  # the next wave never started
    assert {c.name: c.digest for c in status.clusters} == dict.fromkeys(ALL, v1.digest)


async def test_pods_that_do_not_answer_hold_the_cluster_and_say_why() -> None:
    w = world({"strategy": "AllAtOnce"})
    caches = w.switch_in_place(*ALL)
    v1 = (await complete(w)).revision
    assert v1 is not None
    w.update(config=config("v2"))
    caches["edge-eu"].down = True
    status = await w.reconcile()
    for _ in range(3):
        status = await step(w)
    eu = next(c for c in status.clusters if c.name == "edge-eu")
    assert eu.phase == "Progressing" and eu.digest is None  # switching: no digest that every pod serves
    assert "error trying to reach service" in (eu.message or ""), eu.message
    assert status.phase != "Ready"
    caches["edge-eu"].down = False
    status = await step(w)
    status = await step(w)
    assert status.phase == "Ready", status
    assert {c.name: c.digest for c in status.clusters} == dict.fromkeys(
        ALL, status.revision.digest if status.revision else None
    )


async def test_pods_still_starting_are_waited_for() -> None:
    w = world({"strategy": "AllAtOnce"})
    w.switch_in_place(*ALL)
    w.edges["edge-us"].pods_pending = True
    status = await w.reconcile()
    status = await step(w)
    us = next(c for c in status.clusters if c.name == "edge-us")
    assert us.phase == "Progressing" and "Pending" in (us.message or ""), us
    w.edges["edge-us"].pods_pending = False
    status = await step(w)
    status = await step(w)
    assert status.phase == "Ready", status


async def test_a_converged_inplace_fleet_writes_nothing_on_resync() -> None:
    w = world({"strategy": "AllAtOnce"})
    w.switch_in_place(*ALL)
    await complete(w)
    writes, puts = w.edge_writes(), w.store.counters["put"]
    for _ in range(3):
        await w.reconcile()
    assert (w.edge_writes(), w.store.counters["put"]) == (writes, puts)


async def test_after_one_pod_took_a_revision_another_refused_every_pod_is_brought_back() -> None:
    w = world({"strategy": "AllAtOnce", "autoRollback": True})
    w.spec["cache"] = {"replicas": 2}
    caches = w.switch_in_place(*ALL)
    v1 = (await complete(w)).revision
    assert v1 is not None
    w.update(config=config("v2"))
    (second_pod,) = [p for p in caches["edge-eu"].served if p.endswith("-1")]
    caches["edge-eu"].refuses = lambda pod, digest: pod == second_pod and digest != v1.digest
    status = await w.reconcile()
    assert len(set(caches["edge-eu"].served.values())) == 2  # one pod on v2, the other refused it
    for _ in range(3):
        status = await step(w)
    assert status.rollout is not None and status.rollout.phase == "RolledBack", status.rollout
    assert {e: set(c.served.values()) for e, c in caches.items()} == {e: {v1.digest} for e in ALL}
    assert {c.name: c.digest for c in status.clusters} == dict.fromkeys(ALL, v1.digest)
