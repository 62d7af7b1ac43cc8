"""Progressive rollout on the lab: a 1-cluster canary and two waves, in order, each gate soaked; and a new
revision mid-rollout superseding the one in progress.

Six targets (each lab edge twice, two edge namespaces): canary ap-a, batch-1 ap-b eu-a eu-b,
batch-2 us-a us-b.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from rollout_e2e_kit import RolloutLab, assert_waves_in_order, cosmo_variant, digest_of, ts
from tests.e2e.operator.operator_e2e_kit import cosmo_config
from tests.polling import wait_until

pytestmark = pytest.mark.e2e

SOAK = 3
POLICY = {
    "strategy": "Progressive",
    "canary": 1,
    "batchSize": 3,
    "soakSeconds": SOAK,
    "progressDeadlineSeconds": 60,
}


def members(rollout: dict[str, Any]) -> list[list[str]]:
    waves: list[list[str]] = [[] for _ in rollout["waves"]]
    for record in rollout["clusters"]:
        waves[record["wave"]].append(record["name"])
    return [sorted(w) for w in waves]


def test_canary_then_two_waves_complete_in_order_and_each_gate_soaks(fleet: RolloutLab) -> None:
    v1, v2 = (cosmo_variant(cosmo_config(), f"waves-{v}") for v in ("v1", "v2"))
    fleet.apply("waves", v1, POLICY)
    fleet.wait_phase("waves", "Completed", digest_of(v1), timeout=120)
    fleet.e2e.wait_ready("waves")
    before = fleet.generations("waves")
    assert sorted(before) == fleet.names and len(before) >= 6

    new = digest_of(v2)
    started = time.monotonic()
    fleet.apply("waves", v2, POLICY)
    order = [["r" + fleet.e2e.run + "-ap-a"], [], []]  # filled from the status once the rollout starts
    samples = 0

    def sample() -> bool:
        """At every moment, a cluster runs the new digest only if every earlier wave already does."""
        nonlocal samples, order
        rollout = fleet.rollout("waves")
        if rollout.get("revision") == new and rollout.get("clusters"):
            order = members(rollout)
        on_new = {name for name, d in fleet.digests("waves").items() if d == new}
        for k, wave in enumerate(order):
            if on_new & set(wave):
                earlier = {n for w in order[:k] for n in w}
                assert earlier <= on_new, f"wave {k + 1} moved before waves 1..{k}: {sorted(on_new)}"
        samples += 1
        return rollout.get("revision") == new and rollout.get("phase") == "Completed"

    wait_until(sample, timeout=120, interval=0.3, message="the rollout of v2 completed")
    elapsed = time.monotonic() - started
    status = fleet.e2e.wait_ready("waves")
    rollout = status["rollout"]

    assert [w["name"] for w in rollout["waves"]] == ["canary", "batch-1", "batch-2"]
    run = fleet.e2e.run
    assert members(rollout) == [
        [f"r{run}-ap-a"],
        [f"r{run}-ap-b", f"r{run}-eu-a", f"r{run}-eu-b"],
        [f"r{run}-us-a", f"r{run}-us-b"],
    ]
    assert_waves_in_order(rollout, SOAK)
    soaks = [
        (ts(b["startedAt"]) - ts(a["healthyAt"])).total_seconds()
        for a, b in zip(rollout["waves"], rollout["waves"][1:], strict=False)
    ]
    assert all(s >= SOAK for s in soaks), soaks
    assert elapsed >= 2 * SOAK and samples > 5
    assert set(fleet.digests("waves").values()) == {new}
    after = fleet.generations("waves")
    assert {n: after[n] - before[n] for n in before} == dict.fromkeys(before, 1)  # each moved exactly once
    assert rollout["waveProgress"] == "3/3"

    reasons = fleet.reasons("waves")
    assert reasons.count("WaveStarted") >= 6 and reasons.count("WaveSoaked") >= 4  # two rollouts
    assert "RolloutCompleted" in reasons and "Ready" in reasons
    table = fleet.e2e.hub("-n", fleet.e2e.ns, "get", "rtc", "waves").stdout
    assert "WAVE" in table.splitlines()[0] and "3/3" in table and "Completed" in table
    print(
        f"\nv2 over 6 targets in 3 waves, soak {SOAK}s: {elapsed:.1f}s; soaks {[round(s, 2) for s in soaks]}"
    )
    fleet.delete("waves")


def test_a_new_revision_mid_rollout_supersedes_it(fleet: RolloutLab) -> None:
    v1, v2, v3 = (cosmo_variant(cosmo_config(), f"supersede-{v}") for v in ("v1", "v2", "v3"))
    fast = {**POLICY, "soakSeconds": 1}
    fleet.apply("supersede", v1, fast)
    fleet.wait_phase("supersede", "Completed", digest_of(v1), timeout=120)
    before = fleet.generations("supersede")
    canary = f"r{fleet.e2e.run}-ap-a"

    fleet.apply("supersede", v2, {**POLICY, "soakSeconds": 120})  # v2 stops at the canary's soak
    fleet.wait_rollout(
        "supersede",
        lambda st: st["rollout"].get("revision") == digest_of(v2) and st["rollout"]["phase"] == "Soaking",
        what="v2 soaking on the canary",
    )
    assert fleet.digest(canary, "supersede") == digest_of(v2)
    assert all(fleet.digest(n, "supersede") == digest_of(v1) for n in fleet.names if n != canary)

    fleet.apply("supersede", v3, fast)
    status = fleet.wait_phase("supersede", "Completed", digest_of(v3), timeout=120)
    rollout = status["rollout"]
    assert rollout["revision"] == digest_of(v3)
    assert_waves_in_order(rollout, 1)
    after = fleet.generations("supersede")
    moves = {n: after[n] - before[n] for n in before}
    assert moves == {n: 2 if n == canary else 1 for n in before}  # the rest never ran v2
    last_good = {r["name"]: r.get("lastGood") for r in rollout["clusters"]}
    assert last_good[canary] == digest_of(v2)  # healthy on v2 when v3 started: what v3 would return to
    assert {v for n, v in last_good.items() if n != canary} == {digest_of(v1)}
    superseded = [e for e in fleet.events("supersede") if e["reason"] == "RolloutSuperseded"]
    assert len(superseded) == 1 and "starting again from the first wave" in superseded[0]["message"]
    fleet.delete("supersede")
