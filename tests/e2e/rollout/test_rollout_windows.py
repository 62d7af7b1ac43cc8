"""Deployment windows on the lab, with real short windows on the wall clock: a Deny window that covers
now holds the rollout until it ends, and `edgeroll rollout promote --ignore-windows` lets one wave out.

The canary is ap-a; batch-1 is ap-b, eu-a, eu-b; batch-2 is us-a, us-b.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rollout_e2e_kit import RolloutLab, cosmo_variant, digest_of, hold_for, ts
from tests.e2e.operator.operator_e2e_kit import cosmo_config

# Windows gate when a wave may start, in the planner: real pods add nothing to what this checks, and
# the kind run's minutes are CI's budget (docs/development.md).
LAB_ONLY = "windows gate wave starts in the planner; real pods add nothing to what it checks"
pytestmark = [pytest.mark.e2e, pytest.mark.lab_only(LAB_ONLY)]

POLICY = {
    "strategy": "Progressive",
    "canary": 1,
    "batchSize": 3,
    "soakSeconds": 1,
    "progressDeadlineSeconds": 60,
}


def deny_from_now(seconds: float) -> tuple[dict[str, Any], datetime]:
    """A Deny window whose cron fires this very minute and which lasts until `seconds` from now."""
    now = datetime.now(UTC)
    start = now.replace(second=0, microsecond=0)
    end = now + timedelta(seconds=seconds)
    window = {
        "kind": "Deny",
        "schedule": f"{start.minute} {start.hour} * * *",
        "durationSeconds": int((end - start).total_seconds()) + 1,
        "timeZone": "UTC",
    }
    return window, start + timedelta(seconds=window["durationSeconds"])


def reason(status: dict[str, Any], type_: str) -> str:
    return str(next(c for c in status["conditions"] if c["type"] == type_)["reason"])


def waiting(fleet: RolloutLab, name: str, revision: str, held: int) -> dict[str, Any]:
    """Polled until wave `held` (an index) of `revision` waits for its windows."""

    def done(st: dict[str, Any]) -> bool:
        r = st.get("rollout") or {}
        return r.get("revision") == revision and (r.get("window") or {}).get("wave") == held

    status = fleet.wait_rollout(name, done, timeout=60, what=f"wave {held + 1} waiting for its window")
    assert status["rollout"]["phase"] == "Waiting"
    return status


@pytest.fixture(scope="module")
def versions() -> list[dict[str, Any]]:
    return [cosmo_variant(cosmo_config(), f"windows-v{i}") for i in range(3)]


def test_a_deny_window_holds_the_rollout_until_it_ends(fleet: RolloutLab, versions: list[Any]) -> None:
    v0, v1, v2 = (digest_of(v) for v in versions)
    fleet.apply("windows", versions[0], POLICY)
    fleet.wait_phase("windows", "Completed", v0, timeout=120)

    window, closes = deny_from_now(25)
    fleet.apply("windows", versions[1], {**POLICY, "windows": [window]})
    status = waiting(fleet, "windows", v1, 0)
    hold = status["rollout"]["window"]
    assert ts(hold["nextOpenAt"]) == closes and status["rollout"]["waveProgress"] == "1/3"
    assert reason(status, "Reconciling") == "OutsideWindow" and reason(status, "Ready") == "OutsideWindow"
    table = fleet.e2e.hub("-n", fleet.e2e.ns, "get", "rtc", "windows", "-o", "wide").stdout
    assert "NEXT WINDOW" in table and hold["nextOpenAt"] in table
    text = fleet.cli("status", "windows")
    assert "outside window: wave 1 waits" in text and "inside Deny windows[0]" in text

    def nothing_moved() -> None:
        assert set(fleet.digests("windows").values()) == {v0}, "a wave started inside the Deny window"

    hold_for((closes - datetime.now(UTC)).total_seconds() - 1, nothing_moved)
    status = fleet.wait_phase("windows", "Completed", v1, timeout=90)
    started = ts(status["rollout"]["waves"][0]["startedAt"])
    assert closes <= started < closes + timedelta(seconds=5), (started, closes)  # requeued for the opening
    assert set(fleet.digests("windows").values()) == {v1}
    assert "OutsideWindow" in fleet.reasons("windows")

    # A freeze of ten minutes: promote --ignore-windows lets the canary out, and only the canary.
    window, _ = deny_from_now(600)
    fleet.apply("windows", versions[2], {**POLICY, "windows": [window]})
    waiting(fleet, "windows", v2, 0)
    out = fleet.cli("promote", "windows", "--ignore-windows")
    assert '"ignoreWindows":true' in out
    status = waiting(fleet, "windows", v2, 1)  # the canary went and soaked; batch-1 waits
    canary_wave = status["rollout"]["waves"][0]
    assert canary_wave["ignoreWindows"] and canary_wave.get("completedAt") is None  # still current
    digests = fleet.digests("windows")
    assert digests[fleet.names[0]] == v2 and {digests[n] for n in fleet.names[1:]} == {v1}
    assert "WindowsIgnored" in fleet.reasons("windows")
    fleet.apply("windows", versions[2], POLICY)  # the freeze lifted (a policy edit, not a new revision)
    fleet.wait_phase("windows", "Completed", v2, timeout=90)
    assert set(fleet.digests("windows").values()) == {v2}
    fleet.delete("windows")
