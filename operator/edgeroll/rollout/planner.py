"""The rollout planner: a pure function from desired and observed state to actions.

    plan = plan_rollout(PlanInput(desired=..., observed=..., policy=..., state=..., now=...))

All rollout decisions live here: waves, gates, the failure budget, rollback,
removals. No I/O and no clock. The reconciler gathers fresh observations of
every target, passes the rollout state it persisted in `status.rollout`,
persists `plan.state` *before* acting (so a crash re-issues rather than
forgets), then executes `plan.actions`. The executor only ever sees actions.

Actions are level-triggered: planning again from the persisted state and the
same observations gives the same actions and the same state, and no events, so
a restart at any point neither redoes a wave nor skips a gate. Events are
edge-triggered: they come out once, with the transition that caused them.

docs/rollout.md describes the model: states, transitions, restart and
supersede semantics.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from edgeroll.api.common import ApiModel
from edgeroll.api.rollout import ClusterRecord as ClusterRecord
from edgeroll.api.rollout import HandledCommands as HandledCommands
from edgeroll.api.rollout import RolloutPhase as RolloutPhase
from edgeroll.api.rollout import RolloutState as RolloutState
from edgeroll.api.rollout import WaveRecord as WaveRecord
from edgeroll.api.rollout import WindowHold as WindowHold
from edgeroll.rollout import analysis
from edgeroll.rollout.analysis import MeasurementResult
from edgeroll.rollout.health import DeploymentHealth
from edgeroll.rollout.policy import REST_WAVE, RolloutPolicy, plan_waves, resolve_count
from edgeroll.rollout.windows import WindowGate, window_gate

# Values of edgeroll.api.routerconfig.ClusterPhase (a StrEnum): ClusterPhase(plan.phase) converts.
ClusterRolloutPhase = Literal["Pending", "Progressing", "Ready", "Failed", "Stale", "RolledBack", "Paused"]
CommandKind = Literal["promote", "abort", "undo", "retry"]

ACTIVE_PHASES: frozenset[str] = frozenset({"Progressing", "Paused", "Soaking", "Waiting"})
HALTED_PHASES: frozenset[str] = frozenset({"Failed", "RolledBack"})

# Reasons (machine-readable, for conditions and events).
REASON_HEALTH_DEADLINE = "HealthDeadlineExceeded"
REASON_PROGRESS_DEADLINE = "ProgressDeadlineExceeded"
REASON_REVISION_REFUSED = "RevisionRefused"  # InPlace: a pod refused the revision (it did not verify)
REASON_ABORTED = "Aborted"
REASON_UNDONE = "Undone"
REASON_OUTSIDE_WINDOW = "OutsideWindow"  # the next wave is due, but its deployment windows are closed
REASON_ANALYSIS_FAILED = "AnalysisFailed"  # a metric of spec.rollout.analysis failed in a wave
REASON_ANALYSIS_INCONCLUSIVE = "AnalysisInconclusive"  # paused (not halted) until it is conclusive
FAILURE_REASONS: frozenset[str] = frozenset(
    {REASON_HEALTH_DEADLINE, REASON_PROGRESS_DEADLINE, REASON_ANALYSIS_FAILED}
)


def _short(digest: str | None) -> str:
    if digest is None:
        return "none"
    return digest[:19] if digest.startswith("sha256:") else digest[:12]


# ---- inputs ---------------------------------------------------------------------------------------


def health_problem(health: DeploymentHealth) -> str | None:
    """Why a Deployment is not rolled out, or None. Fresh status only: a controller that has not seen
    the latest generation still reports the old ReplicaSet as available (the "stale health" trap)."""
    if health.observed_generation < health.generation:
        return f"controller has not observed generation {health.generation} yet"
    if health.deadline_exceeded:
        return "Deployment reports ProgressDeadlineExceeded"
    if health.updated_replicas < health.replicas:
        return f"{health.updated_replicas}/{health.replicas} replicas updated"
    if health.current_replicas > health.updated_replicas:
        return f"{health.current_replicas - health.updated_replicas} old replicas still terminating"
    if health.available_replicas < health.replicas:
        return f"{health.available_replicas}/{health.replicas} replicas available"
    if not health.rolled_out:
        return "Deployment is not Available"
    return None


@dataclass(frozen=True)
class DesiredRevision:
    """What one cluster should serve: a published revision and its signature."""

    digest: str
    key: str
    signature: str


@dataclass(frozen=True)
class ClusterState:
    """What we know of one cluster now (observed freshly for this plan)."""

    name: str
    reachable: bool
    paused: bool = False  # EdgeCluster spec.paused: never touched, never waited for
    exists: bool = True  # False: the EdgeCluster object is gone (nothing can be done there)
    health: DeploymentHealth | None = None  # None: no edge Deployment (or unknown when unreachable)
    message: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)  # the EdgeCluster's labels (wave selectors)
    last_good: str | None = None  # last-good digest the executor recorded on the Deployment (ApplyRevision)

    @property
    def digest(self) -> str | None:
        """The digest in the edge Deployment's pod template, when known."""
        return self.health.digest if self.reachable and self.health is not None else None

    @property
    def actionable(self) -> bool:
        return self.reachable and not self.paused

    def healthy_on(self, digest: str | None) -> bool:
        """Rolled out (fresh status, every replica updated and available) with exactly `digest`."""
        return (
            digest is not None
            and self.reachable
            and self.health is not None
            and self.health.digest == digest
            and self.health.rolled_out
            and not self.health.deadline_exceeded
        )


# The persisted state (`status.rollout`: RolloutState, WaveRecord, ClusterRecord) is part of the API:
# edgeroll.api.rollout, re-exported here.


class RolloutCommand(ApiModel):
    """A one-shot manual command (from an annotation). `id` makes it idempotent: a command whose id was
    already handled is ignored, so it survives restarts without firing twice. Ids should sort in the
    order they were issued (the CLI uses RFC 3339 UTC timestamps)."""

    kind: CommandKind
    id: str = Field(min_length=1)
    to_digest: str | None = Field(default=None, description="undo: the digest to go back to")
    digests: dict[str, str] = Field(
        default_factory=dict,
        description="undo: per-cluster digests of the chosen revision (overlays); to_digest for the rest",
    )
    ignore_windows: bool = Field(
        default=False, description="promote: the next wave may start outside its deployment windows, once"
    )


@dataclass(frozen=True)
class PlanInput:
    desired: Mapping[str, DesiredRevision]  # target cluster -> revision for it
    observed: Mapping[str, ClusterState]  # every target and every previously managed cluster
    previously_managed: frozenset[str] = field(default_factory=frozenset)
    policy: RolloutPolicy | BaseModel = field(default_factory=RolloutPolicy)  # spec.rollout
    # Timezone-aware; times soak and deadlines. None: the transitional stateless AllAtOnce of the
    # first operator core (every reachable, unpaused target gets its revision; no state, no gates).
    now: datetime | None = None
    state: RolloutState | None = None  # status.rollout as persisted; None on the first plan
    # Identifies the content being rolled out (base digest + overlays); a new value supersedes the
    # rollout in progress. Unset: derived from the set of desired digests. Never derive it from the
    # generation: a policy-only change (soak, pause) must not restart the rollout.
    revision: str = ""
    commands: Sequence[RolloutCommand] = ()  # current command annotations (handled ones are ignored)
    # Analysis: what the queries the reconciler made gave (analysis.due_measurements says which).
    measurements: Sequence[MeasurementResult] = ()


# ---- outputs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplyRevision:
    """Move `cluster` to `revision` (the new one). Record `last_good` on the edge Deployment, so the
    planner can find it again should status.rollout ever be lost."""

    cluster: str
    revision: DesiredRevision
    last_good: str | None = None


@dataclass(frozen=True)
class Rollback:
    """Send `cluster` back to `digest` (its last-good, or what an undo chose). The executor finds the
    key and signature of that published revision (the manifest lists it)."""

    cluster: str
    digest: str


@dataclass(frozen=True)
class RemoveEdge:
    cluster: str


@dataclass(frozen=True)
class Hold:
    """Nothing can be done in this cluster now; `reason` says why (for status and events)."""

    cluster: str
    reason: str
    removal: bool = False  # the cluster still has edge resources we want gone


@dataclass(frozen=True)
class Wait:
    """Plan again at `until` at the latest (soak end, progress deadline); observations may come sooner."""

    until: datetime


@dataclass(frozen=True)
class MarkFailed:
    """The rollout failed: reflect it in conditions (Ready False, Stalled)."""

    reason: str
    message: str


ClusterAction = ApplyRevision | Rollback | RemoveEdge | Hold
Action = ClusterAction | Wait | MarkFailed


@dataclass(frozen=True)
class ClusterPlan:
    """Per-cluster view for status.clusters[]: phase, the digest it should hold now, and why."""

    name: str
    phase: ClusterRolloutPhase
    wave: int
    wave_name: str
    digest: str | None  # the digest the cluster should hold now; None: leave its Deployment alone
    message: str


@dataclass(frozen=True)
class RolloutEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    state: RolloutState  # persist as status.rollout (to_status) before executing the actions
    actions: tuple[Action, ...]  # deterministic order: per target by name, removals, Wait, MarkFailed
    clusters: tuple[ClusterPlan, ...]  # every target, by name
    events: tuple[RolloutEvent, ...]  # wave transitions etc., once each
    message: str  # for the Ready/Reconciling condition

    @property
    def phase(self) -> RolloutPhase:
        return self.state.phase

    @property
    def reason(self) -> str | None:
        return self.state.reason

    def __iter__(self) -> Iterator[ClusterAction]:
        """A plan iterates as what the executor runs: one action per cluster."""
        return iter(self.cluster_actions)

    @property
    def cluster_actions(self) -> tuple[ClusterAction, ...]:
        return tuple(a for a in self.actions if isinstance(a, ApplyRevision | Rollback | RemoveEdge | Hold))

    @property
    def applies(self) -> tuple[ApplyRevision, ...]:
        return tuple(a for a in self.actions if isinstance(a, ApplyRevision))

    @property
    def rollbacks(self) -> tuple[Rollback, ...]:
        return tuple(a for a in self.actions if isinstance(a, Rollback))

    @property
    def wait_until(self) -> datetime | None:
        return next((a.until for a in self.actions if isinstance(a, Wait)), None)

    def requeue_after(self, now: datetime) -> float | None:
        """Seconds until the next time-based gate (soak end, deadline), or None."""
        until = self.wait_until
        return None if until is None else max((until - now).total_seconds(), 0.0)

    @property
    def wanted(self) -> dict[str, str | None]:
        """cluster -> digest its Deployment should carry now (None: leave it as it is). Drift correction
        must use this, never the desired revision: a halted or rolled-back rollout keeps clusters back."""
        return {c.name: c.digest for c in self.clusters}


def revision_of(desired: Mapping[str, DesiredRevision]) -> str:
    """A revision id from the set of desired digests: stable when targets come and go with a digest
    already in the set, new when the content (base or an overlay) changes."""
    digests = sorted({d.digest for d in desired.values()})
    return "set:" + hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16]


def as_policy(policy: RolloutPolicy | BaseModel) -> RolloutPolicy:
    """spec.rollout as a RolloutPolicy (accepts api.routerconfig.RolloutSpec and other shapes of it)."""
    if isinstance(policy, RolloutPolicy):
        return policy
    return RolloutPolicy.model_validate(policy.model_dump(mode="json", by_alias=True, exclude_none=True))


# ---- the planner ----------------------------------------------------------------------------------


def plan_rollout(inp: PlanInput) -> Plan:
    """Decide the next step of the rollout. Raises ValueError on a naive `now` or a target without
    an observation (observe every target, reachable or not)."""
    now = inp.now
    if now is None:
        return _plan_stateless(inp)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    plan = _planner(inp, now).run(inp.commands, inp.measurements)
    removals = _plan_removals(inp)
    if removals:
        plan = Plan(
            state=plan.state,
            actions=_merge(plan.actions, removals),
            clusters=plan.clusters,
            events=plan.events,
            message=plan.message,
        )
    return plan


@dataclass(frozen=True)
class WaveAssignment:
    """The waves a plan would hold, before it acts: their names in order and each target's wave."""

    waves: tuple[str, ...]
    clusters: Mapping[str, int]  # target -> index in `waves`
    restarted: bool  # a new revision: the rollout starts again from the first wave

    def wave_of(self, name: str) -> tuple[int, str]:
        index = self.clusters[name]
        return index, self.waves[index]


def plan_membership(inp: PlanInput) -> WaveAssignment:
    """The waves `plan_rollout` would give the targets of `inp`, and nothing else (what `edgeroll plan`
    shows). The same code as the plan's own first step: a new revision starts from waves the policy
    makes of the current labels; the revision in progress keeps its frozen waves, and a newcomer joins
    as it would. Commands are not applied (a preview must not replay them); observations matter only
    through labels and reachability. Raises as `plan_rollout` does."""
    if inp.now is None or inp.now.tzinfo is None or inp.now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    planner = _planner(inp, inp.now)
    restarted = planner.membership()
    state = planner.s
    return WaveAssignment(
        waves=tuple(w.name for w in state.waves),
        clusters={r.name: r.wave for r in state.clusters},
        restarted=restarted,
    )


def _planner(inp: PlanInput, now: datetime) -> _Planner:
    missing = sorted(n for n in inp.desired if n not in inp.observed)
    if missing:
        raise ValueError(f"no observation for target cluster(s) {', '.join(missing)}")
    observed = {n: inp.observed[n] for n in inp.desired}
    state = inp.state.model_copy(deep=True) if inp.state is not None else RolloutState()
    revision = inp.revision or revision_of(inp.desired)
    return _Planner(inp.desired, revision, observed, as_policy(inp.policy), state, now)


def _plan_stateless(inp: PlanInput) -> Plan:
    """The first operator core's AllAtOnce, kept until the reconciler passes `now` and the state."""
    actions: list[Action] = []
    for name in sorted(inp.desired):
        state = inp.observed.get(name, ClusterState(name, reachable=False, message="not observed"))
        if state.paused:
            actions.append(Hold(name, "EdgeCluster is paused"))
        elif not state.reachable:
            actions.append(Hold(name, state.message or "unreachable"))
        else:
            actions.append(ApplyRevision(name, inp.desired[name], state.last_good))
    actions += _plan_removals(inp)
    return Plan(inp.state or RolloutState(), tuple(actions), (), (), "")


def _merge(actions: tuple[Action, ...], removals: list[Action]) -> tuple[Action, ...]:
    per_cluster = [a for a in actions if isinstance(a, ApplyRevision | Rollback | Hold)]
    rest = [a for a in actions if not isinstance(a, ApplyRevision | Rollback | Hold)]
    return (*per_cluster, *removals, *rest)


def _plan_removals(inp: PlanInput) -> list[Action]:
    actions: list[Action] = []
    for name in sorted(inp.previously_managed - inp.desired.keys()):
        state = inp.observed.get(name)
        if state is None or not state.exists:
            continue  # the EdgeCluster is gone: nothing to reach, nothing to wait for
        if not state.reachable:
            actions.append(Hold(name, state.message or "unreachable", removal=True))
        else:
            actions.append(RemoveEdge(name))
    return actions


class _Planner:
    """One planning pass over a private copy of the state."""

    def __init__(
        self,
        desired: Mapping[str, DesiredRevision],
        revision: str,
        observed: dict[str, ClusterState],
        policy: RolloutPolicy,
        state: RolloutState,
        now: datetime,
    ) -> None:
        self.desired = desired
        self.revision = revision
        self.obs = observed
        self.policy = policy
        self.s = state
        self.now = now
        self.events: list[RolloutEvent] = []
        self.skip = policy.unreachable_policy == "Skip"
        self.deadline = timedelta(seconds=policy.progress_deadline_seconds)
        self.soak = timedelta(seconds=policy.effective_soak_seconds)
        self.held: tuple[int, WindowGate] | None = None  # the wave windows keep from starting, this pass
        self.gates: dict[int, WindowGate] = {}  # per wave: members and labels are fixed within a pass

    # -- driver

    def run(self, commands: Sequence[RolloutCommand], measurements: Sequence[MeasurementResult] = ()) -> Plan:
        s = self.s
        fresh = s.revision is None
        self.membership()
        ordered = sorted(commands, key=lambda c: (c.id, c.kind))
        if fresh:
            # A lost or brand-new status must not replay old annotations (an old abort would roll back).
            for command in ordered:
                setattr(s.handled, command.kind, command.id)
        else:
            for command in ordered:
                self._command(command)
        if self.policy.paused != s.paused:
            s.paused = self.policy.paused
            self._event("Normal", "RolloutPaused" if s.paused else "RolloutResumed", self._where())
        self._record_analysis(measurements)
        # Transitions feed each other (a wave already healthy soaks at 0 s and starts the next);
        # run them to a fixpoint, so that planning again from the result changes nothing.
        for _ in range(4 * len(s.waves) + 8):
            changed = self._observe()
            changed = self._check_analysis() or changed
            changed = self._check_budget() or changed
            changed = self._progress_waves() or changed
            changed = self._check_rolled_back() or changed
            # Move clusters only on a settled view: members already on the target must be adopted
            # (and take their slots) before the free slots are counted.
            if not changed and not self._move():
                break
        else:  # pragma: no cover - a bug guard; the property tests check convergence
            raise RuntimeError("rollout planner did not converge")
        self._record_hold()
        self._set_phase()
        cluster_plans = tuple(self._cluster_plan(r) for r in self._records())
        return Plan(
            state=s,
            actions=self._actions(),
            clusters=cluster_plans,
            events=tuple(self.events),
            message=self._message(cluster_plans),
        )

    def membership(self) -> bool:
        """Waves and members for this revision: started afresh (True) or followed (False)."""
        if self.s.revision != self.revision:
            self._start(previous=self.s.revision)
            return True
        self._sync_membership()
        return False

    # -- helpers

    def _event(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(RolloutEvent(type_, reason, message))

    def _records(self) -> list[ClusterRecord]:
        return sorted(self.s.clusters, key=lambda r: r.name)

    def _members(self, wave: int) -> list[ClusterRecord]:
        return [r for r in self._records() if r.wave == wave]

    def _wave_label(self, index: int) -> str:
        n = len(self.s.waves)
        name = self.s.waves[index].name if index < n else "-"
        return f"wave {min(index + 1, n)}/{n} ({name})"

    def _where(self) -> str:
        return f"revision {_short(self.s.revision)}, {self._wave_label(self.s.wave)}"

    def _skipped(self, o: ClusterState) -> bool:
        """Left out of wave health: a paused cluster always, an unreachable one under Skip."""
        return o.paused or (not o.reachable and self.skip)

    def _known_good(self, o: ClusterState, previous: ClusterRecord | None) -> str | None:
        """The digest a cluster can safely go back to: the one it is healthy on now, or, when it is
        unhealthy on a digest it was good on before, that one; else the newest recorded good digest."""
        current = o.digest
        if current is not None and o.healthy_on(current):
            return current
        recorded = [d for d in (previous.verified, previous.last_good) if d] if previous else []
        if o.reachable and o.health is not None and o.last_good:
            recorded.append(o.last_good)
        if current is not None and current in recorded:
            return current
        return recorded[0] if recorded else None

    def _joiner_wave(self, name: str) -> int:
        """The wave of a target that appeared mid-rollout: the one the policy gives it now if that wave has
        not passed, else the current one (never a wave already passed: its gate was evaluated without it)."""
        waves = plan_waves(self.policy, {n: o.labels for n, o in self.obs.items()})
        wanted = next((w.name for w in waves if name in w.clusters), REST_WAVE)
        names = [w.name for w in self.s.waves]
        index = names.index(wanted) if wanted in names else len(names) - 1
        return max(index, min(self.s.wave, len(names) - 1))

    # -- starting a revision

    def _start(self, previous: str | None, *, retried: bool = False) -> None:
        s = self.s
        before = {r.name: r for r in s.clusters}
        superseded = previous is not None and not retried and s.phase in ACTIVE_PHASES
        at = self._where() if previous is not None else ""
        specs = plan_waves(self.policy, {n: o.labels for n, o in self.obs.items()})
        records: list[ClusterRecord] = []
        for index, spec in enumerate(specs):
            for name in spec.clusters:
                old = before.get(name)
                records.append(
                    ClusterRecord(
                        name=name,
                        wave=index,
                        target=self.desired[name].digest,
                        last_good=self._known_good(self.obs[name], old),
                        verified=old.verified if old else None,
                    )
                )
        s.revision = self.revision
        s.phase = "Progressing"
        s.wave = 0
        s.waves = [WaveRecord(name=w.name, max_parallel=w.max_parallel) for w in specs]
        s.clusters = records
        s.started_at = self.now
        s.completed_at = None
        s.reason = None
        s.message = None
        s.rollback_started_at = None
        s.rolled_back_at = None
        s.analysis = []
        waves = ", ".join(f"{w.name} ({len(w.clusters)})" for w in specs)
        if retried:
            self._event("Normal", "RolloutRetried", f"retrying revision {_short(s.revision)}: {waves}")
        elif superseded:
            self._event(
                "Normal",
                "RolloutSuperseded",
                f"revision {_short(s.revision)} supersedes {_short(previous)} at {at}; "
                "starting again from the first wave",
            )
        self._event(
            "Normal", "RolloutStarted", f"revision {_short(s.revision)}, {len(specs)} wave(s): {waves}"
        )

    def _sync_membership(self) -> None:
        """Same revision: follow targets that left, appeared, or got a different digest."""
        s = self.s
        s.clusters = [r for r in s.clusters if r.name in self.obs]
        known = {r.name: r for r in s.clusters}
        for name in sorted(self.obs):
            target = self.desired[name].digest
            record = known.get(name)
            if record is None:
                s.clusters.append(
                    ClusterRecord(
                        name=name,
                        wave=self._joiner_wave(name),
                        target=target,
                        last_good=self._known_good(self.obs[name], None),
                    )
                )
            elif record.target != target:
                # Its render changed (e.g. a label used in an overlay): roll it again, from a wave not passed.
                fresh = ClusterRecord(
                    name=name,
                    wave=max(record.wave, min(s.wave, len(s.waves) - 1)),
                    target=target,
                    last_good=record.last_good,
                    verified=record.verified,
                    rollback_to=record.rollback_to if s.phase in HALTED_PHASES else None,
                )
                s.clusters[s.clusters.index(record)] = fresh

    # -- commands

    def _command(self, command: RolloutCommand) -> None:
        s = self.s
        if getattr(s.handled, command.kind) == command.id:
            return
        setattr(s.handled, command.kind, command.id)
        if command.kind == "promote":
            if s.phase in ACTIVE_PHASES and s.wave < len(s.waves) and not s.waves[s.wave].promoted:
                s.waves[s.wave].promoted = True
                self._event("Normal", "RolloutPromoted", f"{self._where()}: remaining soak skipped")
            if command.ignore_windows and s.phase in ACTIVE_PHASES:
                self._ignore_windows_once(command.id)
        elif command.kind == "abort":
            if s.phase in ACTIVE_PHASES or s.phase == "Failed":
                self._rollback_all(REASON_ABORTED, f"aborted at {self._where()} (command {command.id})")
        elif command.kind == "undo":
            if command.to_digest is None and not command.digests:
                targets = None
                what = "last-good digests"
            else:
                targets = {r.name: command.digests.get(r.name, command.to_digest) for r in s.clusters}
                what = _short(command.to_digest) if command.to_digest else "the chosen revision"
            self._rollback_all(REASON_UNDONE, f"undone to {what} (command {command.id})", targets)
        elif command.kind == "retry" and s.phase in HALTED_PHASES:
            self._start(previous=s.revision, retried=True)

    def _ignore_windows_once(self, command_id: str) -> None:
        """promote --ignore-windows: the wave due next (the current one if it has not started, else the
        one after it) starts even outside its deployment windows. Once: the flag is that wave's."""
        s = self.s
        index = s.wave if s.wave < len(s.waves) and s.waves[s.wave].started_at is None else s.wave + 1
        if index >= len(s.waves):
            return  # the last wave has started: no wave left to hold
        s.waves[index].ignore_windows = True
        self._event(
            "Normal",
            "WindowsIgnored",
            f"{self._where()}: {self._wave_label(index)} may start outside its deployment windows, once "
            f"(promote --ignore-windows, command {command_id})",
        )

    def _rollback_all(
        self, reason: str, message: str, targets: Mapping[str, str | None] | None = None
    ) -> None:
        s = self.s
        for record in s.clusters:
            record.rollback_to = targets.get(record.name) if targets is not None else record.last_good
        s.phase = "RolledBack"
        s.reason = reason
        s.message = message
        s.completed_at = self.now
        s.rollback_started_at = self.now
        s.rolled_back_at = None
        self._event("Warning", "RollbackStarted", message)

    # -- the transitions, each returning whether it changed the state

    def _observe(self) -> bool:
        s = self.s
        changed = False
        tracking = s.phase in ACTIVE_PHASES or s.phase == "Completed"
        for record in s.clusters:
            o = self.obs[record.name]
            if not o.actionable:
                if not record.stale:
                    record.stale = True
                    changed = True
                continue
            if record.stale:
                record.stale = False
                changed = True
                if record.moved_at is not None and record.ready_at is None and record.failed_at is None:
                    if o.digest == record.target:
                        record.since = self.now  # a fresh deadline: its progress was not watched
                    else:
                        # The apply never landed: back to pending, so it waits for a free slot.
                        record.moved_at = None
                        record.since = None
            if record.last_good is None and record.moved_at is None and record.rollback_to is None:
                learned = self._known_good(o, record)
                if learned is not None:
                    record.last_good = learned
                    changed = True
            if not tracking or record.failed_at is not None or record.rollback_to is not None:
                continue
            wave_started = record.wave < len(s.waves) and s.waves[record.wave].started_at is not None
            if record.moved_at is None:
                if wave_started and o.digest == record.target:
                    # Already on the new digest (an earlier revision, an unrecorded apply): adopt it.
                    record.moved_at = self.now
                    record.since = self.now
                    changed = True
                continue
            if self.policy.paused and o.digest != record.target:
                # Paused: a move that has not landed yet is withdrawn (and waits for a slot on resume).
                record.moved_at = None
                record.since = None
                record.ready_at = None
                changed = True
                continue
            if o.healthy_on(record.target):
                if record.ready_at is None:
                    record.ready_at = self.now
                    changed = True
                if s.phase == "Completed" and record.verified != record.target:
                    record.verified = record.target
                    changed = True
                continue
            if record.ready_at is not None:
                record.ready_at = None
                record.since = self.now  # health lost: a full deadline to recover
                changed = True
                continue
            failure = self._failure(record, o)
            if failure is not None:
                code, text = failure
                record.failed_at = self.now
                record.failure_reason = code
                record.failure = text
                if self.policy.auto_rollback and record.last_good not in (None, record.target):
                    record.rollback_to = record.last_good
                self._event("Warning", "ClusterFailed", f"{record.name}: {text}")
                changed = True
        return changed

    def _failure(self, record: ClusterRecord, o: ClusterState) -> tuple[str, str] | None:
        wave = self.s.waves[record.wave].name if record.wave < len(self.s.waves) else "-"
        if o.digest == record.target and o.health is not None and o.health.deadline_exceeded:
            return REASON_PROGRESS_DEADLINE, (
                f"Deployment reports ProgressDeadlineExceeded on {_short(record.target)} (wave {wave})"
            )
        refused = o.health.refused_reason(record.target) if o.reachable and o.health is not None else None
        if refused is not None:  # no point waiting: the caches will not take these bytes
            return REASON_REVISION_REFUSED, (
                f"the edge caches refused {_short(record.target)} (wave {wave}): {refused}"
            )
        if record.since is not None and self.now >= record.since + self.deadline:
            problem = "not on the new digest yet"
            if o.digest == record.target and o.health is not None:
                problem = health_problem(o.health) or "not healthy"
            return REASON_HEALTH_DEADLINE, (
                f"not healthy on {_short(record.target)} within progressDeadlineSeconds="
                f"{self.policy.progress_deadline_seconds} (wave {wave}): {problem}"
            )
        return None

    def _check_budget(self) -> bool:
        s = self.s
        if s.phase not in ACTIVE_PHASES:
            return False
        failed = [r for r in self._records() if r.failed_at is not None]
        budget = resolve_count(self.policy.max_unavailable, len(s.clusters))
        if len(failed) <= budget:
            return False
        last = max(failed, key=lambda r: (r.failed_at or self.now, r.name))
        names = ", ".join(r.name for r in failed)
        message = (
            f"{len(failed)} of {len(s.clusters)} clusters failed, over maxUnavailable={budget} "
            f"({names}); {last.name}: {last.failure}"
        )
        self._halt(last.failure_reason or REASON_HEALTH_DEADLINE, message)
        return True

    def _halt(self, reason: str, message: str) -> None:
        """The rollout failed: every cluster back to last-good (autoRollback), else Failed where it is."""
        s = self.s
        self._event("Warning", "RolloutFailed", f"{self._where()}: {message}")
        if self.policy.auto_rollback:
            self._rollback_all(reason, message)
        else:
            s.phase = "Failed"
            s.reason = reason
            s.message = message
            s.completed_at = self.now

    # -- analysis (rollout/analysis.py decides; these hooks apply its verdicts)

    def _record_analysis(self, measurements: Sequence[MeasurementResult]) -> None:
        for e in analysis.record_measurements(self.s, self.policy.analysis, measurements, self._where()):
            self._event(e.type, e.reason, e.message)

    def _analysis_passed(self) -> bool:
        """The current wave's analysis lets it promote: passed, none configured, or promoted by hand."""
        s = self.s
        if s.waves[s.wave].promoted:
            return True
        return analysis.wave_verdict(s, self.policy.analysis, s.wave).phase == "Successful"

    def _check_analysis(self) -> bool:
        """A metric that failed in the current wave fails those clusters and halts the rollout."""
        s = self.s
        if s.phase not in ACTIVE_PHASES or s.wave >= len(s.waves) or s.waves[s.wave].promoted:
            return False
        verdict = analysis.wave_verdict(s, self.policy.analysis, s.wave)
        if verdict.phase != "Failed" or not verdict.failed:
            return False
        for name, why in verdict.failed.items():
            record = next(r for r in s.clusters if r.name == name)
            record.failed_at = self.now
            record.failure_reason = REASON_ANALYSIS_FAILED
            record.failure = f"{why} (wave {s.waves[s.wave].name})"
            if self.policy.auto_rollback and record.last_good not in (None, record.target):
                record.rollback_to = record.last_good
            self._event("Warning", "ClusterFailed", f"{name}: {record.failure}")
        self._halt(
            REASON_ANALYSIS_FAILED, f"analysis failed in {self._wave_label(s.wave)}: {verdict.message}"
        )
        return True

    def _analysis_pause(self) -> None:
        """Inconclusive analysis pauses the rollout (reason and message say why) until it is conclusive."""
        s = self.s
        stuck = s.wave < len(s.waves) and not s.waves[s.wave].promoted
        verdict = analysis.wave_verdict(s, self.policy.analysis, s.wave) if stuck else None
        if verdict is not None and verdict.phase == "Inconclusive":
            s.reason, s.message = REASON_ANALYSIS_INCONCLUSIVE, verdict.message
        elif s.reason == REASON_ANALYSIS_INCONCLUSIVE:
            s.reason, s.message = None, None

    def _wave_ok(self, record: ClusterRecord) -> bool:
        """Whether a member lets its wave count as healthy."""
        if record.failed_at is not None:
            return True  # within budget (or the rollout has failed already)
        if record.stale:
            return self._skipped(self.obs[record.name])
        return record.moved_at is not None and record.ready_at is not None

    def _progress_waves(self) -> bool:
        s = self.s
        changed = False
        self.held = None
        while s.phase in ACTIVE_PHASES:
            n = len(s.waves)
            if s.wave >= n:
                s.phase = "Completed"
                s.completed_at = self.now
                for record in s.clusters:
                    if record.ready_at is not None:
                        record.verified = record.target
                stale = [r.name for r in self._records() if r.stale]
                suffix = f"; stale: {', '.join(stale)}" if stale else ""
                self._event("Normal", "RolloutCompleted", f"revision {_short(s.revision)} rolled out{suffix}")
                return True
            wave = s.waves[s.wave]
            if wave.started_at is None:
                if self.policy.paused or not self._may_start(s.wave):
                    return changed
                wave.started_at = self.now
                names = ", ".join(r.name for r in self._members(s.wave)) or "no clusters"
                self._event("Normal", "WaveStarted", f"{self._where()}: {names}")
                return True  # let _observe adopt members already on the target before judging health
            members = self._members(s.wave)
            if not all(self._wave_ok(r) for r in members):
                if wave.healthy_at is not None:
                    wave.healthy_at = None
                    self._event("Warning", "WaveUnhealthy", f"{self._where()}: health lost, soak restarts")
                    changed = True
                return changed
            if wave.healthy_at is None:
                wave.healthy_at = self.now
                self._event("Normal", "WaveHealthy", self._where())
                changed = True
            last = s.wave == n - 1
            soaked = last or not members or wave.promoted or self.now >= wave.healthy_at + self.soak
            if (
                not soaked
                or (self.policy.paused and not last)
                or not self._analysis_passed()
                or (not last and not self._may_start(s.wave + 1))
            ):
                # Paused, analysis not passed yet, or the next wave outside its windows: the wave stays
                # current and keeps being judged, so the next one starts only if this one is healthy then
                # (and soaked).
                return changed
            wave.completed_at = self.now
            if not last:
                self._event("Normal", "WaveSoaked", self._where())
            s.wave += 1
            changed = True
        return changed

    def _may_start(self, index: int) -> bool:
        """Deployment windows: may wave `index` start now? If not, remember it for status.rollout.window.
        Paused EdgeClusters are never touched, so their windows hold nothing."""
        wave = self.s.waves[index]
        if not self.policy.windows or wave.ignore_windows:
            return True
        gate = self.gates.get(index)
        if gate is None:
            members = {r.name: o.labels for r in self._members(index) if not (o := self.obs[r.name]).paused}
            gate = self.gates[index] = window_gate(self.policy.windows, members, self.now)
        if not gate.open:
            self.held = (index, gate)
        return gate.open

    def _record_hold(self) -> None:
        """status.rollout.window from this pass's verdict; an event when a wave starts waiting."""
        s = self.s
        if self.held is None or s.phase not in ACTIVE_PHASES:
            s.window = None
            return
        index, gate = self.held
        since = s.window.since if s.window is not None and s.window.wave == index else self.now
        hold = WindowHold(wave=index, since=since, next_open_at=gate.next_open, message=gate.message)
        if s.window is None or s.window.wave != index:
            self._event(
                "Normal", REASON_OUTSIDE_WINDOW, f"{self._wave_label(index)} waits: {self._hold_text(hold)}"
            )
        s.window = hold

    @staticmethod
    def _hold_text(hold: WindowHold) -> str:
        when = hold.next_open_at.isoformat() if hold.next_open_at else "none found within a year"
        return f"outside its deployment windows, next opening {when} ({hold.message})"

    def _move(self) -> bool:
        """Start as many pending clusters of started waves as their parallelism allows."""
        s = self.s
        if self.policy.paused or not (s.phase in ACTIVE_PHASES or s.phase == "Completed"):
            return False
        changed = False
        for index, wave in enumerate(s.waves):
            if wave.started_at is None:
                continue
            members = self._members(index)
            in_flight = sum(
                1
                for r in members
                if r.moved_at is not None and r.ready_at is None and r.failed_at is None and not r.stale
            )
            slots = len(members) if wave.max_parallel is None else wave.max_parallel - in_flight
            for record in members:
                if slots <= 0:
                    break
                if record.moved_at is None and not record.stale and record.failed_at is None:
                    record.moved_at = self.now
                    record.since = self.now
                    record.ready_at = None
                    slots -= 1
                    changed = True
        return changed

    def _check_rolled_back(self) -> bool:
        s = self.s
        if s.phase != "RolledBack" or s.rolled_back_at is not None:
            return False
        for record in s.clusters:
            if record.rollback_to is None:
                continue
            o = self.obs[record.name]
            if not o.actionable:
                if self._skipped(o):
                    continue
                return False
            if not o.healthy_on(record.rollback_to):
                return False
        s.rolled_back_at = self.now
        self._event("Normal", "RolledBack", f"revision {_short(s.revision)}: clusters are back ({s.reason})")
        return True

    def _set_phase(self) -> None:
        s = self.s
        n = len(s.waves)
        s.wave_progress = f"{min(s.wave + 1, n)}/{n}"
        if s.phase not in ACTIVE_PHASES:
            return
        self._analysis_pause()
        if self.policy.paused or s.reason == REASON_ANALYSIS_INCONCLUSIVE:
            s.phase = "Paused"
        elif s.window is not None:
            s.phase = "Waiting"
        elif s.wave < n and s.waves[s.wave].healthy_at is not None:
            s.phase = "Soaking"
        else:
            s.phase = "Progressing"

    # -- outputs

    def _wanted(self, record: ClusterRecord) -> tuple[str | None, bool]:
        """The digest the cluster should hold now and whether getting there is a rollback."""
        if record.rollback_to is not None:
            return record.rollback_to, True
        o = self.obs[record.name]
        if record.moved_at is not None and (
            self.s.phase not in HALTED_PHASES or not o.reachable or o.digest == record.target
        ):
            return record.target, False
        # A halted rollout does not carry out a move that never landed.
        if not o.reachable:
            return None, False
        current = o.digest
        if current is None or record.last_good is None or current in (record.target, record.last_good):
            return current, False
        # Neither old nor new (an earlier revision's unfinished move): back to last-good until its wave.
        return record.last_good, True

    def _actions(self) -> tuple[Action, ...]:
        s = self.s
        actions: list[Action] = []
        for record in self._records():
            # One action per target, level-triggered: the executor ensures what it says every time.
            o = self.obs[record.name]
            if not o.actionable:
                reason = "EdgeCluster is paused" if o.paused else (o.message or "unreachable")
                actions.append(Hold(record.name, reason))
                continue
            want, _ = self._wanted(record)
            if want is not None and want == record.target:
                actions.append(ApplyRevision(record.name, self.desired[record.name], record.last_good))
            elif want is not None and want != o.digest:
                actions.append(Rollback(record.name, want))
            else:
                actions.append(Hold(record.name, self._cluster_plan(record).message))
        times: list[datetime] = []
        if s.phase in ACTIVE_PHASES and s.wave < len(s.waves) - 1:
            wave = s.waves[s.wave]
            if wave.healthy_at is not None and not wave.promoted:
                times.append(wave.healthy_at + self.soak)
        measure = analysis.next_due(s, self.policy.analysis) if s.phase in ACTIVE_PHASES else None
        if measure is not None:
            times.append(measure)
        if s.phase in ACTIVE_PHASES or s.phase == "Completed":
            for record in s.clusters:
                tracked = record.ready_at is None and record.failed_at is None and not record.stale
                if record.moved_at is not None and record.since is not None and tracked:
                    times.append(record.since + self.deadline)
        if s.window is not None and s.window.next_open_at is not None:
            times.append(s.window.next_open_at)  # plan again when the windows open, not before
        future = [t for t in times if t > self.now]
        if future:
            actions.append(Wait(min(future)))
        if s.phase in HALTED_PHASES and s.reason in FAILURE_REASONS:
            actions.append(MarkFailed(s.reason or "", s.message or ""))
        return tuple(actions)

    def _cluster_plan(self, record: ClusterRecord) -> ClusterPlan:
        s = self.s
        o = self.obs[record.name]
        wave_name = s.waves[record.wave].name if record.wave < len(s.waves) else "-"
        want, _ = self._wanted(record)
        phase: ClusterRolloutPhase
        if o.paused:
            phase = "Paused"
            message = "EdgeCluster is paused; left out of the rollout"
        elif not o.reachable:
            phase = "Stale"
            holding = "" if self.skip else "; holding the rollout (unreachablePolicy Block)"
            message = f"unreachable, state unknown{holding}" + (f": {o.message}" if o.message else "")
        elif record.rollback_to is not None:
            target = _short(record.rollback_to)
            if o.healthy_on(record.rollback_to):
                phase = "RolledBack"
                message = f"back on {target}"
            else:
                phase = "Failed" if record.failed_at is not None else "Progressing"
                message = f"rolling back to {target}"
            if record.failure:
                message = f"{record.failure}; {message}"
        elif record.failed_at is not None:
            phase = "Failed"
            why = "no last-good digest to go back to" if self.policy.auto_rollback else "autoRollback is off"
            message = f"{record.failure}; left on {_short(o.digest)} ({why})"
        elif o.healthy_on(record.target):
            phase = "Ready"
            message = f"healthy on {_short(record.target)}"
        elif record.moved_at is not None or o.digest == record.target:
            phase = "Progressing"
            problem = health_problem(o.health) if o.health is not None and o.digest == record.target else None
            message = f"updating to {_short(record.target)}" + (f": {problem}" if problem else "")
            if s.phase in HALTED_PHASES:
                message += f"; left there (rollout {s.phase}, no last-good digest to go back to)"
        else:
            phase = "Pending"
            if want is not None and want != o.digest:
                message = f"on {_short(o.digest)}, neither old nor new: returning to {_short(want)}"
            elif s.phase in HALTED_PHASES:
                message = f"rollout {s.phase}; stays on {_short(o.digest)}"
            elif self.policy.paused:
                message = f"rollout paused; waiting in {self._wave_label(record.wave)}"
            elif s.window is not None and s.window.wave == record.wave:
                message = f"waiting for {self._wave_label(record.wave)}: {self._hold_text(s.window)}"
            else:
                message = f"waiting for {self._wave_label(record.wave)}"
        return ClusterPlan(record.name, phase, record.wave, wave_name, want, message)

    def _message(self, plans: tuple[ClusterPlan, ...]) -> str:
        s = self.s
        counts: dict[str, int] = {}
        for p in plans:
            counts[p.phase] = counts.get(p.phase, 0) + 1
        tally = ", ".join(f"{counts[k]} {k.lower()}" for k in sorted(counts))
        if s.phase == "Completed":
            ready = counts.get("Ready", 0)
            return f"Completed: revision {_short(s.revision)} on {ready}/{len(plans)} clusters ({tally})"
        if s.phase == "Failed":
            return f"Failed at {self._where()}: {s.message} (autoRollback off; clusters left as they are)"
        if s.phase == "RolledBack":
            done = "Rolled back" if s.rolled_back_at is not None else "Rolling back"
            return f"{done} ({s.reason}): {s.message} [{tally}]"
        if s.phase == "Paused" and s.reason == REASON_ANALYSIS_INCONCLUSIVE:
            return f"Paused at {self._where()}: analysis inconclusive: {s.message} ({tally})"
        if s.phase == "Paused":
            return f"Paused at {self._where()} ({tally})"
        if s.phase == "Waiting" and s.window is not None:
            return f"Waiting: {self._wave_label(s.window.wave)} {self._hold_text(s.window)} [{tally}]"
        healthy_at = s.waves[s.wave].healthy_at if s.wave < len(s.waves) else None
        if s.phase == "Soaking" and healthy_at is not None:
            until = (healthy_at + self.soak).isoformat()
            return f"Soaking {self._wave_label(s.wave)} until {until} ({tally})"
        return f"Progressing: {self._wave_label(s.wave)} ({tally})"
