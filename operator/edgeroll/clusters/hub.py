"""The hub: status writes (merge patches on the status subresource), and the startup check that says
why the operator cannot start against it (credentials, RBAC, network, missing CRDs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgeroll.api.common import GROUP, VERSION
from edgeroll.api.edgecluster import PLURAL as EC_PLURAL
from edgeroll.api.routerconfig import PLURAL as RC_PLURAL
from edgeroll.clusters.kube import ClusterUnreachable, CredentialsRefused, KubeApiError, KubeClient

HUB_TIMEOUT = 30.0  # seconds per hub request
CRDS_MISSING = f"the {GROUP}/{VERSION} CRDs are not installed on the hub: apply crds/ first"


class HubNotReady(Exception):
    """The operator cannot start against this hub; the message says why."""


class StatusConflict(Exception):
    """The RouterConfig changed since the resourceVersion the write was conditioned on (409)."""


class HubStatusWriter:
    def __init__(self, hub: KubeClient) -> None:
        self.hub = hub

    @staticmethod
    def _path(namespace: str, name: str) -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{RC_PLURAL}/{name}"

    async def patch_status(
        self, namespace: str, name: str, patch: Mapping[str, Any], resource_version: str | None = None
    ) -> str | None:
        """Merge-patch the status, only if the object is still at `resource_version` when given (a
        deposed owner's late write is refused); returns the new resourceVersion."""
        body: dict[str, Any] = {"status": dict(patch)}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            written = await self.hub.patch_merge(f"{self._path(namespace, name)}/status", body)
        except KubeApiError as exc:
            if exc.status == 409:
                raise StatusConflict(
                    f"{namespace}/{name} changed since resourceVersion {resource_version}"
                ) from None
            raise
        return str((written.get("metadata") or {}).get("resourceVersion") or "") or None

    async def read_status(self, namespace: str, name: str) -> tuple[dict[str, Any], str] | None:
        """The stored status and resourceVersion, or None when the object is gone."""
        found = await self.hub.get_path(self._path(namespace, name))
        if found is None:
            return None
        return dict(found.get("status") or {}), str(
            (found.get("metadata") or {}).get("resourceVersion") or ""
        )

    async def patch_edgecluster_status(self, name: str, patch: Mapping[str, Any]) -> None:
        path = f"/apis/{GROUP}/{VERSION}/{EC_PLURAL}/{name}/status"
        await self.hub.patch_merge(path, {"status": dict(patch)})

    async def check_served(self) -> None:
        """Our CRDs must be installed: kopf only serves resources that exist at startup.

        Raises HubNotReady with the cause a user can act on (credentials, RBAC, network, CRDs).
        """
        try:
            found = await self.hub.get_path(f"/apis/{GROUP}/{VERSION}")
        except (ClusterUnreachable, KubeApiError) as exc:
            raise HubNotReady(startup_problem(exc, self.hub.server)) from None
        names = {r.get("name") for r in (found or {}).get("resources", [])}
        if not {RC_PLURAL, EC_PLURAL} <= names:
            raise HubNotReady(CRDS_MISSING)


def startup_problem(exc: BaseException, server: str) -> str:
    """What a failed startup call to the hub means, in words that point at the fix."""
    if isinstance(exc, CredentialsRefused):
        return f"the hub refused the operator's credentials (401) at {server}"
    if isinstance(exc, ClusterUnreachable):
        return f"cannot reach the hub at {server}: {exc}"
    if isinstance(exc, KubeApiError) and exc.status == 403:
        return f"forbidden: {exc.message or exc.reason} (403)"
    if isinstance(exc, KubeApiError) and exc.status == 404:
        return CRDS_MISSING
    if isinstance(exc, KubeApiError):
        return f"the hub answered {exc.status} {exc.reason}: {exc.message}"
    return f"cannot load the hub's kubeconfig: {type(exc).__name__}: {exc}"


async def connect_hub(kubeconfig: str | None, timeout: float) -> KubeClient:
    """A hub client whose CRDs are served, or HubNotReady naming the cause."""
    try:
        hub = await KubeClient.from_environment(kubeconfig, timeout=timeout)
    except Exception as exc:  # the loader raises many kinds (ConfigException, OSError, YAML errors)
        raise HubNotReady(startup_problem(exc, kubeconfig or "")) from None
    try:
        await HubStatusWriter(hub).check_served()
    except HubNotReady:
        await hub.close()
        raise
    return hub
