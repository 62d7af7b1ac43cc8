"""Lease records and one election round's decisions (pure), after client-go's leader election.

A lease is expired when its record has not changed for `leaseDurationSeconds` of *our* clock since we
first saw that record (client-go's observedTime): no replica trusts another's wall clock. The holder
stops acting `renew_deadline` after the start of its last successful renewal, which is before anyone
else can see the lease expire, as long as renew_deadline < lease duration.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edgeroll.sharding.shards import fair_shares, preference, release_order

API_VERSION = "coordination.k8s.io/v1"
KIND_LABEL = "edgeroll.io/lease"  # "shard" or "replica"
SHARDS_ANNOTATION = "edgeroll.io/shards"  # the shard count a replica runs with
MANAGED_BY = {"app.kubernetes.io/managed-by": "edgeroll"}
SHARD_PREFIX = "edgeroll-shard-"
REPLICA_PREFIX = "edgeroll-replica-"


def shard_lease_name(shard: int) -> str:
    return f"{SHARD_PREFIX}{shard}"


def replica_lease_name(identity: str) -> str:
    return REPLICA_PREFIX + hashlib.sha256(identity.encode()).hexdigest()[:12]


def micro_time(at: datetime) -> str:
    """Kubernetes MicroTime."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseRecord:
    name: str
    holder: str  # "" once released
    duration_seconds: int
    transitions: int
    acquire_time: str
    renew_time: str
    resource_version: str = ""
    shards: int | None = None  # replica leases: the shard count that replica runs with

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> LeaseRecord:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        raw_shards = str((meta.get("annotations") or {}).get(SHARDS_ANNOTATION, ""))
        return cls(
            name=str(meta.get("name", "")),
            holder=str(spec.get("holderIdentity") or ""),
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            transitions=int(spec.get("leaseTransitions") or 0),
            acquire_time=str(spec.get("acquireTime") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            resource_version=str(meta.get("resourceVersion") or ""),
            shards=int(raw_shards) if raw_shards.isdigit() else None,
        )

    def to_object(self, namespace: str, kind: str) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": namespace,
            "labels": {**MANAGED_BY, KIND_LABEL: kind},
        }
        if self.shards is not None:
            metadata["annotations"] = {SHARDS_ANNOTATION: str(self.shards)}
        if self.resource_version:
            metadata["resourceVersion"] = self.resource_version  # the update's precondition
        return {
            "apiVersion": API_VERSION,
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.holder,
                "leaseDurationSeconds": self.duration_seconds,
                "leaseTransitions": self.transitions,
                "acquireTime": self.acquire_time,
                "renewTime": self.renew_time,
            },
        }


class LeaseClock:
    """When this replica first saw each lease's current record, by its own monotonic clock."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[tuple[str, str, str, int, int], float]] = {}

    def observe(self, record: LeaseRecord, now: float) -> None:
        # Any write counts as a sign of life, also one whose renewTime repeats an earlier one (a
        # renewal held back in flight carries the time its round began).
        key = (
            record.resource_version,
            record.holder,
            record.renew_time,
            record.transitions,
            record.duration_seconds,
        )
        seen = self._seen.get(record.name)
        if seen is None or seen[0] != key:
            self._seen[record.name] = (key, now)

    def expired(self, record: LeaseRecord, now: float) -> bool:
        if not record.holder:
            return True
        seen = self._seen.get(record.name)
        return seen is not None and now - seen[1] >= record.duration_seconds

    def keep_only(self, names: Set[str]) -> None:
        for name in set(self._seen) - names:
            del self._seen[name]


@dataclass(frozen=True)
class RoundPlan:
    """What one replica does in one round; `lost` were held by us until another holder showed up."""

    renew: tuple[int, ...] = ()
    acquire: tuple[int, ...] = ()
    release: tuple[int, ...] = ()
    lost: tuple[int, ...] = ()
    halted: str | None = None  # why this replica acts on nothing this round


def live_replicas(records: Mapping[str, LeaseRecord], clock: LeaseClock, now: float) -> dict[str, int | None]:
    """Live replicas (identity -> their shard count) from the replica leases."""
    return {r.holder: r.shards for r in records.values() if not clock.expired(r, now)}


def plan_round(
    me: str,
    shards: int,
    held: Set[int],
    records: Mapping[int, LeaseRecord | None],
    live: Mapping[str, int | None],
    clock: LeaseClock,
    now: float,
) -> RoundPlan:
    """Renew what we hold; give back what is over our fair share; take free or expired shards up to it.

    Shares are sticky: a replica at ⌈N/R⌉ keeps its shards unless another live replica is below
    ⌊N/R⌋, so a replica that comes back does not pull a shard (and its rollouts) over for nothing."""
    disagree = sorted(who for who, n in live.items() if who != me and n is not None and n != shards)
    if disagree:
        # A rolling change of the shard count: old and new replicas would split RouterConfigs two ways
        # at once. Everyone stands down until one count is left.
        return RoundPlan(
            release=tuple(sorted(held)),
            halted=f"replicas {', '.join(disagree)} run with another shard count than {shards}",
        )
    lost = tuple(s for s in sorted(held) if (r := records.get(s)) is None or r.holder != me)
    still = [s for s in held if s not in lost]
    base, most = fair_shares(len(live), shards)
    counts = dict.fromkeys(live, 0)
    for record in records.values():
        if (
            record is not None
            and record.holder in counts
            and record.holder != me
            and not clock.expired(record, now)
        ):
            counts[record.holder] += 1
    needy = any(n < base for who, n in counts.items() if who != me)
    keep = most if not needy or len(still) <= base else base
    release = tuple(release_order(me, still)[: max(0, len(still) - keep)])
    renew = tuple(sorted(s for s in still if s not in release))
    free = [
        s for s in range(shards) if s not in held and ((r := records.get(s)) is None or clock.expired(r, now))
    ]
    # Up to ⌊N/R⌋ always; up to ⌈N/R⌉ only while nobody else is short of ⌊N/R⌋.
    room = (base if needy else most) - len(renew)
    acquire = tuple(preference(me, free)[: max(0, room)])
    return RoundPlan(renew=renew, acquire=acquire, release=release, lost=lost)
