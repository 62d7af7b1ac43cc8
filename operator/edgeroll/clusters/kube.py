"""A small async Kubernetes client: get, server-side apply, delete, version.

It talks raw JSON over one `Transport` (aiohttp) per cluster, so every call has
a deadline and errors come out as two kinds: the cluster cannot be reached
(`ClusterUnreachable`) or it answered no (`KubeApiError`).
Response bodies are never logged: they may hold Secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Protocol

import aiohttp
import orjson

from edgeroll.clusters.hub_login import HubLoginFailed, hub_login
from edgeroll.clusters.kubeconfig import EdgeCredentials, KubeconfigRefused, edge_credentials
from edgeroll.clusters.objects import FIELD_MANAGER, ObjectRef, ref_of
from edgeroll.clusters.transport import TlsRefused, Transport

PLURALS = {
    "Namespace": "namespaces",
    "ServiceAccount": "serviceaccounts",
    "Secret": "secrets",
    "ConfigMap": "configmaps",
    "Service": "services",
    "Deployment": "deployments",
}


# Connections per client. Every reconcile of every RouterConfig targeting a cluster goes through
# that cluster's one client. Each TLS connection holds a 256 KiB read buffer under uvloop
# (docs/benchmarks.md), so at a cold start of 100 clusters, 4 of them plus the watch held up to
# 125 MiB. With 2, the 20 reconciles sharing a cluster's client queue longer; that wait is not
# counted against the caller's bound (`CALLER_BOUND`), and when a request finds the cluster
# unreachable, the ones queued behind it fail at once instead of each waiting out its own timeout.
EDGE_CONNECTIONS = 2
HUB_CONNECTIONS = 16

# The caller's time bound for its work on one cluster (the reconciler's per-cluster bound), set in
# the caller's task: paused while a request waits for one of the client's connections, because a
# queue behind the fleet's other reconciles is not the cluster being slow.
CALLER_BOUND: contextvars.ContextVar[asyncio.Timeout | None] = contextvars.ContextVar(
    "CALLER_BOUND", default=None
)


@contextlib.contextmanager
def paused(bound: asyncio.Timeout | None) -> Iterator[None]:
    """Stop `bound`'s clock for the block and give it the time it had left afterwards (a bound that is
    already paused or expired is left alone)."""
    when = bound.when() if bound is not None and not bound.expired() else None
    if bound is None or when is None:
        yield
        return
    loop = asyncio.get_running_loop()
    left = max(0.0, when - loop.time())
    bound.reschedule(None)
    try:
        yield
    finally:
        bound.reschedule(loop.time() + left)


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


def edge_transport(creds: EdgeCredentials, connections: int) -> Transport:
    """A transport whose TLS context is loaded from memory, with one more connection than the request
    slots, for the watch of edge Deployments."""
    try:
        return Transport(creds, connections + 1)
    except TlsRefused as exc:
        raise ClusterUnreachable(f"kubeconfig refused: {exc}") from None


def _api_error(status: int, reason: str, body: bytes) -> KubeApiError:
    message = ""
    try:
        parsed = orjson.loads(body or b"{}")
        reason = str(parsed.get("reason") or reason)
        message = str(parsed.get("message") or "")
    except (orjson.JSONDecodeError, AttributeError):
        message = ""
    return KubeApiError(status, reason, message[:1000])


def _encode(body: Any) -> bytes | None:
    return None if body is None else orjson.dumps(body)


class KubeClient:
    def __init__(
        self,
        transport: Transport,
        timeout: float,
        name: str = "",
        connections: int = 100,
        overall: asyncio.Semaphore | None = None,
    ) -> None:
        self._http = transport
        self.timeout = timeout
        self.name = name
        # A request's deadline starts once it has a connection: waiting behind this client's other
        # requests (a burst of reconciles at a restart) is not the cluster being unreachable.
        self._slots = asyncio.Semaphore(connections)
        # Shared by every edge client: bounds the requests in flight across the fleet.
        self._overall = overall
        # When and why the last request found the cluster unreachable: requests queued before then
        # fail with it instead of each waiting out its own timeout against a cluster that is down.
        self._down: tuple[float, type[ClusterUnreachable], str] | None = None

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
        return cls(edge_transport(creds, connections), timeout, name, connections, overall)

    @classmethod
    async def from_environment(
        cls, kubeconfig: str | None, timeout: float, name: str = "hub", connections: int = HUB_CONNECTIONS
    ) -> KubeClient:
        """The hub: a kubeconfig file when given, else in-cluster credentials, else ~/.kube/config."""
        login = await hub_login(kubeconfig)
        try:
            transport = Transport(login.credentials, connections, login.tokens)
        except TlsRefused as exc:
            raise HubLoginFailed(f"the hub's kubeconfig: {exc}") from None
        return cls(transport, timeout, name, connections)

    @property
    def server(self) -> str:
        return self._http.server

    async def close(self) -> None:
        await self._http.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        queued = time.monotonic()
        async with self._slot():
            down = self._down
            if down is not None and down[0] >= queued:
                raise down[1](down[2])  # the same kind: a 401 stays CredentialsRefused
            try:
                return await self._call_now(method, path, body=body, query=query, content_type=content_type)
            except ClusterUnreachable as exc:
                self._down = (time.monotonic(), type(exc), str(exc))  # not exc: its frames would stay
                raise

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """One of this client's connections and, for an edge client, a place in the fleet's bound;
        the caller's bound does not run while it waits for them."""
        async with contextlib.AsyncExitStack() as stack:
            with paused(CALLER_BOUND.get()):
                await stack.enter_async_context(self._slots)
                if self._overall is not None:
                    await stack.enter_async_context(self._overall)
            yield

    async def _send(
        self,
        method: str,
        path: str,
        data: bytes | None,
        query: list[tuple[str, str]] | None,
        content_type: str,
    ) -> tuple[int, str, bytes]:
        timeout = aiohttp.ClientTimeout(total=self.timeout, sock_connect=min(self.timeout, 5))
        try:
            async with asyncio.timeout(self.timeout + 1):
                response = await self._http.open_request(
                    method, path, params=query, data=data, content_type=content_type, timeout=timeout
                )
                async with response:
                    return response.status, response.reason or "", await response.read()
        except (TimeoutError, aiohttp.ClientError, ssl.SSLError, OSError) as exc:
            # Stable wording (no addresses, no object ids): status messages must not churn.
            late = isinstance(exc, TimeoutError)
            what = f"timed out after {self.timeout:g}s" if late else type(exc).__name__
            raise ClusterUnreachable(f"unreachable: {what}") from None

    async def _call_now(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        data = _encode(body)
        status, reason, raw = await self._send(method, path, data, query, content_type)
        if status == 401 and self._http.tokens.expire():
            # A token that can rotate (service account file, exec plugin): fetch a new one, once.
            status, reason, raw = await self._send(method, path, data, query, content_type)
        if status == 401:
            raise CredentialsRefused("the apiserver refused the credentials (401)")
        if status >= 400:
            raise _api_error(status, reason, raw)
        return orjson.loads(raw) if raw else {}

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

        Outside the request slots: a watch holds its connection for minutes (the transport has one
        more connection than the slots for it)."""
        params = [
            *query,
            ("watch", "true"),
            ("timeoutSeconds", str(seconds)),
            ("allowWatchBookmarks", "true"),
        ]
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(self.timeout, 5), sock_read=seconds + 30)
        try:
            async with asyncio.timeout(self.timeout + 1):
                response = await self._http.open_request(
                    "GET", path, params=params, data=None, content_type=None, timeout=timeout
                )
        except (TimeoutError, aiohttp.ClientError, ssl.SSLError, OSError) as exc:
            raise ClusterUnreachable(f"watch: {type(exc).__name__}") from None
        async with response:
            if response.status != 200:
                if response.status == 401:
                    self._http.tokens.expire()  # the re-list after this failure fetches a new token
                raise KubeApiError(response.status, response.reason or "", (await response.text())[:300])
            pending = b""
            try:
                async for chunk in response.content.iter_any():
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield dict(orjson.loads(line))
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
            limits = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 5))
            try:
                async with asyncio.timeout(timeout + 1):
                    response = await self._http.open_request(
                        "POST", path, params=None, data=None, content_type="application/json", timeout=limits
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
