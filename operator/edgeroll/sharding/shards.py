"""Which shard a RouterConfig belongs to, and how many shards each live replica should hold (pure)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

SHARD_LABEL = "edgeroll.io/shard"  # pins a RouterConfig to a shard: "0" .. "N-1"
PROBE_SHARD = 0  # its holder alone probes EdgeClusters and writes their status


def _score(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest()[:8], "big")


def pinned_shard(labels: Mapping[str, str], shards: int) -> int | None:
    """The shard the label pins, or None when there is no label or it is not an index below `shards`."""
    raw = labels.get(SHARD_LABEL)
    if raw is None or not raw.isdigit() or int(raw) >= shards:
        return None
    return int(raw)


def shard_of(namespace: str, name: str, labels: Mapping[str, str], shards: int) -> int:
    """A stable shard for namespace/name (the same in every replica and every release), unless pinned."""
    pinned = pinned_shard(labels, shards)
    if pinned is not None:
        return pinned
    return _score(namespace, name) % max(1, shards)


def fair_shares(replicas: int, shards: int) -> tuple[int, int]:
    """The fewest and the most shards one of `replicas` live replicas should hold: ⌊N/R⌋ and ⌈N/R⌉."""
    base, extra = divmod(shards, max(1, replicas))
    return base, base + (1 if extra else 0)


def preference(me: str, candidates: Iterable[int]) -> list[int]:
    """Shards in the order `me` prefers them (rendezvous hashing): replicas prefer different shards,
    so they rarely race for the same free lease."""
    return sorted(candidates, key=lambda shard: _score(me, str(shard)), reverse=True)


def release_order(me: str, held: Sequence[int]) -> list[int]:
    """Shards to give up first when holding more than the fair share: the least preferred."""
    return list(reversed(preference(me, held)))
