"""The planner wired into the reconciler, against in-memory apiservers and S3 with a clock the test moves.

Edges sort as edge-ap, edge-eu, edge-us: with `canary: 1`, edge-ap is the canary.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pipeline_fakes import COSMO, World

from edgeroll.api.routerconfig import RouterConfigStatus
from edgeroll.rollout.commands import annotation_key
from edgeroll.rollout.resources import ANNOTATION_KEY, ANNOTATION_LAST_GOOD, ANNOTATION_SIGNATURE

pytestmark = pytest.mark.unit

CANARY, REST = "edge-ap", ("edge-eu", "edge-us")
CANARY_THEN_REST = {"strategy": "Progressive", "canary": 1, "soakSeconds": 30, "progressDeadlineSeconds": 60}


def config(version: str) -> dict[str, Any]:
    out = copy.deepcopy(COSMO)
    out["engineConfig"]["graphqlSchema"] += f" # {version}"
    return out


def world(rollout: dict[str, Any] | None = None) -> World:
    w = World()
    w.spec["config"] = config("v1")
    w.spec["rollout"] = dict(rollout or CANARY_THEN_REST)
    return w


async def step(w: World, *healthy: str) -> RouterConfigStatus:
    """A progress check, after the named edges (default: all) finished their rolling updates."""
    for name in healthy or tuple(w.edges):
        w.edges[name].finish_rollouts()
    return await w.reconcile(full=False)


async def complete(w: World) -> RouterConfigStatus:
    """Drive the rollout to its end: every edge healthy, soaks waited out."""
    status = await w.reconcile()
    for _ in range(10):
        if status.rollout is not None and status.rollout.phase == "Completed" and status.phase == "Ready":
            return status
        w.tick(w.spec["rollout"].get("soakSeconds", 0))
        status = await step(w)
    raise AssertionError(f"the rollout did not complete: {status.rollout}")


def condition(status: RouterConfigStatus, type_: str) -> Any:
    return next((c for c in status.conditions if c.type == type_), None)


def phases(status: RouterConfigStatus) -> dict[str, str]:
    return {c.name: c.phase.value for c in status.clusters}


async def test_canary_first_then_the_rest_after_the_soak() -> None:
    w = world()
    status = await w.reconcile()
    assert w.template_digest(CANARY) is not None
    assert all(w.template_digest(e) is None for e in REST)  # a first rollout goes wave by wave too
    assert status.rollout is not None and status.rollout.wave_progress == "1/2"
    assert phases(status) == {CANARY: "Progressing", "edge-eu": "Pending", "edge-us": "Pending"}
    assert {c.name: c.wave for c in status.clusters} == {
        CANARY: "canary",
        "edge-eu": "batch-1",
        "edge-us": "batch-1",
    }
    assert condition(status, "Reconciling").reason == "Progressing"
    assert condition(status, "Ready").status == "False"

    status = await step(w, CANARY)
    assert status.rollout is not None and status.rollout.phase == "Soaking"
    reconciling = condition(status, "Reconciling")
    assert reconciling.reason == "Soaking" and "Soaking wave 1/2 (canary)" in reconciling.message
    w.tick(29)
    await step(w)
    assert all(w.template_digest(e) is None for e in REST), "the next wave waits for the soak"
    w.tick(1)
    status = await step(w)
    assert all(w.template_digest(e) == status.revision.digest for e in REST)  # type: ignore[union-attr]
    status = await step(w)
    assert status.rollout is not None and status.rollout.phase == "Completed"
    assert status.phase == "Ready" and condition(status, "Ready").status == "True"
    assert condition(status, "Reconciling") is None and condition(status, "Stalled") is None
    waves = status.rollout.waves
    assert waves[0].healthy_at is not None and waves[1].started_at is not None
    assert (waves[1].started_at - waves[0].healthy_at).total_seconds() >= 30
    reasons = w.reasons()
    for reason in ("RolloutStarted", "WaveStarted", "WaveHealthy", "WaveSoaked", "RolloutCompleted", "Ready"):
        assert reasons[reason] >= 1, reason
    assert reasons["WaveStarted"] == 2


async def test_status_rollout_is_persisted_before_any_edge_is_touched() -> None:
    w = world()
    await w.reconcile()
    assert w.journal[0] == "status.rollout", w.journal
    assert any(entry.startswith(f"{CANARY}: apply") for entry in w.journal[1:])
    assert w.statuses.status["rollout"]["waves"][0]["startedAt"]


async def test_nothing_acts_on_a_plan_that_could_not_be_persisted() -> None:
    w = world()
    w.statuses.fail_with = RuntimeError("the hub refuses")
    result = await w.controller.reconcile(w.obj(), w.clusters, w.events.append)
    assert result is not None and result.transient
    assert w.edge_writes() == 0 and {e.reason for e in w.events} == {"Published"}  # no RolloutStarted
    w.statuses.fail_with = None
    await w.reconcile()
    assert w.template_digest(CANARY) is not None


async def test_a_failing_canary_is_rolled_back_and_the_rest_never_move() -> None:
    w = world({**CANARY_THEN_REST, "soakSeconds": 0, "progressDeadlineSeconds": 20})
    v1 = (await complete(w)).revision
    assert v1 is not None
    generations = w.generations()
    v1_template = copy.deepcopy(
        w.edges[CANARY].deployments()[0]["spec"]["template"]["metadata"]["annotations"]
    )
    w.update(config=config("v2"))
    status = await w.reconcile()
    v2 = status.revision
    assert v2 is not None and w.template_digest(CANARY) == v2.digest
    w.edges[CANARY].stall_rollouts()  # its new pods never become available
    w.tick(10)
    status = await w.reconcile(full=False)
    assert status.rollout is not None and status.rollout.phase == "Progressing"
    w.tick(11)
    status = await w.reconcile(full=False)  # past the deadline: failed, over budget, rolled back
    assert status.rollout is not None and status.rollout.phase == "RolledBack"
    assert status.rollout.reason == "HealthDeadlineExceeded"
    assert w.template_digest(CANARY) == v1.digest
    annotations = w.edges[CANARY].deployments()[0]["spec"]["template"]["metadata"]["annotations"]
    assert annotations == v1_template  # key and signature from the manifest, not re-rendered
    stalled = condition(status, "Stalled")
    assert stalled.status == "True" and stalled.reason == "HealthDeadlineExceeded"
    assert CANARY in stalled.message and "canary" in stalled.message
    assert condition(status, "Reconciling").reason == "RollingBack"
    assert condition(status, "Ready").status == "False" and status.phase == "Stalled"
    status = await step(w, CANARY)
    assert status.rollout is not None and status.rollout.rolled_back_at is not None
    assert phases(status)[CANARY] == "RolledBack" and condition(status, "Reconciling") is None
    assert {e: w.generations()[e] for e in REST} == {e: generations[e] for e in REST}
    reasons = w.reasons()
    assert reasons["ClusterFailed"] == 1 and reasons["RolloutFailed"] == 1 and reasons["RolledBack"] == 1
    assert reasons["HealthDeadlineExceeded"] == 0  # the Stalled condition is not told twice
    for stored in w.statuses.history:  # every status ever stored agrees with its own status.rollout
        if stored["rollout"].get("rolledBackAt"):
            assert {c["name"]: c["phase"] for c in stored["clusters"]}[CANARY] == "RolledBack", stored


async def test_drift_correction_follows_the_plan_not_the_new_revision() -> None:
    w = world()
    v1 = (await complete(w)).revision
    w.update(config=config("v2"))
    await w.reconcile()  # the canary moves; the rest wait for their wave
    dep = w.edges["edge-us"].deployments()[0]
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    await w.reconcile(full=True)
    dep = w.edges["edge-us"].deployments()[0]
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/edgeroll/edgeroll:0.1.0"
    assert w.template_digest("edge-us") == v1.digest  # type: ignore[union-attr]
    assert w.reasons()["DriftCorrected"] == 1


async def test_promote_skips_the_rest_of_the_soak() -> None:
    w = world({**CANARY_THEN_REST, "soakSeconds": 3600})
    await w.reconcile()
    status = await step(w, CANARY)
    assert status.rollout is not None and status.rollout.phase == "Soaking"
    w.annotations[annotation_key("promote")] = "2026-01-01T00:00:01.000000Z"
    status = await step(w, CANARY)
    assert all(w.template_digest(e) is not None for e in REST)
    assert status.rollout is not None and status.rollout.waves[0].promoted
    assert status.rollout.handled.promote == "2026-01-01T00:00:01.000000Z"
    assert w.reasons()["RolloutPromoted"] == 1
    await step(w)  # the same annotation again: handled once
    assert w.reasons()["RolloutPromoted"] == 1


async def test_pause_holds_the_next_wave_and_resume_lets_it_start() -> None:
    w = world()
    await w.reconcile()
    await step(w, CANARY)
    w.update(rollout={**CANARY_THEN_REST, "paused": True})  # a policy change: not a new revision
    status = await w.reconcile()
    assert status.rollout is not None and status.rollout.phase == "Paused"
    assert condition(status, "Reconciling").reason == "Paused"
    w.tick(60)
    await step(w)
    assert all(w.template_digest(e) is None for e in REST)
    w.update(rollout=dict(CANARY_THEN_REST))
    status = await w.reconcile()
    assert all(w.template_digest(e) is not None for e in REST)
    reasons = w.reasons()
    assert reasons["RolloutStarted"] == 1 and reasons["RolloutPaused"] == 1 and reasons["RolloutResumed"] == 1


async def test_abort_sends_moved_clusters_back() -> None:
    w = world()
    v1 = (await complete(w)).revision
    w.update(config=config("v2"))
    await w.reconcile()
    await step(w, CANARY)
    w.annotations[annotation_key("abort")] = "2026-01-01T01:00:00.000000Z"
    status = await step(w, CANARY)
    assert status.rollout is not None and status.rollout.phase == "RolledBack"
    assert status.rollout.reason == "Aborted" and condition(status, "Stalled").reason == "Aborted"
    assert {e: w.template_digest(e) for e in w.edges} == dict.fromkeys(w.edges, v1.digest)  # type: ignore[union-attr]


async def test_undo_to_a_chosen_digest_after_completion() -> None:
    w = world({**CANARY_THEN_REST, "soakSeconds": 0})
    v1 = (await complete(w)).revision
    w.update(config=config("v2"))
    v2 = (await complete(w)).revision
    assert v1 is not None and v2 is not None and v1.digest != v2.digest
    w.annotations[annotation_key("undo")] = json.dumps({"id": "2026-01-02T00:00:00Z", "toDigest": v1.digest})
    status = await w.reconcile(full=False)
    assert status.rollout is not None and status.rollout.phase == "RolledBack"
    assert status.rollout.reason == "Undone"
    assert {e: w.template_digest(e) for e in w.edges} == dict.fromkeys(w.edges, v1.digest)
    status = await step(w)
    assert status.rollout is not None and status.rollout.rolled_back_at is not None
    assert set(phases(status).values()) == {"RolledBack"}


async def test_an_unparseable_command_is_reported_once_and_ignored() -> None:
    w = world()
    w.annotations[annotation_key("undo")] = json.dumps({"id": "x", "toDigest": "v1"})
    await w.reconcile()
    await w.reconcile(full=False)
    assert w.reasons()["InvalidCommand"] == 1
    assert "sha256" in next(e.message for e in w.events if e.reason == "InvalidCommand")


async def test_a_restart_mid_soak_redoes_nothing_and_skips_no_gate() -> None:
    w = world()
    await w.reconcile()
    await step(w, CANARY)
    writes, events = w.edge_writes(), len(w.events)
    w.restart()  # kill -9: nothing in memory, status.rollout on the hub
    w.tick(10)
    status = await w.reconcile()
    assert w.edge_writes() == writes and len(w.events) == events
    assert status.rollout is not None and status.rollout.phase == "Soaking"
    w.tick(20)
    await step(w, CANARY)
    assert all(w.template_digest(e) is not None for e in REST)
    assert w.reasons()["WaveStarted"] == 2


async def test_a_new_revision_mid_rollout_supersedes_it() -> None:
    w = world()
    v1 = (await complete(w)).revision
    w.update(config=config("v2"))
    await w.reconcile()
    await step(w, CANARY)
    w.update(config=config("v3"))
    status = await w.reconcile()
    v3 = status.revision
    assert v1 is not None and v3 is not None
    assert w.template_digest(CANARY) == v3.digest
    assert all(w.template_digest(e) == v1.digest for e in REST)
    assert status.rollout is not None and status.rollout.wave == 0 and status.rollout.revision == v3.digest
    assert w.reasons()["RolloutSuperseded"] == 1


async def test_unreachable_cluster_is_stale_under_skip_and_holds_under_block() -> None:
    w = world({**CANARY_THEN_REST, "soakSeconds": 0})
    await complete(w)
    w.edges["edge-us"].unreachable = True
    w.update(config=config("v2"))
    status = await w.reconcile()
    await step(w, CANARY)
    status = await step(w, CANARY, "edge-eu")
    status = await step(w, CANARY, "edge-eu")
    assert phases(status)["edge-us"] == "Stale"
    assert status.rollout is not None and status.rollout.phase == "Completed"
    assert condition(status, "Ready").reason == "ClustersUnreachable"

    w = world({**CANARY_THEN_REST, "soakSeconds": 0, "unreachablePolicy": "Block"})
    await complete(w)
    w.edges["edge-us"].unreachable = True
    w.update(config=config("v2"))
    await w.reconcile()
    for _ in range(3):
        status = await step(w, CANARY, "edge-eu")
    assert status.rollout is not None and status.rollout.phase == "Progressing"
    assert "holding the rollout" in next(c.message for c in status.clusters if c.name == "edge-us")


async def test_retention_keeps_what_a_rollback_needs() -> None:
    w = world({**CANARY_THEN_REST, "soakSeconds": 0})
    w.spec["revisionHistoryLimit"] = 1
    v1 = (await complete(w)).revision
    w.update(config=config("v2"))
    await complete(w)
    await w.reconcile(full=True)  # settled: retention runs
    assert v1 is not None and v1.key in w.store.objects  # every cluster's last-good
    w.annotations[annotation_key("undo")] = "2026-01-02T00:00:00Z"
    await w.reconcile(full=False)
    assert {e: w.template_digest(e) for e in w.edges} == dict.fromkeys(w.edges, v1.digest)


async def test_the_deployment_records_its_last_good_digest() -> None:
    w = world({**CANARY_THEN_REST, "soakSeconds": 0})
    v1 = (await complete(w)).revision
    assert all(
        ANNOTATION_LAST_GOOD not in d["metadata"]["annotations"] for d in w.edges[CANARY].deployments()
    )
    w.update(config=config("v2"))
    await w.reconcile()
    dep = w.edges[CANARY].deployments()[0]
    assert dep["metadata"]["annotations"][ANNOTATION_LAST_GOOD] == v1.digest  # type: ignore[union-attr]
    template = dep["spec"]["template"]["metadata"]["annotations"]
    assert ANNOTATION_LAST_GOOD not in template and {ANNOTATION_KEY, ANNOTATION_SIGNATURE} <= template.keys()


async def test_a_steady_completed_rollout_writes_nothing() -> None:
    w = world({**CANARY_THEN_REST, "soakSeconds": 0})
    await complete(w)
    writes, patches, events = w.edge_writes(), w.statuses.patches, len(w.events)
    w.tick(3600)
    await w.reconcile(full=True)
    w.restart()
    await w.reconcile(full=True)
    await w.reconcile(full=False)
    assert (w.edge_writes(), w.statuses.patches, len(w.events)) == (writes, patches, events)


async def test_without_auto_rollback_a_failure_halts_and_stalls_in_place() -> None:
    w = world({**CANARY_THEN_REST, "soakSeconds": 0, "progressDeadlineSeconds": 20, "autoRollback": False})
    await complete(w)
    w.update(config=config("v2"))
    v2 = (await w.reconcile()).revision
    w.edges[CANARY].stall_rollouts()
    w.tick(21)
    status = await w.reconcile(full=False)
    assert status.rollout is not None and status.rollout.phase == "Failed"
    assert w.template_digest(CANARY) == v2.digest  # type: ignore[union-attr]  # left where it is
    stalled = condition(status, "Stalled")
    assert stalled.reason == "HealthDeadlineExceeded" and "autoRollback off" in stalled.message
    assert condition(status, "Reconciling") is None and status.phase == "Stalled"
    assert phases(status)[CANARY] == "Failed"


async def test_a_config_rolled_out_before_status_rollout_existed_is_adopted_without_writes() -> None:
    w = world({"strategy": "AllAtOnce"})
    await complete(w)
    w.statuses.status.pop("rollout")  # as the first operator core left it
    w.restart()
    writes = w.edge_writes()
    status = await w.reconcile()
    assert status.rollout is not None and status.rollout.phase == "Completed"
    assert status.phase == "Ready" and w.edge_writes() == writes


async def test_a_deny_window_holds_the_first_wave_and_the_controller_requeues_for_its_end() -> None:
    # The clock starts at midnight, inside a freeze from 23:50 for 30 minutes.
    freeze = {"kind": "Deny", "schedule": "50 23 * * *", "durationSeconds": 1800}
    w = world({**CANARY_THEN_REST, "windows": [freeze]})
    result = await w.controller.reconcile(w.obj(), w.clusters, w.events.append, full=True)
    assert result is not None
    status = result.status
    assert all(w.template_digest(e) is None for e in (CANARY, *REST)), "no wave starts inside a Deny window"
    assert status.rollout is not None and status.rollout.phase == "Waiting"
    assert status.rollout.window is not None and status.rollout.window.next_open_at == w.t.replace(minute=20)
    reconciling = condition(status, "Reconciling")
    assert reconciling.reason == "OutsideWindow" and condition(status, "Ready").reason == "OutsideWindow"
    assert "next opening 2026-01-01T00:20:00+00:00" in reconciling.message
    # Looked at again every probe while it waits (as when paused), not every progress tick...
    assert result.requeue_after == w.controller.settings.probe_seconds < 1200
    # ...and right at the opening when that comes first (the planner's gate, plus the 50 ms margin).
    w.tick(1190)
    result = await w.controller.reconcile(w.obj(), w.clusters, w.events.append, full=False)
    assert result is not None and 10 <= result.requeue_after <= 10.1
    assert w.template_digest(CANARY) is None
    w.tick(10)
    status = await step(w)
    assert w.template_digest(CANARY) is not None and status.rollout is not None
    assert status.rollout.phase == "Progressing" and status.rollout.window is None
    assert w.reasons()["OutsideWindow"] == 1


async def test_an_unknown_time_zone_stalls_naming_the_field() -> None:
    freeze = {"kind": "Deny", "schedule": "0 22 * * *", "durationSeconds": 60, "timeZone": "Europe/Atlantis"}
    w = world({**CANARY_THEN_REST, "windows": [freeze]})
    status = await w.reconcile()
    stalled = condition(status, "Stalled")
    assert stalled.reason == "InvalidSpec" and status.phase == "Stalled"
    assert stalled.message.startswith("spec.rollout.windows[0].timeZone: Value error, unknown IANA time zone")
    assert all(w.template_digest(e) is None for e in (CANARY, *REST))
