"""The S3 revision store against the lab's real S3 (SeaweedFS)."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.lab import Lab
from edgeroll.publish.publisher import RevisionPublisher
from edgeroll.publish.s3 import S3RevisionStore
from edgeroll.publish.store import PublishError
from edgeroll.render.revision import make_revision
from edgeroll.render.signing import SIGNATURE_METADATA_KEY, verify
from edgeroll.settings import S3Settings

pytestmark = pytest.mark.integration

KEY = b"k" * 32


@pytest.fixture
def store(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> S3RevisionStore:
    for name, value in lab.env().items():
        monkeypatch.setenv(name, value)
    return S3RevisionStore(S3Settings(bucket=lab.s3_bucket, endpoint=lab.s3_endpoint, region=lab.region))


async def test_publish_is_exact_signed_and_written_once(lab: Lab, store: S3RevisionStore) -> None:
    prefix = f"it-{uuid.uuid4().hex[:8]}"
    pub = RevisionPublisher(store, prefix)
    rev = make_revision(ConfigFormat.JSON, {"hello": "é" * 1000, "n": list(range(100))})
    out = await pub.publish("ns", "cfg", [rev], KEY, now="2026-01-01T00:00:00Z")
    assert out.written == [rev.digest]
    key = out.entries[rev.digest].key
    assert key == f"{prefix}/ns/cfg/{rev.hex}.json"
    obj = lab.s3_client().get_object(Bucket=lab.s3_bucket, Key=key)
    body = obj["Body"].read()
    assert body == rev.body  # no aws-chunked trailer stored inside the object
    assert "sha256:" + hashlib.sha256(body).hexdigest() == rev.digest
    assert verify(KEY, body, obj["Metadata"][SIGNATURE_METADATA_KEY])
    assert obj["ContentType"] == "application/json"

    puts = store.counters["put"]
    again = RevisionPublisher(
        S3RevisionStore(S3Settings(lab.s3_bucket, lab.s3_endpoint, region=lab.region)), prefix
    )
    second = await again.publish("ns", "cfg", [rev], KEY, now="2026-01-02T00:00:00Z")
    assert second.written == [] and store.counters["put"] == puts
    assert again.store.counters["put"] == 0  # a restart with nothing new: HEAD and manifest only


async def test_conditional_put_refuses_an_existing_key(store: S3RevisionStore) -> None:
    key = f"it-{uuid.uuid4().hex[:8]}/x.json"
    assert await store.put_if_absent(key, b"{}", "sig") is True
    assert await store.put_if_absent(key, b"{}", "sig") is False  # 412: already there


async def test_a_lost_race_is_verified_and_repaired(lab: Lab, store: S3RevisionStore) -> None:
    prefix = f"it-{uuid.uuid4().hex[:8]}"
    pub = RevisionPublisher(store, prefix)
    rev = make_revision(ConfigFormat.JSON, {"v": 1})
    key = pub.key_for("ns", "cfg", rev.digest)
    lab.s3_client().put_object(
        Bucket=lab.s3_bucket, Key=key, Body=b"corrupt", Metadata={"signature-sha256": "x"}
    )
    assert await pub.publish_revision(key, rev, "sig") is True
    assert lab.s3_client().get_object(Bucket=lab.s3_bucket, Key=key)["Body"].read() == rev.body


async def test_retention_keeps_the_limit_and_served_digests(lab: Lab, store: S3RevisionStore) -> None:
    prefix = f"it-{uuid.uuid4().hex[:8]}"
    pub = RevisionPublisher(store, prefix)
    revs = [make_revision(ConfigFormat.JSON, {"v": i}) for i in range(5)]
    for i, rev in enumerate(revs):
        await pub.publish("ns", "cfg", [rev], KEY, now=f"2026-01-0{i + 1}T00:00:00Z")
    deleted = await pub.collect_garbage("ns", "cfg", keep=2, in_use={revs[0].digest})
    assert len(deleted) == 2
    listed = lab.s3_client().list_objects_v2(Bucket=lab.s3_bucket, Prefix=f"{prefix}/ns/cfg/")
    keys = {o["Key"] for o in listed.get("Contents", [])}
    assert keys == {pub.key_for("ns", "cfg", r.digest) for r in (revs[0], revs[3], revs[4])} | {
        f"{prefix}/ns/cfg/manifest.json"
    }


async def test_unreachable_s3_is_a_publish_error() -> None:
    dead = S3RevisionStore(S3Settings(bucket="b", endpoint="http://127.0.0.1:9", region="us-east-1"))
    with pytest.raises(PublishError) as err:
        await dead.head("x")
    assert err.value.reason == "S3Unavailable"


async def test_a_manifest_written_by_another_refuses_our_if_match(lab: Lab, store: S3RevisionStore) -> None:
    """SeaweedFS honours If-Match on PUT: after our write, a publish reads no manifest; after another
    writer's, the conditional write is refused (412) and the publish reads and records anew."""
    prefix = f"it-{uuid.uuid4().hex[:8]}"
    pub = RevisionPublisher(store, prefix)
    revs = [make_revision(ConfigFormat.JSON, {"n": n}) for n in range(3)]
    await pub.publish("ns", "cfg", [revs[0]], KEY, now="t0")
    gets = store.counters["get"]
    await pub.publish("ns", "cfg", [revs[1]], KEY, now="t1")
    assert store.counters["get"] == gets  # our own write last: no read, If-Match on the write
    other = RevisionPublisher(
        S3RevisionStore(S3Settings(lab.s3_bucket, lab.s3_endpoint, region=lab.region)), prefix
    )
    await other.publish("ns", "cfg", [revs[2]], KEY, now="t2")
    owned = store.written_manifest(f"{prefix}/ns/cfg/manifest.json")
    assert owned is not None  # it cannot know yet
    with pytest.raises(PublishError) as refused:
        await store.write_manifest(f"{prefix}/ns/cfg/manifest.json", owned[1], if_match=owned[0])
    assert refused.value.reason == "ManifestChanged"
    out = await pub.publish("ns", "cfg", [make_revision(ConfigFormat.JSON, {"n": 3})], KEY, now="t3")
    body = lab.s3_client().get_object(Bucket=lab.s3_bucket, Key=f"{prefix}/ns/cfg/manifest.json")["Body"]
    listed = [e["digest"] for e in json.loads(body.read())["revisions"]]
    assert listed == [*out.written, revs[2].digest, revs[1].digest, revs[0].digest]
