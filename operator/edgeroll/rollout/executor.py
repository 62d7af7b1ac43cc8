"""Carry out rollout actions in one edge cluster: compare, then server-side apply; or remove.

Nothing is written when the live objects already hold what we want, so a
resync at steady state costs reads only. A hand-edited field shows up as a
difference and is put back (force-apply takes the field back from the editor).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeroll.clusters.kube import KubeApi, KubeApiError
from edgeroll.clusters.objects import ObjectRef, ref_of
from edgeroll.rollout.drift import drifted
from edgeroll.rollout.resources import namespace_manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """One object we wrote, and why (for events)."""

    ref: ObjectRef
    why: str  # "missing" or the first field path that differed

    @property
    def created(self) -> bool:
        return self.why == "missing"

    def __str__(self) -> str:
        return f"created {self.ref.kind}" if self.created else f"updated {self.ref.kind} ({self.why})"


@dataclass(frozen=True)
class EnsureResult:
    deployment: dict[str, Any]
    changes: list[Change] = field(default_factory=list)


async def _apply_in_namespace(api: KubeApi, manifest: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    try:
        return await api.apply(manifest)
    except KubeApiError as exc:
        # The edge namespace is created on first use only: no GET per resync for it.
        if exc.status == 404 and "namespace" in exc.message.lower():
            await api.apply(namespace_manifest(namespace))
            return await api.apply(manifest)
        raise


async def ensure_edge(
    api: KubeApi,
    manifests: Sequence[Mapping[str, Any]],
    *,
    live_deployment: dict[str, Any] | None,
    check_all: bool,
) -> EnsureResult:
    """Make the edge objects match `manifests` (the Deployment last).

    `live_deployment` is the Deployment as just observed. Without `check_all`
    (a progress check), the other objects are assumed intact and only the
    Deployment is compared: no extra reads.
    """
    *others, deployment = manifests
    namespace = deployment["metadata"]["namespace"]
    changes: list[Change] = []
    if check_all or live_deployment is None:
        for manifest in others:
            ref = ref_of(manifest)
            why = drifted(dict(manifest), await api.get(ref))
            if why is not None:
                await _apply_in_namespace(api, manifest, namespace)
                changes.append(Change(ref, why))
    why = drifted(dict(deployment), live_deployment)
    if why is None and live_deployment is not None:
        return EnsureResult(live_deployment, changes)
    applied = await _apply_in_namespace(api, deployment, namespace)
    changes.append(Change(ref_of(deployment), why or "missing"))
    return EnsureResult(applied, changes)


async def remove_edge(api: KubeApi, refs: Sequence[ObjectRef]) -> list[ObjectRef]:
    """Delete the edge objects (Deployment first); returns those that existed."""
    removed = []
    for ref in refs:
        if await api.delete(ref):
            removed.append(ref)
    return removed
