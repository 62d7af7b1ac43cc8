"""Failures, on the lab and on kind: a canary that fails for real rolls back on its own; an unreachable
cluster is Stale and skipped under Skip, and holds the rollout under Block.

The canary (ap-a) fails for real (`RolloutLab.new_revision_fails`). On the lab its edge namespace gets
a ResourceQuota at exactly the number of pods running there, so what runs keeps running but the new
revision's pod can never be created, let alone become Available; its twin ap-b, on the same apiserver
in another namespace, is unaffected. On kind, where pods run, the new revision's bytes are altered on
their way to the edges, so the canary's new cache pod refuses them and never turns Ready, while its old
pod keeps serving. (Impossible `spec.cache.resources` would not do: spec.cache is not part of the
revision, so a rollback would carry it too.)

An unreachable cluster is one whose kubeconfig Secret points at a closed port, the apiserver itself
running on: on kind the operator pod finds nothing listening on its own loopback either.
"""

from __future__ import annotations

from typing import Any

import pytest
from rollout_e2e_kit import RolloutLab, cosmo_variant, digest_of, hold_for
from tests.e2e.operator.operator_e2e_kit import cosmo_config

pytestmark = pytest.mark.e2e

DEADLINE = 10
# On kind every wave waits for real pods (scheduled, started, fetching from S3, Ready) on a 2-core CI
# machine; 10 s would fail healthy waves there.
KIND_DEADLINE = 30


def deadline_for(fleet: RolloutLab) -> int:
    return KIND_DEADLINE if fleet.on_kind else DEADLINE


def policy_for(fleet: RolloutLab) -> dict[str, Any]:
    return {
        "strategy": "Progressive",
        "canary": 1,
        "batchSize": 3,
        "soakSeconds": 1,
        "progressDeadlineSeconds": deadline_for(fleet),
    }


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def test_a_failing_canary_halts_the_rollout_and_rolls_back(fleet: RolloutLab) -> None:
    policy, limit = policy_for(fleet), deadline_for(fleet)
    v1, v2 = (cosmo_variant(cosmo_config(), f"canary-{v}") for v in ("v1", "v2"))
    fleet.apply("canary", v1, policy)
    fleet.wait_phase("canary", "Completed", digest_of(v1), timeout=120)
    fleet.e2e.wait_ready("canary")
    canary, rest = fleet.names[0], fleet.names[1:]
    before = fleet.generations("canary")

    with fleet.new_revision_fails(canary, "canary", digest_of(v2)):
        fleet.apply("canary", v2, policy)

        def rolled_back(st: dict[str, Any]) -> bool:
            r = st.get("rollout") or {}
            return (
                r.get("revision") == digest_of(v2)
                and r.get("phase") == "RolledBack"
                and bool(r.get("rolledBackAt"))
            )

        status = fleet.wait_rollout("canary", rolled_back, timeout=limit + 60, what="the canary rolled back")

    rollout = status["rollout"]
    assert rollout["reason"] == "HealthDeadlineExceeded"
    assert canary in rollout["message"] and "wave canary" in rollout["message"]
    stalled, ready = condition(status, "Stalled"), condition(status, "Ready")
    assert stalled["status"] == "True" and stalled["reason"] == "HealthDeadlineExceeded"
    assert canary in stalled["message"] and f"progressDeadlineSeconds={limit}" in stalled["message"]
    assert ready["status"] == "False" and ready["reason"] == "HealthDeadlineExceeded"
    assert status["phase"] == "Stalled"
    record = next(r for r in rollout["clusters"] if r["name"] == canary)
    assert record["failureReason"] == "HealthDeadlineExceeded" and record["rollbackTo"] == digest_of(v1)
    phases = {c["name"]: c["phase"] for c in status["clusters"]}
    assert phases[canary] == "RolledBack"
    assert all(phases[n] in ("RolledBack", "Pending") for n in rest), phases  # on last-good, never moved
    assert set(fleet.digests("canary").values()) == {digest_of(v1)}
    after = fleet.generations("canary")
    assert {n: after[n] - before[n] for n in before} == {n: 2 if n == canary else 0 for n in before}
    reasons = fleet.reasons("canary")
    for reason in ("ClusterFailed", "RolloutFailed", "RollbackStarted", "RolledBack"):
        assert reason in reasons, reasons
    fleet.delete("canary")


def test_unreachable_cluster_is_stale_under_skip_and_the_rollout_completes(fleet: RolloutLab) -> None:
    policy = policy_for(fleet)
    v1, v2 = (cosmo_variant(cosmo_config(), f"skip-{v}") for v in ("v1", "v2"))
    fleet.apply("skip", v1, policy)
    fleet.wait_phase("skip", "Completed", digest_of(v1), timeout=120)
    lost = fleet.names[-1]  # us-b, in the last wave
    with fleet.unreachable(lost):
        fleet.apply("skip", v2, policy)
        status = fleet.wait_phase("skip", "Completed", digest_of(v2), timeout=120)
        phases = {c["name"]: c["phase"] for c in status["clusters"]}
        assert phases[lost] == "Stale" and all(p == "Ready" for n, p in phases.items() if n != lost)
        record = next(r for r in status["rollout"]["clusters"] if r["name"] == lost)
        assert record["stale"] is True
        ready = condition(status, "Ready")
        assert ready["status"] == "False" and ready["reason"] == "ClustersUnreachable"
        assert "RolloutCompleted" in fleet.reasons("skip")
    fleet.wait_reachable(lost)
    # Back online after the rollout completed: it catches up on its own.
    fleet.e2e.wait_ready("skip", timeout=90)
    assert set(fleet.digests("skip").values()) == {digest_of(v2)}
    fleet.delete("skip")


def test_unreachable_cluster_holds_the_rollout_under_block(fleet: RolloutLab) -> None:
    v1, v2 = (cosmo_variant(cosmo_config(), f"block-{v}") for v in ("v1", "v2"))
    policy = {**policy_for(fleet), "unreachablePolicy": "Block"}
    fleet.apply("block", v1, policy)
    fleet.wait_phase("block", "Completed", digest_of(v1), timeout=120)
    lost = fleet.names[-1]  # us-b, in the last wave
    with fleet.unreachable(lost):
        fleet.apply("block", v2, policy)
        fleet.wait_rollout(
            "block",
            lambda st: (
                (st.get("rollout") or {}).get("waveProgress") == "3/3"
                and fleet.digest(fleet.names[-2], "block") == digest_of(v2)
            ),
            what="the last wave reached, its reachable member moved",
        )

        def holding() -> None:
            status = fleet.status("block")
            assert status["rollout"]["phase"] == "Progressing", status["rollout"]
            row = next(c for c in status["clusters"] if c["name"] == lost)
            assert row["phase"] == "Stale" and "holding the rollout" in row["message"], row

        hold_for(5, holding)
    fleet.wait_reachable(lost)
    fleet.wait_phase("block", "Completed", digest_of(v2), timeout=90)
    fleet.e2e.wait_ready("block")
    assert set(fleet.digests("block").values()) == {digest_of(v2)}
    fleet.delete("block")
