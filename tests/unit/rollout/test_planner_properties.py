"""Property tests of the rollout planner against a simulated fleet.

A scenario (drawn by hypothesis) is a set of clusters with their labels, how long
a new digest takes to become healthy on each, which clusters a revision breaks,
when clusters are unreachable, a policy (deployment windows included), manual
commands, an optional second revision, and crashes at random points. The loop plays the operator: observe,
plan from the state persisted in status (a JSON round-trip), persist, act.

Crashes come in three kinds: after persisting but before acting (actions lost),
after acting but before persisting (state lost), and before both.

The invariants are checked on every planning step against the test's own reading
of the world (its own health rule, its own wave assignment), not the planner's.
Then the world is healed (everything reachable, no more crashes, unpaused) and
the rollout must end, with every cluster on its old or its new digest.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edgeroll.rollout.health import DeploymentHealth
from edgeroll.rollout.planner import (
    ApplyRevision,
    ClusterState,
    DesiredRevision,
    Hold,
    MarkFailed,
    Plan,
    PlanInput,
    Rollback,
    RolloutCommand,
    RolloutState,
    Wait,
    plan_rollout,
)
from edgeroll.rollout.policy import RolloutPolicy

pytestmark = pytest.mark.unit

# CI is derandomized (the same examples every run, no example database); set
# EDGEROLL_HYPOTHESIS_PROFILE=dev to explore with fresh randomness and more examples.
settings.register_profile(
    "edgeroll-ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "edgeroll-dev", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
PROFILE = os.environ.get("EDGEROLL_HYPOTHESIS_PROFILE", "edgeroll-ci")
SCALE = 10 if PROFILE == "edgeroll-dev" else 1


def tuned(examples: int) -> settings:
    return settings(settings.get_profile(PROFILE), max_examples=examples * SCALE)


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ACTIVE = {"Progressing", "Paused", "Soaking", "Waiting"}
HALTED = {"Failed", "RolledBack"}


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


OLD = digest("old")

# ---- the test's own reading of policies and health (independent of the planner's code) -------------


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if not selector:
        return True
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for term in selector.get("matchExpressions") or []:
        key, op, values = term["key"], term["operator"], term.get("values") or []
        ok = {
            "In": key in labels and labels.get(key) in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def count_of(value: int | str, total: int, minimum: int = 0) -> int:
    if isinstance(value, int):
        return max(value, minimum)
    return max(total * int(value[:-1]) // 100, minimum)


@dataclass(frozen=True, eq=False)  # compared by identity: the menu below is fixed
class SimWindow:
    """A deployment window the scenarios draw, with the test's own arithmetic reading of its cron: it
    starts at `offset` seconds past every `period` (counted from midnight UTC) and lasts `seconds`."""

    spec: dict[str, Any]
    period: int
    offset: int

    def open_at(self, t: datetime) -> bool:
        since_midnight = (t - t.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()
        return (since_midnight - self.offset) % self.period < self.spec["durationSeconds"]

    def constrains(self, labels: dict[str, str]) -> bool:
        return selector_matches(self.spec.get("clusterSelector"), labels)


# Any combination of these leaves some minutes open every ten, so a rollout still ends.
WINDOWS = (
    SimWindow({"kind": "Deny", "schedule": "*/5 * * * *", "durationSeconds": 120}, 300, 0),
    SimWindow({"kind": "Allow", "schedule": "* * * * *", "durationSeconds": 30}, 60, 0),
    SimWindow(
        {
            "kind": "Allow",
            "schedule": "*/10 * * * *",
            "durationSeconds": 360,
            "clusterSelector": {"matchLabels": {"region": "eu"}},
        },
        600,
        0,
    ),
    # Minute 3 in India (UTC+05:30) is minute 33 in UTC.
    SimWindow(
        {
            "kind": "Deny",
            "schedule": "3 * * * *",
            "durationSeconds": 600,
            "timeZone": "Asia/Kolkata",
            "clusterSelector": {"matchLabels": {"ring": "canary"}},
        },
        3600,
        33 * 60,
    ),
)


def may_start(
    windows: list[SimWindow], members: tuple[str, ...], labels: dict[str, dict[str, str]], t: datetime
) -> bool:
    """Argo CD's rule, per cluster: no open Deny, and an open Allow if any Allow constrains it; a wave
    needs all of its clusters (an empty one: only the windows without a selector hold it)."""
    groups = [[w for w in windows if w.constrains(labels[m])] for m in members] or [
        [w for w in windows if not w.spec.get("clusterSelector")]
    ]
    for constraining in groups:
        if any(w.spec["kind"] == "Deny" and w.open_at(t) for w in constraining):
            return False
        allows = [w for w in constraining if w.spec["kind"] == "Allow"]
        if allows and not any(w.open_at(t) for w in allows):
            return False
    return True


@dataclass(frozen=True)
class ExpectedWave:
    members: tuple[str, ...]
    max_parallel: int | None


def expected_waves(spec: dict[str, Any], labels: dict[str, dict[str, str]]) -> list[ExpectedWave]:
    names = sorted(labels)
    if spec.get("strategy", "AllAtOnce") == "AllAtOnce":
        return [ExpectedWave(tuple(names), None)]
    waves: list[ExpectedWave] = []
    if spec.get("steps"):
        left = list(names)
        for step in spec["steps"]:
            members = tuple(n for n in left if selector_matches(step.get("clusterSelector"), labels[n]))
            left = [n for n in left if n not in members]
            mp = step.get("maxParallel")
            waves.append(ExpectedWave(members, None if mp is None else count_of(mp, len(members), 1)))
        if left:
            waves.append(ExpectedWave(tuple(left), None))
        return waves
    rest = list(names)
    if spec.get("canary") is not None:
        waves.append(ExpectedWave(tuple(rest[: spec["canary"]]), None))
        rest = rest[spec["canary"] :]
    if spec.get("batchSize") is None:
        if rest or not waves:
            waves.append(ExpectedWave(tuple(rest), None))
    else:
        size = count_of(spec["batchSize"], len(names), 1)
        waves.extend(ExpectedWave(tuple(rest[i : i + size]), None) for i in range(0, len(rest), size))
    return waves or [ExpectedWave((), None)]


def healthy_on(o: ClusterState, wanted: str | None) -> bool:
    h = o.health
    return (
        wanted is not None
        and o.reachable
        and h is not None
        and h.digest == wanted
        and h.observed_generation == h.generation
        and h.updated_replicas == h.replicas == h.current_replicas == h.available_replicas
        and h.available
        and not h.deadline_exceeded
    )


# ---- the simulated fleet ---------------------------------------------------------------------------


@dataclass
class SimCluster:
    name: str
    labels: dict[str, str]
    replicas: int
    delay: int  # seconds for a good digest to become healthy after it is applied
    glitch: bool  # first status after an update is stale (old generation, looks Available)
    pde_after: int | None  # a bad digest makes the Deployment report ProgressDeadlineExceeded after this
    digest: str | None = OLD
    generation: int = 1
    applied_at: int = -10_000
    stale_status: bool = False
    last_good_annotation: str | None = None


@dataclass
class World:
    clusters: dict[str, SimCluster]
    bad: set[tuple[str, str]]  # (cluster, digest) that never becomes healthy
    offline: dict[str, list[tuple[int, int]]]  # cluster -> [start, end) tick windows

    def reachable(self, name: str, tick: int) -> bool:
        return not any(start <= tick < end for start, end in self.offline.get(name, []))

    def observe(self, tick: int, t: int) -> list[ClusterState]:
        out = []
        for c in self.clusters.values():
            if not self.reachable(c.name, tick):
                out.append(
                    ClusterState(c.name, reachable=False, labels=c.labels, message="connection refused")
                )
                continue
            health = self._health(c, t) if c.digest is not None else None
            out.append(
                ClusterState(
                    c.name, reachable=True, health=health, labels=c.labels, last_good=c.last_good_annotation
                )
            )
        return out

    def _health(self, c: SimCluster, t: int) -> DeploymentHealth:
        r = c.replicas
        if c.stale_status:
            c.stale_status = False  # only the first read after an update is stale
            return DeploymentHealth(
                generation=c.generation,
                observed_generation=c.generation - 1,
                replicas=r,
                current_replicas=r,
                updated_replicas=r,
                ready_replicas=r,
                available_replicas=r,
                available=True,
                deadline_exceeded=False,
                digest=c.digest,
            )
        bad = (c.name, c.digest) in self.bad
        done = not bad and t >= c.applied_at + c.delay
        exceeded = bad and c.pde_after is not None and t >= c.applied_at + c.pde_after
        return DeploymentHealth(
            generation=c.generation,
            observed_generation=c.generation,
            replicas=r,
            current_replicas=r,
            updated_replicas=r if done else r - 1,
            ready_replicas=r if done else r - 1,
            available_replicas=r if done else r - 1,
            available=done or r > 1,
            deadline_exceeded=exceeded,
            digest=c.digest,
        )

    def set_digest(self, name: str, new: str, t: int, last_good: str | None = None) -> None:
        c = self.clusters[name]
        if c.digest == new:
            return
        c.digest = new
        c.generation += 1
        c.applied_at = t
        c.stale_status = c.glitch
        if last_good is not None:
            c.last_good_annotation = last_good


# ---- scenarios ------------------------------------------------------------------------------------

# How a step can be cut short. With the handler's contract (persist status, then act), a kill loses the
# actions (after_persist), some of them (partial), or both (before_both). after_execute models a handler
# that acts first and loses the state; the planner must stay safe then too.
Crash = Literal["after_persist", "partial", "before_both", "after_execute"]
CONTRACT_CRASHES: tuple[Crash, ...] = ("after_persist", "partial", "before_both")


@dataclass
class Scenario:
    world: World
    initial: dict[str, str | None]
    spec: dict[str, Any]
    dt: int
    ticks: int
    crashes: dict[int, Crash]
    commands: dict[int, str]  # tick -> promote | promote-ignore-windows | abort | undo | pause | resume
    second_revision_at: int | None
    windows: list[SimWindow] = field(default_factory=list)


REGIONS = ("eu", "us", "ap")


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "maxUnavailable": draw(st.sampled_from([0, 0, 1, 2, "25%", "50%"])),
        "soakSeconds": draw(st.sampled_from([0, 15, 40])),
        "progressDeadlineSeconds": draw(st.sampled_from([30, 60, 150])),
        "autoRollback": draw(st.booleans()),
        "unreachablePolicy": draw(st.sampled_from(["Skip", "Block"])),
    }
    shape = draw(st.sampled_from(["steps", "canary", "all"]))
    if shape == "all":
        spec["strategy"] = "AllAtOnce"
        return spec
    spec["strategy"] = "Progressive"
    if shape == "steps":
        steps: list[dict[str, Any]] = [
            {"name": "canary", "clusterSelector": {"matchLabels": {"ring": "canary"}}},
            {
                "name": "eu",
                "clusterSelector": {
                    "matchExpressions": [{"key": "region", "operator": "In", "values": ["eu"]}]
                },
                "maxParallel": draw(st.sampled_from([1, 2, "50%"])),
            },
        ]
        if draw(st.booleans()):
            steps.append(
                {"name": "world", "clusterSelector": {}, "maxParallel": draw(st.sampled_from([1, 2, "34%"]))}
            )
        spec["steps"] = steps
    else:
        spec["canary"] = draw(st.integers(1, 2))
        spec["batchSize"] = draw(st.sampled_from([None, 1, 2, "40%"]))
    return spec


@st.composite
def scenarios(
    draw: st.DrawFn, *, max_clusters: int = 6, crash_modes: tuple[Crash, ...] = CONTRACT_CRASHES
) -> Scenario:
    n = draw(st.integers(1, max_clusters))
    names = [f"edge-{i}" for i in range(n)]
    dt = draw(st.sampled_from([5, 10, 20]))
    ticks = draw(st.integers(10, 45))
    # Half the fleets are smooth (nothing broken, short delays) so that long multi-wave rollouts complete.
    smooth = draw(st.booleans())
    delays = [0, 5, 10, 20] if smooth else [0, 5, 20, 45, 200]
    clusters: dict[str, SimCluster] = {}
    initial: dict[str, str | None] = {}
    for name in names:
        labels = {
            "region": draw(st.sampled_from(REGIONS)),
            "ring": draw(st.sampled_from(["canary", "main", "main"])),
        }
        clusters[name] = SimCluster(
            name=name,
            labels=labels,
            replicas=draw(st.integers(1, 3)),
            delay=draw(st.sampled_from(delays)),
            glitch=draw(st.booleans()),
            pde_after=draw(st.sampled_from([None, 40, 90])),
        )
        initial[name] = draw(st.sampled_from([OLD, OLD, OLD, None]))
        clusters[name].digest = initial[name]
    bad_r1 = set() if smooth else draw(st.sets(st.sampled_from(names), max_size=2))
    bad_r2 = set() if smooth else draw(st.sets(st.sampled_from(names), max_size=1))
    bad = {(c, desired_digest("r1", clusters[c].labels)) for c in bad_r1}
    bad |= {(c, desired_digest("r2", clusters[c].labels)) for c in bad_r2}
    offline: dict[str, list[tuple[int, int]]] = {}
    for name in draw(st.sets(st.sampled_from(names), max_size=2)):
        start = draw(st.integers(0, ticks))
        offline[name] = [(start, start + draw(st.integers(1, ticks + 1)))]
    crashes = draw(st.dictionaries(st.integers(0, ticks - 1), st.sampled_from(crash_modes), max_size=6))
    commands = draw(
        st.dictionaries(
            st.integers(1, ticks - 1),
            st.sampled_from(
                ["pause", "resume", "promote", "pause", "abort", "undo", "promote-ignore-windows"]
            ),
            max_size=4,
        )
    )
    second = draw(st.one_of(st.none(), st.integers(1, ticks - 1)))
    windows = draw(st.one_of(st.just([]), st.lists(st.sampled_from(WINDOWS), max_size=3, unique=True)))
    spec = draw(policies())
    spec["windows"] = [w.spec for w in windows]
    return Scenario(
        world=World(clusters=clusters, bad=bad, offline=offline),
        initial=initial,
        spec=spec,
        dt=dt,
        ticks=ticks,
        crashes=crashes,
        commands=commands,
        second_revision_at=second,
        windows=windows,
    )


def desired_digest(revision: str, labels: dict[str, str]) -> str:
    # An overlay for region=eu gives those clusters their own digest.
    return digest(f"{revision}-eu") if labels.get("region") == "eu" else digest(revision)


def desired_for(revision: str, world: World) -> dict[str, DesiredRevision]:
    out = {}
    for name, c in world.clusters.items():
        d = desired_digest(revision, c.labels)
        out[name] = DesiredRevision(d, f"edgeroll/ns/rc/{d[7:]}.json", "c2ln")
    return out


def plan(
    desired: dict[str, DesiredRevision],
    observed: list[ClusterState],
    policy: RolloutPolicy,
    state: RolloutState | None,
    t: int,
    *,
    revision: str = "",
    commands: list[RolloutCommand] | None = None,
) -> Plan:
    return plan_rollout(
        PlanInput(
            desired=desired,
            observed={o.name: o for o in observed},
            policy=policy,
            now=T0 + timedelta(seconds=t),
            state=state,
            revision=revision,
            commands=commands or [],
        )
    )


def moves(p: Plan, obs: dict[str, ClusterState]) -> set[str]:
    """Clusters an ApplyRevision actually changes (the others are level-triggered no-ops)."""
    return {a.cluster for a in p.applies if obs[a.cluster].digest != a.revision.digest}


# ---- the operator loop, with the invariants checked at every step ----------------------------------


def persist(state: RolloutState) -> RolloutState:
    """What a restart sees: status.rollout after a trip through the apiserver (JSON)."""
    return RolloutState.from_status(json.loads(json.dumps(state.to_status())))


FAILURE_REASONS = {"HealthDeadlineExceeded", "ProgressDeadlineExceeded"}


@dataclass
class Checker:
    """The test's own record of the world, to judge the planner's decisions by."""

    policy: RolloutPolicy
    labels: dict[str, dict[str, str]]
    waves: list[ExpectedWave]
    windows: list[SimWindow]
    # Digests each cluster was seen healthy on (plus its initial one): what "old" may mean.
    good: dict[str, set[str]]
    # Per revision and wave: (time, healthy?) at every persisted step.
    wave_health: dict[tuple[str, int], list[tuple[int, bool]]] = field(default_factory=dict)
    promoted: set[tuple[str, int]] = field(default_factory=set)
    started: dict[tuple[str, int], int] = field(default_factory=dict)
    first_touch: dict[tuple[str, str], int] = field(default_factory=dict)
    failed: dict[str, set[str]] = field(default_factory=dict)  # revision -> clusters seen failed
    waited: bool = False  # a wave was held by its windows at some step
    ignored: bool = False  # promote --ignore-windows let a wave start outside them

    def wave_of(self, name: str) -> int:
        return next(i for i, w in enumerate(self.waves) if name in w.members)

    def wave_healthy(
        self, index: int, obs: dict[str, ClusterState], desired: dict[str, DesiredRevision], failed: set[str]
    ) -> bool:
        skip = self.policy.unreachable_policy == "Skip"
        return all(
            m in failed or (not obs[m].reachable and skip) or healthy_on(obs[m], desired[m].digest)
            for m in self.waves[index].members
        )

    def check_step(
        self,
        t: int,
        before: RolloutState,
        p: Plan,
        obs: dict[str, ClusterState],
        desired: dict[str, DesiredRevision],
        rev: str,
        commands: list[RolloutCommand],
    ) -> None:
        now = T0 + timedelta(seconds=t)
        records = {r.name: r for r in p.state.clusters}
        failed = {n for n, r in records.items() if r.failed_at is not None}
        budget = count_of(self.policy.max_unavailable, len(self.labels))
        moved = moves(p, obs)

        # Every target has a record, in the wave the test expects, and exactly one action.
        assert p.state.revision == rev
        assert sorted(records) == sorted(self.labels)
        for name, record in records.items():
            assert record.wave == self.wave_of(name), (name, record.wave)
        assert sorted(a.cluster for a in p) == sorted(self.labels)

        # Idempotent: planning again from the persisted result changes nothing and says nothing new.
        again = plan(
            desired, list(obs.values()), self.policy, persist(p.state), t, revision=rev, commands=commands
        )
        assert again.actions == p.actions
        assert again.state == p.state
        assert again.events == ()

        # Actions: unreachable clusters are only held; the new digest or a known-good one, nothing else.
        for action in p:
            if not obs[action.cluster].reachable:
                assert isinstance(action, Hold)
            if isinstance(action, ApplyRevision):
                assert action.revision == desired[action.cluster]
            if isinstance(action, Rollback):
                assert action.digest in self.good[action.cluster], (action, self.good[action.cluster])
        if moved:
            assert p.phase not in HALTED, "a halted rollout moves nobody"
            assert not self.policy.paused, "a paused rollout moves nobody"
        # What each cluster should hold now is its new digest or a known-good one (never a third digest),
        # unless there never was a good one to go back to.
        for name, wanted in p.wanted.items():
            if wanted is not None and records[name].last_good is not None:
                assert wanted == desired[name].digest or wanted in self.good[name], (name, wanted)
        kinds = [type(a) for a in p.actions]
        assert kinds.count(Wait) <= 1
        if Wait in kinds:
            assert p.wait_until is not None and p.wait_until > now
        assert (MarkFailed in kinds) == (p.phase in HALTED and p.reason in FAILURE_REASONS)

        # Parallelism: a move never makes more clusters of its wave in flight than maxParallel.
        for index, wave in enumerate(self.waves):
            if wave.max_parallel is None or not moved & set(wave.members):
                continue
            in_flight = {
                m
                for m in wave.members
                if obs[m].reachable
                and m not in failed
                and not healthy_on(obs[m], desired[m].digest)
                and (m in moved or obs[m].digest == desired[m].digest)
            }
            assert len(in_flight) <= wave.max_parallel, (index, sorted(in_flight), wave.max_parallel)
        for name in moved:
            assert p.state.waves[self.wave_of(name)].started_at is not None, f"{name} moved before its wave"

        # Budget: while the rollout runs, failures stay within maxUnavailable; past it, it has halted.
        if p.phase in ACTIVE:
            assert len(failed) <= budget
        if len(failed) > budget and p.phase != "Completed":
            assert p.phase in HALTED

        # A cluster fails only for a reason: its Deployment says so, or its deadline really passed.
        deadline = self.policy.progress_deadline_seconds
        for name in failed - self.failed.get(rev, set()):
            if records[name].failed_at != now:
                continue  # failed in an earlier step that a crash kept from the test's records
            o = obs[name]
            target = desired[name].digest
            assert o.reachable and not healthy_on(o, target)
            exceeded = o.health is not None and o.digest == target and o.health.deadline_exceeded
            touched = self.first_touch.get((rev, name))
            assert exceeded or (touched is not None and t - touched >= deadline), (name, t, touched)

        # Gates: a wave starts only when the previous one is healthy now and has been for soakSeconds
        # (or was promoted: the command applies to the wave that was current when it came).
        if any(e.reason == "RolloutPromoted" for e in p.events):
            self.promoted.add((rev, before.wave if before.revision == rev else 0))
        started_now = [i for i, w in enumerate(p.state.waves) if w.started_at == now]
        if self.policy.paused:
            assert not started_now, "a wave started while paused"
        # Windows: a wave starts only inside them, or once after promote --ignore-windows said so.
        flagged = {i for i, w in enumerate(p.state.waves) if w.ignore_windows}
        if before.revision == rev and flagged - {i for i, w in enumerate(before.waves) if w.ignore_windows}:
            assert any(e.reason == "WindowsIgnored" for e in p.events), "windows ignored without a command"
        for index in started_now:
            if not p.state.waves[index].ignore_windows:
                assert may_start(self.windows, self.waves[index].members, self.labels, now), (
                    f"wave {index} started outside its deployment windows at {now}"
                )
        self.ignored |= any(e.reason == "WindowsIgnored" for e in p.events)
        if p.phase == "Waiting":
            self.waited = True
            assert p.state.window is not None and p.wait_until is not None
            assert p.wait_until <= (p.state.window.next_open_at or p.wait_until)
        started_now = [i for i in started_now if i > 0]
        soak = self.policy.effective_soak_seconds
        for index in started_now:
            prev = index - 1
            if not self.waves[prev].members or (rev, prev) in self.promoted:
                continue
            history = [
                *self.wave_health.get((rev, prev), []),
                (t, self.wave_healthy(prev, obs, desired, failed)),
            ]
            assert history[-1][1], f"wave {index} started while wave {prev} is unhealthy"
            streak = t
            for when, ok in reversed(history):
                if not ok:
                    break
                streak = when
            assert t - streak >= soak, f"wave {index} started {t - streak}s into a {soak}s soak"

    def record_health(self, obs: dict[str, ClusterState]) -> None:
        for name, o in obs.items():
            if o.digest is not None and healthy_on(o, o.digest):
                self.good[name].add(o.digest)

    def record_touch(
        self, t: int, p: Plan, obs: dict[str, ClusterState], desired: dict[str, DesiredRevision], rev: str
    ) -> None:
        for name, o in obs.items():
            if o.digest == desired[name].digest:
                self.first_touch.setdefault((rev, name), t)
        for name in moves(p, obs):
            self.first_touch.setdefault((rev, name), t)

    def record_persisted(
        self,
        t: int,
        before: RolloutState,
        p: Plan,
        obs: dict[str, ClusterState],
        desired: dict[str, DesiredRevision],
        rev: str,
    ) -> None:
        failed = {r.name for r in p.state.clusters if r.failed_at is not None}
        self.failed.setdefault(rev, set()).update(failed)
        for index in range(len(self.waves)):
            self.wave_health.setdefault((rev, index), []).append(
                (t, self.wave_healthy(index, obs, desired, failed))
            )
        # No wave is started twice.
        for index, wave in enumerate(p.state.waves):
            if wave.started_at is not None:
                first = self.started.setdefault((rev, index), t)
                assert first == int((wave.started_at - T0).total_seconds()), "a wave was started twice"


def run(scenario: Scenario, *, heal_ticks: int = 400) -> tuple[Checker, Plan]:
    if scenario.windows:
        heal_ticks *= 4  # each wave may wait up to ten minutes for its windows
    world = scenario.world
    policy = RolloutPolicy.model_validate(scenario.spec)
    labels = {n: c.labels for n, c in world.clusters.items()}
    good = {n: ({d} if d else set()) for n, d in scenario.initial.items()}
    checker = Checker(policy, labels, expected_waves(scenario.spec, labels), scenario.windows, good)
    state = RolloutState()
    annotations: dict[str, RolloutCommand] = {}
    paused = False
    rev = "r1"
    p: Plan | None = None
    for tick in range(scenario.ticks + heal_ticks):
        healing = tick >= scenario.ticks
        t = tick * scenario.dt
        if tick == scenario.second_revision_at:
            rev = "r2"
        if healing:
            world.offline = {}
            paused = False
        kind = scenario.commands.get(tick)
        if kind in ("pause", "resume"):
            paused = kind == "pause"
        elif kind == "promote-ignore-windows":
            annotations["promote"] = RolloutCommand(kind="promote", id=f"cmd-{tick:05d}", ignore_windows=True)
        elif kind is not None:
            annotations[kind] = RolloutCommand(kind=kind, id=f"cmd-{tick:05d}")  # type: ignore[arg-type]
        policy = policy.model_copy(update={"paused": paused})
        checker.policy = policy
        desired = desired_for(rev, world)
        observed = world.observe(tick, t)
        obs = {o.name: o for o in observed}
        commands = sorted(annotations.values(), key=lambda c: c.kind)
        checker.record_health(obs)
        p = plan(desired, observed, policy, state, t, revision=rev, commands=commands)
        checker.check_step(t, state, p, obs, desired, rev, commands)
        checker.record_touch(t, p, obs, desired, rev)
        crash = None if healing else scenario.crashes.get(tick)
        if crash in (None, "after_persist", "partial"):
            checker.record_persisted(t, state, p, obs, desired, rev)
            state = persist(p.state)
        executed = {None: p.actions, "after_execute": p.actions, "partial": p.actions[: len(p.actions) // 2]}
        for action in executed.get(crash, ()):
            if isinstance(action, ApplyRevision):
                world.set_digest(action.cluster, action.revision.digest, t, action.last_good)
            elif isinstance(action, Rollback):
                world.set_digest(action.cluster, action.digest, t)
        # In single-revision runs every cluster is only ever on its old digest or its new one.
        if scenario.second_revision_at is None:
            for name, c in world.clusters.items():
                assert c.digest in {scenario.initial[name], desired[name].digest}, (name, c.digest)
        if healing and settled(p, obs):
            break
    else:
        raise AssertionError(f"the rollout never settled: {p.phase if p else None}: {p.message if p else ''}")
    assert p is not None
    return checker, p


def settled(p: Plan, obs: dict[str, ClusterState]) -> bool:
    if p.phase in ACTIVE or moves(p, obs) or p.rollbacks:
        return False
    if p.phase == "RolledBack" and p.state.rolled_back_at is None:
        return False
    # A halted rollout leaves clusters it cannot send back as they are, progressing or not.
    records = {r.name: r for r in p.state.clusters}
    return all(
        c.phase != "Progressing" or (p.phase in HALTED and records[c.name].rollback_to is None)
        for c in p.clusters
    )


def check_final(scenario: Scenario, checker: Checker, p: Plan, *, state_kept: bool = True) -> None:
    """The settled fleet. `state_kept`: every action was persisted before it ran (the handler's contract)."""
    records = {r.name: r for r in p.state.clusters}
    for name, c in scenario.world.clusters.items():
        record = records[name]
        # Never left on a digest that is neither old (seen healthy, or its initial one) nor new.
        known = checker.good[name] | {scenario.initial[name]}
        assert c.digest == record.target or c.digest in known or record.last_good is None, (name, c.digest)
        if p.phase == "RolledBack" and p.reason != "Undone" and record.rollback_to is not None:
            # Rollback returns every moved cluster to its last-good digest.
            assert c.digest == record.rollback_to == record.last_good
            if state_kept and scenario.second_revision_at is None and scenario.initial[name] is not None:
                assert c.digest == scenario.initial[name], (name, c.digest)
        if p.phase == "Completed" and record.failed_at is None:
            assert c.digest == record.target
        if record.failed_at is not None and checker.policy.auto_rollback and record.last_good:
            assert c.digest == record.last_good


@tuned(250)
@given(scenarios())
def test_random_rollouts_keep_every_invariant(scenario: Scenario) -> None:
    checker, p = run(scenario)
    check_final(scenario, checker, p)
    # What the examples covered (pytest --hypothesis-show-statistics).
    event(f"ended {p.phase}" + (f" ({p.reason})" if p.reason else ""))
    event(f"{len(checker.waves)} wave(s)")
    if scenario.second_revision_at is not None:
        event("superseded by a second revision")
    if checker.promoted:
        event("a wave was promoted")
    if scenario.windows:
        event("deployment windows")
    if checker.waited:
        event("a wave waited for its windows")
    if checker.ignored:
        event("promote --ignore-windows")
    if any(r.failed_at for r in p.state.clusters):
        event("a cluster failed")


@tuned(40)
@given(scenarios(crash_modes=("after_execute", "after_persist", "before_both")))
def test_state_lost_after_acting_still_keeps_the_fleet_safe(scenario: Scenario) -> None:
    """A handler that acts before persisting can lose a step's state after its actions ran. The planner
    finds the clusters it moved (on the new digest, last-good on the Deployment) and stays safe."""
    checker, p = run(scenario)
    check_final(scenario, checker, p, state_kept=False)


# ---- Skip never lets an unreachable cluster stall the rollout --------------------------------------


@st.composite
def skip_scenarios(draw: st.DrawFn) -> tuple[Scenario, set[str]]:
    scenario = draw(scenarios(max_clusters=7))
    scenario.spec["unreachablePolicy"] = "Skip"
    scenario.spec["progressDeadlineSeconds"] = 300  # every reachable cluster gets healthy in time
    scenario.world.bad = set()
    scenario.crashes = {}
    scenario.commands = {}
    scenario.second_revision_at = None
    for c in scenario.world.clusters.values():
        c.delay = min(c.delay, 45)
    names = sorted(scenario.world.clusters)
    gone = draw(st.sets(st.sampled_from(names), min_size=1, max_size=max(1, len(names) - 1)))
    # Offline from a random step (maybe after being moved) until long after the rollout must have ended.
    scenario.world.offline = {n: [(draw(st.integers(0, 6)), 10**9)] for n in gone}
    return scenario, gone


@tuned(60)
@given(skip_scenarios())
def test_skip_never_lets_an_unreachable_cluster_stall_the_rollout(case: tuple[Scenario, set[str]]) -> None:
    scenario, gone = case
    world = scenario.world
    policy = RolloutPolicy.model_validate(scenario.spec)
    labels = {n: c.labels for n, c in world.clusters.items()}
    waves = expected_waves(scenario.spec, labels)
    # Generous bound: every cluster one after the other, each with the worst delay, plus every soak.
    per_cluster = 45 + 3 * scenario.dt
    bound = len(labels) * per_cluster + len(waves) * (policy.soak_seconds + 2 * scenario.dt)
    desired = desired_for("r1", world)
    state = RolloutState()
    t = 0
    p = None
    for tick in range(bound // scenario.dt + 2):
        t = tick * scenario.dt
        observed = world.observe(tick, t)
        p = plan(desired, observed, policy, state, t)
        state = persist(p.state)
        for action in p:
            if isinstance(action, ApplyRevision):
                world.set_digest(action.cluster, action.revision.digest, t, action.last_good)
        if p.phase == "Completed":
            break
    assert p is not None
    assert p.phase == "Completed", f"stalled at {t}s (bound {bound}s): {p.message}"
    phases = {c.name: c.phase for c in p.clusters}
    offline = {n for n in gone if not world.reachable(n, tick)}
    assert {n for n, ph in phases.items() if ph == "Stale"} == offline
    assert all(phases[n] == "Ready" for n in labels if n not in offline)
