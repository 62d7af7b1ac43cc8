"""Whether this replica may act on a RouterConfig now, and what it stamps in status.owner."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from edgeroll.api.routerconfig import OwnerStatus
from edgeroll.sharding.shards import PROBE_SHARD, shard_of


@dataclass(frozen=True)
class Acting:
    """Leave to act on one RouterConfig; `owner` is what its status.owner says (None: no elections)."""

    owner: OwnerStatus | None = None


class Ownership(Protocol):
    def acting(self, namespace: str, name: str, labels: Mapping[str, str]) -> Acting | None:
        """Leave to act on this RouterConfig now, or None: another replica owns it."""
        ...

    def probes_here(self) -> bool:
        """Whether this replica probes the EdgeClusters and writes their status."""
        ...

    def depose(self, shard: int, term: int) -> None:
        """Someone else wrote as the owner while we held `shard` under `term`: stop acting on it."""
        ...


class SoleOwner:
    """One process acting on everything, without leases (unit tests, tools)."""

    def acting(self, namespace: str, name: str, labels: Mapping[str, str]) -> Acting | None:
        return Acting()

    def probes_here(self) -> bool:
        return True

    def depose(self, shard: int, term: int) -> None:
        pass


class Terms(Protocol):
    identity: str
    shards: int

    def term(self, shard: int) -> int | None: ...

    def depose(self, shard: int, term: int) -> None: ...


class ShardAssignment:
    """Ownership by shard lease (sharding/elector.py): act on a RouterConfig while holding its shard."""

    def __init__(self, elector: Terms) -> None:
        self.elector = elector

    def shard(self, namespace: str, name: str, labels: Mapping[str, str]) -> int:
        return shard_of(namespace, name, labels, self.elector.shards)

    def acting(self, namespace: str, name: str, labels: Mapping[str, str]) -> Acting | None:
        shard = self.shard(namespace, name, labels)
        term = self.elector.term(shard)
        if term is None:
            return None
        return Acting(OwnerStatus(shard=shard, replica=self.elector.identity, term=term))

    def probes_here(self) -> bool:
        return self.elector.term(PROBE_SHARD) is not None

    def depose(self, shard: int, term: int) -> None:
        self.elector.depose(shard, term)
