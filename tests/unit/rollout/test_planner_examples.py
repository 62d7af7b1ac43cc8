"""The rollout planner, scenario by scenario: a small fleet, a clock, and the operator loop by hand."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from pydantic import ValidationError

from edgeroll.api.routerconfig import RouterConfigSpec
from edgeroll.rollout.health import DeploymentHealth, read_health
from edgeroll.rollout.planner import (
    ApplyRevision,
    ClusterState,
    DesiredRevision,
    Hold,
    MarkFailed,
    Plan,
    PlanInput,
    RemoveEdge,
    Rollback,
    RolloutCommand,
    RolloutState,
    Wait,
    plan_rollout,
    revision_of,
)
from edgeroll.rollout.policy import RolloutPolicy, plan_waves, resolve_count

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


V0, V1, V2 = digest("v0"), digest("v1"), digest("v2")

Phase = Literal["ready", "updating", "stale-status", "stuck"]


@dataclass
class EdgeCluster:
    labels: dict[str, str]
    digest: str | None = V0
    phase: Phase = "ready"
    reachable: bool = True
    paused: bool = False
    generation: int = 1
    last_good: str | None = None

    def health(self) -> DeploymentHealth | None:
        if self.digest is None:
            return None
        ready = self.phase == "ready"
        stale = self.phase == "stale-status"  # the controller has not seen the new generation yet
        return DeploymentHealth(
            generation=self.generation,
            observed_generation=self.generation - 1 if stale else self.generation,
            replicas=2,
            current_replicas=2,
            updated_replicas=2 if ready or stale else 1,
            ready_replicas=2 if ready or stale else 1,
            available_replicas=2 if ready or stale else 1,
            available=True,  # old pods keep it Available during a rolling update
            deadline_exceeded=self.phase == "stuck",
            digest=self.digest,
        )


@dataclass
class Fleet:
    """Edge clusters whose Deployments do what the test says, after actions change their digest."""

    clusters: dict[str, EdgeCluster]
    seen: dict[str, str | None] = field(default_factory=dict)  # digests at the last observation

    @classmethod
    def of(cls, **labels: dict[str, str]) -> Fleet:
        return cls({name.replace("_", "-"): EdgeCluster(dict(lbl)) for name, lbl in labels.items()})

    def observe(self) -> dict[str, ClusterState]:
        self.seen = self.digests()
        out = {}
        for name, c in self.clusters.items():
            if not c.reachable:
                out[name] = ClusterState(name, reachable=False, labels=c.labels, message="dial tcp: timeout")
            else:
                out[name] = ClusterState(
                    name,
                    reachable=True,
                    paused=c.paused,
                    health=c.health(),
                    labels=c.labels,
                    last_good=c.last_good,
                )
        return out

    def act(self, plan: Plan) -> None:
        for action in plan:
            if isinstance(action, ApplyRevision):
                self._set(action.cluster, action.revision.digest)
                self.clusters[action.cluster].last_good = action.last_good
            elif isinstance(action, Rollback):
                self._set(action.cluster, action.digest)

    def _set(self, name: str, new: str) -> None:
        c = self.clusters[name]
        assert c.reachable and not c.paused, f"{name} cannot be acted on"
        if c.digest != new:
            c.digest, c.generation, c.phase = new, c.generation + 1, "stale-status"

    def ready(self, *names: str) -> None:
        for name in names or tuple(self.clusters):
            if self.clusters[name].digest is not None:
                self.clusters[name].phase = "ready"

    def digests(self) -> dict[str, str | None]:
        return {n: c.digest for n, c in sorted(self.clusters.items())}


def revision(d: str) -> DesiredRevision:
    return DesiredRevision(d, f"edgeroll/shop/router/{d[7:]}.json", "sig")


@dataclass
class Operator:
    """The reconcile loop by hand: observe, plan from the persisted state, persist, act."""

    fleet: Fleet
    policy: RolloutPolicy
    want: dict[str, str] = field(default_factory=dict)  # cluster -> digest; default V1 everywhere
    rev: str = "r1"
    now: datetime = T0
    state: RolloutState | None = None
    commands: list[RolloutCommand] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    managed: frozenset[str] = frozenset()
    untargeted: set[str] = field(default_factory=set)  # observed (previously managed), no longer a target

    def desired(self) -> dict[str, DesiredRevision]:
        return {n: revision(self.want.get(n, V1)) for n in self.fleet.clusters if n not in self.untargeted}

    def plan(self) -> Plan:
        return plan_rollout(
            PlanInput(
                desired=self.desired(),
                observed=self.fleet.observe(),
                previously_managed=self.managed,
                policy=self.policy,
                now=self.now,
                state=self.state,
                revision=self.rev,
                commands=self.commands,
            )
        )

    def step(self, seconds: float = 0, *, act: bool = True) -> Plan:
        self.now += timedelta(seconds=seconds)
        p = self.plan()
        self.state = RolloutState.from_status(json.loads(json.dumps(p.state.to_status())))
        self.events += [e.reason for e in p.events]
        if act:
            self.fleet.act(p)
        return p

    def command(self, kind: str, **extra: Any) -> None:
        self.commands = [c for c in self.commands if c.kind != kind]
        stamp = (self.now + timedelta(microseconds=len(self.events))).isoformat()
        self.commands.append(RolloutCommand.model_validate({"kind": kind, "id": stamp, **extra}))


def moved(p: Plan, fleet: Fleet) -> list[str]:
    """Clusters whose digest this plan changes to the new revision (as the plan observed them)."""
    return [a.cluster for a in p.applies if fleet.seen.get(a.cluster) != a.revision.digest]


def phases(p: Plan) -> dict[str, str]:
    return {c.name: c.phase for c in p.clusters}


PROGRESSIVE = {
    "strategy": "Progressive",
    "steps": [
        {"name": "canary", "clusterSelector": {"matchLabels": {"ring": "canary"}}},
        {"name": "eu", "clusterSelector": {"matchLabels": {"region": "eu"}}, "maxParallel": 1},
        {"name": "world"},
    ],
    "soakSeconds": 60,
    "progressDeadlineSeconds": 300,
}


def shop() -> Fleet:
    return Fleet.of(
        edge_a={"ring": "canary", "region": "eu"},
        edge_b={"region": "eu"},
        edge_c={"region": "eu"},
        edge_d={"region": "us"},
        edge_e={"region": "ap"},
    )


# ---- the policy and its waves -------------------------------------------------------------------


def test_waves_from_steps_first_match_wins_and_order_is_by_name() -> None:
    policy = RolloutPolicy.model_validate(
        {
            "strategy": "Progressive",
            "steps": [
                {"name": "canary", "clusterSelector": {"matchLabels": {"ring": "canary"}}},
                {
                    "name": "eu",
                    "clusterSelector": {
                        "matchExpressions": [{"key": "region", "operator": "In", "values": ["eu"]}]
                    },
                    "maxParallel": "50%",
                },
            ],
        }
    )
    labels = {
        "zz": {"region": "eu"},
        "aa": {"region": "eu", "ring": "canary"},
        "mm": {"region": "eu"},
        "kk": {"region": "eu"},
        "us": {"region": "us"},
    }
    waves = plan_waves(policy, labels)
    assert [(w.name, w.clusters, w.max_parallel) for w in waves] == [
        ("canary", ("aa",), None),
        ("eu", ("kk", "mm", "zz"), 1),  # 50% of 3, rounded down
        ("(rest)", ("us",), None),  # selected by no step: still rolled out, last
    ]


def test_waves_from_canary_and_batches() -> None:
    policy = RolloutPolicy.model_validate({"strategy": "Progressive", "canary": 1, "batchSize": "40%"})
    waves = plan_waves(policy, {f"c{i}": {} for i in range(6)})
    assert [w.clusters for w in waves] == [("c0",), ("c1", "c2"), ("c3", "c4"), ("c5",)]
    all_at_once = plan_waves(RolloutPolicy(), {"b": {}, "a": {}})
    assert [(w.name, w.clusters, w.max_parallel) for w in all_at_once] == [("all", ("a", "b"), None)]


def test_int_or_percent() -> None:
    assert resolve_count("25%", 10) == 2
    assert resolve_count("10%", 3, minimum=1) == 1
    assert resolve_count(3, 10) == 3


@pytest.mark.parametrize(
    "spec",
    [
        {"strategy": "AllAtOnce", "steps": [{"name": "a"}]},
        {"strategy": "Progressive", "steps": [{"name": "a"}], "canary": 1},
        {"strategy": "Progressive", "steps": [{"name": "a"}, {"name": "a"}]},
        {"strategy": "Progressive", "steps": [{"name": "a", "maxParallel": 0}]},
        {"maxUnavailable": "120%"},
        {"maxUnavailable": "1/2"},
        {"progressDeadlineSeconds": 0},
        {"unreachablePolicy": "Ignore"},
    ],
)
def test_policy_refuses_nonsense(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RolloutPolicy.model_validate(spec)


def test_policy_reads_spec_rollout_of_the_api() -> None:
    policy = RolloutPolicy.model_validate(PROGRESSIVE)
    assert policy.soak_seconds == 60 and policy.unreachable_policy == "Skip" and policy.auto_rollback
    spec = RouterConfigSpec.model_validate(
        {
            "format": "json",
            "config": {},
            "targets": {"clusterSelector": {}},
            "signing": {"secretRef": {"name": "s", "key": "k"}},
            "rollout": PROGRESSIVE,
        }
    )
    assert spec.rollout == policy  # spec.rollout is the planner's policy model
    fleet = Fleet.of(a={})
    p = plan_rollout(
        PlanInput(
            desired={"a": revision(V1)},
            observed=fleet.observe(),
            policy=RouterConfigSpec.model_validate({**spec.to_wire(), "rollout": {}}).rollout,
            now=T0,
        )
    )
    assert moved(p, fleet) == ["a"] and p.state.waves[0].name == "all"  # the default: AllAtOnce


# ---- a progressive rollout, gate by gate --------------------------------------------------------


def test_progressive_rollout_waits_for_health_and_soak_between_waves() -> None:
    fleet = shop()
    op = Operator(fleet, RolloutPolicy.model_validate(PROGRESSIVE))

    p = op.step()
    assert moved(p, fleet) == ["edge-a"]  # the canary only
    assert p.phase == "Progressing" and p.state.wave_progress == "1/3"
    assert phases(p) == {
        "edge-a": "Progressing",
        "edge-b": "Pending",
        "edge-c": "Pending",
        "edge-d": "Pending",
        "edge-e": "Pending",
    }
    assert op.events == ["RolloutStarted", "WaveStarted"]

    # Its status is stale (old generation, still Available): that is not health.
    p = op.step(10)
    assert p.phase == "Progressing" and phases(p)["edge-a"] == "Progressing"

    fleet.ready("edge-a")
    p = op.step(10)
    assert p.phase == "Soaking" and op.events[-1] == "WaveHealthy"
    assert p.wait_until == T0 + timedelta(seconds=80) and p.requeue_after(op.now) == 60
    assert "Soaking wave 1/3 (canary)" in p.message

    p = op.step(59)
    assert moved(p, fleet) == [] and p.phase == "Soaking"

    p = op.step(1)  # soaked: the eu wave starts, one cluster at a time
    assert op.events[-2:] == ["WaveSoaked", "WaveStarted"]
    assert moved(p, fleet) == ["edge-b"] and p.state.wave_progress == "2/3"
    p = op.step(30)
    assert moved(p, fleet) == []  # edge-b is not healthy yet: no second slot
    fleet.ready("edge-b")
    p = op.step(5)
    assert moved(p, fleet) == ["edge-c"]
    fleet.ready("edge-c")
    p = op.step(5)
    assert p.phase == "Soaking" and moved(p, fleet) == []
    p = op.step(60)
    assert moved(p, fleet) == ["edge-d", "edge-e"]  # the last wave, no limit
    fleet.ready()
    p = op.step(5)
    assert p.phase == "Completed" and p.state.wave_progress == "3/3"
    assert op.events[-2:] == ["WaveHealthy", "RolloutCompleted"]
    assert set(phases(p).values()) == {"Ready"} and p.message.startswith("Completed")
    # Timestamps prove the soak: each wave started at least soakSeconds after the previous was healthy.
    waves = p.state.waves
    for before, after in itertools.pairwise(waves):
        assert before.healthy_at is not None and after.started_at is not None
        assert after.started_at - before.healthy_at >= timedelta(seconds=60)
    # Steady state: every cluster keeps being ensured on its revision, nothing else happens.
    again = op.step(600)
    assert (
        [type(a) for a in again] == [ApplyRevision] * 5 and again.events == () and moved(again, fleet) == []
    )


def test_soak_restarts_when_the_wave_loses_health() -> None:
    fleet = Fleet.of(a={}, b={})
    op = Operator(
        fleet, RolloutPolicy.model_validate({"strategy": "Progressive", "canary": 1, "soakSeconds": 60})
    )
    op.step()
    fleet.ready()
    op.step(10)
    fleet.clusters["a"].phase = "updating"  # a pod crashed
    p = op.step(30)
    assert p.phase == "Progressing" and op.events[-1] == "WaveUnhealthy"
    fleet.ready()
    op.step(10)
    p = op.step(59)
    assert moved(p, fleet) == []  # 99 s since the first health, but only 59 s of this streak
    p = op.step(1)
    assert moved(p, fleet) == ["b"]


def test_all_at_once_moves_everything_without_soak() -> None:
    fleet = shop()
    op = Operator(fleet, RolloutPolicy.model_validate({"soakSeconds": 600}))
    p = op.step()
    assert sorted(moved(p, fleet)) == sorted(fleet.clusters)
    fleet.ready()
    p = op.step(5)
    assert p.phase == "Completed"


# ---- failures, the budget and rollback ----------------------------------------------------------


def test_a_canary_that_never_gets_healthy_is_rolled_back() -> None:
    fleet = shop()
    op = Operator(fleet, RolloutPolicy.model_validate(PROGRESSIVE))
    op.step()
    p = op.step(299)
    assert p.phase == "Progressing" and p.wait_until == T0 + timedelta(seconds=300)
    p = op.step(1)
    assert p.phase == "RolledBack" and p.reason == "HealthDeadlineExceeded"
    assert op.events[-3:] == ["ClusterFailed", "RolloutFailed", "RollbackStarted"]
    assert p.rollbacks == (Rollback("edge-a", V0),)
    assert MarkFailed in [type(a) for a in p.actions]
    assert "edge-a: not healthy on sha256:" in p.message and "progressDeadlineSeconds=300" in p.message
    assert fleet.digests()["edge-a"] == V0
    fleet.ready()
    p = op.step(5)
    assert op.events[-1] == "RolledBack" and p.message.startswith("Rolled back")
    assert phases(p)["edge-a"] == "RolledBack" and p.wanted["edge-a"] == V0
    # Nobody else was ever moved, and a rolled-back rollout stays put.
    assert all(d == V0 for d in fleet.digests().values())
    assert moved(op.step(3600), fleet) == []


def test_a_deployment_reporting_progress_deadline_exceeded_fails_at_once() -> None:
    fleet = shop()
    op = Operator(fleet, RolloutPolicy.model_validate(PROGRESSIVE))
    op.step()
    fleet.clusters["edge-a"].phase = "stuck"
    p = op.step(10)
    assert p.phase == "RolledBack" and p.reason == "ProgressDeadlineExceeded"


def test_the_failure_budget_tolerates_then_fails() -> None:
    fleet = Fleet.of(a={}, b={}, c={}, d={})
    op = Operator(
        fleet,
        RolloutPolicy.model_validate(
            {
                "strategy": "Progressive",
                "batchSize": 2,
                "maxUnavailable": "25%",
                "progressDeadlineSeconds": 60,
            }
        ),
    )
    op.step()  # a, b
    fleet.ready("b")
    p = op.step(60)
    assert phases(p)["a"] == "Failed" and p.phase == "Progressing"  # 1 failure is within 25% of 4
    assert p.rollbacks == (Rollback("a", V0),)  # sent back on its own
    assert moved(p, fleet) == ["c", "d"]  # the first batch counts as healthy without a: on it goes
    fleet.ready("a", "c")
    p = op.step(60)  # d never gets healthy: a second failure is over the budget
    assert p.phase == "RolledBack" and "2 of 4 clusters failed, over maxUnavailable=1" in p.message
    assert sorted(r.cluster for r in p.rollbacks) == ["b", "c", "d"]
    fleet.ready()
    p = op.step(5)
    assert fleet.digests() == {"a": V0, "b": V0, "c": V0, "d": V0}
    assert phases(p) == {"a": "RolledBack", "b": "RolledBack", "c": "RolledBack", "d": "RolledBack"}


def test_without_auto_rollback_a_failed_rollout_halts_where_it_is() -> None:
    fleet = shop()
    op = Operator(fleet, RolloutPolicy.model_validate({**PROGRESSIVE, "autoRollback": False}))
    op.step()
    p = op.step(300)
    assert p.phase == "Failed" and p.rollbacks == () and fleet.digests()["edge-a"] == V1
    assert phases(p)["edge-a"] == "Failed" and "autoRollback is off" in p.clusters[0].message
    fleet.ready()
    assert moved(op.step(600), fleet) == []
    # abort still sends the moved clusters back
    op.command("abort")
    p = op.step()
    assert p.phase == "RolledBack" and p.reason == "Aborted" and p.rollbacks == (Rollback("edge-a", V0),)


def test_a_cluster_that_had_nothing_before_is_not_rolled_back_to_nothing() -> None:
    fleet = Fleet.of(a={})
    fleet.clusters["a"].digest = None
    op = Operator(fleet, RolloutPolicy())
    op.step()
    p = op.step(600)
    assert p.phase == "RolledBack" and p.rollbacks == ()
    assert "no last-good digest" in p.clusters[0].message


# ---- unreachable and paused clusters ------------------------------------------------------------


def test_skip_reports_an_unreachable_cluster_stale_and_goes_on() -> None:
    fleet = shop()
    fleet.clusters["edge-b"].reachable = False
    op = Operator(fleet, RolloutPolicy.model_validate({**PROGRESSIVE, "soakSeconds": 0}))
    op.step()
    fleet.ready()
    p = op.step(5)
    assert phases(p)["edge-b"] == "Stale" and Hold("edge-b", "dial tcp: timeout") in p.actions
    fleet.ready()
    p = op.step(5)
    fleet.ready()
    p = op.step(5)
    assert p.phase == "Completed" and fleet.digests()["edge-b"] == V0
    assert phases(p)["edge-b"] == "Stale" and op.events[-1] == "RolloutCompleted"
    # It catches up when it is back.
    fleet.clusters["edge-b"].reachable = True
    p = op.step(600)
    assert moved(p, fleet) == ["edge-b"]
    fleet.ready()
    p = op.step(5)
    assert phases(p)["edge-b"] == "Ready" and p.phase == "Completed"


def test_block_holds_the_rollout_on_an_unreachable_cluster() -> None:
    fleet = shop()
    fleet.clusters["edge-a"].reachable = False
    op = Operator(fleet, RolloutPolicy.model_validate({**PROGRESSIVE, "unreachablePolicy": "Block"}))
    p = op.step()
    for _ in range(10):
        p = op.step(600)
        assert p.phase == "Progressing" and moved(p, fleet) == []
    assert "holding the rollout (unreachablePolicy Block)" in p.clusters[0].message
    fleet.clusters["edge-a"].reachable = True
    p = op.step(5)
    assert moved(p, fleet) == ["edge-a"]  # no deadline ran out while it was away


def test_a_paused_edge_cluster_is_left_alone_and_not_waited_for() -> None:
    fleet = Fleet.of(a={}, b={})
    fleet.clusters["a"].paused = True
    op = Operator(fleet, RolloutPolicy.model_validate({"unreachablePolicy": "Block"}))
    p = op.step()
    assert Hold("a", "EdgeCluster is paused") in p.actions and phases(p)["a"] == "Paused"
    fleet.ready()
    assert op.step(5).phase == "Completed" and fleet.digests() == {"a": V0, "b": V1}


def test_a_returning_cluster_whose_apply_never_landed_waits_for_a_free_slot() -> None:
    fleet = Fleet.of(a={}, b={}, c={})
    policy = {
        "strategy": "Progressive",
        "steps": [{"name": "all", "maxParallel": 1}],
        "progressDeadlineSeconds": 600,
    }
    op = Operator(fleet, RolloutPolicy.model_validate(policy))
    op.step(act=False)  # a is moved, but the apply is lost (the operator was killed)
    fleet.clusters["a"].reachable = False
    p = op.step(5)
    assert moved(p, fleet) == ["b"]  # a's slot is free while it is away
    fleet.clusters["a"].reachable = True
    p = op.step(5)
    assert moved(p, fleet) == []  # b holds the only slot; a waits
    fleet.ready()
    p = op.step(5)
    assert moved(p, fleet) == ["a"]


def test_a_cluster_already_on_the_new_digest_takes_its_slot() -> None:
    fleet = Fleet.of(a={}, b={})
    fleet.clusters["b"].digest, fleet.clusters["b"].phase = V1, "updating"
    policy = {"strategy": "Progressive", "steps": [{"name": "all", "maxParallel": 1}]}
    op = Operator(fleet, RolloutPolicy.model_validate(policy))
    p = op.step()
    assert moved(p, fleet) == [] and phases(p) == {"a": "Pending", "b": "Progressing"}
    fleet.ready("b")
    assert moved(op.step(5), fleet) == ["a"]


# ---- manual control -----------------------------------------------------------------------------


def test_pause_holds_moves_and_wave_starts_and_resume_continues() -> None:
    fleet = shop()
    op = Operator(fleet, RolloutPolicy.model_validate(PROGRESSIVE))
    op.step()
    fleet.ready()
    op.step(60)
    op.policy = op.policy.model_copy(update={"paused": True})
    p = op.step(600)
    assert p.phase == "Paused" and moved(p, fleet) == [] and op.events[-1] == "RolloutPaused"
    assert p.state.wave_progress == "1/3"
    op.policy = op.policy.model_copy(update={"paused": False})
    p = op.step(5)
    assert op.events[-3:] == ["RolloutResumed", "WaveSoaked", "WaveStarted"] and moved(p, fleet) == ["edge-b"]


def test_pause_withdraws_a_move_that_has_not_landed() -> None:
    fleet = Fleet.of(a={})
    op = Operator(fleet, RolloutPolicy())
    op.step(act=False)
    op.policy = op.policy.model_copy(update={"paused": True})
    p = op.step(3600)
    assert moved(p, fleet) == [] and phases(p) == {"a": "Pending"}  # and no deadline ran out
    op.policy = op.policy.model_copy(update={"paused": False})
    assert moved(op.step(5), fleet) == ["a"]


def test_promote_skips_the_rest_of_the_soak_once() -> None:
    fleet = shop()
    op = Operator(fleet, RolloutPolicy.model_validate(PROGRESSIVE))
    op.step()
    fleet.ready()
    op.step(10)
    op.command("promote")
    p = op.step(1)
    assert moved(p, fleet) == ["edge-b"] and "RolloutPromoted" in op.events
    fleet.ready()
    p = op.step(1)
    assert moved(p, fleet) == ["edge-c"]
    fleet.ready()
    p = op.step(1)
    assert p.phase == "Soaking"  # the same promote annotation does not promote the next wave too


def test_abort_rolls_back_and_a_stale_annotation_never_replays() -> None:
    fleet = shop()
    op = Operator(fleet, RolloutPolicy.model_validate(PROGRESSIVE))
    op.step()
    fleet.ready()
    op.step(10)
    assert moved(op.step(60), fleet) == ["edge-b"]
    fleet.ready()
    op.command("abort")
    p = op.step(10)
    assert p.phase == "RolledBack" and p.reason == "Aborted"
    assert sorted(r.cluster for r in p.rollbacks) == ["edge-a", "edge-b"]
    assert MarkFailed not in [type(a) for a in p.actions]  # an abort is not a failure
    # A new revision is not aborted by the old annotation, nor is a status that was lost.
    op.rev, op.want = "r2", {n: V2 for n in fleet.clusters}
    p = op.step(10)
    assert p.phase == "Progressing" and moved(p, fleet) == ["edge-a"]
    op.state = None
    assert op.step(10).phase == "Progressing"


def test_undo_to_a_chosen_digest_per_cluster() -> None:
    fleet = Fleet.of(a={"region": "eu"}, b={"region": "us"})
    op = Operator(fleet, RolloutPolicy())
    op.step()
    fleet.ready()
    assert op.step(5).phase == "Completed"
    old_eu = digest("v0-eu")
    op.command("undo", toDigest=V0, digests={"a": old_eu})
    p = op.step(5)
    assert p.phase == "RolledBack" and p.reason == "Undone"
    assert p.rollbacks == (Rollback("a", old_eu), Rollback("b", V0))
    fleet.ready()
    p = op.step(5)
    assert p.wanted == {"a": old_eu, "b": V0} and set(phases(p).values()) == {"RolledBack"}
    assert op.events[-1] == "RolledBack"
    assert moved(op.step(600), fleet) == []  # the desired revision is not re-applied behind the undo


def test_retry_starts_a_halted_revision_again_from_the_first_wave() -> None:
    fleet = shop()
    op = Operator(fleet, RolloutPolicy.model_validate(PROGRESSIVE))
    op.step()
    op.step(300)
    fleet.ready()
    assert op.step(5).phase == "RolledBack"
    op.command("retry")
    p = op.step(5)
    assert p.phase == "Progressing" and moved(p, fleet) == ["edge-a"] and "RolloutRetried" in op.events


# ---- new revisions, restarts, membership --------------------------------------------------------


def test_a_new_revision_supersedes_the_rollout_from_the_first_wave() -> None:
    fleet = shop()
    op = Operator(fleet, RolloutPolicy.model_validate({**PROGRESSIVE, "soakSeconds": 0}))
    op.step()
    fleet.ready()
    p = op.step(5)  # canary done; edge-b moves to v1
    assert moved(p, fleet) == ["edge-b"]
    # v2 arrives while edge-b is still updating to v1 (unhealthy), and edge-a is healthy on v1.
    op.rev, op.want = "r2", {n: V2 for n in fleet.clusters}
    p = op.step(5)
    assert op.events[-3:-1] == ["RolloutSuperseded", "RolloutStarted"]
    assert moved(p, fleet) == ["edge-a"]  # wave 1 again, from where edge-a is (v1)
    assert p.rollbacks == (Rollback("edge-b", V0),)  # on neither old nor new: back to last-good
    records = {r.name: r for r in p.state.clusters}
    assert records["edge-a"].last_good == V1 and records["edge-b"].last_good == V0
    fleet.ready()
    p = op.step(5)
    assert moved(p, fleet) == ["edge-b"] and fleet.digests()["edge-a"] == V2


def test_clusters_already_on_the_new_digest_count_as_done_once_healthy() -> None:
    fleet = Fleet.of(a={"ring": "canary"}, b={})
    fleet.clusters["b"].digest = V1
    op = Operator(fleet, RolloutPolicy.model_validate({"strategy": "Progressive", "canary": 1}))
    op.step()
    fleet.ready()
    p = op.step(5)
    assert p.phase == "Completed" and moved(p, fleet) == []


def test_a_restart_at_any_point_replans_the_same_actions() -> None:
    fleet = shop()
    op = Operator(fleet, RolloutPolicy.model_validate(PROGRESSIVE))
    first = op.step(act=False)  # killed after persisting, before acting
    again = op.step()
    assert again.actions == first.actions and again.events == () and again.state == first.state
    fleet.ready()
    op.step(10)
    soaking = op.step(30)
    restarted = op.step(0)  # a restart during soak: same wait, no wave redone
    assert restarted.actions == soaking.actions and restarted.events == ()
    assert op.events.count("WaveStarted") == 1


def test_targets_that_come_and_go() -> None:
    fleet = shop()
    op = Operator(fleet, RolloutPolicy.model_validate(PROGRESSIVE))
    op.step()
    fleet.ready()
    op.step(60)
    # edge-f joins (eu: a wave not passed yet); edge-e stops being a target and is removed.
    fleet.clusters["edge-f"] = EdgeCluster({"region": "eu"})
    op.managed = frozenset(fleet.clusters) - {"edge-f"}
    op.untargeted = {"edge-e"}
    p = op.step(5)
    records = {r.name: r for r in p.state.clusters}
    assert "edge-e" not in records and RemoveEdge("edge-e") in p.actions
    assert records["edge-f"].wave == 1 and records["edge-f"].last_good == V0
    assert phases(p)["edge-f"] == "Pending"  # eu moves one at a time: edge-b first


def test_revision_id_follows_content_not_membership() -> None:
    one = {"a": revision(V1), "b": revision(V1)}
    assert revision_of(one) == revision_of({**one, "c": revision(V1)})
    assert revision_of(one) != revision_of({**one, "c": revision(V2)})


# ---- the persisted state and the transitional stateless plan ------------------------------------


def test_status_rollout_round_trips_and_clears_with_merge_patches() -> None:
    fleet = shop()
    op = Operator(fleet, RolloutPolicy.model_validate(PROGRESSIVE))
    p = op.step()
    status = p.state.to_status()
    assert status["waveProgress"] == "1/3" and status["reason"] is None  # top-level nulls clear old values
    assert all(None not in item.values() for item in status["clusters"] + status["waves"])
    assert {"name", "wave", "target", "lastGood", "movedAt"} <= set(status["clusters"][0])
    assert RolloutState.from_status(json.loads(json.dumps(status))) == p.state
    assert RolloutState.from_status(None) == RolloutState()


def test_now_must_be_timezone_aware_and_every_target_observed() -> None:
    fleet = Fleet.of(a={})
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_rollout(
            PlanInput(desired={"a": revision(V1)}, observed=fleet.observe(), now=datetime(2026, 1, 1))
        )
    with pytest.raises(ValueError, match="no observation"):
        plan_rollout(
            PlanInput(desired={"a": revision(V1), "b": revision(V1)}, observed=fleet.observe(), now=T0)
        )


def test_without_now_the_first_cores_stateless_all_at_once_remains() -> None:
    fleet = Fleet.of(a={}, b={}, c={})
    fleet.clusters["b"].reachable = False
    fleet.clusters["c"].paused = True
    p = plan_rollout(PlanInput(desired={n: revision(V1) for n in fleet.clusters}, observed=fleet.observe()))
    assert list(p) == [
        ApplyRevision("a", revision(V1), None),
        Hold("b", "dial tcp: timeout"),
        Hold("c", "EdgeCluster is paused"),
    ]


def test_the_planner_reads_health_as_the_core_reads_deployments() -> None:
    live = {
        "metadata": {"generation": 4},
        "spec": {"replicas": 2, "template": {"metadata": {"annotations": {"edgeroll.io/digest": V1}}}},
        "status": {
            "observedGeneration": 3,  # stale: the controller has not seen the update
            "replicas": 2,
            "updatedReplicas": 2,
            "availableReplicas": 2,
            "conditions": [{"type": "Available", "status": "True"}],
        },
    }
    stale = ClusterState("a", reachable=True, health=read_health(live))
    assert not stale.healthy_on(V1)
    live["status"]["observedGeneration"] = 4
    assert ClusterState("a", reachable=True, health=read_health(live)).healthy_on(V1)


def test_wait_is_the_earliest_time_gate() -> None:
    fleet = Fleet.of(a={"ring": "canary"}, b={})
    op = Operator(
        fleet, RolloutPolicy.model_validate({"strategy": "Progressive", "canary": 1, "soakSeconds": 30})
    )
    p = op.step()
    assert p.wait_until == T0 + timedelta(seconds=600)  # a's progress deadline
    fleet.ready()
    p = op.step(10)
    assert [a for a in p.actions if isinstance(a, Wait)] == [Wait(T0 + timedelta(seconds=40))]


# ---- deployment windows -------------------------------------------------------------------------

# T0 is 12:00 UTC. A freeze from 11:50 for 30 minutes covers it: nothing may start before 12:20.
FREEZE = {"kind": "Deny", "schedule": "50 11 * * *", "durationSeconds": 1800}
OPENS = T0 + timedelta(minutes=20)


def windowed(*windows: dict[str, Any], **extra: Any) -> RolloutPolicy:
    return RolloutPolicy.model_validate({**PROGRESSIVE, "windows": list(windows), **extra})


def test_no_wave_starts_inside_a_deny_window_and_the_first_starts_when_it_ends() -> None:
    fleet = shop()
    op = Operator(fleet, windowed(FREEZE))
    p = op.step()
    assert moved(p, fleet) == [] and p.phase == "Waiting" and p.state.waves[0].started_at is None
    hold = p.state.window
    assert hold is not None and hold.wave == 0 and hold.since == T0 and hold.next_open_at == OPENS
    assert "edge-a: inside Deny windows[0]" in hold.message
    assert p.wait_until == OPENS and p.requeue_after(op.now) == 1200  # plan again right at the opening
    assert op.events == ["RolloutStarted", "OutsideWindow"]
    assert "waiting for wave 1/3 (canary): outside its deployment windows" in p.clusters[0].message
    assert p.message.startswith("Waiting: wave 1/3 (canary) outside its deployment windows, next opening")
    # Planning again changes nothing and says nothing; so does a look just before the opening.
    p = op.step(1199)
    assert moved(p, fleet) == [] and p.events == () and p.state.window == hold
    p = op.step(1)
    assert moved(p, fleet) == ["edge-a"] and p.phase == "Progressing" and p.state.window is None
    assert p.state.waves[0].started_at == OPENS and op.events[-1] == "WaveStarted"


def test_a_started_wave_finishes_its_soak_but_the_next_waits_for_the_window() -> None:
    fleet = shop()
    # Waves may start from 12:00 for a minute, then from 13:00.
    op = Operator(fleet, windowed({"kind": "Allow", "schedule": "0 * * * *", "durationSeconds": 60}))
    assert moved(op.step(), fleet) == ["edge-a"]
    fleet.ready()
    p = op.step(10)
    assert p.phase == "Soaking"
    p = op.step(60)  # soaked at 12:01:10, but outside the window now: the canary stays current
    assert moved(p, fleet) == [] and p.phase == "Waiting" and p.state.wave_progress == "1/3"
    assert p.state.waves[0].completed_at is None and p.state.window is not None
    assert p.state.window.wave == 1 and p.state.window.next_open_at == T0 + timedelta(hours=1)
    assert "RolloutCompleted" not in op.events and "WaveSoaked" not in op.events
    # The current wave keeps being judged: health lost while waiting restarts its soak.
    fleet.clusters["edge-a"].phase = "updating"
    p = op.step(60)
    assert p.phase == "Progressing" and op.events[-1] == "WaveUnhealthy" and p.state.window is None
    fleet.ready()
    p = op.step(3600 - 130 - 30)  # 12:59:30: healthy again but not soaked, and outside the window
    assert p.phase == "Soaking"
    p = op.step(30)  # 13:00: the window opens, but the soak has 30 s to go
    assert moved(p, fleet) == []
    p = op.step(30)
    assert moved(p, fleet) == ["edge-b"] and p.state.wave_progress == "2/3"


def test_promote_ignore_windows_lets_one_wave_start_and_an_event_records_it() -> None:
    fleet = shop()
    op = Operator(fleet, windowed(FREEZE))
    op.command("promote", ignoreWindows=True)
    op.state = op.step().state  # a fresh status marks the annotation handled without acting on it
    assert moved(op.step(1), fleet) == []
    op.command("promote", ignoreWindows=True)
    p = op.step(1)
    assert moved(p, fleet) == ["edge-a"] and "WindowsIgnored" in op.events
    assert next(e for e in p.events if e.reason == "WindowsIgnored").message.endswith(
        f"(promote --ignore-windows, command {op.commands[0].id})"
    )
    fleet.ready()
    p = op.step(1)
    p = op.step(60)  # soaked, still inside the freeze: the override was for one wave only
    assert moved(p, fleet) == [] and p.phase == "Waiting" and p.state.window is not None
    op.command("promote", ignoreWindows=True)  # a soaked wave: the override goes to the next one
    p = op.step(1)
    assert moved(p, fleet) == ["edge-b"] and p.state.waves[1].ignore_windows


def test_a_plain_promote_skips_the_soak_but_not_the_window() -> None:
    fleet = shop()
    op = Operator(fleet, windowed({**FREEZE, "schedule": "1 12 * * *"}))  # the freeze starts at 12:01
    assert moved(op.step(), fleet) == ["edge-a"]
    fleet.ready()
    op.step(61)
    op.command("promote")
    p = op.step(1)
    assert moved(p, fleet) == [] and p.phase == "Waiting" and "RolloutPromoted" in op.events


def test_a_window_with_a_selector_holds_only_the_waves_with_its_clusters() -> None:
    fleet = shop()
    us_freeze = {**FREEZE, "clusterSelector": {"matchLabels": {"region": "us"}}}
    op = Operator(fleet, windowed(us_freeze, soakSeconds=0))
    assert moved(op.step(), fleet) == ["edge-a"]  # the canary is in eu
    fleet.ready()
    assert moved(op.step(1), fleet) == ["edge-b"]
    fleet.ready()
    p = op.step(1)
    assert moved(p, fleet) == ["edge-c"]
    fleet.ready()
    p = op.step(1)  # the last wave has edge-d (us) and edge-e (ap): it waits for all of them
    assert moved(p, fleet) == [] and p.phase == "Waiting" and p.state.window is not None
    assert p.state.window.message.startswith("edge-d: inside Deny windows[0]")
    p = op.step((OPENS - op.now).total_seconds())
    assert moved(p, fleet) == ["edge-d", "edge-e"]


def test_a_paused_edge_clusters_windows_hold_nothing() -> None:
    fleet = Fleet.of(a={"region": "us"}, b={"region": "eu"})
    fleet.clusters["a"].paused = True
    us_freeze = {**FREEZE, "clusterSelector": {"matchLabels": {"region": "us"}}}
    op = Operator(fleet, RolloutPolicy.model_validate({"windows": [us_freeze]}))
    assert moved(op.step(), fleet) == ["b"]


def test_windows_gate_all_at_once_and_pause_comes_first() -> None:
    fleet = shop()
    op = Operator(fleet, RolloutPolicy.model_validate({"windows": [FREEZE], "paused": True}))
    assert op.step().phase == "Paused"
    op.policy = op.policy.model_copy(update={"paused": False})
    p = op.step(1)
    assert p.phase == "Waiting" and moved(p, fleet) == []
    assert moved(op.step((OPENS - op.now).total_seconds()), fleet) == sorted(fleet.clusters)
