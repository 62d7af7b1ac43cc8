"""The revision store seam: what the reconciler needs from object storage.

`S3RevisionStore` (publish/s3.py) is the real one; tests use an in-memory
store with the same interface.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from edgeroll.publish.history import Manifest


class PublishError(Exception):
    """Storage refused or could not be reached; the message names the bucket or key."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class StoredObject:
    size: int
    signature: str | None
    etag: str | None = None  # unquoted; S3 gives the body's MD5 for a single-part, unencrypted PUT


@dataclass(frozen=True)
class ListedObject:
    """One object of a listing: enough to rebuild a manifest (the signature needs a HEAD)."""

    key: str
    size: int
    last_modified: datetime  # timezone-aware (UTC)


class RevisionStore(Protocol):
    """Immutable revisions plus one mutable manifest per RouterConfig."""

    bucket: str
    counters: Counter[str]  # operations by kind ("put", "get", "head", "delete"), for tests and benchmarks

    async def head(self, key: str) -> StoredObject | None: ...

    async def put_if_absent(self, key: str, body: bytes, signature: str) -> bool:
        """Write unless the key exists; False (no write) when it already did."""
        ...

    async def put(self, key: str, body: bytes, signature: str) -> None: ...

    async def get(self, key: str) -> tuple[bytes, str | None] | None:
        """Body and signature metadata, or None when absent."""
        ...

    async def read_manifest(self, key: str) -> Manifest | None: ...

    def written_manifest(self, key: str) -> tuple[str, Manifest] | None:
        """(ETag, manifest) of this store's last write of `key`, while nothing it saw since says
        another wrote it; None when unknown, or when the store makes no conditional writes."""
        ...

    async def write_manifest(self, key: str, manifest: Manifest, if_match: str | None = None) -> None:
        """Write the manifest; with `if_match`, only if the stored one still has that ETag, else
        PublishError "ManifestChanged" (and nothing written)."""
        ...

    async def delete(self, key: str) -> None: ...

    async def list_objects(self, prefix: str) -> list[ListedObject]:
        """Every object whose key starts with `prefix` (all pages)."""
        ...
