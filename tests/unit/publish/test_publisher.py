"""Publishing: keys, put-if-absent, verification, manifest, retention that spares served digests."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.publish.history import ManifestEntry, manifest_key, revision_key, select_garbage
from edgeroll.publish.memory import InMemoryRevisionStore
from edgeroll.publish.publisher import RevisionPublisher
from edgeroll.publish.store import PublishError
from edgeroll.render.revision import make_revision
from edgeroll.render.signing import sign, verify

pytestmark = pytest.mark.unit

KEY = b"k" * 32


def rev(n: int):  # type: ignore[no-untyped-def]
    return make_revision(ConfigFormat.JSON, {"n": n})


def test_keys_follow_the_contract() -> None:
    d = "sha256:" + "a" * 64
    assert revision_key("edgeroll", "prod", "cfg", d) == f"edgeroll/prod/cfg/{'a' * 64}.json"
    assert revision_key("", "prod", "cfg", d) == f"prod/cfg/{'a' * 64}.json"
    assert manifest_key("p/", "prod", "cfg") == "p/prod/cfg/manifest.json"


async def test_publish_writes_once_and_a_rerun_writes_nothing() -> None:
    store = InMemoryRevisionStore()
    pub = RevisionPublisher(store, "edgeroll")
    r1 = rev(1)
    out = await pub.publish("ns", "cfg", [r1], KEY, now="t1")
    assert out.written == [r1.digest]
    body, sig = store.objects[out.entries[r1.digest].key]
    assert hashlib.sha256(body).hexdigest() == r1.hex and verify(KEY, body, sig)
    manifest = json.loads(store.objects[manifest_key("edgeroll", "ns", "cfg")][0])
    assert [e["digest"] for e in manifest["revisions"]] == [r1.digest]
    puts = store.counters["put"]
    # What a restart does: a fresh publisher, same inputs.
    again = await RevisionPublisher(store, "edgeroll").publish("ns", "cfg", [r1], KEY, now="t2")
    assert again.written == [] and store.counters["put"] == puts
    assert again.entries[r1.digest].published_at == "t1"


async def test_history_is_newest_first_and_old_revisions_stay() -> None:
    store = InMemoryRevisionStore()
    pub = RevisionPublisher(store, "p")
    for i in range(3):
        await pub.publish("ns", "cfg", [rev(i)], KEY, now=f"t{i}")
    manifest = json.loads(store.objects[manifest_key("p", "ns", "cfg")][0])
    assert [e["digest"] for e in manifest["revisions"]] == [rev(2).digest, rev(1).digest, rev(0).digest]
    assert all(pub.key_for("ns", "cfg", rev(i).digest) in store.objects for i in range(3))


async def test_existing_object_with_wrong_bytes_or_signature_is_rewritten() -> None:
    store = InMemoryRevisionStore()
    pub = RevisionPublisher(store, "p")
    r = rev(7)
    key = pub.key_for("ns", "cfg", r.digest)
    store.objects[key] = (b"garbage", "sig")  # e.g. a lost race on a buggy server
    assert await pub.publish_revision(key, r, sign(KEY, r.body)) is True
    assert store.objects[key] == (r.body, sign(KEY, r.body))
    # Same bytes, rotated key: re-signed in place.
    new_key = b"n" * 32
    assert await pub.publish_revision(key, r, sign(new_key, r.body)) is True
    assert verify(new_key, *store.objects[key])


def _forge(body: bytes) -> bytes:
    """Other bytes of the same length: what a HEAD's size cannot tell apart."""
    return body.replace(b"7", b"8")


async def test_same_length_forgery_with_the_signature_copied_is_repaired() -> None:
    store = InMemoryRevisionStore()
    r = rev(7)
    signature = sign(KEY, r.body)
    await RevisionPublisher(store, "p").publish("ns", "cfg", [r], KEY, now="t1")
    key = RevisionPublisher(store, "p").key_for("ns", "cfg", r.digest)
    forged = _forge(r.body)
    assert len(forged) == len(r.body) and forged != r.body
    await store.put(key, forged, signature)  # an overwrite that keeps size and metadata

    out = await RevisionPublisher(store, "p").publish("ns", "cfg", [r], KEY, now="t2")
    assert out.written == out.repaired == [r.digest]
    assert store.objects[key] == (r.body, signature)
    again = await RevisionPublisher(store, "p").publish("ns", "cfg", [r], KEY, now="t3")
    assert again.written == again.repaired == []


async def test_opaque_etags_are_checked_once_by_reading_then_trusted_until_they_change() -> None:
    store = InMemoryRevisionStore()
    store.opaque_etags = True  # SSE-KMS or multipart: the ETag is not the body's MD5
    r = rev(7)
    await RevisionPublisher(store, "p").publish("ns", "cfg", [r], KEY, now="t1")
    pub = RevisionPublisher(store, "p")  # a restart: nothing checked yet
    key = pub.key_for("ns", "cfg", r.digest)
    gets = store.counters["get"]
    assert (await pub.publish("ns", "cfg", [r], KEY, now="t2")).written == []
    assert store.counters["get"] - gets == 2  # the manifest, and the object once
    gets, puts = store.counters["get"], store.counters["put"]
    assert (await pub.publish("ns", "cfg", [r], KEY, now="t3")).written == []
    assert store.counters["get"] - gets == 1 and store.counters["put"] == puts  # the manifest only

    await store.put(key, _forge(r.body), sign(KEY, r.body))  # a new write: a new opaque ETag
    out = await pub.publish("ns", "cfg", [r], KEY, now="t4")
    assert out.repaired == [r.digest] and store.objects[key][0] == r.body


async def test_garbage_collection_keeps_limit_and_served_digests() -> None:
    store = InMemoryRevisionStore()
    pub = RevisionPublisher(store, "p")
    for i in range(5):
        await pub.publish("ns", "cfg", [rev(i)], KEY, now=f"t{i}")
    deleted = await pub.collect_garbage("ns", "cfg", keep=2, in_use={rev(0).digest})
    assert sorted(deleted) == sorted(pub.key_for("ns", "cfg", rev(i).digest) for i in (1, 2))
    manifest = json.loads(store.objects[manifest_key("p", "ns", "cfg")][0])
    assert [e["digest"] for e in manifest["revisions"]] == [rev(4).digest, rev(3).digest, rev(0).digest]
    assert await pub.collect_garbage("ns", "cfg", keep=2, in_use={rev(0).digest}) == []


async def test_storage_errors_surface_with_their_reason() -> None:
    store = InMemoryRevisionStore()
    store.fail_with = PublishError("S3Unavailable", "s3://memory/x: connection refused")
    with pytest.raises(PublishError) as err:
        await RevisionPublisher(store, "p").publish("ns", "cfg", [rev(1)], KEY, now="t")
    assert err.value.reason == "S3Unavailable"


def _entry(i: int) -> ManifestEntry:
    return ManifestEntry(digest=f"sha256:{i:064x}", key=f"k{i}", size=1, published_at="t", signature="s")


@given(st.integers(0, 20), st.integers(0, 25), st.sets(st.integers(0, 25)))
def test_select_garbage_never_takes_the_newest_or_used(n: int, keep: int, used: set[int]) -> None:
    history = [_entry(i) for i in range(n)]
    in_use = {f"sha256:{i:064x}" for i in used}
    garbage = select_garbage(history, keep, in_use)
    assert not {e.digest for e in garbage} & in_use
    assert not {e.digest for e in garbage} & {e.digest for e in history[:keep]}
    assert len(history) - len(garbage) >= min(keep, len(history))


async def test_a_new_digest_skips_the_head_and_a_republish_heads_with_the_manifest_read() -> None:
    store = InMemoryRevisionStore()
    pub = RevisionPublisher(store, "p")
    await pub.publish("ns", "cfg", [rev(1)], KEY, now="t1")  # no manifest yet: HEAD as before
    heads = store.counters["head"]
    out = await pub.publish("ns", "cfg", [rev(2)], KEY, now="t2")
    assert out.written == [rev(2).digest] and store.counters["head"] == heads  # unlisted: straight to PUT
    heads, puts = store.counters["head"], store.counters["put"]
    again = await pub.publish("ns", "cfg", [rev(2)], KEY, now="t3")
    assert again.written == [] and store.counters["put"] == puts
    assert store.counters["head"] - heads == 1  # listed: checked, tamper detection unchanged


class _CrashingStore(InMemoryRevisionStore):
    """The manifest write fails: a crash between the two writes of a publish, object then manifest."""

    crash = False

    async def write_manifest(self, key, manifest, if_match=None):  # type: ignore[no-untyped-def]
        if self.crash:
            raise PublishError("S3Unavailable", "crashed before the manifest write")
        await super().write_manifest(key, manifest, if_match)


@pytest.mark.parametrize("conditional", [True, False])
async def test_an_object_orphaned_by_a_crash_is_verified_not_trusted(conditional: bool) -> None:
    store = _CrashingStore()
    store.conditional_manifest = conditional
    await RevisionPublisher(store, "p").publish("ns", "cfg", [rev(1)], KEY, now="t1")
    store.crash = True
    with pytest.raises(PublishError):
        await RevisionPublisher(store, "p").publish("ns", "cfg", [rev(2)], KEY, now="t2")
    manifest = json.loads(store.objects[manifest_key("p", "ns", "cfg")][0])
    assert [e["digest"] for e in manifest["revisions"]] == [rev(1).digest]  # never lists the orphan
    store.crash = False
    key = RevisionPublisher(store, "p").key_for("ns", "cfg", rev(2).digest)
    gets = store.counters["get"]
    out = await RevisionPublisher(store, "p").publish("ns", "cfg", [rev(2)], KEY, now="t3")
    # The manifest (unless this store wrote it last: If-Match instead), then the 412'd object.
    assert out.written == [] and store.counters["get"] - gets == (1 if conditional else 2)
    assert out.entries[rev(2).digest].published_at == "t3"
    # A tampered orphan: the conditional PUT is refused, the GET shows other bytes, it is rewritten.
    r3 = rev(7)  # _forge changes its 7
    key = RevisionPublisher(store, "p").key_for("ns", "cfg", r3.digest)
    store.objects[key] = (_forge(r3.body), sign(KEY, r3.body))
    out = await RevisionPublisher(store, "p").publish("ns", "cfg", [r3], KEY, now="t4")
    assert out.written == out.repaired == [r3.digest] and store.objects[key][0] == r3.body
