"""Deployment windows, decided on a fake clock: when a wave may start, and when it next may."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from edgeroll.api.rollout import DeploymentWindow, RolloutPolicy
from edgeroll.rollout.windows import window_gate, window_open

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # a Sunday
EU = {"region": "eu"}
US = {"region": "us"}


def window(kind: str, schedule: str, seconds: int, **extra: Any) -> DeploymentWindow:
    return DeploymentWindow.model_validate(
        {"kind": kind, "schedule": schedule, "durationSeconds": seconds, **extra}
    )


def at(hours: int, minutes: int = 0, seconds: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 3, day, hours, minutes, seconds, tzinfo=UTC)


def test_no_windows_or_none_that_constrain_the_wave_always_open() -> None:
    assert window_gate([], {"edge-eu": EU}, T0).open
    only_us = window("Deny", "* * * * *", 60, clusterSelector={"matchLabels": US})
    assert window_gate([only_us], {"edge-eu": EU}, T0).open


def test_a_deny_window_closes_the_gate_until_it_ends() -> None:
    freeze = window("Deny", "50 11 * * *", 1800)  # 11:50 for 30 minutes
    gate = window_gate([freeze], {"edge-eu": EU}, T0)
    assert not gate.open and gate.next_open == at(12, 20)
    assert gate.message == "edge-eu: inside Deny windows[0] (50 11 * * * UTC) until 2026-03-01T12:20:00+00:00"
    # Half-open: at its end the window is over.
    assert window_gate([freeze], {"edge-eu": EU}, at(12, 20)).open
    assert not window_gate([freeze], {"edge-eu": EU}, at(11, 50)).open
    assert window_gate([freeze], {"edge-eu": EU}, at(11, 49, 59)).open


def test_with_allow_windows_only_inside_one() -> None:
    nightly = window("Allow", "0 22 * * *", 3600)
    gate = window_gate([nightly], {"edge-eu": EU}, T0)
    assert not gate.open and gate.next_open == at(22)
    assert "outside every Allow window (windows[0])" in gate.message
    assert window_gate([nightly], {"edge-eu": EU}, at(22, 30)).open
    assert not window_gate([nightly], {"edge-eu": EU}, at(23)).open


def test_deny_wins_over_an_open_allow_window() -> None:
    allow = window("Allow", "0 12 * * *", 7200)  # 12:00-14:00
    deny = window("Deny", "0 12 * * *", 600)  # 12:00-12:10
    gate = window_gate([allow, deny], {"edge-eu": EU}, T0)
    assert not gate.open and gate.next_open == at(12, 10)
    assert "Deny windows[1]" in gate.message


def test_a_selector_constrains_only_the_clusters_it_matches_and_a_wave_needs_them_all() -> None:
    eu_freeze = window("Deny", "0 12 * * *", 600, clusterSelector={"matchLabels": EU})
    assert window_gate([eu_freeze], {"edge-us": US}, T0).open
    gate = window_gate([eu_freeze], {"edge-us": US, "edge-eu": EU}, T0)
    assert not gate.open and gate.next_open == at(12, 10)
    assert gate.message.startswith("edge-eu: inside Deny") and "edge-us" not in gate.message


def test_the_next_opening_is_when_every_cluster_of_the_wave_is_allowed_at_once() -> None:
    # eu may start 20:00-24:00, us 23:00-23:30: together only from 23:00.
    eu = window("Allow", "0 20 * * *", 4 * 3600, clusterSelector={"matchLabels": EU})
    us = window("Allow", "0 23 * * *", 1800, clusterSelector={"matchLabels": US})
    gate = window_gate([eu, us], {"edge-eu": EU, "edge-us": US}, T0)
    assert not gate.open and gate.next_open == at(23)
    assert window_gate([eu, us], {"edge-eu": EU, "edge-us": US}, at(23, 15)).open


def test_schedules_are_read_in_their_time_zone_across_a_dst_change() -> None:
    berlin = window("Allow", "0 9 * * *", 3600, timeZone="Europe/Berlin")
    assert window_gate([berlin], {"a": {}}, T0).next_open == at(8, day=2)  # CET: UTC+1
    # Summer time starts on 29 March: 09:00 in Berlin is then 07:00 UTC.
    assert window_gate([berlin], {"a": {}}, at(12, day=29)).next_open == at(7, day=30)
    assert window_open(berlin, at(7, 30, day=30)) == at(8, day=30)


def test_a_window_longer_than_its_period_stays_open_and_the_latest_start_decides() -> None:
    deny = window("Deny", "*/5 * * * *", 600)  # every 5 minutes for 10: always closed
    allow = window("Allow", "0 * * * *", 60)
    gate = window_gate([deny], {"a": {}}, T0)
    assert not gate.open and gate.next_open is None  # no opening, ever: said so, and found quickly
    began = time.perf_counter()
    assert window_gate([deny, allow], {"a": {}}, T0).next_open is None
    assert time.perf_counter() - began < 5


def test_an_empty_wave_is_held_only_by_windows_for_every_cluster() -> None:
    eu_freeze = window("Deny", "0 12 * * *", 600, clusterSelector={"matchLabels": EU})
    everyone = window("Deny", "0 12 * * *", 600)
    assert window_gate([eu_freeze], {}, T0).open
    assert not window_gate([everyone], {}, T0).open


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("schedule", "61 * * * *", "not a cron expression of 5 fields"),
        ("schedule", "* * * * * *", "not a cron expression of 5 fields"),  # no seconds field
        ("schedule", "*/0 * * * *", "not a cron expression of 5 fields"),
        ("timeZone", "Mars/Olympus_Mons", "unknown IANA time zone"),
        ("timeZone", "../etc/passwd", "should match pattern"),
        ("durationSeconds", 0, "greater than or equal to 1"),
        ("kind", "Maybe", "'Allow' or 'Deny'"),
    ],
)
def test_the_model_refuses_bad_windows_naming_the_field(field: str, value: Any, why: str) -> None:
    spec = {"windows": [{"kind": "Deny", "schedule": "0 22 * * *", "durationSeconds": 60, field: value}]}
    with pytest.raises(ValidationError) as info:
        RolloutPolicy.model_validate(spec)
    error = info.value.errors()[0]
    assert error["loc"] == ("windows", 0, field) and why in error["msg"]


def test_macros_names_and_lists_are_cron_too() -> None:
    for schedule in ("@daily", "0 22 * * MON-FRI", "0,30 8-18/2 1 JAN *", "0  22 * * *"):
        assert window("Deny", schedule, 60).schedule == " ".join(schedule.split())
    assert window("Deny", "0 22 * * *", 60).time_zone == "UTC"  # the default
    assert window_open(window("Deny", "@hourly", 60), T0 + timedelta(seconds=59)) == T0 + timedelta(
        seconds=60
    )


def test_the_worked_example_of_docs_rollout_md() -> None:
    nightly_us = window(
        "Allow",
        "0 22 * * *",
        14400,
        timeZone="America/New_York",
        clusterSelector={"matchLabels": {"region": "us"}},
    )
    fridays = window("Deny", "0 0 * * FRI", 86400)
    windows = [nightly_us, fridays]
    canary = {"edge-ap": {"ring": "canary"}}
    us = {"edge-us-1": {"region": "us"}, "edge-us-2": {"region": "us"}}
    monday = window_gate(windows, us, datetime(2026, 3, 2, 15, 10, tzinfo=UTC))
    assert window_gate(windows, canary, datetime(2026, 3, 2, 15, tzinfo=UTC)).open
    assert monday.next_open == at(3, day=3)  # 22:00 in New York (EST)
    assert monday.message == "edge-us-1, edge-us-2: outside every Allow window (windows[0])"
    assert window_gate(windows, canary, datetime(2026, 3, 5, 23, 55, tzinfo=UTC)).open
    friday = window_gate(windows, us, datetime(2026, 3, 6, 0, 6, tzinfo=UTC))
    assert friday.next_open == at(3, day=7) and "inside Deny windows[1]" in friday.message


def test_a_large_wave_is_named_briefly() -> None:
    freeze = window("Deny", "50 11 * * *", 1800)
    gate = window_gate([freeze], {f"edge-{i:03d}": {} for i in range(300)}, T0)
    assert gate.message.startswith("edge-000, edge-001, edge-002, edge-003, edge-004 and 295 more: inside")
