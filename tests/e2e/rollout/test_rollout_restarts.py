"""The operator killed during a soak and during a wave: the rollout continues where it was.

On the lab, kill -9 of the operator process and the same command started again; on kind, the operator
pod acting on the RouterConfig (the holder of its shard's Lease) deleted with --grace-period=0 --force,
so the chart's other replica takes over from status.rollout (`RolloutLab.restart_operator`).

No wave is redone: every edge Deployment's generation moves exactly once for the revision, and the
timestamps persisted before the kill survive it. No gate is skipped: each wave starts only after the
previous one was healthy and soaked, by the persisted timestamps.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from rollout_e2e_kit import RolloutLab, assert_waves_in_order, cosmo_variant, digest_of, ts
from tests.e2e.operator.operator_e2e_kit import cosmo_config

pytestmark = pytest.mark.e2e

SOAK = 8


def test_kill_during_the_soak(fleet: RolloutLab) -> None:
    policy = {"strategy": "Progressive", "canary": 1, "batchSize": 3, "soakSeconds": SOAK}
    v1, v2 = (cosmo_variant(cosmo_config(), f"kill-soak-{v}") for v in ("v1", "v2"))
    fleet.apply("kill-soak", v1, {**policy, "soakSeconds": 0})
    fleet.wait_phase("kill-soak", "Completed", digest_of(v1), timeout=120)
    before = fleet.generations("kill-soak")

    fleet.apply("kill-soak", v2, policy)

    def soaking_canary(st: dict[str, Any]) -> bool:
        r = st.get("rollout") or {}
        return r.get("revision") == digest_of(v2) and r.get("phase") == "Soaking" and r.get("wave") == 0

    snapshot = fleet.wait_rollout("kill-soak", soaking_canary, what="the canary soaking")["rollout"]
    fleet.restart_operator("kill-soak")
    status = fleet.wait_phase("kill-soak", "Completed", digest_of(v2), timeout=120)
    rollout = status["rollout"]
    assert rollout["startedAt"] == snapshot["startedAt"]
    canary = rollout["waves"][0]
    assert canary["startedAt"] == snapshot["waves"][0]["startedAt"]
    assert canary["healthyAt"] == snapshot["waves"][0]["healthyAt"]  # the soak clock survived the kill
    assert_waves_in_order(rollout, SOAK)
    assert (ts(rollout["waves"][1]["startedAt"]) - ts(canary["healthyAt"])).total_seconds() >= SOAK
    after = fleet.generations("kill-soak")
    assert {n: after[n] - before[n] for n in before} == dict.fromkeys(before, 1)
    assert fleet.reasons("kill-soak").count("RolloutStarted") == 2  # v1 and v2: v2 never started over
    fleet.delete("kill-soak")


def test_kill_during_a_wave(fleet: RolloutLab) -> None:
    # A canary, then one wave of five that moves one cluster at a time: long enough to be killed in.
    run = fleet.e2e.run
    policy = {
        "strategy": "Progressive",
        "steps": [
            {"name": "canary", "clusterSelector": {"matchLabels": {"region": "ap", "half": "a"}}},
            {"name": "rest", "maxParallel": 1},
        ],
        "soakSeconds": 2,
    }
    v1, v2 = (cosmo_variant(cosmo_config(), f"kill-wave-{v}") for v in ("v1", "v2"))
    fleet.apply("kill-wave", v1, {**policy, "soakSeconds": 0})
    fleet.wait_phase("kill-wave", "Completed", digest_of(v1), timeout=120)
    before = fleet.generations("kill-wave")

    fleet.apply("kill-wave", v2, policy)

    def mid_wave(st: dict[str, Any]) -> bool:
        r = st.get("rollout") or {}
        if r.get("revision") != digest_of(v2) or r.get("wave") != 1:
            return False
        moved = [c for c in r["clusters"] if c["wave"] == 1 and c.get("movedAt")]
        return 1 <= len(moved) < 5

    snapshot = fleet.wait_rollout("kill-wave", mid_wave, what="the second wave part-way")["rollout"]
    moved_before = {c["name"]: c["movedAt"] for c in snapshot["clusters"] if c.get("movedAt")}
    fleet.restart_operator("kill-wave")
    status = fleet.wait_phase("kill-wave", "Completed", digest_of(v2), timeout=120)
    rollout = status["rollout"]
    assert [w["startedAt"] for w in rollout["waves"]] == [w["startedAt"] for w in snapshot["waves"]]
    for record in rollout["clusters"]:
        if record["name"] in moved_before:  # moved before the kill: not moved again
            assert record["movedAt"] == moved_before[record["name"]], record
    assert_waves_in_order(rollout, 2)
    rest = sorted((c for c in rollout["clusters"] if c["wave"] == 1), key=lambda c: c["movedAt"])
    assert [c["name"] for c in rest] == sorted(n for n in fleet.names if n != f"r{run}-ap-a")
    for earlier, later in itertools.pairwise(rest):  # maxParallel 1, across the restart too
        assert ts(later["movedAt"]) >= ts(earlier["readyAt"]), (earlier, later)
    after = fleet.generations("kill-wave")
    assert {n: after[n] - before[n] for n in before} == dict.fromkeys(before, 1)
    fleet.delete("kill-wave")
