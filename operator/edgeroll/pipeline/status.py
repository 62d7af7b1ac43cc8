"""The RouterConfig status, computed (pure) from what a reconcile found and did.

kstatus conventions: `Ready` always; `Reconciling` and `Stalled` only while
true; `observedGeneration` always. Transition times only move when a status
changes, so a reconcile that finds nothing new produces identical status and
no write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgeroll.api.common import Condition, ConditionStatus
from edgeroll.api.conditions import find_condition, set_condition
from edgeroll.api.rollout import RolloutState
from edgeroll.api.routerconfig import (
    ClusterPhase,
    ClusterStatus,
    RevisionStatus,
    RouterConfigSpec,
    RouterConfigStatus,
    StatusPhase,
    Summary,
)
from edgeroll.publish.history import ManifestEntry
from edgeroll.render.canonical import digest_hex

CONDITION_ORDER = ["Ready", "Reconciling", "Stalled", "Published", "TokensVerified"]
MAX_MESSAGE = 1000


@dataclass(frozen=True)
class ClusterReport:
    name: str
    phase: ClusterPhase
    digest: str | None = None
    desired_digest: str | None = None
    key: str | None = None
    ready_replicas: int = 0
    replicas: int = 0
    message: str = ""
    targeted: bool = True  # False: being removed from a cluster the selector no longer matches
    wave: str | None = None


@dataclass(frozen=True)
class Problem:
    reason: str
    message: str


@dataclass(frozen=True)
class RolloutView:
    """What the conditions need from the plan: the persisted state and the planner's message."""

    state: RolloutState
    message: str

    @property
    def halted(self) -> bool:
        return self.state.phase in ("Failed", "RolledBack")

    @property
    def active(self) -> bool:
        return self.state.phase in ("Progressing", "Soaking", "Paused", "Waiting")

    @property
    def reason(self) -> str:
        """The Reconciling/Ready reason of an active rollout: its phase, OutsideWindow while deployment
        windows hold the next wave, or why it is paused when analysis paused it (AnalysisInconclusive):
        what `kubectl wait --for=jsonpath=...reason` can read."""
        if self.state.phase == "Waiting":
            return "OutsideWindow"
        if self.state.phase == "Paused" and self.state.reason:
            return self.state.reason
        return self.state.phase

    @property
    def rolling_back(self) -> bool:
        return self.state.phase == "RolledBack" and self.state.rolled_back_at is None


def short_digest(digest: str) -> str:
    return digest_hex(digest)[:12]


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def cluster_statuses(
    prev: Sequence[ClusterStatus], reports: Sequence[ClusterReport], now: str
) -> list[ClusterStatus]:
    before = {c.name: c for c in prev}
    out = []
    for r in sorted(reports, key=lambda r: r.name):
        old = before.get(r.name)
        since = old.last_transition_time if old is not None and old.phase == r.phase else now
        out.append(
            ClusterStatus(
                name=r.name,
                phase=r.phase,
                wave=r.wave,
                digest=r.digest,
                desired_digest=r.desired_digest,
                key=r.key,
                ready_replicas=r.ready_replicas,
                replicas=r.replicas,
                message=_truncate(r.message) if r.message else None,
                last_transition_time=since,
            )
        )
    return out


def summarize(reports: Sequence[ClusterReport]) -> Summary:
    targeted = [r for r in reports if r.targeted]
    return Summary(
        desired=len(targeted),
        ready=sum(r.phase is ClusterPhase.READY for r in targeted),
        failed=sum(r.phase is ClusterPhase.FAILED for r in targeted),
        unreachable=sum(r.phase in (ClusterPhase.UNREACHABLE, ClusterPhase.STALE) for r in targeted),
    )


def _ordered(conditions: list[Condition]) -> list[Condition]:
    return sorted(
        conditions, key=lambda c: CONDITION_ORDER.index(c.type) if c.type in CONDITION_ORDER else 99
    )


class _Conditions:
    """The conditions being written, each stamped with the same time and generation."""

    def __init__(self, conditions: Sequence[Condition], now: str, generation: int) -> None:
        self.list, self.now, self.generation = list(conditions), now, generation

    def put(self, type_: str, status: ConditionStatus, reason: str, message: str) -> None:
        self.list = set_condition(
            self.list, type_, status, reason, _truncate(message), now=self.now, generation=self.generation
        )

    def drop(self, type_: str) -> None:
        self.list = [c for c in self.list if c.type != type_]


def _problem_phase(
    conds: _Conditions, deleting: Problem | None, stalled: Problem | None, publish_error: Problem | None
) -> StatusPhase | None:
    """Deleting, Stalled, or retrying a publish: these decide the phase before any rollout does."""
    if deleting is not None:
        conds.drop("Stalled")
        conds.put("Reconciling", "True", deleting.reason, deleting.message)
        conds.put("Ready", "False", deleting.reason, deleting.message)
        return "Deleting"
    if stalled is not None:
        conds.put("Stalled", "True", stalled.reason, stalled.message)
        conds.drop("Reconciling")
        conds.put("Ready", "False", stalled.reason, stalled.message)
        return "Stalled"
    if publish_error is not None:
        conds.drop("Stalled")
        conds.put("Reconciling", "True", "PublishRetrying", publish_error.message)
        conds.put("Ready", "False", publish_error.reason, publish_error.message)
        return "Progressing"
    return None


def _rollout_phase(conds: _Conditions, rollout: RolloutView | None, ratio: str) -> StatusPhase | None:
    """A halted rollout is Stalled (Reconciling while it rolls back); an active one Progressing."""
    if rollout is not None and rollout.halted:
        reason = rollout.state.reason or rollout.state.phase
        conds.put("Stalled", "True", reason, rollout.message)
        if rollout.rolling_back:
            conds.put("Reconciling", "True", "RollingBack", rollout.message)
        else:
            conds.drop("Reconciling")
        conds.put("Ready", "False", reason, rollout.message)
        return "Stalled"
    if rollout is not None and rollout.active:
        conds.drop("Stalled")
        conds.put("Reconciling", "True", rollout.reason, rollout.message)
        conds.put("Ready", "False", rollout.reason, f"{ratio}; {rollout.message}")
        return "Progressing"
    return None


def _fleet_phase(
    conds: _Conditions,
    clusters: Sequence[ClusterStatus],
    summary: Summary,
    revision: RevisionStatus | None,
    ratio: str,
) -> StatusPhase:
    """No rollout in flight: the clusters say Ready, Progressing or Degraded."""
    in_flight = [
        c
        for c in clusters
        if c.phase in (ClusterPhase.PENDING, ClusterPhase.PROGRESSING, ClusterPhase.DELETING)
    ]
    conds.drop("Stalled")
    if in_flight:
        names = ", ".join(c.name for c in in_flight)
        conds.put("Reconciling", "True", "Progressing", f"{ratio}; in progress: {names}")
    else:
        conds.drop("Reconciling")
    if summary.ready == summary.desired and not in_flight:
        shown = f" serve {revision.short_digest}" if revision is not None else " ready"
        conds.put("Ready", "True", "Ready", f"{summary.ready}/{summary.desired} clusters{shown}")
        return "Ready"
    if in_flight:
        conds.put("Ready", "False", "Progressing", ratio)
        return "Progressing"
    reason, bad = _degraded(clusters)
    conds.put("Ready", "False", reason, f"{ratio}; {bad}")
    return "Degraded"


def build_status(
    prev: RouterConfigStatus,
    *,
    generation: int,
    now: str,
    reports: Sequence[ClusterReport] | None,
    published: ManifestEntry | None = None,
    stalled: Problem | None = None,
    publish_error: Problem | None = None,
    deleting: Problem | None = None,
    rollout: RolloutView | None = None,
) -> RouterConfigStatus:
    """The next status. `reports=None` keeps the previous per-cluster status (edges untouched).

    With a rollout (kstatus): `Ready` only once it has Completed and every target is ready;
    `Reconciling` while it progresses, soaks, is paused or rolls back; `Stalled` when it has failed or
    was rolled back (the planner's message names the wave, the clusters and the reason)."""
    conds = _Conditions(prev.conditions, now, generation)
    clusters = list(prev.clusters) if reports is None else cluster_statuses(prev.clusters, reports, now)
    summary = (prev.summary if reports is None else summarize(reports)) or Summary()
    revision = prev.revision
    if published is not None:
        revision = RevisionStatus(
            digest=published.digest,
            short_digest=short_digest(published.digest),
            key=published.key,
            size=published.size,
            published_at=published.published_at,
        )
        conds.put("Published", "True", "Published", f"{published.digest} at {published.key}")
    elif publish_error is not None:
        conds.put("Published", "False", publish_error.reason, publish_error.message)

    ratio = f"{summary.ready}/{summary.desired} clusters ready"
    phase = (
        _problem_phase(conds, deleting, stalled, publish_error)
        or _rollout_phase(conds, rollout, ratio)
        or _fleet_phase(conds, clusters, summary, revision, ratio)
    )
    return RouterConfigStatus(
        observed_generation=generation,
        phase=phase,
        ready_clusters=f"{summary.ready}/{summary.desired}",
        conditions=_ordered(conds.list),
        revision=revision,
        clusters=clusters,
        summary=summary,
        rollout=rollout.state if rollout is not None else prev.rollout,
    )


def with_token_verification(
    status: RouterConfigStatus, spec: RouterConfigSpec, *, now: str, generation: int
) -> RouterConfigStatus:
    """`TokensVerified`: whether the caches check graph tokens' HS256 signature, not only their claims.
    Only for a RouterConfig served over the Cosmo protocol (spec.cosmo)."""
    conds = [c for c in status.conditions if c.type != "TokensVerified"]
    if spec.cosmo is not None:
        ref = spec.cosmo.graph_token_secret_ref
        if ref is not None:
            reason, message = (
                "GraphTokenSecret",
                f"graph tokens must be signed with Secret key {ref.name}/{ref.key}",
            )
        else:
            reason = "NoGraphTokenSecret"
            message = (
                "the edge caches check graph tokens' claims but not their signature: set "
                "spec.cosmo.graphTokenSecretRef to the secret Cosmo signs graph tokens with"
            )
        status_value: ConditionStatus = "True" if ref is not None else "False"
        conds = set_condition(
            list(status.conditions),
            "TokensVerified",
            status_value,
            reason,
            message,
            now=now,
            generation=generation,
        )
    return status.model_copy(update={"conditions": _ordered(conds)})


def _degraded(clusters: Sequence[ClusterStatus]) -> tuple[str, str]:
    by_phase: dict[ClusterPhase, list[str]] = {}
    for c in clusters:
        by_phase.setdefault(c.phase, []).append(c.name)
    for phase, reason in (
        (ClusterPhase.FAILED, "ClustersFailed"),
        (ClusterPhase.ROLLED_BACK, "ClustersRolledBack"),
        (ClusterPhase.UNREACHABLE, "ClustersUnreachable"),
        (ClusterPhase.STALE, "ClustersUnreachable"),
        (ClusterPhase.PAUSED, "ClustersPaused"),
    ):
        if phase in by_phase:
            return reason, f"{phase.value.lower()}: {', '.join(by_phase[phase])}"
    return "NotReady", "some clusters are not ready"


def condition_changed(prev: RouterConfigStatus, new: RouterConfigStatus, type_: str) -> bool:
    a, b = find_condition(prev.conditions, type_), find_condition(new.conditions, type_)
    return (a is None) != (b is None) or (
        a is not None and b is not None and (a.status, a.reason) != (b.status, b.reason)
    )
