"""After its own manifest write, a publish of a new digest skips the manifest read: its manifest write
carries If-Match with the ETag it wrote, which proves nobody wrote the manifest since; when somebody
did (or deleted it), the write is refused, and the publish reads the manifest and records anew."""

from __future__ import annotations

import json

import pytest

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.publish.history import Manifest, manifest_key
from edgeroll.publish.memory import InMemoryRevisionStore
from edgeroll.publish.publisher import RevisionPublisher
from edgeroll.publish.store import PublishError
from edgeroll.render.revision import Revision, make_revision

pytestmark = pytest.mark.unit

KEY = b"k" * 32
MANIFEST = manifest_key("p", "ns", "cfg")


def rev(n: int) -> Revision:
    return make_revision(ConfigFormat.JSON, {"n": n})


def listed(store: InMemoryRevisionStore) -> list[str]:
    return [e["digest"] for e in json.loads(store.objects[MANIFEST][0])["revisions"]]


class RecordingStore(InMemoryRevisionStore):
    """Writes in order, with the If-Match each manifest write carried."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, str | None]] = []

    async def put_if_absent(self, key: str, body: bytes, signature: str) -> bool:
        self.log.append((key, None))
        return await super().put_if_absent(key, body, signature)

    async def write_manifest(self, key: str, manifest: Manifest, if_match: str | None = None) -> None:
        self.log.append((key, if_match))
        await super().write_manifest(key, manifest, if_match)


async def started() -> tuple[RecordingStore, RevisionPublisher]:
    store = RecordingStore()
    pub = RevisionPublisher(store, "p")
    await pub.publish("ns", "cfg", [rev(0)], KEY, now="t0")
    store.log.clear()
    return store, pub


async def test_a_new_digest_after_our_own_write_reads_no_manifest_and_writes_with_if_match() -> None:
    store, pub = await started()
    etag = store.written_manifest(MANIFEST)
    assert etag is not None
    gets = store.counters["get"]
    async with pub.manifest_read_ahead("ns", "cfg") as ahead:
        assert ahead.task is None  # no read started during the render
        out = await pub.publish("ns", "cfg", [rev(1)], KEY, now="t1", ahead=ahead)
    assert out.written == [rev(1).digest] and store.counters["get"] == gets
    assert store.log == [(pub.key_for("ns", "cfg", rev(1).digest), None), (MANIFEST, etag[0])]
    assert listed(store) == [rev(1).digest, rev(0).digest]
    with pytest.raises(ValueError, match="nor a second one"):
        await pub.publish("ns", "cfg", [rev(2)], KEY, now="t", ahead=ahead)


async def test_a_manifest_written_by_another_is_read_and_nothing_it_lists_is_lost() -> None:
    store, pub = await started()
    other = InMemoryRevisionStore()  # another replica's writes to the same manifest
    other.objects = store.objects
    await RevisionPublisher(other, "p").publish("ns", "cfg", [rev(5)], KEY, now="t5")
    out = await pub.publish("ns", "cfg", [rev(1)], KEY, now="t1")
    assert out.written == [rev(1).digest]
    # Object first, the refused conditional write, then the unconditional one after a read.
    obj = pub.key_for("ns", "cfg", rev(1).digest)
    assert [k for k, _ in store.log] == [obj, MANIFEST, MANIFEST]
    assert store.log[1][1] is not None and store.log[2][1] is None
    assert listed(store) == [rev(1).digest, rev(5).digest, rev(0).digest]
    assert store.written_manifest(MANIFEST) is not None  # ours again


async def test_a_deleted_manifest_is_written_anew_after_the_refusal() -> None:
    store, pub = await started()
    del store.objects[MANIFEST]
    out = await pub.publish("ns", "cfg", [rev(1)], KEY, now="t1")
    assert out.written == [rev(1).digest] and listed(store) == [rev(1).digest]


async def test_nothing_new_reads_the_manifest_since_no_write_would_prove_it() -> None:
    store, pub = await started()
    gets = store.counters["get"]
    again = await pub.publish("ns", "cfg", [rev(0)], KEY, now="t1")
    assert again.written == [] and store.counters["get"] - gets == 1 and store.log == []


async def test_a_read_that_sees_another_write_ends_the_ownership() -> None:
    store, pub = await started()
    store.objects[MANIFEST] = (store.objects[MANIFEST][0].replace(b"t0", b"t9"), None)
    await pub.publish("ns", "cfg", [rev(0)], KEY, now="t1")  # listed: read
    assert store.written_manifest(MANIFEST) is None
    async with pub.manifest_read_ahead("ns", "cfg") as ahead:
        assert ahead.task is not None


async def test_without_conditional_writes_every_publish_reads_the_manifest() -> None:
    store, pub = await started()
    store.conditional_manifest = False
    gets = store.counters["get"]
    await pub.publish("ns", "cfg", [rev(1)], KEY, now="t1")
    assert store.counters["get"] - gets == 1 and store.log[-1] == (MANIFEST, None)


async def test_other_manifest_errors_are_not_retried() -> None:
    class Down(RecordingStore):
        async def write_manifest(self, key: str, manifest: Manifest, if_match: str | None = None) -> None:
            raise PublishError("S3Unavailable", "down")

    store = Down()
    pub = RevisionPublisher(store, "p")
    store.objects[MANIFEST] = (b'{"namespace":"ns","name":"cfg","revisions":[]}', None)
    with pytest.raises(PublishError, match="down"):
        await pub.publish("ns", "cfg", [rev(1)], KEY, now="t1")
