"""The plan preview of one RouterConfig, built from what was gathered: pure.

Waves come from the planner itself (`plan_membership`, the first step of `plan_rollout`), digests from
the operator's own render (`pipeline.gather.render_targets`), so the preview cannot drift from what the
operator then does. What a cluster serves now is `status.clusters[].digest`: the operator's own reading
of that cluster's edge Deployment (docs/rollout.md, Plan preview, says why not the Deployment itself).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from edgeroll.api.routerconfig import RouterConfigSpec, RouterConfigStatus
from edgeroll.clusters.registry import EdgeClusterInfo
from edgeroll.pipeline.gather import content_revision
from edgeroll.preview.diff import Change, json_changes
from edgeroll.render.revision import RenderSet, Revision
from edgeroll.rollout.planner import ClusterState, DesiredRevision, PlanInput, plan_membership


@dataclass(frozen=True)
class Refusal:
    """Why the operator would refuse the RouterConfig: the reason of its Stalled condition, and a message
    naming the field (the operator's own words)."""

    reason: str
    message: str


@dataclass(frozen=True)
class Baseline:
    """What a cluster's changes are counted from: a render's digest, and which render that is."""

    digest: str
    what: str  # "what it serves", "the current spec's render (it serves sha256:…)", "the base render"


@dataclass(frozen=True)
class ClusterPreview:
    name: str
    wave: int  # 1-based
    wave_name: str
    digest: str  # what it would move to
    serving: str | None  # what it serves now (status.clusters[].digest); None: nothing yet
    baseline: Baseline | None = None
    changes: tuple[Change, ...] = ()

    @property
    def moves(self) -> bool:
        return self.digest != self.serving


@dataclass(frozen=True)
class Preview:
    namespace: str
    name: str
    exists: bool = False  # the RouterConfig is on the hub already
    refused: Refusal | None = None
    revision: str | None = None  # content revision (status.rollout.revision once rolled out)
    base_digest: str | None = None
    restarts: bool = False  # a new revision: the rollout starts again from the first wave
    waves: tuple[str, ...] = ()
    clusters: tuple[ClusterPreview, ...] = ()
    leaving: tuple[str, ...] = ()  # hold its cache now but are no target: their caches are removed
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Gathered:
    """Everything the preview of one RouterConfig reads, as the operator would gather it."""

    namespace: str
    name: str
    spec: RouterConfigSpec
    rendered: RenderSet
    targets: Sequence[EdgeClusterInfo]
    status: RouterConfigStatus | None = None  # the hub's object; None: it does not exist
    live: RenderSet | None = None  # what the hub's spec renders now (for the changes)
    live_targets: frozenset[str] = frozenset()
    notes: Sequence[str] = field(default_factory=tuple)


def short(digest: str | None) -> str:
    return digest[: len("sha256:") + 12] if digest else "-"


def _document(revision: Revision) -> Any:
    return json.loads(revision.body)


def wave_assignment(
    g: Gathered, revision: str, now: datetime
) -> tuple[tuple[str, ...], Mapping[str, int], bool]:
    """The planner's waves for the gathered targets. Keys and signatures play no part in waves."""
    desired = {t.name: DesiredRevision(g.rendered.clusters[t.name].digest, "", "") for t in g.targets}
    observed = {
        t.name: ClusterState(
            t.name,
            reachable=t.reported_unreachable is None,
            paused=t.spec.paused if t.spec is not None else False,
            labels=dict(t.labels),
        )
        for t in g.targets
    }
    policy = g.spec.rollout
    state = g.status.rollout if g.status is not None else None
    inp = PlanInput(
        desired=desired, observed=observed, policy=policy, now=now, state=state, revision=revision
    )
    assignment = plan_membership(inp)
    return assignment.waves, assignment.clusters, assignment.restarted


def baseline_of(g: Gathered, name: str, serving: str | None) -> tuple[Revision | None, str]:
    """The render a cluster's changes are counted from, and what it is."""
    if g.live is not None and name in g.live_targets:
        live = g.live.clusters[name]
        if serving == live.digest:
            return live, "what it serves"
        now = f"it serves {short(serving)}" if serving else "it serves nothing yet"
        return live, f"the current spec's render ({now})"
    if g.status is None and g.rendered.clusters[name].digest != g.rendered.base.digest:
        return g.rendered.base, "the base render: what its overlays change"
    return None, "nothing to compare with" if g.status is None else "not a target of the current spec"


def build_preview(g: Gathered, now: datetime) -> Preview:
    """Per target: its wave, the digest it would move to, what it serves now, and what changes."""
    revision = content_revision(g.spec, g.rendered.base.digest)
    waves, membership, restarts = wave_assignment(g, revision, now)
    serving = {c.name: c.digest for c in g.status.clusters} if g.status is not None else {}
    clusters = []
    for target in g.targets:
        rev = g.rendered.clusters[target.name]
        now_serving = serving.get(target.name)
        base, what = baseline_of(g, target.name, now_serving)
        changes = tuple(json_changes(_document(base), _document(rev))) if base is not None else ()
        index = membership[target.name]
        clusters.append(
            ClusterPreview(
                name=target.name,
                wave=index + 1,
                wave_name=waves[index],
                digest=rev.digest,
                serving=now_serving,
                baseline=Baseline(base.digest, what) if base is not None else None,
                changes=changes,
            )
        )
    names = {t.name for t in g.targets}
    return Preview(
        namespace=g.namespace,
        name=g.name,
        exists=g.status is not None,
        revision=revision,
        base_digest=g.rendered.base.digest,
        restarts=restarts,
        waves=waves,
        clusters=tuple(clusters),
        leaving=tuple(sorted(n for n in serving if n not in names)),
        notes=tuple(g.notes),
    )
