"""Publish a render set: signed, content-addressed, written once, recorded in the manifest."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Literal

from edgeroll.publish.history import (
    Manifest,
    ManifestEntry,
    digest_of_key,
    manifest_key,
    object_prefix,
    record,
    revision_key,
    select_garbage,
    without,
)
from edgeroll.publish.store import PublishError, RevisionStore, StoredObject
from edgeroll.render.revision import Revision
from edgeroll.render.signing import sign

log = logging.getLogger(__name__)

Write = Literal["unchanged", "created", "written", "repaired"]


@dataclass(frozen=True)
class PublishOutcome:
    entries: dict[str, ManifestEntry]  # digest -> entry, for every revision asked for
    written: list[str] = field(default_factory=list)  # digests whose object this call wrote
    repaired: list[str] = field(default_factory=list)  # of those, objects that held other bytes
    rebuilt: str | None = None  # the manifest key, when it was damaged and rebuilt from the listing
    recovered: int = 0  # revisions the rebuilt manifest recovered from the listing


@dataclass
class ManifestReadAhead:
    """A manifest read started before the revisions are known, for one `publish` to use; no read
    (`task` None) when this publisher wrote the manifest last: `publish` may then skip it."""

    key: str
    task: asyncio.Future[Manifest | None] | None
    taken: bool = False

    def take(self, key: str) -> asyncio.Future[Manifest | None] | None:
        if key != self.key or self.taken:  # a stale or foreign read would hide a newer manifest
            raise ValueError(
                f"the read-ahead of {self.key} cannot serve a publish of {key}, nor a second one"
            )
        self.taken = True
        return self.task


class RevisionPublisher:
    def __init__(self, store: RevisionStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix
        # key -> an ETag that says nothing about the bytes (SSE-KMS, multipart), under which we
        # have read and checked them. S3 gives such ETags a new value on every write.
        self._checked: dict[str, str] = {}
        # manifest key -> the digests it listed when last read or written: a hint of which revisions
        # are already published, so their HEADs run with the manifest read rather than after it.
        self._listed: dict[str, frozenset[str]] = {}

    def _intact(self, key: str, head: StoredObject, revision: Revision) -> bool:
        """The HEAD says the stored bytes are ours: size and signature alone do not, since an
        overwrite can keep both (a same-length forgery with the metadata copied)."""
        if head.size != revision.size or head.etag is None:
            return False
        if head.etag == hashlib.md5(revision.body, usedforsecurity=False).hexdigest():
            return True
        return self._checked.get(key) == head.etag

    def key_for(self, namespace: str, name: str, digest: str) -> str:
        return revision_key(self.prefix, namespace, name, digest)

    @contextlib.asynccontextmanager
    async def manifest_read_ahead(self, namespace: str, name: str) -> AsyncIterator[ManifestReadAhead]:
        """Start reading the manifest now, for the `publish` inside the block (`ahead=`): the read
        needs no digest, so its round trip overlaps the render. A read only: a damaged manifest is
        still rebuilt and written by `publish`, so a render that fails writes nothing, as before.
        A read left unused is cancelled on exit. None is started when this store wrote the
        manifest last: a new digest then needs no read (`_owned`), and an old one is read by
        `publish`; on loopback the read's boto3 Python only took GIL time from the render."""
        key = manifest_key(self.prefix, namespace, name)
        if self.store.written_manifest(key) is not None:
            yield ManifestReadAhead(key, None)
            return
        task = asyncio.ensure_future(self.store.read_manifest(key))
        try:
            yield ManifestReadAhead(key, task)
        finally:
            task.cancel()  # a no-op once it is done
            await asyncio.gather(task, return_exceptions=True)  # its error, if any, is retrieved

    async def _manifest(
        self, namespace: str, name: str, ahead: ManifestReadAhead | None = None
    ) -> tuple[Manifest, int | None]:
        """The manifest, and how many revisions were recovered when it was damaged and rebuilt."""
        key = manifest_key(self.prefix, namespace, name)
        read = ahead.take(key) if ahead is not None else None
        try:
            manifest = await (read if read is not None else self.store.read_manifest(key))
        except PublishError as exc:
            if exc.reason != "ManifestInvalid":
                raise
            rebuilt = await self._rebuild(namespace, name)
            # Written back at once, so what reads the manifest directly (rollback lookups) sees it too.
            await self.store.write_manifest(key, rebuilt)
            log.warning(
                "rebuilt the revision manifest %s from the listing of its prefix (%d revisions): %s",
                key,
                len(rebuilt.revisions),
                exc.message,
            )
            return rebuilt, len(rebuilt.revisions)
        return manifest or Manifest(namespace=namespace, name=name), None

    def _owned(
        self, key: str, revisions: Sequence[Revision], ahead: ManifestReadAhead | None
    ) -> tuple[str, Manifest] | None:
        """(ETag, manifest) to publish on without reading it: this store wrote it last, and a
        revision it does not list means a manifest write, which `If-Match: ETag` makes prove that
        nobody wrote it since (else `publish` reads it and records again). With nothing new there is
        no write to prove it, so the manifest is read. None also when a read is in flight already."""
        if ahead is not None and ahead.task is not None:
            return None
        owned = self.store.written_manifest(key)
        if owned is None or all(owned[1].find(rev.digest) is not None for rev in revisions):
            return None
        return owned

    async def _manifest_and_heads(
        self,
        namespace: str,
        name: str,
        revisions: Sequence[Revision],
        ahead: ManifestReadAhead | None,
        owned: Manifest | None = None,
    ) -> tuple[Manifest, int | None, dict[str, StoredObject | None]]:
        """The manifest (as `_manifest`; `owned`: this one, not read), with the HEADs of the revisions
        it listed last time, read concurrently: a re-publish costs one round trip instead of two.
        Reads only, so their order does not matter; the writes that follow keep object before manifest."""
        listed = self._listed.get(manifest_key(self.prefix, namespace, name), frozenset())
        known = [rev.digest for rev in revisions if rev.digest in listed]
        keys = [self.key_for(namespace, name, digest) for digest in known]
        heads = asyncio.gather(*(self.store.head(key) for key in keys))
        try:
            if owned is not None:
                if ahead is not None:
                    ahead.take(ahead.key)
                manifest, recovered = owned, None
            else:
                manifest, recovered = await self._manifest(namespace, name, ahead)
        except BaseException:  # no HEAD left unawaited, and the manifest's error is the one raised
            await asyncio.gather(heads, return_exceptions=True)
            raise
        found = await heads
        return manifest, recovered, dict(zip(known, found, strict=True))

    async def _rebuild(self, namespace: str, name: str) -> Manifest:
        """A manifest from the revision objects under the RouterConfig's prefix, newest first by
        LastModified. An object without a signature is not ours to serve (nor to delete): left out."""
        listed = await self.store.list_objects(object_prefix(self.prefix, namespace, name) + "/")
        entries: list[ManifestEntry] = []
        for obj in sorted(listed, key=lambda o: (o.last_modified, o.key), reverse=True):
            digest = digest_of_key(self.prefix, namespace, name, obj.key)
            if digest is None:
                continue
            head = await self.store.head(obj.key)
            if head is None or not head.signature:
                log.warning(
                    "not recovering %s into the manifest: %s", obj.key, "gone" if head is None else "unsigned"
                )
                continue
            published_at = obj.last_modified.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            entries.append(
                ManifestEntry(
                    digest=digest,
                    key=obj.key,
                    size=head.size,
                    published_at=published_at,
                    signature=head.signature,
                )
            )
        return Manifest(namespace=namespace, name=name, revisions=entries)

    async def publish_revision(self, key: str, revision: Revision, signature: str) -> bool:
        """Make `key` hold exactly these bytes and this signature; True when it wrote."""
        head = await self.store.head(key)
        return await self._publish_revision(key, revision, signature, head) != "unchanged"

    async def _publish_revision(
        self, key: str, revision: Revision, signature: str, head: StoredObject | None
    ) -> Write:
        """`publish_revision` given the key's HEAD (None: absent, or not asked), saying what it
        did: "created" means the key was absent, "repaired" that it held other bytes.

        Checked first (HEAD), so a restart with nothing new writes nothing. The HEAD's ETag
        tells whether the bytes are still ours (S3's ETag of a plain PUT is the body's MD5);
        when it cannot (an opaque ETag not checked yet), the object is read and hashed.
        A 412 on the conditional PUT means someone wrote it first (or a crash left the object
        unlisted, when the HEAD was skipped): we verify the digest anyway, since SeaweedFS
        once let racing conditional PUTs through.
        """
        if head is not None and head.signature == signature and self._intact(key, head, revision):
            return "unchanged"
        if head is None and await self.store.put_if_absent(key, revision.body, signature):
            return "created"
        existing = await self.store.get(key)
        if existing is not None:
            body, existing_signature = existing
            if hashlib.sha256(body).hexdigest() == revision.hex and existing_signature == signature:
                if head is not None and head.etag is not None:
                    self._checked[key] = head.etag
                return "unchanged"
            if hashlib.sha256(body).hexdigest() != revision.hex:
                log.warning("rewriting %s: stored bytes do not match digest %s", key, revision.digest)
                await self.store.put(key, revision.body, signature)
                return "repaired"
            log.info("re-signing %s in place: the signing key changed", key)
        await self.store.put(key, revision.body, signature)
        return "written"

    def _entries(
        self, namespace: str, name: str, manifest: Manifest, signed: Mapping[str, tuple[int, str]], now: str
    ) -> tuple[dict[str, ManifestEntry], list[ManifestEntry]]:
        """Every revision's manifest entry (digest -> entry), and those the manifest lacks; `signed`:
        digest -> (size, signature)."""
        entries: dict[str, ManifestEntry] = {}
        fresh: list[ManifestEntry] = []
        for digest, (size, signature) in signed.items():
            known = manifest.find(digest)
            if known is not None and known.signature == signature:
                entries[digest] = known
                continue
            key = self.key_for(namespace, name, digest)
            entries[digest] = ManifestEntry(
                digest=digest, key=key, size=size, published_at=now, signature=signature
            )
            fresh.append(entries[digest])
        return entries, fresh

    async def _record(
        self, namespace: str, name: str, manifest: Manifest, fresh: list[ManifestEntry], etag: str | None
    ) -> Manifest:
        """Write the manifest with `fresh` recorded; with `etag`, only over that ETag."""
        key = manifest_key(self.prefix, namespace, name)
        manifest = record(manifest, fresh)
        await self.store.write_manifest(key, manifest, if_match=etag)
        return manifest

    async def publish(
        self,
        namespace: str,
        name: str,
        revisions: Sequence[Revision],
        signing_key: bytes,
        now: str,
        ahead: ManifestReadAhead | None = None,
    ) -> PublishOutcome:
        """Sign, write what is missing, record it in the manifest; `ahead`: the manifest read
        started by `manifest_read_ahead`, instead of one now."""
        mkey = manifest_key(self.prefix, namespace, name)
        owned = self._owned(mkey, revisions, ahead)
        etag = owned[0] if owned is not None else None
        manifest, recovered, heads = await self._manifest_and_heads(
            namespace, name, revisions, ahead, owned[1] if owned is not None else None
        )
        signed: dict[str, tuple[int, str]] = {}
        written: list[str] = []
        repaired: list[str] = []
        created: set[str] = set()
        for rev in revisions:
            key = self.key_for(namespace, name, rev.digest)
            signature = sign(signing_key, rev.body)
            signed[rev.digest] = (rev.size, signature)
            if rev.digest in heads:
                head = heads[rev.digest]
            elif manifest.find(rev.digest) is not None or not manifest.revisions:
                head = await self.store.head(key)
            else:  # unlisted in a manifest that lists others: new, bar a crash the conditional PUT catches
                head = None
            done = await self._publish_revision(key, rev, signature, head)
            if done != "unchanged":
                written.append(rev.digest)
            if done == "repaired":
                repaired.append(rev.digest)
            if done == "created":
                created.add(rev.digest)
        entries, fresh = self._entries(namespace, name, manifest, signed, now)
        if fresh:
            try:
                manifest = await self._record(namespace, name, manifest, fresh, etag)
            except PublishError as exc:
                if etag is None or exc.reason != "ManifestChanged":
                    raise
                log.info("manifest %s was written by another since our write: read and recorded anew", mkey)
                manifest, recovered = await self._manifest(namespace, name)
                if recovered is not None:
                    # Rebuilt after our objects were written: those are not recovered ones, and they
                    # are the newest, which LastModified (one-second granularity) cannot always tell.
                    ours = [e for e in manifest.revisions if e.digest in created]
                    recovered -= len(ours)
                    manifest = without(manifest, ours)
                entries, fresh = self._entries(namespace, name, manifest, signed, now)
                if fresh:
                    manifest = await self._record(namespace, name, manifest, fresh, None)
        self._listed[mkey] = frozenset(e.digest for e in manifest.revisions)
        return PublishOutcome(
            entries=entries,
            written=written,
            repaired=repaired,
            rebuilt=mkey if recovered is not None else None,
            recovered=recovered or 0,
        )

    async def collect_garbage(self, namespace: str, name: str, keep: int, in_use: Iterable[str]) -> list[str]:
        """Delete revisions beyond `keep` that no cluster serves; returns the deleted keys.

        The manifest is rewritten first, so a crash between the two steps leaves
        an orphan object (harmless) rather than a manifest entry without one.
        """
        manifest, _ = await self._manifest(namespace, name)
        garbage = select_garbage(manifest.revisions, keep, in_use)
        if not garbage:
            return []
        await self.store.write_manifest(
            manifest_key(self.prefix, namespace, name), without(manifest, garbage)
        )
        for entry in garbage:
            await self.store.delete(entry.key)
        return [e.key for e in garbage]
