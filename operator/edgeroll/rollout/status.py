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
        return self.state.phase in ("Progressing", "Soaking", "Paused")

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
    conds = list(prev.conditions)
    clusters = list(prev.clusters) if reports is None else cluster_statuses(prev.clusters, reports, now)
    summary = prev.summary if reports is None else summarize(reports)
    summary = summary or Summary()
    in_flight = [
        c
        for c in clusters
        if c.phase in (ClusterPhase.PENDING, ClusterPhase.PROGRESSING, ClusterPhase.DELETING)
    ]

    def put(type_: str, status: ConditionStatus, reason: str, message: str) -> None:
        nonlocal conds
        conds = set_condition(
            conds, type_, status, reason, _truncate(message), now=now, generation=generation
        )

    def drop(type_: str) -> None:
        nonlocal conds
        conds = [c for c in conds if c.type != type_]

    revision = prev.revision
    if published is not None:
        revision = RevisionStatus(
            digest=published.digest,
            short_digest=short_digest(published.digest),
            key=published.key,
            size=published.size,
            published_at=published.published_at,
        )
        put("Published", "True", "Published", f"{published.digest} at {published.key}")
    elif publish_error is not None:
        put("Published", "False", publish_error.reason, publish_error.message)

    ratio = f"{summary.ready}/{summary.desired} clusters ready"
    phase: StatusPhase
    if deleting is not None:
        drop("Stalled")
        put("Reconciling", "True", deleting.reason, deleting.message)
        put("Ready", "False", deleting.reason, deleting.message)
        phase = "Deleting"
    elif stalled is not None:
        put("Stalled", "True", stalled.reason, stalled.message)
        drop("Reconciling")
        put("Ready", "False", stalled.reason, stalled.message)
        phase = "Stalled"
    elif publish_error is not None:
        drop("Stalled")
        put("Reconciling", "True", "PublishRetrying", publish_error.message)
        put("Ready", "False", publish_error.reason, publish_error.message)
        phase = "Progressing"
    elif rollout is not None and rollout.halted:
        reason = rollout.state.reason or rollout.state.phase
        put("Stalled", "True", reason, rollout.message)
        if rollout.rolling_back:
            put("Reconciling", "True", "RollingBack", rollout.message)
        else:
            drop("Reconciling")
        put("Ready", "False", reason, rollout.message)
        phase = "Stalled"
    elif rollout is not None and rollout.active:
        drop("Stalled")
        put("Reconciling", "True", rollout.state.phase, rollout.message)
        put("Ready", "False", rollout.state.phase, f"{ratio}; {rollout.message}")
        phase = "Progressing"
    else:
        drop("Stalled")
        if in_flight:
            names = ", ".join(c.name for c in in_flight)
            put("Reconciling", "True", "Progressing", f"{ratio}; in progress: {names}")
        else:
            drop("Reconciling")
        if summary.ready == summary.desired and not in_flight:
            shown = f" serve {revision.short_digest}" if revision is not None else " ready"
            put("Ready", "True", "Ready", f"{summary.ready}/{summary.desired} clusters{shown}")
            phase = "Ready"
        elif in_flight:
            put("Ready", "False", "Progressing", ratio)
            phase = "Progressing"
        else:
            reason, bad = _degraded(clusters)
            put("Ready", "False", reason, f"{ratio}; {bad}")
            phase = "Degraded"

    return RouterConfigStatus(
        observed_generation=generation,
        phase=phase,
        ready_clusters=f"{summary.ready}/{summary.desired}",
        conditions=_ordered(conds),
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
