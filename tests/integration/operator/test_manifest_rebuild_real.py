"""A manifest overwritten with garbage on the lab's real S3 is rebuilt from the listing (issue 11)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.lab import Lab
from edgeroll.publish.history import manifest_key
from edgeroll.publish.publisher import RevisionPublisher
from edgeroll.publish.s3 import S3RevisionStore
from edgeroll.render.revision import make_revision
from edgeroll.render.signing import SIGNATURE_METADATA_KEY, verify
from edgeroll.settings import S3Settings

pytestmark = pytest.mark.integration

KEY = b"k" * 32


def _store(lab: Lab) -> S3RevisionStore:
    return S3RevisionStore(S3Settings(bucket=lab.s3_bucket, endpoint=lab.s3_endpoint, region=lab.region))


async def _next_second() -> None:
    """S3's LastModified has whole seconds: the rebuild orders by it, so each publish gets its own."""
    await asyncio.sleep(1.05 - time.time() % 1)


async def test_a_garbage_manifest_keeps_every_revision_and_the_history(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in lab.env().items():
        monkeypatch.setenv(name, value)
    s3 = lab.s3_client()
    prefix = f"it-{uuid.uuid4().hex[:8]}"
    key = manifest_key(prefix, "ns", "cfg")
    revs = [make_revision(ConfigFormat.JSON, {"v": i}) for i in range(4)]
    pub = RevisionPublisher(_store(lab), prefix)
    for i, rev in enumerate(revs[:3]):
        await _next_second()
        await pub.publish("ns", "cfg", [rev], KEY, now=f"2026-01-0{i + 1}T00:00:00Z")

    def history() -> list[dict[str, object]]:
        return list(json.loads(s3.get_object(Bucket=lab.s3_bucket, Key=key)["Body"].read())["revisions"])

    assert [e["digest"] for e in history()] == [r.digest for r in reversed(revs[:3])]
    s3.put_object(
        Bucket=lab.s3_bucket, Key=key, Body=b"\x00 not a manifest {", ContentType="application/json"
    )

    await _next_second()
    fresh = RevisionPublisher(_store(lab), prefix)  # a restart: no manifest cached
    out = await fresh.publish("ns", "cfg", [revs[3]], KEY, now="2026-01-09T00:00:00Z")

    assert out.rebuilt == key and out.recovered == 3
    entries = history()
    assert [e["digest"] for e in entries] == [r.digest for r in reversed(revs)]
    for entry in entries:  # each entry names an object that is there, with the signature it carries
        obj = s3.get_object(Bucket=lab.s3_bucket, Key=str(entry["key"]))
        assert obj["Metadata"][SIGNATURE_METADATA_KEY] == entry["signature"]
        assert verify(KEY, obj["Body"].read(), str(entry["signature"]))

    deleted = await fresh.collect_garbage("ns", "cfg", keep=2, in_use=set())
    assert sorted(deleted) == sorted(fresh.key_for("ns", "cfg", r.digest) for r in revs[:2])
    listed = s3.list_objects_v2(Bucket=lab.s3_bucket, Prefix=f"{prefix}/")
    left = sorted(o["Key"] for o in listed.get("Contents", []))
    assert left == sorted([key, *(fresh.key_for("ns", "cfg", r.digest) for r in revs[2:])])  # nothing leaked
    for k in left:
        s3.delete_object(Bucket=lab.s3_bucket, Key=k)
