"""The hub as the preview reads it, built from a pipeline World (tests/unit/pipeline/pipeline_fakes.py):
the World's ConfigMaps, its RouterConfig as the operator left it, its EdgeClusters. It has no write
method at all: a preview that tried to write would fail."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import datetime
from typing import Any

from tests.unit.pipeline.pipeline_fakes import World

from edgeroll.clusters.objects import ObjectRef
from edgeroll.preview.model import Preview
from edgeroll.preview.reader import edge_clusters, preview_routerconfig


class PreviewHub:
    def __init__(self, world: World, exists: bool = True) -> None:
        self.world, self.exists = world, exists
        self.calls: Counter[str] = Counter()

    def routerconfig(self, spec: dict[str, Any] | None = None) -> dict[str, Any]:
        w = self.world
        return {
            "apiVersion": "edgeroll.io/v1alpha1",
            "kind": "RouterConfig",
            "metadata": {"name": w.name, "namespace": w.namespace, "generation": w.generation},
            "spec": copy.deepcopy(spec if spec is not None else w.spec),
            "status": copy.deepcopy(w.statuses.status),
        }

    async def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        self.calls["get"] += 1
        return await self.world.hub.get(ref)

    async def get_path(self, path: str) -> dict[str, Any] | None:
        self.calls["get_path"] += 1
        if (
            path.endswith(f"/namespaces/{self.world.namespace}/routerconfigs/{self.world.name}")
            and self.exists
        ):
            return self.routerconfig()
        return None

    async def list_objects(self, path: str, query: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], str]:
        self.calls["list"] += 1
        assert path.endswith("/edgeclusters"), path
        items = [
            {
                "metadata": {"name": info.name, "labels": dict(info.labels)},
                "spec": info.spec.to_wire() if info.spec is not None else {},
            }
            for info in self.world.clusters.values()
        ]
        return items, "1"


async def preview(
    hub: PreviewHub,
    spec: dict[str, Any] | None = None,
    config_maps: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> Preview:
    """The preview of the World's RouterConfig with `spec` (default: its own), at the World's clock."""
    doc = hub.routerconfig(spec)
    clusters = await edge_clusters(hub)
    now: datetime = hub.world.t
    return await preview_routerconfig(hub, doc, config_maps or {}, clusters, now)
