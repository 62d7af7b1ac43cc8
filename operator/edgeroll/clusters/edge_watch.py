"""Edge state from watches: one shared watch per EdgeCluster of the Deployments edgeroll manages there.

Each EdgeCluster gets one task that lists the edge-cache Deployments in its namespace (selected by the
`app.kubernetes.io/managed-by` label), then watches them from that list's resourceVersion. The cache it
keeps answers the reconcilers' observe step without a GET, and every event wakes the RouterConfig the
Deployment belongs to (its labels say which), so `Ready` follows the Deployment's `Available` as soon as
the event arrives instead of at the next progress tick.

What the cache does not hold it does not claim: until the first list, after a watch breaks (until the
relist), and for a name it has never seen (a foreign object without our label may sit there), `lookup`
answers None and the caller reads the object itself. A broken watch relists with backoff and jitter; an
unreachable cluster therefore costs its own task retries, never another cluster's progress.

A watch the server ends at its timeout is resumed from the last resourceVersion it delivered (bookmarks
included), as client-go's reflector does: no list, and the cache keeps vouching. Only an error (410
Gone among them) relists; a watch that ends with nothing delivered, not even a bookmark, is resumed
after a growing delay, so a proxy that closes watches at once is not a hot loop. The timeouts are
jittered so a fleet's watches do not end, and a fleet's relists after an outage do not land, in the
same second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from edgeroll.api.edge_objects import LABEL_MANAGED_BY, LABEL_RC_NAME, LABEL_RC_NAMESPACE
from edgeroll.clusters.kube import KubeApiError
from edgeroll.clusters.registry import EdgeClusterInfo

log = logging.getLogger(__name__)

MANAGER = "edgeroll"  # the value of app.kubernetes.io/managed-by on every edge object
WATCH_SECONDS = 300  # a watch request ends (server side) 1-2x this after it starts; the next resumes
OnChange = Callable[[str, str], None]  # (RouterConfig namespace, name) whose edge Deployment changed


@runtime_checkable
class WatchableApi(Protocol):
    async def list_objects(
        self, path: str, query: list[tuple[str, str]]
    ) -> tuple[list[dict[str, Any]], str]: ...

    def watch(
        self, path: str, query: list[tuple[str, str]], seconds: int
    ) -> AsyncIterator[dict[str, Any]]: ...


def _newer(candidate: Mapping[str, Any], held: Mapping[str, Any] | None) -> bool:
    """True unless `held` is known to be newer: resourceVersions are etcd revisions in practice, and
    an apply's answer may arrive before the watch event of the version before it."""
    if held is None:
        return True
    try:
        return int(candidate["metadata"]["resourceVersion"]) >= int(held["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return True


def _slim(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the observe step reads of a Deployment: all but `metadata.managedFields`, which is as big
    as the spec again and, held for every Deployment of a fleet, most of the cache's memory."""
    meta = obj.get("metadata") or {}
    if "managedFields" not in meta:
        return dict(obj)
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def _owner(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    ns, name = labels.get(LABEL_RC_NAMESPACE), labels.get(LABEL_RC_NAME)
    return (ns, name) if isinstance(ns, str) and isinstance(name, str) else None


@dataclass
class ClusterWatch:
    """The watch of one EdgeCluster's namespace: its cache and whether the cache is current."""

    cluster: str
    namespace: str
    api: object  # the client it watches with: the registry's current one for the cluster
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # Deployment name -> object
    synced: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def path(self) -> str:
        return f"/apis/apps/v1/namespaces/{self.namespace}/deployments"

    def record(self, obj: Mapping[str, Any]) -> tuple[str, str] | None:
        """Keep `obj` unless what is held is newer; the RouterConfig it belongs to."""
        name = (obj.get("metadata") or {}).get("name")
        if isinstance(name, str) and _newer(obj, self.objects.get(name)):
            self.objects[name] = _slim(obj)
        return _owner(obj)

    def replace_all(self, items: list[dict[str, Any]]) -> set[tuple[str, str]]:
        """The list's state; the RouterConfigs whose Deployments changed or went since the last one."""
        fresh = {str(o["metadata"]["name"]): _slim(o) for o in items if (o.get("metadata") or {}).get("name")}
        touched = {
            owner
            for name, obj in {**self.objects, **fresh}.items()
            if self.objects.get(name) != fresh.get(name) and (owner := _owner(obj)) is not None
        }
        self.objects = fresh
        return touched


class EdgeWatches:
    """One `ClusterWatch` task per EdgeCluster, started by the first observe that needs it."""

    def __init__(
        self,
        on_change: OnChange,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        rand: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._on_change = on_change
        self._backoff = (backoff_initial, backoff_max)
        self._rand = rand
        self._sleep = sleep
        self._watches: dict[str, ClusterWatch] = {}
        self.relists = 0  # lists after the first, per process: broken watches (tests and metrics read it)

    def ensure(self, info: EdgeClusterInfo, api: object) -> None:
        """Watch `info`'s namespace with `api`, the client the caller reads that cluster with. Another
        namespace or another client (the registry rebuilt it: a rotated kubeconfig, a cluster back
        from an outage) restarts the watch, so the cache never outlives the client it came from."""
        if info.spec is None or not isinstance(api, WatchableApi):
            return  # a client without watches (a test double): observes read as before
        current = self._watches.get(info.name)
        if current is not None and current.namespace == info.spec.namespace and current.api is api:
            return
        if current is not None and current.task is not None:
            current.task.cancel()
        watch = ClusterWatch(info.name, info.spec.namespace, api)
        watch.task = asyncio.create_task(self._run(watch, api), name=f"edgeroll-watch-{info.name}")
        self._watches[info.name] = watch

    def lookup(self, cluster: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The cached Deployment; None when the cache cannot vouch for it (read it instead)."""
        watch = self._watches.get(cluster)
        if watch is None or not watch.synced or watch.namespace != namespace:
            return None
        return watch.objects.get(name)

    def saw(self, cluster: str, obj: Mapping[str, Any]) -> None:
        """An object this process just applied: newer than the cache until the watch catches up."""
        watch = self._watches.get(cluster)
        if (
            watch is not None
            and watch.synced
            and (obj.get("metadata") or {}).get("namespace") == watch.namespace
        ):
            watch.record(obj)

    def forget(self, cluster: str) -> None:
        watch = self._watches.pop(cluster, None)
        if watch is not None and watch.task is not None:
            watch.task.cancel()

    async def close(self) -> None:
        tasks = [w.task for w in self._watches.values() if w.task is not None]
        self._watches.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _notify(self, owners: set[tuple[str, str]]) -> None:
        for ns, name in sorted(owners):
            try:
                self._on_change(ns, name)
            except Exception:  # a waker must never end the watch
                log.exception("waking %s/%s failed", ns, name)

    def _delay(self, attempt: int) -> float:
        initial, maximum = self._backoff
        step = min(maximum, initial * 2 ** min(attempt, 32))
        return float(step / 2 + self._rand() * step / 2)

    async def _run(self, watch: ClusterWatch, api: WatchableApi) -> None:
        loop, attempt, first = asyncio.get_running_loop(), 0, True
        while True:
            began = loop.time()
            try:
                if not first:
                    self.relists += 1
                first = False
                await self._list_and_watch(watch, api)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever broke it, the cache stops vouching until the relist
                if watch.synced and loop.time() - began > self._backoff[1]:
                    attempt = 0  # it ran well for a while: this break starts the backoff afresh
                watch.synced = False
                delay = self._delay(attempt)
                attempt += 1
                log.info(
                    "watch of edge Deployments in %s broke (%s); relisting in %.1fs",
                    watch.cluster,
                    exc,
                    delay,
                )
                await self._sleep(delay)

    async def _list_and_watch(self, watch: ClusterWatch, api: WatchableApi) -> None:
        selector = [("labelSelector", f"{LABEL_MANAGED_BY}={MANAGER}")]
        items, version = await api.list_objects(watch.path, selector)
        touched = watch.replace_all(items)
        watch.synced = True
        self._notify(touched)
        quiet = 0
        while True:  # each pass is one watch request; the server ends it at its timeout
            seconds = int(WATCH_SECONDS * (1 + self._rand()))
            query = [*selector, ("resourceVersion", version)]
            version, delivered = await self._watch_from(watch, api, query, seconds)
            if delivered:
                quiet = 0
                continue
            # Nothing delivered, not even one of the bookmarks asked for: a proxy that closes watches
            # at once would make this a hot loop. The next request waits, longer each time, and the
            # cache does not vouch while no watch is open; the resumed watch brings what it missed.
            watch.synced = False
            await self._sleep(self._delay(quiet))
            watch.synced = True
            quiet += 1

    async def _watch_from(
        self, watch: ClusterWatch, api: WatchableApi, query: list[tuple[str, str]], seconds: int
    ) -> tuple[str, int]:
        """Apply one watch request's events to the cache; the last resourceVersion it delivered, and
        how many events it delivered."""
        version, delivered = dict(query)["resourceVersion"], 0
        async for event in api.watch(watch.path, query, seconds):
            delivered += 1
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":  # 410 Gone (too old a resourceVersion) and the like: relist
                raise KubeApiError(
                    int(obj.get("code") or 0), str(obj.get("reason", "")), str(obj.get("message", ""))
                )
            meta = obj.get("metadata") or {}
            version = str(meta.get("resourceVersion") or version)
            if kind == "BOOKMARK":
                continue
            name = meta.get("name")
            if kind == "DELETED" and isinstance(name, str):
                watch.objects.pop(name, None)
                owner = _owner(obj)
            else:
                owner = watch.record(obj)
            if owner is not None:
                self._notify({owner})
        return version, delivered
