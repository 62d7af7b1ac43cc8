"""The election loop: one replica's shard leases, renewed every retry period (I/O through a LeaseStore).

Every `retry_period` the replica lists the leases once, renews its replica lease (how the others
count live replicas) and its shard leases, gives back shards over its fair share, and takes free or
expired ones up to it. `term(shard)` is what the rest of the operator asks before acting: it is None
from `renew_deadline` after the last renewal that succeeded, so a replica that cannot reach the hub
stops acting before any other can take its shards over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from edgeroll.sharding.leases import (
    REPLICA_PREFIX,
    LeaseClock,
    LeaseRecord,
    live_replicas,
    micro_time,
    plan_round,
    replica_lease_name,
    shard_lease_name,
)

log = logging.getLogger(__name__)


class LeaseConflict(Exception):
    """The lease changed since we read it (409), or was created by someone else first."""


class LeaseStore(Protocol):
    namespace: str

    async def list(self) -> list[dict[str, Any]]: ...

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]: ...

    async def replace(self, obj: Mapping[str, Any]) -> dict[str, Any]: ...

    async def delete(self, name: str, resource_version: str) -> None: ...


@dataclass(frozen=True)
class ElectionTimings:
    """client-go's defaults; renew_deadline < lease_duration keeps two holders from ever acting at once."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def problem(self) -> str | None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            return (
                "lease timings must satisfy 0 < retry period < renew deadline < lease duration, got "
                f"{self.retry_period:g} / {self.renew_deadline:g} / {self.lease_duration:g}"
            )
        return None


@dataclass
class Tenure:
    term: int  # the shard lease's leaseTransitions when we took it: our fencing token
    valid_until: float  # monotonic; acting stops here unless a renewal succeeds first


Callback = Callable[[set[int]], None]


class ShardElector:
    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        shards: int,
        timings: ElectionTimings = ElectionTimings(),
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_acquired: Callback = lambda shards: None,
        on_lost: Callback = lambda shards: None,
    ) -> None:
        self.store = store
        self.identity = identity
        self.shards = max(1, shards)
        self.timings = timings
        self.clock = clock
        self.wall = wall
        self.on_acquired = on_acquired
        self.on_lost = on_lost
        self._tenures: dict[int, Tenure] = {}
        self._leases = LeaseClock()
        self.halted: str | None = None
        self.live: dict[str, int | None] = {}

    # ---- what the operator asks -------------------------------------------------------------------

    def term(self, shard: int) -> int | None:
        """Our fencing term for `shard` while we may act on it, else None."""
        tenure = self._tenures.get(shard)
        if tenure is None or self.clock() >= tenure.valid_until:
            return None
        return tenure.term

    def acting(self) -> dict[int, int]:
        """shard -> term, for the shards we may act on now."""
        return {s: t for s in sorted(self._tenures) if (t := self.term(s)) is not None}

    def depose(self, shard: int, term: int) -> None:
        """Someone else wrote as this shard's owner while we held it under `term`: stop acting on it now.
        A refusal that comes back from an older term (a reconcile begun before we re-took the shard)
        leaves the newer tenure alone."""
        tenure = self._tenures.get(shard)
        if tenure is not None and tenure.term == term:
            del self._tenures[shard]
            self.on_lost({shard})

    # ---- one round ------------------------------------------------------------------------------

    def _record(self, name: str, holder: str, transitions: int, acquired: str, now: str) -> LeaseRecord:
        return LeaseRecord(
            name=name,
            holder=holder,
            duration_seconds=max(1, round(self.timings.lease_duration)),
            transitions=transitions,
            acquire_time=acquired,
            renew_time=now,
        )

    async def _write(self, record: LeaseRecord, previous: LeaseRecord | None, kind: str) -> LeaseRecord:
        body = record.to_object(self.store.namespace, kind)
        if previous is None:
            return LeaseRecord.from_object(await self.store.create(body))
        body["metadata"]["resourceVersion"] = previous.resource_version
        return LeaseRecord.from_object(await self.store.replace(body))

    async def _heartbeat(self, mine: LeaseRecord | None, now: str) -> None:
        """Renew our replica lease: the others count live replicas (and our shard count) from these."""
        name = replica_lease_name(self.identity)
        acquired = mine.acquire_time if mine is not None and mine.holder == self.identity else now
        record = self._record(name, self.identity, 0, acquired, now)
        record = LeaseRecord(**{**record.__dict__, "shards": self.shards})
        try:
            await self._write(record, mine, "replica")
        except LeaseConflict:
            pass  # written since we listed; the next round renews it
        except Exception as exc:
            log.warning("renewing the replica lease %s failed: %s", name, exc)

    async def _collect(self, members: Mapping[str, LeaseRecord], now: float) -> None:
        """Delete replica leases of replicas gone for long (a pid in the identity makes them pile up)."""
        for record in members.values():
            if record.holder != self.identity and self._leases.expired(
                record, now - self.timings.lease_duration
            ):
                with contextlib.suppress(Exception):
                    await self.store.delete(record.name, record.resource_version)

    async def run_round(self) -> None:
        started = self.clock()
        now = micro_time(self.wall())
        records = {r.name: r for r in map(LeaseRecord.from_object, await self.store.list())}
        # Seen when the answer came, not when we asked: a list held up in flight must not make a
        # record look older than it is (expiry counts from first sight). Tenures still count from
        # `started`, the earlier time, so both sides err on the safe side.
        read_at = self.clock()
        for record in records.values():
            self._leases.observe(record, read_at)
        self._leases.keep_only(set(records))
        members = {n: r for n, r in records.items() if n.startswith(REPLICA_PREFIX)}
        await self._heartbeat(members.get(replica_lease_name(self.identity)), now)
        live = live_replicas(members, self._leases, read_at)
        live[self.identity] = self.shards
        self.live = live
        shard_records = {s: records.get(shard_lease_name(s)) for s in range(self.shards)}
        plan = plan_round(
            self.identity, self.shards, set(self._tenures), shard_records, live, self._leases, read_at
        )
        if plan.halted != self.halted:
            (log.warning if plan.halted else log.info)("shard election %s", plan.halted or "resumed")
        self.halted = plan.halted
        gone: set[int] = set(plan.lost)
        for shard in plan.lost:
            self._tenures.pop(shard, None)
        for shard in plan.release:
            gone.add(shard)
            self._tenures.pop(shard, None)  # stop acting before the lease says so
            await self._release(shard_records[shard])
        for shard in plan.renew:
            if not await self._renew(shard, shard_records[shard], now, started):
                gone.add(shard)
        taken = {s for s in plan.acquire if await self._acquire(s, shard_records[s], now, started)}
        for shard, tenure in list(self._tenures.items()):
            if self.clock() >= tenure.valid_until:  # renewals failed for the whole deadline
                log.warning(
                    "shard %d: not renewed within %gs, standing down", shard, self.timings.renew_deadline
                )
                del self._tenures[shard]
                gone.add(shard)
        await self._collect(members, read_at)
        if gone:
            self.on_lost(gone)
        if taken:
            self.on_acquired(taken)

    async def _renew(self, shard: int, record: LeaseRecord | None, now: str, started: float) -> bool:
        """False when the lease is someone else's now; an unanswered renewal keeps the tenure until its
        deadline."""
        if record is None:
            self._tenures.pop(shard, None)
            return False
        renewed = self._record(record.name, self.identity, record.transitions, record.acquire_time, now)
        try:
            await self._write(renewed, record, "shard")
        except LeaseConflict:
            self._tenures.pop(shard, None)
            return False
        except Exception as exc:
            log.warning("renewing shard %d failed: %s", shard, exc)
            return True
        self._tenures[shard].valid_until = started + self.timings.renew_deadline
        return True

    async def _acquire(self, shard: int, record: LeaseRecord | None, now: str, started: float) -> bool:
        transitions = 0 if record is None else record.transitions + 1
        wanted = self._record(shard_lease_name(shard), self.identity, transitions, now, now)
        try:
            await self._write(wanted, record, "shard")
        except LeaseConflict:
            return False  # another replica was quicker
        except Exception as exc:
            log.warning("taking shard %d failed: %s", shard, exc)
            return False
        self._tenures[shard] = Tenure(transitions, started + self.timings.renew_deadline)
        log.info("holding shard %d (term %d) as %s", shard, transitions, self.identity)
        return True

    async def _release(self, record: LeaseRecord | None) -> None:
        """Give the lease back (holder "", as client-go's ReleaseOnCancel): the next holder need not wait."""
        if record is None or record.holder != self.identity:
            return
        released = LeaseRecord(**{**record.__dict__, "holder": "", "duration_seconds": 1})
        try:
            await self._write(released, record, "shard")
        except Exception as exc:
            log.info("releasing %s failed (it expires on its own): %s", record.name, exc)

    # ---- the loop ---------------------------------------------------------------------------------

    async def run(self, stopped: Callable[[], bool]) -> None:
        while not stopped():
            started = self.clock()
            try:
                await asyncio.wait_for(self.run_round(), timeout=self.timings.retry_period * 2)
            except Exception as exc:  # the hub is down: tenures lapse on their own deadline
                log.warning("shard election round failed: %r", exc)
                self._drop_lapsed()
            await asyncio.sleep(max(0.0, self.timings.retry_period - (self.clock() - started)))

    def _drop_lapsed(self) -> None:
        gone = {s for s, t in self._tenures.items() if self.clock() >= t.valid_until}
        for shard in gone:
            del self._tenures[shard]
        if gone:
            self.on_lost(gone)

    async def release_all(self) -> None:
        """On shutdown: stop acting, hand every shard back, and leave the live count at once."""
        held = set(self._tenures)
        self._tenures.clear()
        if held:
            self.on_lost(held)
        with contextlib.suppress(Exception):
            records = {r.name: r for r in map(LeaseRecord.from_object, await self.store.list())}
            for shard in held:
                await self._release(records.get(shard_lease_name(shard)))
            mine = records.get(replica_lease_name(self.identity))
            if mine is not None:
                await self.store.delete(mine.name, mine.resource_version)
