"""Metric analysis in the planner, against a simulated fleet and Prometheus, checked by an independent
model of the measurements (hypothesis).

The random parts: the fleet size and the waves (canary 1, batches), the soak, one or two metrics with
their limits, count and interval, which clusters the new revision breaks (their error rate is 1.0),
flaky clusters whose values sit between the conditions (0.7), and windows in which Prometheus does not
answer. Deployments turn healthy at once, so what gates a wave is the analysis.

The test keeps its own log of every answer it gave, per wave, metric and cluster, and folds it with
its own reading of the rules (not the planner's): at every step
- a wave starts only when every metric passed on every member of the previous wave;
- the rollout halts with AnalysisFailed exactly when a metric failed in the current wave, and then every
  cluster goes back to its old digest;
- it is Paused with AnalysisInconclusive exactly when a metric is stuck inconclusive and none failed,
  and it never rolls back for that;
- planning again from the persisted state, with nothing new measured, changes nothing and says nothing.
Once Prometheus answers again the rollout ends: Completed when no cluster is broken, else RolledBack.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from test_planner_properties import tuned

from edgeroll.api.rollout import RolloutState
from edgeroll.rollout.analysis import MeasurementResult, due_measurements
from edgeroll.rollout.health import DeploymentHealth
from edgeroll.rollout.planner import (
    ApplyRevision,
    ClusterState,
    DesiredRevision,
    Plan,
    PlanInput,
    Rollback,
    plan_rollout,
)
from edgeroll.rollout.policy import RolloutPolicy

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OLD = "sha256:" + hashlib.sha256(b"old").hexdigest()
NEW = "sha256:" + hashlib.sha256(b"new").hexdigest()
HORIZON = 240  # seconds of simulated time, one plan per second
SUCCESS, FAILURE = "result < 0.5", "result >= 0.9"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    failure_condition: bool
    failure_limit: int
    inconclusive_limit: int
    count: int

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "prometheus": {"address": "http://prom:9090", "query": 'errors{cluster="${cluster.name}"}'},
            "successCondition": SUCCESS,
            "failureLimit": self.failure_limit,
            "inconclusiveLimit": self.inconclusive_limit,
            "count": self.count,
        }
        if self.failure_condition:
            out["failureCondition"] = FAILURE
        return out

    def verdict(self, value: float | None) -> str:
        """The test's own reading of one measurement."""
        if value is None:
            return "I"
        if self.failure_condition and value >= 0.9:
            return "F"
        if value < 0.5:
            return "S"
        return "I" if self.failure_condition else "F"

    def fold(self, answers: Sequence[float | None]) -> str:
        """Running, Successful, Failed or Inconclusive after these answers, by the documented rules."""
        ok = failed = streak = 0
        phase = "R"
        for value in answers:
            if phase in ("S", "F"):
                break  # decided: later answers are not taken
            v = self.verdict(value)
            streak = streak + 1 if v == "I" else 0
            ok += v == "S"
            failed += v == "F"
            if failed > self.failure_limit:
                phase = "F"
            elif ok + failed >= self.count:
                phase = "S"
            else:
                phase = "I" if streak > self.inconclusive_limit else "R"
        return phase


@dataclass(frozen=True)
class Scenario:
    clusters: int
    batch: int
    soak: int
    interval: int
    metrics: tuple[MetricSpec, ...]
    broken: frozenset[int]
    flaky: frozenset[int]
    outages: tuple[tuple[int, int], ...]  # [from, to) seconds in which Prometheus does not answer

    @property
    def names(self) -> list[str]:
        return [f"c{i}" for i in range(self.clusters)]

    def policy(self) -> RolloutPolicy:
        return RolloutPolicy.model_validate(
            {
                "strategy": "Progressive",
                "canary": 1,
                "batchSize": self.batch,
                "soakSeconds": self.soak,
                "progressDeadlineSeconds": 60,
                "analysis": {"intervalSeconds": self.interval, "metrics": [m.wire() for m in self.metrics]},
            }
        )

    def down(self, t: int) -> bool:
        return any(a <= t < b for a, b in self.outages)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n = draw(st.integers(2, 6))
    metrics = tuple(
        MetricSpec(
            name=f"m{i}",
            failure_condition=draw(st.booleans()),
            failure_limit=(limit := draw(st.integers(0, 2))),
            inconclusive_limit=draw(st.integers(0, 2)),
            count=draw(st.integers(limit + 1, 3)),
        )
        for i in range(draw(st.integers(1, 2)))
    )
    indices = st.integers(0, n - 1)
    starts = st.integers(0, 40)
    outages = draw(st.lists(st.tuples(starts, st.integers(1, 15)), max_size=2))
    return Scenario(
        clusters=n,
        batch=draw(st.integers(1, 3)),
        soak=draw(st.integers(0, 3)),
        interval=draw(st.integers(1, 3)),
        metrics=metrics,
        broken=frozenset(draw(st.sets(indices, max_size=2))),
        flaky=frozenset(draw(st.sets(indices, max_size=1))),
        outages=tuple((a, a + d) for a, d in outages),
    )


@dataclass
class World:
    scenario: Scenario
    digests: dict[str, str] = field(default_factory=dict)
    # The test's log: (wave, metric, cluster) -> every value it answered, in order.
    answers: dict[tuple[int, str, str], list[float | None]] = field(default_factory=dict)
    paused: bool = False  # the rollout was Paused by inconclusive analysis at some step

    def __post_init__(self) -> None:
        self.digests = {name: OLD for name in self.scenario.names}

    def observe(self) -> dict[str, ClusterState]:
        def health(digest: str) -> DeploymentHealth:
            return DeploymentHealth(2, 2, 2, 2, 2, 2, 2, True, False, digest)

        return {n: ClusterState(n, True, health=health(d)) for n, d in self.digests.items()}

    def value(self, cluster: str, t: int, asked: int) -> float | None:
        if self.scenario.down(t):
            return None
        index = int(cluster[1:])
        if self.digests[cluster] == NEW and index in self.scenario.broken:
            return 1.0
        if index in self.scenario.flaky and asked % 2 == 0:
            return 0.7  # every other answer between the conditions: inconclusive with a failureCondition
        return 0.0

    def measure(
        self, state: RolloutState | None, policy: RolloutPolicy, now: datetime
    ) -> list[MeasurementResult]:
        t = int((now - T0).total_seconds())
        out = []
        for request in due_measurements(state, policy.analysis, now):
            assert state is not None
            log = self.answers.setdefault((state.wave, request.metric, request.cluster), [])
            value = self.value(request.cluster, t, len(log))
            log.append(value)
            error = "Prometheus unreachable" if value is None else None
            out.append(MeasurementResult(request.metric, request.cluster, request.digest, now, value, error))
        return out

    def act(self, plan: Plan) -> None:
        for action in plan:
            if isinstance(action, ApplyRevision):
                self.digests[action.cluster] = action.revision.digest
            elif isinstance(action, Rollback):
                self.digests[action.cluster] = action.digest

    def model(self, state: RolloutState, scenario: Scenario, wave: int) -> dict[str, str]:
        """(metric, cluster) -> the test's verdict for every judged member of `wave`."""
        members = [r.name for r in state.clusters if r.wave == wave]
        return {
            f"{m.name}/{c}": m.fold(self.answers.get((wave, m.name, c), []))
            for m in scenario.metrics
            for c in members
        }


def _plan(
    world: World, policy: RolloutPolicy, state: RolloutState | None, now: datetime, measured: Any
) -> Plan:
    desired = {n: DesiredRevision(NEW, f"k/{NEW}", "sig") for n in world.scenario.names}
    return plan_rollout(
        PlanInput(
            desired, world.observe(), policy=policy, now=now, state=state, revision=NEW, measurements=measured
        )
    )


def _check_step(world: World, scenario: Scenario, before: RolloutState | None, after: RolloutState) -> None:
    if before is None or before.phase not in ("Progressing", "Soaking", "Paused"):
        return
    verdicts = world.model(before, scenario, before.wave)
    failed = [k for k, v in verdicts.items() if v == "F"]
    stuck = [k for k, v in verdicts.items() if v == "I"]
    started = [i for i, w in enumerate(after.waves) if w.started_at and not before.waves[i].started_at]
    for index in started:  # the previous wave passed its analysis on every member
        previous = world.model(after, scenario, index - 1)
        assert all(v == "S" for v in previous.values()), (index, previous)
    if failed:
        assert after.phase == "RolledBack" and after.reason == "AnalysisFailed", (failed, after.phase)
    else:
        assert after.reason != "AnalysisFailed", (verdicts, after.message)
    if (
        stuck
        and not failed
        and after.phase in ("Progressing", "Soaking", "Paused")
        and after.wave == before.wave
    ):
        assert after.phase == "Paused" and after.reason == "AnalysisInconclusive", (stuck, after.phase)
    if after.phase == "Paused":
        assert stuck and after.reason == "AnalysisInconclusive", (verdicts, after.reason)


def run(scenario: Scenario) -> tuple[World, RolloutState]:
    world, policy = World(scenario), scenario.policy()
    state: RolloutState | None = None
    for t in range(HORIZON):
        now = T0 + timedelta(seconds=t)
        measured = world.measure(state, policy, now)
        plan = _plan(world, policy, state, now, measured)
        _check_step(world, scenario, state, plan.state)
        world.paused |= plan.state.reason == "AnalysisInconclusive"
        persisted = RolloutState.from_status(json.loads(json.dumps(plan.state.to_status())))
        again = _plan(world, policy, persisted, now, ())
        assert again.state == persisted and not again.events and again.actions == plan.actions
        state = persisted
        world.act(plan)
        if state.phase == "Completed" or (state.phase == "RolledBack" and state.rolled_back_at is not None):
            break
    assert state is not None
    return world, state


@tuned(120)
@given(scenarios())
def test_analysis_gates_every_wave_as_the_rules_say(scenario: Scenario) -> None:
    world, state = run(scenario)
    event(f"ended {state.phase}, {len(state.waves)} wave(s)")
    if any(v is None for log in world.answers.values() for v in log):
        event("Prometheus did not answer some measurements")
    if world.paused:
        event("paused by inconclusive analysis")
    verdicts = [world.model(state, scenario, w) for w in range(len(state.waves))]
    if state.phase == "Completed":
        assert all(v == "S" for wave in verdicts for v in wave.values()), verdicts
        assert set(world.digests.values()) == {NEW}
    else:
        assert state.phase == "RolledBack" and state.reason == "AnalysisFailed", (state.phase, state.message)
        assert any(v == "F" for v in verdicts[state.wave].values()), verdicts
        assert state.rolled_back_at is not None
        assert set(world.digests.values()) == {OLD}
        failed = [r for r in state.clusters if r.failure_reason == "AnalysisFailed"]
        assert failed and all(int(r.name[1:]) in scenario.broken | scenario.flaky for r in failed)
    if scenario.broken and not scenario.flaky:  # a broken cluster fails every measurement
        reached = [r for r in state.clusters if int(r.name[1:]) in scenario.broken and r.moved_at]
        assert state.phase == "RolledBack" or not reached


def test_a_measurement_is_recorded_once_however_often_it_is_handed_in() -> None:
    scenario = Scenario(2, 1, 0, 1, (MetricSpec("m0", False, 1, 0, 3),), frozenset(), frozenset(), ())
    world, policy = World(scenario), scenario.policy()
    state: RolloutState | None = None
    for t in range(3):  # the canary moves, turns healthy, and its first measurement falls due
        now = T0 + timedelta(seconds=t)
        plan = _plan(world, policy, state, now, world.measure(state, policy, now))
        state = plan.state
        world.act(plan)
    assert state is not None and state.analysis
    (entry,) = state.analysis
    replay = [MeasurementResult("m0", m.cluster, NEW, m.time, m.value) for m in entry.measurements]
    again = _plan(world, policy, state, T0 + timedelta(seconds=3), replay)
    assert again.state.analysis == state.analysis and not again.events
