"""An in-memory RevisionStore, for tests and dry runs (like httpx's MockTransport)."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from edgeroll.publish.history import Manifest
from edgeroll.publish.store import ListedObject, PublishError, StoredObject


class InMemoryRevisionStore:
    def __init__(self, bucket: str = "memory") -> None:
        self.bucket = bucket
        self.counters: Counter[str] = Counter()
        self.objects: dict[str, tuple[bytes, str | None]] = {}
        self.fail_with: PublishError | None = None  # set to make every call fail (S3 down)
        # ETags as S3 gives them: the body's MD5, or with `opaque_etags` (SSE-KMS, multipart) a
        # fresh value per write that says nothing about the bytes.
        self.opaque_etags = False
        self._opaque: dict[str, str] = {}
        # LastModified per key: a clock that advances `tick` per write, so order is exact; a zero
        # tick is S3's one-second granularity, where writes close together tie.
        self.modified: dict[str, datetime] = {}
        self.tick = timedelta(seconds=1)
        self._epoch = self._clock = datetime(2026, 1, 1, tzinfo=UTC)  # tests may set `objects` directly
        self.conditional_manifest = True  # as S3RevisionStore: If-Match after our own manifest write
        self._written: dict[str, tuple[str, Manifest]] = {}  # key -> (ETag, manifest) of our last write

    def _op(self, kind: str) -> None:
        self.counters[kind] += 1
        if self.fail_with is not None:
            raise self.fail_with

    async def head(self, key: str) -> StoredObject | None:
        self._op("head")
        obj = self.objects.get(key)
        if obj is None:
            return None
        body, signature = obj
        md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
        etag = self._opaque.get(key) if self.opaque_etags else md5
        return StoredObject(size=len(body), signature=signature, etag=etag)

    def _write(self, key: str, body: bytes, signature: str | None) -> None:
        self.objects[key] = (body, signature)
        self._opaque[key] = uuid.uuid4().hex
        self._clock += self.tick
        self.modified[key] = self._clock

    async def put_if_absent(self, key: str, body: bytes, signature: str) -> bool:
        self._op("put")
        if key in self.objects:
            return False
        self._write(key, body, signature)
        return True

    async def put(self, key: str, body: bytes, signature: str) -> None:
        self._op("put")
        self._write(key, body, signature)

    async def get(self, key: str) -> tuple[bytes, str | None] | None:
        self._op("get")
        return self.objects.get(key)

    def _etag(self, key: str) -> str | None:
        obj = self.objects.get(key)
        return None if obj is None else hashlib.md5(obj[0], usedforsecurity=False).hexdigest()

    async def read_manifest(self, key: str) -> Manifest | None:
        self._op("get")
        obj = self.objects.get(key)
        if key in self._written and self._written[key][0] != self._etag(key):
            del self._written[key]  # someone else wrote it (or deleted it) since
        if obj is None:
            return None
        try:
            return Manifest.model_validate_json(obj[0])
        except ValidationError as exc:  # as S3RevisionStore reports it
            raise PublishError(
                "ManifestInvalid", f"memory://{self.bucket}/{key}: {exc.errors()[0]['msg']}"
            ) from exc

    def written_manifest(self, key: str) -> tuple[str, Manifest] | None:
        return self._written.get(key) if self.conditional_manifest else None

    async def write_manifest(self, key: str, manifest: Manifest, if_match: str | None = None) -> None:
        self._op("put")
        self._written.pop(key, None)
        if if_match is not None and self._etag(key) != if_match:
            raise PublishError("ManifestChanged", f"memory://{self.bucket}/{key}: written since {if_match}")
        self._write(key, manifest.model_dump_json(by_alias=True, exclude_none=True).encode(), None)
        etag = self._etag(key)
        assert etag is not None
        self._written[key] = (etag, manifest)

    async def delete(self, key: str) -> None:
        self._op("delete")
        self.objects.pop(key, None)
        self.modified.pop(key, None)

    async def list_objects(self, prefix: str) -> list[ListedObject]:
        self._op("list")
        return [
            ListedObject(key, len(body), self.modified.get(key, self._epoch))
            for key, (body, _) in sorted(self.objects.items())
            if key.startswith(prefix)
        ]
