"""No shard ever has two acting owners, whatever the interleaving; and the shards end up spread.

The replicas run the real ShardElector against a simulated apiserver (sharding_sim.py) on a
simulated clock. Hypothesis picks, step by step, which replica's pending request goes through, how
far time jumps, who is killed (kill -9: its leases stay until they expire), who joins, and whose
clock runs a little fast or slow. A request can be held back for as long as the draw likes: the
replica is then paused between reading a lease and writing it.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sharding_sim import Fleet

from edgeroll.sharding.elector import ElectionTimings
from edgeroll.sharding.shards import fair_shares

pytestmark = pytest.mark.unit

TIMINGS = ElectionTimings(lease_duration=15.0, renew_deadline=10.0, retry_period=2.0)


def assert_one_owner(fleet: Fleet) -> None:
    for shard, owners in fleet.acting().items():
        assert len(owners) <= 1, f"t={fleet.sim.now:.2f}: shard {shard} acted on by {owners}"


async def play(data: st.DataObject, shards: int, replicas: int) -> Fleet:
    fleet = Fleet(shards, TIMINGS)
    for _ in range(replicas):
        fleet.join(rate=data.draw(st.floats(0.995, 1.005)), offset=data.draw(st.floats(0, 1000)))
    paused: set[str] = set()  # replicas whose requests are held back (a GC pause, a slow link)
    steps = data.draw(st.integers(20, 250))
    moves = ["through"] * 6 + ["tick"] * 3 + ["jump", "pause", "resume", "kill", "join"]
    for _ in range(steps):
        await fleet.start_rounds()
        assert_one_owner(fleet)
        move = data.draw(st.sampled_from(moves))
        alive = [r for r in fleet.replicas if r.alive]
        if move == "through":
            ready = [i for i, p in enumerate(fleet.queue) if p.who not in paused]
            if ready:
                await fleet.let_through(ready[data.draw(st.integers(0, len(ready) - 1))])
        elif move == "tick":
            fleet.sim.now += data.draw(st.floats(0.0, 3.0))
        elif move == "jump":  # time passes while requests wait
            fleet.sim.now += data.draw(st.floats(3.0, 20.0))
        elif move == "pause":
            paused.add(alive[data.draw(st.integers(0, len(alive) - 1))].name)
        elif move == "resume" and paused:
            paused.discard(sorted(paused)[data.draw(st.integers(0, len(paused) - 1))])
        elif move == "kill" and len(alive) > 1:
            fleet.kill(alive[data.draw(st.integers(0, len(alive) - 1))])
        elif move == "join" and len(fleet.replicas) < 6:
            fleet.join(rate=data.draw(st.floats(0.995, 1.005)))
        assert_one_owner(fleet)
    return fleet


async def heal(fleet: Fleet) -> None:
    """Requests answer at once, rounds every retry period, for a few lease durations."""
    until = fleet.sim.now + 6 * TIMINGS.lease_duration
    while fleet.sim.now < until:
        await fleet.start_rounds()
        while fleet.queue:  # this round's requests, old held-back ones first
            await fleet.let_through(0)
            assert_one_owner(fleet)
        fleet.sim.now += TIMINGS.retry_period


@settings(max_examples=int(__import__("os").environ.get("EDGEROLL_PROPERTY_EXAMPLES", "150")))
@given(data=st.data(), shards=st.integers(1, 6), replicas=st.integers(1, 4))
def test_no_shard_ever_has_two_acting_owners_and_all_end_owned(
    data: st.DataObject, shards: int, replicas: int
) -> None:
    async def run() -> None:
        fleet = await play(data, shards, replicas)
        try:
            await heal(fleet)
            owners = fleet.acting()
            assert all(len(o) == 1 for o in owners.values()), owners  # every shard has its owner again
            live = [r.name for r in fleet.replicas if r.alive]
            held = [sum(name in o for o in owners.values()) for name in live]
            base, most = fair_shares(len(live), shards)
            assert all(base <= n <= most for n in held), held  # and they are spread
        finally:
            await fleet.close()

    asyncio.run(run())


def test_a_replica_paused_between_read_and_write_has_stood_down_before_its_successor_acts() -> None:
    """The classic case, spelled out: A holds shard 0; A's renewal is held back for 30 s; B takes the
    shard after the lease expires by B's clock; A's late renewal is refused and A never acted past its
    renew deadline."""

    async def run() -> None:
        fleet = Fleet(1, TIMINGS)
        a = fleet.join()
        await fleet.start_rounds()
        while fleet.queue:  # A's first round: it takes shard 0
            await fleet.let_through(0)
        assert fleet.acting() == {0: [a.name]}
        fleet.sim.now += TIMINGS.retry_period
        await fleet.start_rounds()
        await fleet.let_through(0)  # A's list goes through; its renewals now wait
        b = fleet.join()
        stood_down = None
        while fleet.acting()[0] != [b.name]:
            fleet.sim.now += 1.0
            await fleet.start_rounds()
            for i in range(len(fleet.queue) - 1, -1, -1):
                if fleet.queue[i].who == b.name:
                    await fleet.let_through(i)
            if stood_down is None and not a.elector.acting():
                stood_down = fleet.sim.now
            assert_one_owner(fleet)
            assert fleet.sim.now < 60, "B never took over"
        took_over = fleet.sim.now
        assert (
            stood_down is not None
            and took_over - stood_down >= TIMINGS.lease_duration - TIMINGS.renew_deadline - 2
        )
        while fleet.queue:  # A's late renewal: refused, as its lease was taken
            await fleet.let_through(0)
        await fleet.start_rounds()
        while fleet.queue:
            await fleet.let_through(0)
        assert fleet.acting() == {0: [b.name]}
        await fleet.close()

    asyncio.run(run())


def test_a_refusal_from_an_older_term_leaves_the_newer_tenure_alone() -> None:
    """A reconcile begun under term 1 is refused after the replica re-took the shard as term 2: only a
    depose for the current term ends the tenure."""

    async def run() -> None:
        fleet = Fleet(1, TIMINGS)
        a = fleet.join()
        await fleet.start_rounds()
        while fleet.queue:
            await fleet.let_through(0)
        term = a.elector.term(0)
        assert term is not None
        a.elector.depose(0, term - 1)
        assert a.elector.term(0) == term
        a.elector.depose(0, term)
        assert a.elector.term(0) is None
        await fleet.close()

    asyncio.run(run())
