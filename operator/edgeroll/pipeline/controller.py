"""Runs the reconciler for each RouterConfig: one at a time per object, on schedule, write-free when idle.

kopf calls in from two sides: change handlers (create/update/resume) call
`reconcile` right away; a per-object loop (`run_loop`) re-runs it when due:
every `progress_seconds` while a rollout is in flight, with backoff after a
retryable failure, and every `resync_seconds` for a full drift check. An
EdgeCluster change pokes every loop, which reconciles at once if its target
set changed; a change the shared watch sees on one of its edge Deployments
wakes that object's loop at once, and so does a change the ConfigMap watch sees on a ConfigMap it reads
(for a full reconcile, which reads it again). Status is patched only when it differs from what is there.

With several replicas, a RouterConfig is acted on only by the holder of its shard lease
(edgeroll.sharding): the others' handlers and loops pass it by. Every status write is conditioned
on the resourceVersion last seen, and re-checks the lease before it is retried, so a deposed owner's
late write is refused.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from edgeroll.api.mergepatch import merge_diff
from edgeroll.api.routerconfig import ClusterPhase, RouterConfigStatus
from edgeroll.clusters.hub import StatusConflict
from edgeroll.clusters.registry import EdgeClusterInfo
from edgeroll.pipeline.reconciler import (
    DesiredState,
    EventNote,
    FinalizeResult,
    Reconciler,
    ReconcileResult,
    RouterConfigObject,
    parse_status,
)
from edgeroll.settings import OperatorSettings
from edgeroll.sharding.assignment import Acting, Ownership, SoleOwner

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # namespace, name, uid
EventSink = Callable[[EventNote], None]


class StatusWriter(Protocol):
    async def patch_status(
        self, namespace: str, name: str, patch: Mapping[str, Any], resource_version: str | None = None
    ) -> str | None: ...

    async def read_status(self, namespace: str, name: str) -> tuple[dict[str, Any], str] | None: ...


class Deposed(Exception):
    """Another replica owns this RouterConfig now: the write was refused and is not retried."""


@dataclass
class _Memo:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    poked: bool = False
    edge_changed: bool = False  # the watch saw one of its edge Deployments change
    inputs_changed: bool = False  # a ConfigMap it reads changed: due now, and fully (no cached render)
    next_due: float = 0.0
    last_full: float = -math.inf
    failures: int = 0
    desired: DesiredState | None = None
    status: dict[str, Any] | None = None  # what we last wrote (the watch may lag behind it)
    resource_version: str | None = None  # the object's, as our last write left it
    finalizing: bool = False  # the finalizer ran: no reconcile may re-create edge objects
    # edgeroll_propagation_seconds: when this process first saw the current generation, and the
    # (generation, revision) being timed since `propagating_since` until every target is Ready on it.
    seen_generation: int | None = None
    seen_at: float = 0.0
    propagating: tuple[int, str] | None = None
    propagating_since: float = 0.0
    propagated: bool = True


def backoff(failures: int, base: float, cap: float) -> float:
    return float(min(cap, base * 2 ** max(failures - 1, 0)))


def ready_everywhere(status: RouterConfigStatus, desired: DesiredState) -> bool:
    """Every target cluster is Ready and its Deployment carries the digest rendered for it."""
    clusters = {c.name: c for c in status.clusters}
    return all(
        (c := clusters.get(name)) is not None and c.phase is ClusterPhase.READY and c.digest == rev.digest
        for name, rev in desired.revisions.items()
    )


class RouterConfigController:
    def __init__(
        self,
        reconciler: Reconciler,
        writer: StatusWriter,
        settings: OperatorSettings,
        clock: Callable[[], float] = time.monotonic,
        ownership: Ownership | None = None,
    ) -> None:
        self.reconciler = reconciler
        self.writer = writer
        self.settings = settings
        self.ownership: Ownership = ownership if ownership is not None else SoleOwner()
        self.clock = clock
        self.metrics = reconciler.metrics
        self._memos: dict[Key, _Memo] = {}
        self._busy: collections.Counter[Key] = collections.Counter()  # calls waiting for or holding a lock
        # Objects whose finalizer completed (uids are never reused): a late tick must not revive them.
        self._finalized: collections.OrderedDict[Key, None] = collections.OrderedDict()

    def _memo(self, key: Key) -> _Memo:
        memo = self._memos.get(key)
        if memo is None:
            memo = self._memos[key] = _Memo(finalizing=key in self._finalized)
        return memo

    def forget(self, key: Key) -> None:
        self._memos.pop(key, None)
        self.metrics.forget_routerconfig(key[0], key[1])

    @contextlib.asynccontextmanager
    async def _queued(self, key: Key) -> AsyncIterator[None]:
        """edgeroll_workqueue_depth counts RouterConfigs with a call waiting for their lock or running."""
        self._busy[key] += 1
        self.metrics.workqueue_depth.set(len(self._busy))
        try:
            yield
        finally:
            self._busy[key] -= 1
            if self._busy[key] <= 0:
                del self._busy[key]
            self.metrics.workqueue_depth.set(len(self._busy))

    def _time_propagation(self, memo: _Memo, result: ReconcileResult, started: float) -> None:
        """edgeroll_propagation_seconds, once per new generation or revision: from the moment this process
        first saw it to the reconcile that finds every target Ready on its digest."""
        desired = result.desired
        if desired is None or not desired.revisions:  # stalled, or nothing to propagate to
            return
        ready = ready_everywhere(result.status, desired)
        ident = (desired.generation, desired.revision)
        if ident != memo.propagating:
            first = memo.propagating is None
            new_generation = memo.propagating is None or memo.propagating[0] != desired.generation
            # A new generation is timed from its first sight (maybe a stalled reconcile before); a new
            # revision of the same generation (a ConfigMap edit) from the reconcile that rendered it.
            since = memo.seen_at if new_generation and memo.seen_generation == desired.generation else started
            memo.propagating, memo.propagating_since = ident, since
            # A restart that finds it in place saw nothing propagate.
            memo.propagated = first and ready
        if ready and not memo.propagated:
            self.metrics.propagation.observe(max(0.0, self.clock() - memo.propagating_since))
            memo.propagated = True

    def ownership_changed(self) -> None:
        """This replica took or lost shards: forget what we cached of every object (another replica may
        have written since) and look again now, fully; the loops of objects we do not own pass."""
        for memo in self._memos.values():
            memo.status, memo.resource_version, memo.desired = None, None, None
            memo.next_due, memo.last_full = 0.0, -math.inf
            memo.wake.set()

    def acting(self, obj: RouterConfigObject) -> Acting | None:
        return self.ownership.acting(obj.namespace, obj.name, obj.labels)

    def poke_all(self) -> None:
        """EdgeClusters changed: every loop checks whether its targets did."""
        for memo in self._memos.values():
            memo.poked = True
            memo.wake.set()

    def edge_changed(self, namespace: str, name: str) -> None:
        """An edge Deployment of this RouterConfig changed (the shared watch): reconcile it now, so its
        status follows the Deployment instead of the next progress tick."""
        for key, memo in self._memos.items():
            if key[0] == namespace and key[1] == name:
                memo.edge_changed = True
                memo.wake.set()

    def inputs_changed(self, namespace: str, name: str) -> None:
        """A ConfigMap this RouterConfig reads changed (the ConfigMap watch): reconcile it now and fully,
        so the ConfigMap is read again instead of at the next resync."""
        for key, memo in self._memos.items():
            if key[0] == namespace and key[1] == name:
                memo.inputs_changed = True
                memo.wake.set()

    @staticmethod
    def key_of(obj: RouterConfigObject) -> Key:
        return (obj.namespace, obj.name, obj.uid)

    async def _write(
        self, key: Key, memo: _Memo, obj: RouterConfigObject, new: RouterConfigStatus, acting: Acting
    ) -> None:
        """Patch the status where it differs, conditioned on the resourceVersion we last saw. A conflict
        (kopf's own annotation writes, or another replica's) re-reads the object and retries once, but
        only while we still hold its shard."""
        before = memo.status if memo.status is not None else parse_status(obj.status).to_wire()
        after = (
            new.model_copy(update={"owner": acting.owner}) if acting.owner is not None else new
        ).to_wire()
        if before == after:
            return
        version = memo.resource_version or obj.resource_version or None
        for attempt in range(2):
            try:
                written = await self.writer.patch_status(key[0], key[1], merge_diff(before, after), version)
            except StatusConflict:
                fresh = await self.writer.read_status(key[0], key[1])
                if attempt or fresh is None:
                    raise
                if self.acting(obj) != acting:
                    if acting.owner is not None:
                        self.ownership.depose(acting.owner.shard, acting.owner.term)
                    raise Deposed(f"{key[0]}/{key[1]}: another replica owns it now") from None
                before, version = fresh
                continue
            memo.status, memo.resource_version = after, written
            return

    def _prev(self, memo: _Memo, raw: Mapping[str, Any]) -> RouterConfigStatus:
        return parse_status(memo.status if memo.status is not None else raw)

    async def reconcile(
        self,
        obj: RouterConfigObject,
        clusters: Mapping[str, EdgeClusterInfo],
        emit: EventSink,
        full: bool = True,
    ) -> ReconcileResult | None:
        """Reconcile once; None when the object is being deleted (the finalizer owns it then)."""
        key = self.key_of(obj)
        memo = self._memo(key)
        if memo.seen_generation != obj.generation:
            memo.seen_generation, memo.seen_at = obj.generation, self.clock()
        if self.acting(obj) is None:
            return None  # another replica's shard
        async with self._queued(key), memo.lock:
            acting = self.acting(obj)  # the wait for the lock may have outlasted the lease
            if obj.deleting or memo.finalizing or acting is None:
                return None
            started = self.clock()
            if full:  # this pass reads every input: a change noticed from here on needs another one
                memo.inputs_changed = False

            async def persist(planned: RouterConfigStatus, events: Sequence[EventNote]) -> None:
                """status.rollout (with the clusters as planned) on record before the plan's actions
                run; then its events."""
                await self._write(key, memo, obj, planned, acting)
                for event in events:
                    emit(event)

            result = await self.reconciler.reconcile(
                obj, clusters, self._prev(memo, obj.status), memo.desired, full, persist
            )
            try:
                with self.metrics.step("report"):
                    await self._write(key, memo, obj, result.status, acting)
            except Deposed as exc:
                log.info("%s; its status is left to the new owner", exc)
                result.transient = True
            except Exception as exc:  # the hub is down or refuses: retry with backoff, keep going
                log.warning("patching the status of %s/%s failed: %s", key[0], key[1], exc)
                self.metrics.error("report", "StatusPatchFailed")
                result.transient = True
            for event in result.events:
                emit(event)
            log.debug(
                "reconciled %s/%s (%s): phase %s, %d events",
                key[0],
                key[1],
                "full" if full else "progress",
                result.status.phase,
                len(result.events),
            )
            memo.desired = result.desired
            self._time_propagation(memo, result, started)
            self.metrics.set_phase(key[0], key[1], result.status.phase)
            if full and not result.transient:
                memo.last_full = started
            if result.transient:
                memo.failures += 1
                delay = backoff(
                    memo.failures, self.settings.progress_seconds, self.settings.max_backoff_seconds
                )
            else:
                memo.failures = 0
                delay = result.requeue_after
            memo.next_due = started + delay
            memo.wake.set()
            return result

    async def run_loop(
        self,
        obj: Callable[[], RouterConfigObject],
        clusters: Callable[[], Mapping[str, EdgeClusterInfo]],
        emit: EventSink,
        stopped: Callable[[], bool],
    ) -> None:
        """Re-reconcile one object when due, until `stopped()`; the change handlers do the first run."""
        first = obj()
        memo = self._memo(self.key_of(first))
        memo.next_due = max(memo.next_due, self.clock() + self.settings.progress_seconds)
        while not stopped() and not memo.finalizing:
            # Cleared before looking, never after the reconcile: a wake-up that comes while it runs
            # (an edge Deployment event) must end the wait below at once, not at the next tick.
            memo.wake.clear()
            now = self.clock()
            if self.acting(obj()) is None:  # another replica's: ownership_changed wakes us if that changes
                if memo.edge_changed or memo.status is None:
                    self.metrics.forget_routerconfig(first.namespace, first.name)  # its owner reports it
                memo.edge_changed = memo.poked = memo.inputs_changed = False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(memo.wake.wait(), timeout=1.0)
                continue
            due = now >= memo.next_due or memo.edge_changed or memo.inputs_changed
            memo.edge_changed = False
            if not due and memo.poked:
                memo.poked = False
                desired = memo.desired
                spec = desired.spec if desired is not None else None
                due = desired is None or self.reconciler.fingerprint(spec, clusters()) != desired.targets
            if due:
                full = memo.inputs_changed or now - memo.last_full >= self.settings.resync_seconds
                try:
                    await self.reconcile(obj(), clusters(), emit, full=full)
                except Exception:  # never let one bad cycle end the loop
                    log.exception("reconciling %s/%s failed", first.namespace, first.name)
                    memo.failures += 1
                    memo.next_due = self.clock() + backoff(
                        memo.failures, self.settings.progress_seconds, self.settings.max_backoff_seconds
                    )
            wait = min(1.0, max(0.0, memo.next_due - self.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(memo.wake.wait(), timeout=wait)

    async def finalize(
        self, obj: RouterConfigObject, clusters: Mapping[str, EdgeClusterInfo], emit: EventSink
    ) -> FinalizeResult:
        key = self.key_of(obj)
        memo = self._memo(key)
        async with self._queued(key), memo.lock:
            memo.finalizing = True
            result = await self.reconciler.finalize(obj, clusters, self._prev(memo, obj.status))
            acting = self.acting(obj)
            try:
                if acting is not None:  # else the new owner writes it
                    await self._write(key, memo, obj, result.status, acting)
            except Exception as exc:
                log.warning("patching the status of %s/%s failed: %s", key[0], key[1], exc)
            for event in result.events:
                emit(event)
            self.metrics.set_phase(key[0], key[1], result.status.phase)
        if result.done:
            self.forget(key)
            self._finalized[key] = None
            while len(self._finalized) > 10_000:
                self._finalized.popitem(last=False)
        return result
