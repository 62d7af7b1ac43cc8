"""Probes one EdgeCluster on a schedule and keeps its status current, without idle writes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from edgeroll.api.edgecluster import EdgeClusterStatus
from edgeroll.api.mergepatch import merge_diff
from edgeroll.clusters.registry import ClusterRegistry, EdgeClusterInfo, ProbeResult
from edgeroll.clusters.status import edgecluster_status
from edgeroll.operator_metrics import OperatorMetrics
from edgeroll.settings import OperatorSettings

log = logging.getLogger(__name__)


class EdgeClusterStatusWriter(Protocol):
    async def patch_edgecluster_status(self, name: str, patch: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class ProbeOutcome:
    result: ProbeResult
    changed: bool  # reachability flipped (RouterConfigs should look again)


class EdgeClusterProber:
    def __init__(
        self,
        registry: ClusterRegistry,
        writer: EdgeClusterStatusWriter,
        settings: OperatorSettings,
        now: Callable[[], str],
        clock: Callable[[], float] = time.monotonic,
        metrics: OperatorMetrics | None = None,
        may_probe: Callable[[], bool] = lambda: True,
    ) -> None:
        self.registry = registry
        # With several replicas, only shard 0's holder probes and writes EdgeCluster status.
        self.may_probe = may_probe
        self.writer = writer
        self.settings = settings
        self.now = now
        self.clock = clock
        self.metrics = metrics if metrics is not None else OperatorMetrics()
        self._written: dict[str, tuple[dict[str, Any], float]] = {}  # name -> (status, when)

    async def probe(
        self, info: EdgeClusterInfo, generation: int, raw_status: Mapping[str, Any]
    ) -> ProbeOutcome:
        before = self.registry.last_probe(info.name)
        result = await self.registry.probe(info)
        self.metrics.set_reachable(info.name, result.reachable)
        written = self._written.get(info.name)
        try:
            prev = EdgeClusterStatus.model_validate(written[0] if written else dict(raw_status))
        except ValidationError:
            prev = EdgeClusterStatus()
        last = written[1] if written else -float("inf")
        hb = self.settings.probe_heartbeat_seconds
        heartbeat = hb > 0 and self.clock() - last >= hb and written is not None
        status = edgecluster_status(
            prev,
            result,
            paused=bool(info.spec and info.spec.paused),
            generation=generation,
            now=self.now(),
            heartbeat=heartbeat,
        )
        old, new = prev.to_wire(), status.to_wire()
        if old != new:
            try:
                await self.writer.patch_edgecluster_status(info.name, merge_diff(old, new))
                self._written[info.name] = (new, self.clock())
            except Exception as exc:
                log.warning("patching the status of EdgeCluster %s failed: %s", info.name, exc)
        elif written is None:
            self._written[info.name] = (new, self.clock())
        changed = before is None or before.reachable != result.reachable
        return ProbeOutcome(result, changed)

    async def run_loop(
        self,
        info: Callable[[], tuple[EdgeClusterInfo, int, Mapping[str, Any]]],
        on_change: Callable[[], None],
        stopped: Callable[[], bool],
        wake: asyncio.Event,
    ) -> None:
        while not stopped():
            probing = self.may_probe()
            try:
                if probing:
                    outcome = await self.probe(*info())
                    if outcome.changed:
                        on_change()
                else:
                    self._written.pop(info()[0].name, None)  # another replica writes it meanwhile
            except Exception:
                log.exception("probing failed")
            wake.clear()
            deadline = self.clock() + (self.settings.probe_seconds if probing else 1.0)
            while not stopped() and not wake.is_set() and self.clock() < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=min(1.0, max(0.0, deadline - self.clock())))

    def forget(self, name: str) -> None:
        """The EdgeCluster is gone: its status memory and its reachability series go too."""
        self._written.pop(name, None)
        self.metrics.forget_edgecluster(name)


Snapshot = tuple[EdgeClusterInfo, int, Mapping[str, Any]]  # info, generation, raw status


class ProbeLoops:
    """One probe loop per EdgeCluster, started and stopped from watch events.

    Not kopf daemons on purpose: kopf guards daemons with a finalizer, and an
    EdgeCluster has nothing to clean up, so it must stay deletable while the
    operator is down.
    """

    def __init__(self, prober: EdgeClusterProber, on_change: Callable[[], None]) -> None:
        self.prober = prober
        self.on_change = on_change
        self._latest: dict[str, Snapshot] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def observe(self, info: EdgeClusterInfo, generation: int, status: Mapping[str, Any]) -> None:
        """The EdgeCluster as last seen; starts its loop, or probes now when its spec or labels changed."""
        name = info.name
        before = self._latest.get(name)
        self._latest[name] = (info, generation, status)
        task = self._tasks.get(name)
        if task is None or task.done():
            wake = self._wakes.setdefault(name, asyncio.Event())
            self._tasks[name] = asyncio.create_task(
                self.prober.run_loop(
                    lambda: self._latest[name], self.on_change, lambda: name not in self._latest, wake
                ),
                name=f"probe-{name}",
            )
        elif before is not None and (before[0].labels, before[0].spec) != (info.labels, info.spec):
            self._wakes[name].set()

    async def forget(self, name: str) -> None:
        self._latest.pop(name, None)
        self._wakes.pop(name, asyncio.Event()).set()
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.prober.forget(name)
        await self.prober.registry.forget(name)

    async def close(self) -> None:
        for name in list(self._tasks):
            await self.forget(name)
