"""Manual controls on the lab, through `edgeroll rollout` as a user types it: pause then resume, promote,
abort, undo to a chosen digest, retry.

The canary is ap-a; batch-1 is ap-b, eu-a, eu-b; batch-2 is us-a, us-b.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rollout_e2e_kit import RolloutLab, cosmo_variant, digest_of, hold_for, ts
from tests.e2e.operator.operator_e2e_kit import cosmo_config

pytestmark = pytest.mark.e2e

POLICY = {
    "strategy": "Progressive",
    "canary": 1,
    "batchSize": 3,
    "soakSeconds": 1,
    "progressDeadlineSeconds": 60,
}
LONG_SOAK = {**POLICY, "soakSeconds": 600}  # only a command gets such a rollout past its canary


def soaking(fleet: RolloutLab, name: str, revision: str, wave: str) -> dict[str, Any]:
    def done(st: dict[str, Any]) -> bool:
        r = st.get("rollout") or {}
        return r.get("revision") == revision and r.get("phase") == "Soaking" and r.get("waveProgress") == wave

    return fleet.wait_rollout(name, done, what=f"soaking at wave {wave}")


@pytest.fixture(scope="module")
def versions() -> list[dict[str, Any]]:
    return [cosmo_variant(cosmo_config(), f"controls-v{i}") for i in range(5)]


def test_pause_holds_the_next_wave_and_resume_releases_it(fleet: RolloutLab, versions: list[Any]) -> None:
    v0, v1 = versions[0], versions[1]
    soak = 8  # the pause lands within it; then the soak ends while paused
    fleet.apply("controls", v0, POLICY)
    fleet.wait_phase("controls", "Completed", digest_of(v0), timeout=120)
    fleet.apply("controls", v1, {**POLICY, "soakSeconds": soak})
    soaking(fleet, "controls", digest_of(v1), "1/3")

    out = fleet.cli("pause", "controls")
    assert "spec.rollout.paused=true" in out
    status = fleet.wait_phase("controls", "Paused", digest_of(v1))
    assert status["rollout"]["waveProgress"] == "1/3", "the pause landed after the canary's soak"
    healthy = ts(status["rollout"]["waves"][0]["healthyAt"])
    batch = fleet.names[1:]

    def still_paused() -> None:
        assert {fleet.digest(n, "controls") for n in batch} == {digest_of(v0)}, "a wave started while paused"
        rollout = fleet.rollout("controls")
        assert rollout["phase"] == "Paused" and rollout["waves"][1].get("startedAt") is None, rollout

    until_soaked = (healthy + timedelta(seconds=soak + 3) - datetime.now(UTC)).total_seconds()
    hold_for(until_soaked, still_paused)  # past the end of the soak: the next wave still waits
    status = fleet.status("controls")
    reconciling = next(c for c in status["conditions"] if c["type"] == "Reconciling")
    assert reconciling["reason"] == "Paused" and "Paused at" in reconciling["message"]

    assert "spec.rollout.paused=false" in fleet.cli("resume", "controls")
    status = fleet.wait_phase("controls", "Completed", digest_of(v1))
    started = ts(status["rollout"]["waves"][1]["startedAt"])
    assert (started - healthy).total_seconds() >= soak + 3  # held past its soak until the resume
    reasons = fleet.reasons("controls")
    assert "RolloutPaused" in reasons and "RolloutResumed" in reasons


def test_promote_skips_the_remaining_soak(fleet: RolloutLab, versions: list[Any]) -> None:
    v2 = versions[2]
    fleet.apply("controls", v2, LONG_SOAK)
    soaking(fleet, "controls", digest_of(v2), "1/3")
    out = fleet.cli("promote", "controls")
    assert "edgeroll.io/rollout-promote=" in out
    soaking(fleet, "controls", digest_of(v2), "2/3")  # wave 2 started, healthy, soaking in turn
    fleet.cli("promote", "controls")
    status = fleet.wait_phase("controls", "Completed", digest_of(v2), timeout=60)
    waves = status["rollout"]["waves"]
    assert [w.get("promoted", False) for w in waves] == [True, True, False]
    assert all(d == digest_of(v2) for d in fleet.digests("controls").values())
    assert "RolloutPromoted" in fleet.reasons("controls")


def test_abort_halts_and_sends_the_canary_back(fleet: RolloutLab, versions: list[Any]) -> None:
    v2, v3 = versions[2], versions[3]
    before = fleet.generations("controls")
    fleet.apply("controls", v3, LONG_SOAK)
    soaking(fleet, "controls", digest_of(v3), "1/3")
    canary = fleet.names[0]
    assert fleet.digest(canary, "controls") == digest_of(v3)
    fleet.cli("abort", "controls")

    def back(st: dict[str, Any]) -> bool:
        r = st.get("rollout") or {}
        return r.get("phase") == "RolledBack" and bool(r.get("rolledBackAt"))

    status = fleet.wait_rollout("controls", back, what="aborted and rolled back")
    assert status["rollout"]["reason"] == "Aborted"
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "Aborted"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and status["phase"] == "Stalled"
    assert set(fleet.digests("controls").values()) == {digest_of(v2)}
    after = fleet.generations("controls")
    assert {n: after[n] - before[n] for n in before} == {n: 2 if n == canary else 0 for n in before}
    phases = {c["name"]: c["phase"] for c in status["clusters"]}
    assert phases[canary] == "RolledBack"


def test_undo_to_a_chosen_digest_then_retry(fleet: RolloutLab, versions: list[Any]) -> None:
    v0, v3 = versions[0], versions[3]
    out = fleet.cli("undo", "controls", "--to-digest", digest_of(v0))
    assert digest_of(v0) in out

    def undone(st: dict[str, Any]) -> bool:
        r = st.get("rollout") or {}
        return r.get("reason") == "Undone" and bool(r.get("rolledBackAt"))

    status = fleet.wait_rollout("controls", undone, what="undone to v0")
    assert set(fleet.digests("controls").values()) == {digest_of(v0)}
    assert {c["phase"] for c in status["clusters"]} == {"RolledBack"}
    assert status["rollout"]["revision"] == digest_of(v3)  # the revision stays; it is halted

    fleet.apply("controls", v3, POLICY)  # a short soak this time, then retry the halted revision
    fleet.cli("retry", "controls")
    status = fleet.wait_phase("controls", "Completed", digest_of(v3), timeout=120)
    assert set(fleet.digests("controls").values()) == {digest_of(v3)}
    assert "RolloutRetried" in fleet.reasons("controls")
    text = fleet.cli("status", "controls")
    assert "rollout Completed, wave 3/3" in text and "canary" in text and fleet.names[-1] in text
    fleet.delete("controls")
