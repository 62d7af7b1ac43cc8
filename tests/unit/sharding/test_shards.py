"""Which shard a RouterConfig is in, and how shards spread over replicas (pure)."""

from __future__ import annotations

import pytest

from edgeroll.sharding.shards import SHARD_LABEL, fair_shares, pinned_shard, preference, shard_of

pytestmark = pytest.mark.unit


def test_the_shard_is_stable_and_spreads() -> None:
    names = [("team-a", f"graph-{i}") for i in range(400)]
    first = [shard_of(ns, n, {}, 4) for ns, n in names]
    assert first == [shard_of(ns, n, {}, 4) for ns, n in names]  # the same in every replica
    counts = [first.count(s) for s in range(4)]
    assert min(counts) > 60, counts  # 100 each on average; a hash that piles up would fail
    assert shard_of("team-a", "graph", {}, 1) == 0


def test_a_label_pins_the_shard_and_a_bad_one_is_ignored() -> None:
    assert shard_of("a", "b", {SHARD_LABEL: "3"}, 4) == 3
    assert pinned_shard({SHARD_LABEL: "4"}, 4) is None  # out of range
    assert pinned_shard({SHARD_LABEL: "-1"}, 4) is None
    assert pinned_shard({SHARD_LABEL: "two"}, 4) is None
    assert shard_of("a", "b", {SHARD_LABEL: "9"}, 4) == shard_of("a", "b", {}, 4)


@pytest.mark.parametrize(
    ("shards", "replicas", "shares"),
    [(1, 1, (1, 1)), (1, 3, (0, 1)), (4, 3, (1, 2)), (16, 5, (3, 4)), (8, 4, (2, 2))],
)
def test_fair_shares_are_the_floor_and_the_ceiling(
    shards: int, replicas: int, shares: tuple[int, int]
) -> None:
    assert fair_shares(replicas, shards) == shares


def test_replicas_prefer_different_shards() -> None:
    firsts = {preference(f"pod-{i}/1", range(8))[0] for i in range(8)}
    assert len(firsts) > 3  # rendezvous hashing: not everyone races for shard 0
