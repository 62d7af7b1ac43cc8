"""A damaged manifest is rebuilt from the listing of the RouterConfig's prefix, never reset (issue 11)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.publish.history import digest_of_key, manifest_key
from edgeroll.publish.memory import InMemoryRevisionStore
from edgeroll.publish.publisher import RevisionPublisher
from edgeroll.render.revision import Revision, make_revision
from edgeroll.render.signing import sign

pytestmark = pytest.mark.unit

KEY = b"k" * 32
MANIFEST = manifest_key("p", "ns", "cfg")


def rev(n: int) -> Revision:
    return make_revision(ConfigFormat.JSON, {"n": n})


def history(store: InMemoryRevisionStore) -> list[str]:
    return [e["digest"] for e in json.loads(store.objects[MANIFEST][0])["revisions"]]


async def published(n: int) -> tuple[InMemoryRevisionStore, RevisionPublisher]:
    store = InMemoryRevisionStore()
    pub = RevisionPublisher(store, "p")
    for i in range(n):
        await pub.publish("ns", "cfg", [rev(i)], KEY, now=f"2026-01-0{i + 1}T00:00:00Z")
    return store, pub


def test_digest_of_key_accepts_only_revision_keys_of_that_prefix() -> None:
    hexpart = "a" * 64
    assert digest_of_key("p", "ns", "cfg", f"p/ns/cfg/{hexpart}.json") == f"sha256:{hexpart}"
    assert digest_of_key("", "ns", "cfg", f"ns/cfg/{hexpart}.json") == f"sha256:{hexpart}"
    for other in (
        "p/ns/cfg/manifest.json",
        f"p/ns/cfg/{hexpart}",
        f"p/ns/cfg/{'A' * 64}.json",
        f"p/ns/cfg/{'a' * 63}.json",
        f"p/ns/cfg/sub/{hexpart}.json",
        f"p/ns/cfg2/{hexpart}.json",
        f"p/ns/cf/{hexpart}.json",
    ):
        assert digest_of_key("p", "ns", "cfg", other) is None, other


@pytest.mark.parametrize("conditional", [True, False])
@pytest.mark.parametrize("garbage", [b"not json", b"{}", b'{"revisions": 7}', b""])
async def test_a_damaged_manifest_keeps_every_revision_and_the_order(
    garbage: bytes, conditional: bool
) -> None:
    store, _ = await published(3)
    store.conditional_manifest = conditional
    before = history(store)
    signatures = {d: store.objects[RevisionPublisher(store, "p").key_for("ns", "cfg", d)][1] for d in before}
    store.objects[MANIFEST] = (garbage, None)

    out = await RevisionPublisher(store, "p").publish("ns", "cfg", [rev(3)], KEY, now="2026-01-09T00:00:00Z")

    # The store wrote the manifest last, so a conditional publish skips the read: the damage shows
    # at the manifest write (If-Match fails), after the new object, which is not counted as recovered.
    assert out.rebuilt == MANIFEST and out.recovered == 3
    assert history(store) == [rev(3).digest, *before]  # newest first, nothing lost
    entries = {e["digest"]: e for e in json.loads(store.objects[MANIFEST][0])["revisions"]}
    assert all(entries[d]["signature"] == signatures[d] for d in before)
    assert all(entries[d]["key"] == f"p/ns/cfg/{d.removeprefix('sha256:')}.json" for d in before)
    assert all(entries[d]["size"] == rev(i).size for i, d in enumerate(reversed(before)))
    again = await RevisionPublisher(store, "p").publish("ns", "cfg", [rev(3)], KEY, now="t")
    assert again.rebuilt is None and again.written == []


async def test_a_rebuilt_manifest_is_written_back_even_when_nothing_is_new() -> None:
    store, pub = await published(2)
    before = history(store)
    store.objects[MANIFEST] = (b"\x00garbage", None)
    out = await pub.publish("ns", "cfg", [rev(1)], KEY, now="t")
    assert out.rebuilt == MANIFEST and out.written == []
    assert history(store) == before  # what direct readers (rollback lookups) read is whole again


async def test_garbage_collection_after_a_rebuild_deletes_what_a_reset_would_have_leaked() -> None:
    store, pub = await published(5)
    store.objects[MANIFEST] = (b"garbage", None)
    deleted = await pub.collect_garbage("ns", "cfg", keep=2, in_use={rev(0).digest})
    assert sorted(deleted) == sorted(pub.key_for("ns", "cfg", rev(i).digest) for i in (1, 2))
    assert history(store) == [rev(4).digest, rev(3).digest, rev(0).digest]
    assert all(k not in store.objects for k in deleted)


async def test_the_rebuild_ignores_foreign_keys_and_unsigned_objects() -> None:
    store, pub = await published(1)
    foreign = rev(9)
    store.objects["p/ns/cfg/notes.txt"] = (b"x", None)
    store.objects[f"p/ns/cfg/sub/{foreign.hex}.json"] = (foreign.body, sign(KEY, foreign.body))
    store.objects[f"p/ns/cfg2/{foreign.hex}.json"] = (foreign.body, sign(KEY, foreign.body))
    store.objects[pub.key_for("ns", "cfg", rev(8).digest)] = (rev(8).body, None)  # unsigned: not ours
    store.objects[MANIFEST] = (b"garbage", None)
    out = await RevisionPublisher(store, "p").publish("ns", "cfg", [rev(0)], KEY, now="t")
    assert out.recovered == 1 and history(store) == [rev(0).digest]


async def test_the_rebuild_lists_only_the_routerconfigs_own_prefix() -> None:
    store, _ = await published(1)
    other = RevisionPublisher(store, "p")
    await other.publish("ns", "cfg-other", [rev(5)], KEY, now="t")
    store.objects[MANIFEST] = (b"garbage", None)
    await RevisionPublisher(store, "p").publish("ns", "cfg", [rev(0)], KEY, now="t")
    assert history(store) == [rev(0).digest]
    assert store.counters["list"] == 1


@pytest.mark.parametrize("conditional", [True, False])
async def test_the_new_revision_stays_newest_when_the_listing_cannot_order_it(conditional: bool) -> None:
    # S3's LastModified has one-second granularity: a revision published in the same second as the
    # damaged manifest's last one ties with it, and a listing ordered by key would put it second.
    store, pub = await published(1)
    store.tick = timedelta(0)
    older, newer = sorted([rev(1), rev(2)], key=lambda r: r.hex, reverse=True)  # older sorts first by key
    await pub.publish("ns", "cfg", [older], KEY, now="t1")
    store.objects[MANIFEST] = (b"garbage", None)
    store.conditional_manifest = conditional

    out = await pub.publish("ns", "cfg", [newer], KEY, now="t2")

    assert out.rebuilt == MANIFEST and out.recovered == 2
    assert history(store) == [newer.digest, older.digest, rev(0).digest]
