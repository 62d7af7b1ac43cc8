"""The manifest read started before the render: one read, the same outcome, no write if unused."""

from __future__ import annotations

import asyncio
import json

import pytest

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.publish.history import Manifest, manifest_key
from edgeroll.publish.memory import InMemoryRevisionStore
from edgeroll.publish.publisher import RevisionPublisher
from edgeroll.render.revision import Revision, make_revision

pytestmark = pytest.mark.unit

KEY = b"k" * 32
MANIFEST = manifest_key("p", "ns", "cfg")


def rev(n: int) -> Revision:
    return make_revision(ConfigFormat.JSON, {"n": n})


class GatedStore(InMemoryRevisionStore):
    """Manifest reads wait for `gate`: a read in flight can be seen as such."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = asyncio.Event()
        self.gate = asyncio.Event()

    async def read_manifest(self, key: str) -> Manifest | None:
        self.reading.set()
        await self.gate.wait()
        return await super().read_manifest(key)


async def test_the_read_runs_during_the_render_and_publish_uses_it() -> None:
    store = GatedStore()
    store.conditional_manifest = False  # else our own manifest write lets the publish skip the read
    pub = RevisionPublisher(store, "p")
    store.gate.set()
    await pub.publish("ns", "cfg", [rev(0)], KEY, now="t0")
    store.gate.clear()
    store.reading.clear()
    gets = store.counters["get"]
    async with pub.manifest_read_ahead("ns", "cfg") as ahead:
        await asyncio.wait_for(store.reading.wait(), 5)  # in flight before any revision exists
        revisions = [rev(1)]  # the render
        store.gate.set()
        out = await pub.publish("ns", "cfg", revisions, KEY, now="t1", ahead=ahead)
    assert out.written == [rev(1).digest]
    assert store.counters["get"] - gets == 1  # the read-ahead was the only manifest read
    listed = [e["digest"] for e in json.loads(store.objects[MANIFEST][0])["revisions"]]
    assert listed == [rev(1).digest, rev(0).digest]


async def test_an_unused_read_ahead_is_cancelled_and_writes_nothing() -> None:
    store = GatedStore()
    pub = RevisionPublisher(store, "p")
    store.objects[MANIFEST] = (b"{not json", None)  # damaged: publish would rebuild it (a write)
    with pytest.raises(RuntimeError, match="render failed"):
        async with pub.manifest_read_ahead("ns", "cfg") as ahead:
            await asyncio.wait_for(store.reading.wait(), 5)
            raise RuntimeError("render failed")
    assert ahead.task is not None and ahead.task.cancelled()
    assert store.counters["put"] == 0 and store.objects[MANIFEST] == (b"{not json", None)


async def test_a_damaged_manifest_read_ahead_is_rebuilt_by_publish_after_the_render() -> None:
    store = InMemoryRevisionStore()
    store.conditional_manifest = False  # a read-ahead runs (test_manifest_if_match.py: without one)
    pub = RevisionPublisher(store, "p")
    await pub.publish("ns", "cfg", [rev(0)], KEY, now="2026-01-01T00:00:00Z")
    store.objects[MANIFEST] = (b"{not json", None)
    async with pub.manifest_read_ahead("ns", "cfg") as ahead:
        assert ahead.task is not None
        await asyncio.wait([ahead.task], timeout=5)  # read, found damaged: nothing written yet
        assert store.counters["put"] == 2  # the object and the manifest of the first publish
        out = await pub.publish("ns", "cfg", [rev(1)], KEY, now="2026-01-02T00:00:00Z", ahead=ahead)
    assert out.rebuilt == MANIFEST and out.recovered == 1
    listed = [e["digest"] for e in json.loads(store.objects[MANIFEST][0])["revisions"]]
    assert listed == [rev(1).digest, rev(0).digest]


async def test_a_read_ahead_serves_one_publish_of_its_own_manifest() -> None:
    store = InMemoryRevisionStore()
    pub = RevisionPublisher(store, "p")
    async with pub.manifest_read_ahead("ns", "cfg") as ahead:
        with pytest.raises(ValueError, match="cannot serve"):
            await pub.publish("ns", "other", [rev(0)], KEY, now="t", ahead=ahead)
    async with pub.manifest_read_ahead("ns", "cfg") as ahead:
        await pub.publish("ns", "cfg", [rev(0)], KEY, now="t", ahead=ahead)
        with pytest.raises(ValueError, match="nor a second one"):  # it would hide the manifest just written
            await pub.publish("ns", "cfg", [rev(1)], KEY, now="t", ahead=ahead)
