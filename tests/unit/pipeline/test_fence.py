"""The write fence on its own: the plan goes on record once, at the first write, and every write of the
pass waits for it; a refusal stops them all; a pass that writes nothing never records."""

from __future__ import annotations

import asyncio

import pytest

from edgeroll.pipeline.fence import PlanNotRecorded, StatusWrites, WriteFence, status_writes

pytestmark = pytest.mark.unit


def test_two_status_writes_only_when_an_action_writes() -> None:
    assert status_writes(True) is StatusWrites.PLAN_THEN_REPORT
    assert status_writes(False) is StatusWrites.REPORT_ONLY


async def test_a_pass_that_writes_nothing_never_records_the_plan() -> None:
    calls = 0

    async def record() -> None:
        nonlocal calls
        calls += 1

    fence = WriteFence(record)
    await fence.settled()
    assert (calls, fence.writes, fence.refused) == (0, StatusWrites.REPORT_ONLY, False)


async def test_the_plan_is_recorded_once_and_every_writer_waits_for_it() -> None:
    order: list[str] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def record() -> None:
        order.append("record started")
        started.set()
        await release.wait()
        order.append("recorded")

    fence = WriteFence(record)
    waiting = 0

    async def writer(name: str) -> None:
        nonlocal waiting
        waiting += 1
        await fence.pass_through()
        order.append(name)

    writers = [asyncio.create_task(writer(n)) for n in ("eu", "us", "ap")]
    await asyncio.wait_for(started.wait(), timeout=5)
    assert waiting == 3  # every writer reached the fence before the record could start
    assert order == ["record started"]  # nobody writes while the plan is not on record
    release.set()
    await asyncio.gather(*writers)
    assert order[:2] == ["record started", "recorded"] and sorted(order[2:]) == ["ap", "eu", "us"]
    assert fence.writes is StatusWrites.PLAN_THEN_REPORT and not fence.refused
    await fence.pass_through()  # later writes pass at once, without a second record
    assert order.count("record started") == 1


async def test_a_refused_record_stops_every_write() -> None:
    async def record() -> None:
        raise RuntimeError("409: another replica owns it now")

    fence = WriteFence(record)
    results = await asyncio.gather(fence.pass_through(), fence.pass_through(), return_exceptions=True)
    assert all(isinstance(r, PlanNotRecorded) for r in results)
    assert fence.refused
    with pytest.raises(PlanNotRecorded):
        await fence.pass_through()


async def test_a_writer_that_gives_up_does_not_cancel_the_record_the_others_wait_for() -> None:
    release = asyncio.Event()
    recorded = False

    async def record() -> None:
        nonlocal recorded
        await release.wait()
        recorded = True

    fence = WriteFence(record)
    impatient = asyncio.create_task(fence.pass_through())
    patient = asyncio.create_task(fence.pass_through())
    with pytest.raises(TimeoutError):  # as `_guarded` gives up on a cluster
        await asyncio.wait_for(impatient, timeout=0.01)
    release.set()
    await asyncio.wait_for(patient, timeout=5)
    assert recorded and impatient.cancelled() and not fence.refused


async def test_without_a_recorder_writes_pass() -> None:
    fence = WriteFence(None)
    await fence.pass_through()
    assert fence.writes is StatusWrites.REPORT_ONLY and not fence.refused
