"""S3RevisionStore's manifest ETags: If-Match on the PUT, a refusal as "ManifestChanged", and which
answers keep or end "this store wrote it last" (a fake boto3 client; SeaweedFS in tests/integration)."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pytest
from botocore.exceptions import ClientError

from edgeroll.publish.history import Manifest
from edgeroll.publish.s3 import S3RevisionStore
from edgeroll.publish.store import PublishError
from edgeroll.settings import S3Settings

pytestmark = pytest.mark.unit

KEY = "p/ns/cfg/manifest.json"


def client_error(status: int, code: str, op: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, op
    )


class FakeS3:
    """One bucket of bodies; ETags are quoted MD5s, If-Match and If-None-Match as S3 answers them."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def etag(self, key: str) -> str:
        return '"' + hashlib.md5(self.bodies[key], usedforsecurity=False).hexdigest() + '"'

    def put_object(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("put", kw))
        key = kw["Key"]
        if "IfMatch" in kw and (key not in self.bodies or self.etag(key) != kw["IfMatch"]):
            raise client_error(412, "PreconditionFailed", "PutObject")
        self.bodies[key] = kw["Body"]
        return {"ETag": self.etag(key), "ResponseMetadata": {"HTTPStatusCode": 200}}

    def get_object(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("get", kw))
        key = kw["Key"]
        if key not in self.bodies:
            raise client_error(404, "NoSuchKey", "GetObject")
        if kw.get("IfNoneMatch") == self.etag(key):
            raise client_error(304, "304", "GetObject")
        meta = {"HTTPStatusCode": 200}
        return {"Body": io.BytesIO(self.bodies[key]), "ETag": self.etag(key), "ResponseMetadata": meta}


def manifest(*digests: str) -> Manifest:
    return Manifest.model_validate(
        {
            "namespace": "ns",
            "name": "cfg",
            "revisions": [
                {"digest": d, "key": f"k/{i}", "size": 1, "publishedAt": "t", "signature": "s"}
                for i, d in enumerate(digests)
            ],
        }
    )


def store_on(fake: FakeS3, conditional: bool = True) -> S3RevisionStore:
    settings = S3Settings("b", manifest_if_match=conditional)
    return S3RevisionStore(settings, client=fake, workers=1)  # type: ignore[arg-type]


async def test_our_write_is_remembered_and_a_conditional_write_carries_its_etag() -> None:
    fake = FakeS3()
    store = store_on(fake)
    try:
        assert store.written_manifest(KEY) is None
        await store.write_manifest(KEY, manifest("sha256:a"))
        owned = store.written_manifest(KEY)
        assert owned is not None and owned[0] == fake.etag(KEY)
        assert await store.read_manifest(KEY) == manifest("sha256:a")  # 304: still ours
        assert store.written_manifest(KEY) == owned
        await store.write_manifest(KEY, manifest("sha256:b", "sha256:a"), if_match=owned[0])
        assert fake.calls[-1][1]["IfMatch"] == owned[0]
        assert store.written_manifest(KEY) == (fake.etag(KEY), manifest("sha256:b", "sha256:a"))
    finally:
        await store.close()


async def test_a_refused_write_is_manifest_changed_and_ends_the_ownership() -> None:
    fake = FakeS3()
    store = store_on(fake)
    try:
        await store.write_manifest(KEY, manifest("sha256:a"))
        owned = store.written_manifest(KEY)
        assert owned is not None
        fake.bodies[KEY] = b'{"namespace":"ns","name":"cfg","revisions":[]}'  # another writer
        with pytest.raises(PublishError) as refused:
            await store.write_manifest(KEY, manifest("sha256:b"), if_match=owned[0])
        assert refused.value.reason == "ManifestChanged"
        assert store.written_manifest(KEY) is None
        assert fake.bodies[KEY] == b'{"namespace":"ns","name":"cfg","revisions":[]}'
        assert await store.read_manifest(KEY) == manifest()
        assert "IfNoneMatch" not in fake.calls[-1][1]  # the refusal dropped the cached ETag too
    finally:
        await store.close()


async def test_a_read_of_another_write_or_of_nothing_ends_the_ownership() -> None:
    fake = FakeS3()
    store = store_on(fake)
    try:
        await store.write_manifest(KEY, manifest("sha256:a"))
        fake.bodies[KEY] = manifest("sha256:z").model_dump_json(by_alias=True).encode()
        assert await store.read_manifest(KEY) == manifest("sha256:z")
        assert store.written_manifest(KEY) is None
        await store.write_manifest(KEY, manifest("sha256:a"))
        del fake.bodies[KEY]
        assert await store.read_manifest(KEY) is None
        assert store.written_manifest(KEY) is None
    finally:
        await store.close()


async def test_off_by_setting_for_servers_without_if_match() -> None:
    store = store_on(FakeS3(), conditional=False)
    try:
        await store.write_manifest(KEY, manifest("sha256:a"))
        assert store.written_manifest(KEY) is None
    finally:
        await store.close()
