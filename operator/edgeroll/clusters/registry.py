"""One client per EdgeCluster, built from its kubeconfig Secret on the hub, cached and probed.

The Secret is read when a client is first needed and again on every probe;
a new resourceVersion (or a different secretRef) rebuilds the client, so a
rotated kubeconfig takes effect within one probe interval. Kubeconfig
contents never reach a log, an event or a status: errors only name the
Secret and, for a refused field (`exec`, file paths: see kubeconfig.py), its path.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from edgeroll.api.edgecluster import EdgeClusterSpec
from edgeroll.clusters.kube import ClusterUnreachable, KubeApi, KubeApiError, KubeClient
from edgeroll.clusters.kubeconfig import KubeconfigRefused, check_kubeconfig
from edgeroll.clusters.objects import ObjectRef

log = logging.getLogger(__name__)

ClientFactory = Callable[[Mapping[str, Any], float, str], Awaitable[KubeApi]]


@dataclass(frozen=True)
class EdgeClusterInfo:
    """An EdgeCluster as the reconciler sees it: name, labels (what selectors match) and spec."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    spec: EdgeClusterSpec | None = None  # None: the object's spec does not parse
    # Why its status says Reachable=False, as the probing replica wrote it (shard 0's holder); what a
    # replica that does not probe goes by.
    reported_unreachable: str | None = None


def reported_unreachable(status: Mapping[str, Any] | None) -> str | None:
    """The message of a Reachable=False condition, as the probing replica wrote it."""
    for cond in (status or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "Reachable" and cond.get("status") == "False":
            return str(cond.get("message") or "unreachable")
    return None


def edgecluster_info(
    name: str, labels: Mapping[str, str], spec: Mapping[str, Any], status: Mapping[str, Any] | None = None
) -> EdgeClusterInfo:
    try:
        parsed: EdgeClusterSpec | None = EdgeClusterSpec.model_validate(dict(spec))
    except ValidationError:
        parsed = None
    return EdgeClusterInfo(
        name=name, labels=dict(labels), spec=parsed, reported_unreachable=reported_unreachable(status)
    )


@dataclass(frozen=True)
class ProbeResult:
    reachable: bool
    server_version: str | None
    message: str
    at: float  # monotonic seconds


@dataclass
class _Handle:
    client: KubeApi
    source: tuple[str, str, str, str]  # secret namespace, name, key, resourceVersion


def client_factory(overall: asyncio.Semaphore | None = None) -> ClientFactory:
    """Edge clients that share `overall`, the bound on requests in flight across the fleet."""

    async def build(kubeconfig: Mapping[str, Any], timeout: float, name: str) -> KubeApi:
        return await KubeClient.from_kubeconfig_dict(kubeconfig, timeout, name, overall=overall)

    return build


class ClusterRegistry:
    def __init__(
        self,
        hub: KubeApi,
        timeout: float,
        factory: ClientFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hub = hub
        self._timeout = timeout
        self._factory = factory or client_factory()
        self._clock = clock
        self._handles: dict[str, _Handle] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._probes: dict[str, ProbeResult] = {}

    def last_probe(self, name: str) -> ProbeResult | None:
        return self._probes.get(name)

    def mark_unreachable(self, name: str, message: str) -> None:
        """A call failed outside a probe: treat the cluster as down until the next probe says otherwise."""
        self._probes[name] = ProbeResult(False, None, message, self._clock())

    async def client(self, info: EdgeClusterInfo, refresh: bool = False) -> KubeApi:
        """The cached client; with `refresh`, re-read the Secret and rebuild it if it changed."""
        if info.spec is None:
            raise ClusterUnreachable(f"EdgeCluster {info.name} has an invalid spec")
        lock = self._locks.setdefault(info.name, asyncio.Lock())
        async with lock:
            handle = self._handles.get(info.name)
            ref = info.spec.kubeconfig_secret_ref
            if handle is not None and not refresh and handle.source[:3] == (ref.namespace, ref.name, ref.key):
                return handle.client
            where = f"Secret {ref.namespace}/{ref.name}"
            try:
                secret = await self._hub.get(ObjectRef("v1", "Secret", ref.namespace, ref.name))
            except KubeApiError as exc:
                raise ClusterUnreachable(
                    f"cannot read kubeconfig {where}: {exc.status} {exc.reason}"
                ) from None
            if secret is None:
                await self._drop(info.name)
                raise ClusterUnreachable(f"kubeconfig {where} not found")
            version = str(secret.get("metadata", {}).get("resourceVersion", ""))
            source = (ref.namespace, ref.name, ref.key, version)
            if handle is not None and handle.source == source:
                return handle.client
            kubeconfig = _kubeconfig_from_secret(secret, ref.key, where)
            client = await self._factory(kubeconfig, self._timeout, info.name)
            await self._drop(info.name)
            self._handles[info.name] = _Handle(client, source)
            log.info(
                "built a client for EdgeCluster %s from %s (resourceVersion %s)", info.name, where, version
            )
            return client

    async def probe(self, info: EdgeClusterInfo) -> ProbeResult:
        try:
            client = await self.client(info, refresh=True)
            version = await client.version()
            result = ProbeResult(True, version, f"reachable, {version}", self._clock())
        except ClusterUnreachable as exc:
            result = ProbeResult(False, None, str(exc), self._clock())
        except KubeApiError as exc:
            result = ProbeResult(False, None, f"/version: {exc.status} {exc.reason}", self._clock())
        self._probes[info.name] = result
        return result

    async def _drop(self, name: str) -> None:
        handle = self._handles.pop(name, None)
        if handle is not None:
            try:
                await handle.client.close()
            except Exception:  # closing a dead connection may fail; nothing to do about it
                log.debug("closing the client of %s failed", name, exc_info=True)

    async def forget(self, name: str) -> None:
        """The EdgeCluster is gone: close its client and its probe record."""
        await self._drop(name)
        self._probes.pop(name, None)
        self._locks.pop(name, None)

    async def close(self) -> None:
        for name in list(self._handles):
            await self._drop(name)


def _kubeconfig_from_secret(secret: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    data = secret.get("data") or {}
    if key not in data:
        raise ClusterUnreachable(f"kubeconfig {where} has no key {key!r}")
    try:
        text = base64.b64decode(data[key], validate=True).decode("utf-8")
        parsed = yaml.safe_load(text)
    except (binascii.Error, UnicodeDecodeError, yaml.YAMLError):
        raise ClusterUnreachable(f"kubeconfig {where} key {key!r} is not a YAML kubeconfig") from None
    if not isinstance(parsed, dict) or not parsed.get("clusters"):
        raise ClusterUnreachable(f"kubeconfig {where} key {key!r} is not a kubeconfig (no clusters)")
    try:
        check_kubeconfig(parsed)  # before any client exists: nothing in it may run or read a file
    except KubeconfigRefused as exc:
        raise ClusterUnreachable(f"kubeconfig {where} key {key!r} refused: {exc}") from None
    return parsed
