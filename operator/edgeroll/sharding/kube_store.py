"""The Lease objects of one namespace, through the hub's client (the elector's LeaseStore)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgeroll.clusters.kube import KubeApiError, KubeClient
from edgeroll.sharding.elector import LeaseConflict
from edgeroll.sharding.leases import KIND_LABEL, MANAGED_BY


class KubeLeaseStore:
    def __init__(self, hub: KubeClient, namespace: str) -> None:
        self.hub = hub
        self.namespace = namespace
        self._collection = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"

    async def list(self) -> list[dict[str, Any]]:
        selector = ",".join([*(f"{k}={v}" for k, v in MANAGED_BY.items()), KIND_LABEL])
        items, _ = await self.hub.list_objects(self._collection, [("labelSelector", selector)])
        return items

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return await self.hub.create(self._collection, obj)
        except KubeApiError as exc:
            if exc.status == 409:
                raise LeaseConflict(f"{obj['metadata']['name']} exists") from None
            raise

    async def replace(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        try:
            return await self.hub.replace(f"{self._collection}/{name}", obj)
        except KubeApiError as exc:
            if exc.status in (404, 409):
                raise LeaseConflict(f"{name} changed since it was read") from None
            raise

    async def delete(self, name: str, resource_version: str) -> None:
        await self.hub.delete_path(f"{self._collection}/{name}", resource_version)
