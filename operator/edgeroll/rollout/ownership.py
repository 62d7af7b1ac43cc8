"""Who owns an edge object (pure): the RouterConfig its annotation names.

Edge object names are collision-free (`resources.edge_name`), so an object in
the way is one edgeroll did not make for this RouterConfig: made by hand, by
another tool, or by another RouterConfig through a hash collision. The
operator never applies over nor deletes such an object; the RouterConfig
goes Stalled naming the owner instead.

A RouterConfig deleted and re-created under the same namespace/name adopts
what its predecessor left (its uid label is rewritten): it is the same
tenant's object. The uid label tells the two apart for whoever audits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgeroll.api.edge_objects import ANNOTATION_ROUTERCONFIG
from edgeroll.clusters.objects import ObjectRef

CONFLICT_REASON = "EdgeObjectConflict"


@dataclass(frozen=True)
class Owner:
    """A RouterConfig as its edge objects name it."""

    namespace: str
    name: str
    uid: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class EdgeObjectConflict(Exception):
    """An object with one of our names belongs to someone else; nothing was written over it."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def ownership_conflict(ref: ObjectRef, live: Mapping[str, Any] | None, owner: Owner) -> str | None:
    """Why `owner` may not write or delete `live` (the object at `ref`), or None when it may."""
    if live is None:
        return None
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    claimed = annotations.get(ANNOTATION_ROUTERCONFIG)
    if claimed is None:
        return f"{ref} exists and was not made by edgeroll (no {ANNOTATION_ROUTERCONFIG} annotation)"
    if claimed != str(owner):
        return f"{ref} belongs to RouterConfig {claimed}"
    return None
