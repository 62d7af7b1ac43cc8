"""A simulated apiserver for Leases, with a driver that interleaves replicas' requests at will.

Each replica's store call parks until the driver lets it through; the op runs at the simulated time
of that moment. So a request can be held back for as long as the driver likes: a replica paused
between reading a lease and writing it (a GC pause, a slow network) is the case that matters.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from edgeroll.sharding.elector import ElectionTimings, LeaseConflict, ShardElector

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class SimApiserver:
    def __init__(self) -> None:
        self.now = 0.0  # seconds of simulated time
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.writes: list[tuple[float, str, str]] = []  # (time, lease, holder) of every accepted write

    def _stored(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(dict(obj))
        stored["metadata"]["resourceVersion"] = str(self.version)
        name = stored["metadata"]["name"]
        self.objects[name] = stored
        self.writes.append((self.now, name, str(stored["spec"].get("holderIdentity", ""))))
        return copy.deepcopy(stored)

    def list(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for o in self.objects.values()]

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        if obj["metadata"]["name"] in self.objects:
            raise LeaseConflict("exists")
        return self._stored(obj)

    def replace(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        live = self.objects.get(name)
        if live is None or live["metadata"]["resourceVersion"] != obj["metadata"].get("resourceVersion"):
            raise LeaseConflict("stale")
        return self._stored(obj)

    def delete(self, name: str, resource_version: str) -> None:
        live = self.objects.get(name)
        if live is not None and live["metadata"]["resourceVersion"] == resource_version:
            del self.objects[name]


@dataclass
class Pending:
    who: str
    gate: asyncio.Future[None]


@dataclass
class ReplicaStore:
    """One replica's view of the simulated apiserver; each call waits for the driver's go."""

    sim: SimApiserver
    who: str
    queue: list[Pending]
    namespace: str = "edgeroll"

    async def _turn(self) -> None:
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.append(Pending(self.who, gate))
        await gate

    async def list(self) -> list[dict[str, Any]]:
        await self._turn()
        return self.sim.list()

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        await self._turn()
        return self.sim.create(obj)

    async def replace(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        await self._turn()
        return self.sim.replace(obj)

    async def delete(self, name: str, resource_version: str) -> None:
        await self._turn()
        self.sim.delete(name, resource_version)


@dataclass
class Replica:
    name: str
    elector: ShardElector
    task: asyncio.Task[None] | None = None
    alive: bool = True


@dataclass
class Fleet:
    shards: int
    timings: ElectionTimings = field(default_factory=ElectionTimings)
    sim: SimApiserver = field(default_factory=SimApiserver)
    queue: list[Pending] = field(default_factory=list)
    replicas: list[Replica] = field(default_factory=list)

    def join(self, rate: float = 1.0, offset: float = 0.0) -> Replica:
        name = f"replica-{len(self.replicas)}/1"
        sim = self.sim
        elector = ShardElector(
            ReplicaStore(sim, name, self.queue),
            name,
            self.shards,
            self.timings,
            clock=lambda: offset + sim.now * rate,  # each replica's own monotonic clock
            wall=lambda: EPOCH + timedelta(seconds=sim.now),
        )
        replica = Replica(name, elector)
        self.replicas.append(replica)
        return replica

    async def settle(self) -> None:
        """Let every runnable task go as far as it can (to its next store call, or its end)."""
        for _ in range(20):
            await asyncio.sleep(0)

    async def start_rounds(self) -> None:
        for r in self.replicas:
            if r.alive and (r.task is None or r.task.done()):
                if r.task is not None and r.task.exception() is not None:
                    raise r.task.exception()  # type: ignore[misc]
                r.task = asyncio.create_task(r.elector.run_round())
        await self.settle()

    def kill(self, replica: Replica) -> None:
        """kill -9: no release, no more requests; its leases stay until they expire."""
        replica.alive = False
        if replica.task is not None:
            replica.task.cancel()
        self.queue[:] = [p for p in self.queue if p.who != replica.name]

    async def let_through(self, index: int) -> None:
        pending = self.queue.pop(index % len(self.queue))
        pending.gate.set_result(None)
        await self.settle()

    def acting(self) -> dict[int, list[str]]:
        """shard -> the live replicas that would act on it right now."""
        out: dict[int, list[str]] = {s: [] for s in range(self.shards)}
        for r in self.replicas:
            if r.alive:
                for shard in r.elector.acting():
                    out[shard].append(r.name)
        return out

    async def close(self) -> None:
        for r in self.replicas:
            if r.task is not None:
                r.task.cancel()
        await self.settle()
