"""Metric analysis of a soaking wave (`spec.rollout.analysis`): pure decisions over measurements.

The reconciler asks `due_measurements` which metric to measure on which cluster now, queries
Prometheus (pipeline/prometheus.py) and hands the answers to the planner as `MeasurementResult`s;
the planner records them with `record_measurements` and gates the wave on `wave_verdict`. No I/O, no
clock: time comes in as `now`.

Per metric and cluster of the current wave, once the wave is healthy:
- a measurement is due `intervalSeconds` after the wave became healthy, then every `intervalSeconds`;
- each is judged by `judge`: Successful, Failed, or Inconclusive (no answer, an empty or NaN result, a
  condition that cannot be evaluated on the value, or neither condition holding when both are set);
- more than `failureLimit` failures fail the metric, and so the wave;
- `count` conclusive measurements with no more failures than that pass it;
- more than `inconclusiveLimit` inconclusive measurements *in a row* make it Inconclusive, which pauses
  the rollout (no rollback); measuring goes on, and the next conclusive one lifts the pause.
A wave passes when every metric has passed on every cluster of the wave that is in the rollout (not
failed, not stale).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from edgeroll.api.expressions import ExpressionError, evaluate_condition, substitute_query
from edgeroll.api.rollout import (
    MEASUREMENTS_KEPT,
    AnalysisMetric,
    AnalysisPhase,
    ClusterRecord,
    Measurement,
    MetricAnalysis,
    MetricTally,
    RolloutAnalysis,
    RolloutState,
    Verdict,
)


@dataclass(frozen=True)
class MeasurementRequest:
    """Measure `metric` on `cluster`, whose wave is soaking on `digest`."""

    metric: str
    cluster: str
    digest: str


@dataclass(frozen=True)
class MeasurementResult:
    """What a query gave: `value`, or none and `error` saying why (unreachable, empty, not a number)."""

    metric: str
    cluster: str
    digest: str  # the revision it was measured on: a result for another one is ignored
    time: datetime
    value: float | None
    error: str | None = None


@dataclass(frozen=True)
class AnalysisEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class WaveVerdict:
    """What the analysis of one wave comes to, and which clusters failed which metric."""

    phase: AnalysisPhase
    message: str = ""
    failed: Mapping[str, str] | None = None  # cluster -> why (for its failure record)


def query_for(metric: AnalysisMetric, cluster: str, labels: Mapping[str, str], digest: str) -> str:
    return substitute_query(metric.prometheus.query, cluster, labels, digest)


def judge(
    metric: AnalysisMetric, value: float | None, error: str | None = None
) -> tuple[Verdict, str | None]:
    """One measurement's verdict and, when it is not Successful, why."""
    if value is None:
        return "Inconclusive", error or "no value"
    if math.isnan(value):
        return "Inconclusive", "the result is NaN (no data in the window?)"
    try:
        if metric.failure_condition is not None and evaluate_condition(metric.failure_condition, value):
            return "Failed", f"failureCondition `{metric.failure_condition}` holds"
        if evaluate_condition(metric.success_condition, value):
            return "Successful", None
    except ExpressionError as exc:
        return "Inconclusive", str(exc)
    if metric.failure_condition is not None:
        return "Inconclusive", "neither successCondition nor failureCondition holds"
    return "Failed", f"successCondition `{metric.success_condition}` does not hold"


def tally_phase(metric: AnalysisMetric, tally: MetricTally) -> AnalysisPhase:
    if tally.failed > metric.failure_limit:
        return "Failed"
    if tally.successful + tally.failed >= metric.count:
        return "Successful"
    if tally.inconclusive > metric.inconclusive_limit:
        return "Inconclusive"
    return "Running"


def _combined(phases: Sequence[AnalysisPhase]) -> AnalysisPhase:
    for phase in ("Failed", "Inconclusive", "Running"):
        if phase in phases:
            return phase
    return "Successful"


def _entry(state: RolloutState, wave: int, metric: str) -> MetricAnalysis | None:
    return next((a for a in state.analysis if a.wave == wave and a.metric == metric), None)


def _tally(entry: MetricAnalysis | None, cluster: str) -> MetricTally | None:
    return None if entry is None else next((t for t in entry.tallies if t.cluster == cluster), None)


def _judged(record: ClusterRecord) -> bool:
    """A member the analysis looks at: moved to the target and still in the rollout."""
    return record.moved_at is not None and record.failed_at is None and not record.stale


def _members(state: RolloutState, wave: int) -> list[ClusterRecord]:
    return sorted((r for r in state.clusters if r.wave == wave and _judged(r)), key=lambda r: r.name)


def _soaking(state: RolloutState) -> datetime | None:
    """When the current wave became healthy, if it is (the analysis runs from then on)."""
    if state.phase not in ("Progressing", "Soaking", "Paused") or state.wave >= len(state.waves):
        return None
    wave = state.waves[state.wave]
    return None if wave.promoted else wave.healthy_at


def _due_at(healthy_at: datetime, tally: MetricTally | None, interval: timedelta) -> datetime:
    last = tally.last_time if tally is not None and tally.last_time is not None else None
    first = healthy_at + interval
    return first if last is None else max(first, last + interval)


def due_measurements(
    state: RolloutState | None, analysis: RolloutAnalysis | None, now: datetime
) -> list[MeasurementRequest]:
    """The measurements to take now: each metric not yet decided on each judged cluster of the soaking
    wave, once `intervalSeconds` have passed since the wave became healthy or since its last one."""
    if state is None or analysis is None:
        return []
    healthy_at = _soaking(state)
    if healthy_at is None:
        return []
    interval = timedelta(seconds=analysis.interval_seconds)
    due = []
    for metric in analysis.metrics:
        entry = _entry(state, state.wave, metric.name)
        for record in _members(state, state.wave):
            tally = _tally(entry, record.name)
            if tally is not None and tally.phase in ("Successful", "Failed"):
                continue
            if now >= _due_at(healthy_at, tally, interval):
                due.append(MeasurementRequest(metric.name, record.name, record.target))
    return due


def next_due(state: RolloutState, analysis: RolloutAnalysis | None) -> datetime | None:
    """When the next measurement of the soaking wave falls due (for the planner's Wait)."""
    healthy_at = _soaking(state)
    if analysis is None or healthy_at is None:
        return None
    interval = timedelta(seconds=analysis.interval_seconds)
    times = [
        _due_at(healthy_at, tally, interval)
        for metric in analysis.metrics
        for record in _members(state, state.wave)
        for tally in [_tally(_entry(state, state.wave, metric.name), record.name)]
        if tally is None or tally.phase not in ("Successful", "Failed")
    ]
    return min(times, default=None)


def _fmt(value: float | None) -> str:
    return "no value" if value is None else f"{value:g}"


def _transition_event(
    where: str, metric: AnalysisMetric, tally: MetricTally, before: AnalysisPhase, why: str | None
) -> AnalysisEvent | None:
    if tally.phase == before:
        return None
    on = f"{where}: metric {metric.name} on {tally.cluster}"
    if tally.phase == "Successful":
        n = tally.successful + tally.failed
        return AnalysisEvent(
            "Normal", "AnalysisPassed", f"{on} passed: {n} measurement(s), last {_fmt(tally.last_value)}"
        )
    if tally.phase == "Failed":
        return AnalysisEvent(
            "Warning",
            "AnalysisFailed",
            f"{on} failed {tally.failed} time(s), over failureLimit={metric.failure_limit}; "
            f"last {_fmt(tally.last_value)}: {why}",
        )
    if tally.phase == "Inconclusive":
        return AnalysisEvent(
            "Warning",
            "AnalysisInconclusive",
            f"{on}: {tally.inconclusive} inconclusive measurement(s) in a row, over "
            f"inconclusiveLimit={metric.inconclusive_limit} ({why}); the rollout pauses",
        )
    if before == "Inconclusive":
        return AnalysisEvent(
            "Normal", "AnalysisResumed", f"{on} is conclusive again: {_fmt(tally.last_value)}"
        )
    return None


def _record_one(
    entry: MetricAnalysis, metric: AnalysisMetric, result: MeasurementResult, where: str
) -> list[AnalysisEvent]:
    tally = _tally(entry, result.cluster)
    if tally is None:
        tally = MetricTally(cluster=result.cluster)
        entry.tallies.append(tally)
        entry.tallies.sort(key=lambda t: t.cluster)
    if tally.phase in ("Successful", "Failed") or (
        tally.last_time is not None and result.time <= tally.last_time
    ):
        return []  # decided already, or a replay of what is recorded
    verdict, why = judge(metric, result.value, result.error)
    before = tally.phase
    tally.last_time, tally.last_value = result.time, result.value
    if verdict == "Inconclusive":
        tally.inconclusive += 1
    else:
        tally.inconclusive = 0
        tally.successful += verdict == "Successful"
        tally.failed += verdict == "Failed"
    tally.phase = tally_phase(metric, tally)
    entry.measurements.append(
        Measurement(
            cluster=result.cluster, time=result.time, value=result.value, verdict=verdict, message=why
        )
    )
    del entry.measurements[:-MEASUREMENTS_KEPT]
    events = []
    if verdict == "Failed":  # every failed measurement, with its value; AnalysisFailed when over the limit
        events.append(
            AnalysisEvent(
                "Warning",
                "AnalysisMeasurementFailed",
                f"{where}: metric {metric.name} on {result.cluster} = {_fmt(result.value)}: {why} "
                f"({tally.failed} of failureLimit={metric.failure_limit})",
            )
        )
    event = _transition_event(where, metric, tally, before, why)
    return [*events, *([event] if event else [])]


def record_measurements(
    state: RolloutState, analysis: RolloutAnalysis | None, results: Sequence[MeasurementResult], where: str
) -> list[AnalysisEvent]:
    """Record into `state.analysis` the results that belong to the soaking wave (its clusters, on their
    target digest, newer than what is recorded); returns the events they cause. `where` names the wave."""
    if analysis is None or _soaking(state) is None:
        return []
    metrics = {m.name: m for m in analysis.metrics}
    members = {r.name: r for r in _members(state, state.wave)}
    events: list[AnalysisEvent] = []
    for result in sorted(results, key=lambda r: (r.time, r.metric, r.cluster)):
        metric, record = metrics.get(result.metric), members.get(result.cluster)
        if metric is None or record is None or record.target != result.digest:
            continue
        entry = _entry(state, state.wave, metric.name)
        if entry is None:
            entry = MetricAnalysis(wave=state.wave, metric=metric.name)
            state.analysis.append(entry)
            state.analysis.sort(key=lambda a: (a.wave, a.metric))
        events += _record_one(entry, metric, result, where)
        entry.phase = _combined([t.phase for t in entry.tallies])
    return events


def wave_verdict(state: RolloutState, analysis: RolloutAnalysis | None, wave: int) -> WaveVerdict:
    """Successful when every metric passed on every judged member (or there is nothing to judge);
    Failed as soon as one failed anywhere; Inconclusive when one is stuck inconclusive; else Running."""
    if analysis is None:
        return WaveVerdict("Successful")
    members = _members(state, wave)
    phases: list[AnalysisPhase] = []
    failed: dict[str, str] = {}
    stuck: list[str] = []
    for metric in analysis.metrics:
        entry = _entry(state, wave, metric.name)
        for record in members:
            tally = _tally(entry, record.name)
            phase = tally.phase if tally is not None else "Running"
            phases.append(phase)
            if tally is not None and phase == "Failed":
                failed.setdefault(record.name, _failure_text(metric, tally))
            elif tally is not None and phase == "Inconclusive":
                stuck.append(_inconclusive_text(metric, tally, entry))
    phase = _combined(phases)
    if phase == "Failed":
        return WaveVerdict(phase, "; ".join(f"{c}: {why}" for c, why in sorted(failed.items())), failed)
    if phase == "Inconclusive":
        return WaveVerdict(phase, "; ".join(stuck))
    return WaveVerdict(phase)


def _failure_text(metric: AnalysisMetric, tally: MetricTally) -> str:
    return (
        f"metric {metric.name} failed {tally.failed} measurement(s), "
        f"over failureLimit={metric.failure_limit} (last {_fmt(tally.last_value)})"
    )


def _inconclusive_text(metric: AnalysisMetric, tally: MetricTally, entry: MetricAnalysis | None) -> str:
    last = (
        next((m for m in reversed(entry.measurements) if m.cluster == tally.cluster), None)
        if entry is not None
        else None
    )
    why = f": {last.message}" if last is not None and last.message else ""
    return (
        f"metric {metric.name} on {tally.cluster}: {tally.inconclusive} inconclusive measurement(s) "
        f"in a row, over inconclusiveLimit={metric.inconclusive_limit}{why}"
    )
