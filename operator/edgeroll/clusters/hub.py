"""Status writes to the hub: merge patches on the status subresource, nothing else."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgeroll.api.common import GROUP, VERSION
from edgeroll.api.edgecluster import PLURAL as EC_PLURAL
from edgeroll.api.routerconfig import PLURAL as RC_PLURAL
from edgeroll.clusters.kube import KubeClient


class HubStatusWriter:
    def __init__(self, hub: KubeClient) -> None:
        self.hub = hub

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{RC_PLURAL}/{name}/status"
        await self.hub.patch_merge(path, {"status": dict(patch)})

    async def patch_edgecluster_status(self, name: str, patch: Mapping[str, Any]) -> None:
        path = f"/apis/{GROUP}/{VERSION}/{EC_PLURAL}/{name}/status"
        await self.hub.patch_merge(path, {"status": dict(patch)})

    async def served(self) -> bool:
        """Are our CRDs installed? kopf only serves resources that exist at startup."""
        try:
            found = await self.hub.get_path(f"/apis/{GROUP}/{VERSION}")
        except Exception:
            return False
        names = {r.get("name") for r in (found or {}).get("resources", [])}
        return {RC_PLURAL, EC_PLURAL} <= names
