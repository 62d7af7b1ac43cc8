"""Deployment windows (`spec.rollout.windows`): may a wave start now, and if not, when? Pure.

    gate = window_gate(policy.windows, {name: labels, ...}, now)   # the wave's clusters

The semantics are Argo CD's sync windows, per cluster:

- a window constrains the clusters its `clusterSelector` matches (unset: every cluster);
- each time its cron `schedule` fires (read in its `timeZone`), it is open for `durationSeconds`
  (elapsed time, so a window across a DST change lasts exactly that long): [start, start + duration);
- a cluster may take a new wave when no Deny window that constrains it is open, and, if any Allow
  windows constrain it, one of them is open. Deny wins over Allow;
- a wave may start only when every one of its clusters may. With no windows at all, always.

The gate is only asked when a wave is about to start: a wave that started finishes, and soaks, whatever
the windows say then (the planner keeps it current until the next one may start).

The answer only changes where a window opens or closes, so the next opening is found by walking those
instants in order: the starts of Allow windows and the ends of Deny windows, up to a year or
MAX_INSTANTS of them ahead (windows that never open then cost a plan about 0.1 s, not a year).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter

from edgeroll.api.rollout import DeploymentWindow
from edgeroll.api.selectors import selector_matches

HORIZON = timedelta(days=366)
MAX_INSTANTS = 256  # window boundaries looked at before giving up on an opening: bounds a plan's cost


@dataclass(frozen=True)
class WindowGate:
    """Whether a wave may start now; else why not and when it next may."""

    open: bool
    next_open: datetime | None = None  # None when open, or when no opening was found within HORIZON
    message: str = ""  # which clusters are kept, by which windows, until when


def _floor_minute(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


@lru_cache(maxsize=16384)
def _latest_start(schedule: str, zone: str, minute: datetime) -> datetime:
    """The latest time `schedule` fired at or before `minute` (cron fires on whole minutes, so the
    answer for any instant is the one for its minute: that keeps this cache small and useful)."""
    it = croniter(schedule, (minute + timedelta(microseconds=1)).astimezone(ZoneInfo(zone)))
    return it.get_prev(datetime).astimezone(UTC)


def _starts_after(window: DeploymentWindow, after: datetime) -> Iterator[datetime]:
    """Every start of the window strictly after `after`, in order."""
    it = croniter(window.schedule, after.astimezone(window.zone))
    while True:
        yield it.get_next(datetime).astimezone(UTC)


def window_open(window: DeploymentWindow, at: datetime) -> datetime | None:
    """When the occurrence of `window` that is open at `at` closes, or None if it is closed. The latest
    start decides: an earlier one started earlier and lasts as long, so it closed no later."""
    start = _latest_start(window.schedule, window.time_zone, _floor_minute(at))
    end = start + timedelta(seconds=window.duration_seconds)
    return end if start <= at < end else None


def applies(window: DeploymentWindow, labels: Mapping[str, str]) -> bool:
    return window.cluster_selector is None or selector_matches(window.cluster_selector, labels)


def _verdict(windows: Sequence[tuple[int, DeploymentWindow]], at: datetime) -> str | None:
    """Why a cluster constrained by `windows` (index, window) may not start at `at`; None if it may."""
    allows = [(i, w) for i, w in windows if w.kind == "Allow"]
    for i, w in windows:
        if w.kind == "Deny":
            until = window_open(w, at)
            if until is not None:  # deny wins, even inside an allow window
                return f"inside Deny windows[{i}] ({w.schedule} {w.time_zone}) until {until.isoformat()}"
    if allows and not any(window_open(w, at) is not None for _, w in allows):
        return "outside every Allow window (" + ", ".join(f"windows[{i}]" for i, _ in allows) + ")"
    return None


def _groups(
    windows: Sequence[DeploymentWindow], clusters: Mapping[str, Mapping[str, str]]
) -> dict[tuple[int, ...], list[str]]:
    """Clusters grouped by the windows that constrain them: a group's clusters share one verdict."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for name in sorted(clusters):
        key = tuple(i for i, w in enumerate(windows) if applies(w, clusters[name]))
        groups.setdefault(key, []).append(name)
    if not clusters:  # an empty wave: only the windows that constrain every cluster hold it
        groups[tuple(i for i, w in enumerate(windows) if w.cluster_selector is None)] = []
    return groups


def _names(names: list[str], shown: int = 5) -> str:
    """A few names, so that a wave of hundreds keeps status.rollout.window short."""
    if not names:
        return "every cluster"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _blocked(
    windows: Sequence[DeploymentWindow], groups: Mapping[tuple[int, ...], list[str]], at: datetime
) -> list[str]:
    reasons = []
    for key, names in groups.items():
        why = _verdict([(i, windows[i]) for i in key], at)
        if why is not None:
            reasons.append(f"{_names(names)}: {why}")
    return reasons


def _instants(windows: Sequence[DeploymentWindow], now: datetime) -> Iterator[datetime]:
    """Where a closed gate may open, in order: Allow starts and Deny ends after `now`."""
    streams: list[Iterator[datetime]] = []
    for w in windows:
        if w.kind == "Allow":
            streams.append(_starts_after(w, now))
        else:
            length = timedelta(seconds=w.duration_seconds)
            streams.append(start + length for start in _starts_after(w, now - length))
    return heapq.merge(*streams)


def window_gate(
    windows: Sequence[DeploymentWindow], clusters: Mapping[str, Mapping[str, str]], now: datetime
) -> WindowGate:
    """May a wave whose clusters are `clusters` (name -> labels) start at `now`? Deterministic in its
    inputs; `now` must be timezone-aware."""
    if not windows:
        return WindowGate(open=True)
    groups = _groups(windows, clusters)
    relevant = sorted({i for key in groups for i in key})
    if not relevant:
        return WindowGate(open=True)
    reasons = _blocked(windows, groups, now)
    if not reasons:
        return WindowGate(open=True)
    message = "; ".join(reasons)
    previous: datetime | None = None
    for count, at in enumerate(_instants([windows[i] for i in relevant], now)):
        if at > now + HORIZON or count >= MAX_INSTANTS:
            break
        if at == previous:
            continue
        previous = at
        if not _blocked(windows, groups, at):
            return WindowGate(open=False, next_open=at, message=message)
    return WindowGate(open=False, next_open=None, message=message)
