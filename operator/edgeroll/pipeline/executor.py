"""Carry out rollout actions in one edge cluster: compare, then server-side apply; or remove.

Nothing is written when the live objects already hold what we want, so a
resync at steady state costs reads only. A hand-edited field shows up as a
difference and is put back (force-apply takes the field back from the editor).
Nothing is written over, nor deleted, that another owner holds (ownership.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeroll.clusters.kube import KubeApi, KubeApiError
from edgeroll.clusters.objects import ObjectRef, ref_of
from edgeroll.rollout.drift import drifted
from edgeroll.rollout.ownership import EdgeObjectConflict, Owner, ownership_conflict
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
    owner: Owner,
    others_move_with_deployment: bool = False,
) -> EnsureResult:
    """Make the edge objects match `manifests` (the Deployment last).

    `live_deployment` is the Deployment as just observed. Without `check_all`
    (a progress check), the other objects are assumed intact and only the
    Deployment is compared: no extra reads, unless `others_move_with_deployment`
    (InPlace: the Secret names the wanted revision) and the Deployment changes.
    Raises EdgeObjectConflict, having written nothing over it, when an object
    in the way is not `owner`'s.
    """
    *others, deployment = manifests
    namespace = deployment["metadata"]["namespace"]
    changes: list[Change] = []
    conflict = ownership_conflict(ref_of(deployment), live_deployment, owner)
    if conflict is not None:
        raise EdgeObjectConflict(conflict)
    why = drifted(dict(deployment), live_deployment)
    if check_all or live_deployment is None or (others_move_with_deployment and why is not None):
        for manifest in others:
            ref = ref_of(manifest)
            live = await api.get(ref)
            conflict = ownership_conflict(ref, live, owner)
            if conflict is not None:
                raise EdgeObjectConflict(conflict)
            other_why = drifted(dict(manifest), live)
            if other_why is not None:
                await _apply_in_namespace(api, manifest, namespace)
                changes.append(Change(ref, other_why))
    if why is None and live_deployment is not None:
        return EnsureResult(live_deployment, changes)
    applied = await _apply_in_namespace(api, deployment, namespace)
    changes.append(Change(ref_of(deployment), why or "missing"))
    return EnsureResult(applied, changes)


async def remove_edge(
    api: KubeApi, refs: Sequence[ObjectRef], owner: Owner
) -> tuple[list[ObjectRef], list[str]]:
    """Delete those of `refs` that `owner` owns (Deployment first).

    Returns what was deleted, and why each object that exists but is another's was kept. The delete
    carries the uid just read, so an object replaced in between is not deleted either.
    """
    removed: list[ObjectRef] = []
    kept: list[str] = []
    for ref in refs:
        live = await api.get(ref)
        if live is None:
            continue
        conflict = ownership_conflict(ref, live, owner)
        if conflict is not None:
            kept.append(conflict)
            continue
        try:
            deleted = await api.delete(ref, uid=(live.get("metadata") or {}).get("uid"))
        except KubeApiError as exc:
            if exc.status != 409:
                raise
            kept.append(f"{ref} was replaced while being removed; looked at again on the next pass")
            continue
        if deleted:
            removed.append(ref)
    return removed, kept


async def retire_legacy(
    api: KubeApi, legacy: Sequence[ObjectRef], alias: Mapping[str, Any], owner: Owner
) -> tuple[list[Change], bool]:
    """Move `owner` off the objects of its edgeroll 0.1 name, once its current pods serve.

    The legacy Service is re-pointed at the current pods and kept (routers may have its URL in
    their config; it goes with the RouterConfig), then the legacy Deployment, Secret and
    ServiceAccount are deleted. Objects of that name that are not `owner`'s are never touched: with
    the old names, another RouterConfig may hold them. Also returns whether `owner` had anything
    under the legacy name there (when not, the caller need not look again).
    """
    if not legacy:
        return [], False
    deployment, service, *rest = legacy
    changes: list[Change] = []
    live_service = await api.get(service)
    has_alias = live_service is not None and ownership_conflict(service, live_service, owner) is None
    if has_alias:
        why = drifted(dict(alias), live_service)  # also after retirement: the port may change
        if why is not None:
            await api.apply(alias)
            changes.append(Change(service, f"kept as an alias ({why})"))
    removed, _ = await remove_edge(api, [deployment, *rest], owner)
    changes += [Change(ref, "retired (legacy name)") for ref in removed]
    return changes, has_alias or bool(removed)
