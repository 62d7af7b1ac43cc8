"""Object references shared by the kube adapter and the resource builder (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FIELD_MANAGER = "edgeroll"


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str | None
    name: str

    def __str__(self) -> str:
        return (
            f"{self.kind}/{self.name}"
            if self.namespace is None
            else f"{self.kind} {self.namespace}/{self.name}"
        )


def ref_of(manifest: Mapping[str, Any]) -> ObjectRef:
    meta = manifest["metadata"]
    return ObjectRef(manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"])
