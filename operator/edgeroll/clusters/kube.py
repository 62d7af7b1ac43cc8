"""A small async Kubernetes client: get, server-side apply, delete, version.

It talks raw JSON through a kubernetes_asyncio ApiClient (one per cluster),
so every call has a deadline and errors come out as two kinds: the cluster
cannot be reached (`ClusterUnreachable`) or it answered no (`KubeApiError`).
Response bodies are never logged: they may hold Secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Protocol

import aiohttp
import yaml
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException

from edgeroll.clusters.kubeconfig import EdgeCredentials, KubeconfigRefused, edge_credentials
from edgeroll.clusters.objects import FIELD_MANAGER, ObjectRef, ref_of

# kubernetes_asyncio logs response bodies (Secrets included) at DEBUG: never let it.
logging.getLogger("kubernetes_asyncio").setLevel(logging.WARNING)

PLURALS = {
    "Namespace": "namespaces",
    "ServiceAccount": "serviceaccounts",
    "Secret": "secrets",
    "ConfigMap": "configmaps",
    "Service": "services",
    "Deployment": "deployments",
}


# Connections per client. Every reconcile of every RouterConfig targeting a cluster goes through
# that cluster's one client; with the library default (100), 20 RouterConfigs x 50 clusters held
# ~700 TLS connections at a cold start, each ~0.3 MiB in the operator plus a handshake on both
# sides (bench/fanout.py). 4 carry the load: with 2, the 20 reconciles sharing a cluster's client
# queued past the reconciler's per-cluster bound (4 x the edge timeout) at load 14, and healthy
# clusters were reported Unreachable; 2 saved only 10 MiB at 100 clusters.
EDGE_CONNECTIONS = 4
HUB_CONNECTIONS = 16


class ClusterUnreachable(Exception):
    """No answer: connection refused, TLS or credential failure, timeout, unusable kubeconfig."""


class CredentialsRefused(ClusterUnreachable):
    """The apiserver answered 401: it does not accept the credentials."""


class KubeApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"{status} {reason}: {message}")


class KubeApi(Protocol):
    """The seam the executor and reconciler use; `FakeKube` in tests implements it too."""

    async def get(self, ref: ObjectRef) -> dict[str, Any] | None: ...

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]: ...

    async def delete(self, ref: ObjectRef, uid: str | None = None) -> bool: ...

    async def version(self) -> str: ...

    async def close(self) -> None: ...

    async def list_objects(
        self, path: str, query: list[tuple[str, str]]
    ) -> tuple[list[dict[str, Any]], str]: ...

    async def proxy_post(self, path: str, timeout: float) -> tuple[int, bytes]: ...


def object_path(ref: ObjectRef) -> str:
    plural = PLURALS[ref.kind]
    base = "/api/v1" if ref.api_version == "v1" else f"/apis/{ref.api_version}"
    if ref.namespace is None:
        return f"{base}/{plural}/{ref.name}"
    return f"{base}/namespaces/{ref.namespace}/{plural}/{ref.name}"


@contextlib.contextmanager
def _memory_files(*blobs: bytes | None) -> Iterator[list[str | None]]:
    """Paths to anonymous in-memory files (memfd) holding `blobs`, closed on exit.

    `ssl` loads a client certificate only from a path. A memfd is a path that is
    never on a disk and vanishes with its last descriptor, so no key material is
    left behind even by a kill -9 (a temp file would be, as the library's are).
    """
    fds: list[int] = []
    try:
        paths: list[str | None] = []
        for blob in blobs:
            if blob is None:
                paths.append(None)
                continue
            if not hasattr(os, "memfd_create"):  # Linux only; a temp file is what this avoids
                raise ClusterUnreachable("inline certificates need Linux (memfd_create)")
            fd = os.memfd_create("edgeroll-tls", os.MFD_CLOEXEC)
            fds.append(fd)
            os.write(fd, blob)
            paths.append(f"/proc/self/fd/{fd}")
        yield paths
    finally:
        for fd in fds:
            os.close(fd)


def api_client(creds: EdgeCredentials, connections: int) -> k8s_client.ApiClient:
    """An ApiClient whose TLS context is loaded from memory; the library's kubeconfig loader is not used."""
    cfg = k8s_client.Configuration(host=creds.server)
    cfg.connection_pool_maxsize = connections + 1  # one more for the watch of edge Deployments
    cfg.verify_ssl = creds.verify
    cfg.tls_server_name = creds.tls_server_name
    if creds.token:
        cfg.api_key["BearerToken"] = f"Bearer {creds.token}"
    with _memory_files(creds.ca_pem, creds.cert_pem, creds.key_pem) as (ca, cert, key):
        cfg.ssl_ca_cert, cfg.cert_file, cfg.key_file = ca, cert, key
        try:
            # The SSL context is built (and the files read) right here, in the REST client's constructor.
            return k8s_client.ApiClient(configuration=cfg)
        except (ssl.SSLError, ValueError, OSError) as exc:
            what = type(exc).__name__
            raise ClusterUnreachable(f"kubeconfig refused: its certificates do not load ({what})") from None
        finally:
            cfg.ssl_ca_cert = cfg.cert_file = cfg.key_file = None


def _self_contained(path: str) -> EdgeCredentials | None:
    """The hub kubeconfig's credentials when it is self-contained; then its keys stay in memory too."""
    try:
        with open(path, encoding="utf-8") as f:
            return edge_credentials(yaml.safe_load(f) or {})
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KubeconfigRefused, AttributeError):
        return None  # the library's loader reports what is wrong with it


def _api_error(exc: ApiException) -> KubeApiError:
    reason, message = str(exc.reason or ""), ""
    try:
        body = json.loads(exc.body or "{}")
        reason = str(body.get("reason") or reason)
        message = str(body.get("message") or "")
    except (ValueError, TypeError):
        message = ""
    return KubeApiError(int(exc.status or 0), reason, message[:1000])


class KubeClient:
    def __init__(
        self,
        api: k8s_client.ApiClient,
        timeout: float,
        name: str = "",
        connections: int = 100,
        overall: asyncio.Semaphore | None = None,
    ) -> None:
        self._api = api
        self.timeout = timeout
        self.name = name
        # A request's deadline starts once it has a connection: waiting behind this client's other
        # requests (a burst of reconciles at a restart) is not the cluster being unreachable.
        self._slots = asyncio.Semaphore(connections)
        # Shared by every edge client: bounds the requests in flight across the fleet.
        self._overall = overall

    @classmethod
    async def from_kubeconfig_dict(
        cls,
        kubeconfig: Mapping[str, Any],
        timeout: float,
        name: str = "",
        connections: int = EDGE_CONNECTIONS,
        overall: asyncio.Semaphore | None = None,
    ) -> KubeClient:
        """A client from a self-contained kubeconfig; refused fields raise ClusterUnreachable naming them."""
        try:
            creds = edge_credentials(kubeconfig)
        except KubeconfigRefused as exc:
            raise ClusterUnreachable(f"kubeconfig refused: {exc}") from None
        return cls(api_client(creds, connections), timeout, name, connections, overall)

    @classmethod
    async def from_environment(
        cls, kubeconfig: str | None, timeout: float, name: str = "hub", connections: int = HUB_CONNECTIONS
    ) -> KubeClient:
        """The hub: a kubeconfig file when given, else in-cluster credentials, else ~/.kube/config."""
        creds = _self_contained(kubeconfig) if kubeconfig else None
        if creds is not None:
            return cls(api_client(creds, connections), timeout, name, connections)
        cfg = k8s_client.Configuration()
        cfg.connection_pool_maxsize = connections
        if kubeconfig:
            # The admin's own file, which may use exec or paths: the library loads it as kubectl would.
            await k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        else:
            try:
                k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            except k8s_config.ConfigException:
                await k8s_config.load_kube_config(client_configuration=cfg)
        return cls(k8s_client.ApiClient(configuration=cfg), timeout, name, connections)

    @property
    def server(self) -> str:
        return str(self._api.configuration.host)

    async def close(self) -> None:
        await self._api.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        async with self._slots, self._overall or contextlib.nullcontext():
            return await self._call_now(method, path, body=body, query=query, content_type=content_type)

    async def _call_now(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        try:
            return await asyncio.wait_for(
                self._api.call_api(
                    path,
                    method,
                    query_params=query or [],
                    header_params={"Content-Type": content_type, "Accept": "application/json"},
                    body=body,
                    auth_settings=["BearerToken"],
                    response_types_map={200: "object", 201: "object", 202: "object"},
                    _return_http_data_only=True,
                    _request_timeout=aiohttp.ClientTimeout(
                        total=self.timeout, sock_connect=min(self.timeout, 5)
                    ),
                ),
                timeout=self.timeout + 1,
            )
        except ApiException as exc:
            if exc.status in (None, 0):
                raise ClusterUnreachable(f"no answer: {exc.reason}") from None
            if exc.status == 401:
                raise CredentialsRefused("the apiserver refused the credentials (401)") from None
            raise _api_error(exc) from None
        except (TimeoutError, aiohttp.ClientError, ssl.SSLError, OSError) as exc:
            # Stable wording (no addresses, no object ids): status messages must not churn.
            what = (
                f"timed out after {self.timeout:g}s" if isinstance(exc, TimeoutError) else type(exc).__name__
            )
            raise ClusterUnreachable(f"unreachable: {what}") from None

    async def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        try:
            result = await self._call("GET", object_path(ref))
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise
        return dict(result)

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply with our field manager; force takes fields back from hand edits."""
        ref = ref_of(manifest)
        result = await self._call(
            "PATCH",
            object_path(ref),
            body=dict(manifest),
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        return dict(result)

    async def delete(self, ref: ObjectRef, uid: str | None = None) -> bool:
        """Delete `ref`; with `uid`, only that very object (409 if it was replaced since read)."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        try:
            await self._call("DELETE", object_path(ref), body=body)
        except KubeApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def get_path(self, path: str) -> dict[str, Any] | None:
        try:
            return dict(await self._call("GET", path))
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list_objects(self, path: str, query: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], str]:
        """A collection's items and its resourceVersion (where a watch of it starts)."""
        result = await self._call("GET", path, query=query)
        return [dict(item) for item in result.get("items") or []], str(
            (result.get("metadata") or {}).get("resourceVersion", "")
        )

    async def watch(
        self, path: str, query: list[tuple[str, str]], seconds: int
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of a watch on `path` for at most `seconds` (the server ends it then), parsed.

        Outside the request slots: a watch holds its connection for minutes (api_client's pool has one
        more connection than the slots for it)."""
        params = [
            *query,
            ("watch", "true"),
            ("timeoutSeconds", str(seconds)),
            ("allowWatchBookmarks", "true"),
        ]
        try:
            response = await asyncio.wait_for(
                self._api.call_api(
                    path,
                    "GET",
                    query_params=params,
                    header_params={"Accept": "application/json"},
                    auth_settings=["BearerToken"],
                    _preload_content=False,
                    _request_timeout=aiohttp.ClientTimeout(
                        total=None, sock_connect=min(self.timeout, 5), sock_read=seconds + 30
                    ),
                ),
                timeout=self.timeout + 1,
            )
        except (TimeoutError, aiohttp.ClientError, ssl.SSLError, OSError) as exc:
            raise ClusterUnreachable(f"watch: {type(exc).__name__}") from None
        async with response:
            if response.status != 200:
                raise KubeApiError(response.status, response.reason or "", (await response.text())[:300])
            pending = b""
            try:
                async for chunk in response.content.iter_any():
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield dict(json.loads(line))
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise ClusterUnreachable(f"watch: {type(exc).__name__}") from None

    async def version(self) -> str:
        result = await self._call("GET", "/version")
        return str(result.get("gitVersion", "unknown"))

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST `body` to the collection at `path` (409 when the name is taken)."""
        return dict(await self._call("POST", path, body=dict(body)))

    async def replace(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT `body` at `path`; its metadata.resourceVersion is the precondition (409 when stale)."""
        return dict(await self._call("PUT", path, body=dict(body)))

    async def delete_path(self, path: str, resource_version: str) -> None:
        """Delete the object at `path` only if it is still at `resource_version` (404 and 409 are fine)."""
        body = {"preconditions": {"resourceVersion": resource_version}}
        try:
            await self._call("DELETE", path, body=body)
        except KubeApiError as exc:
            if exc.status not in (404, 409):
                raise

    async def patch_json(self, path: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        """An RFC 6902 JSON patch: its `test` operations make the write conditional."""
        return dict(await self._call("PATCH", path, body=ops, content_type="application/json-patch+json"))

    async def proxy_post(self, path: str, timeout: float) -> tuple[int, bytes]:
        """POST (no body) through the apiserver's proxy (`.../pods/<pod>:<port>/proxy/...`): the status
        and body as the pod or the apiserver answered, whatever the code; raises only when the
        apiserver cannot be reached. A bounded read: the answers wanted here are small."""
        async with self._slots, self._overall or contextlib.nullcontext():
            try:
                response = await asyncio.wait_for(
                    self._api.call_api(
                        path,
                        "POST",
                        header_params={"Content-Type": "application/json", "Accept": "application/json"},
                        auth_settings=["BearerToken"],
                        _preload_content=False,
                        _request_timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 5)),
                    ),
                    timeout=timeout + 1,
                )
                async with response:
                    return response.status, await response.content.read(64 * 1024)
            except (TimeoutError, aiohttp.ClientError, ssl.SSLError, OSError) as exc:
                late = isinstance(exc, TimeoutError)
                what = f"timed out after {timeout:g}s" if late else type(exc).__name__
                raise ClusterUnreachable(f"unreachable: {what}") from None

    async def patch_merge(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        result = await self._call(
            "PATCH", path, body=dict(patch), content_type="application/merge-patch+json"
        )
        return dict(result)
