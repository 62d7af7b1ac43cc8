"""Keys, the revision manifest and retention: pure functions over the history.

Layout (hack/CONTRACTS.md):
    <prefix>/<namespace>/<name>/<digest-hex>.json   a revision, immutable
    <prefix>/<namespace>/<name>/manifest.json       the history, newest first

Every published object is one revision in the history, so a change that
gives one cluster an overlay adds two entries (the base and the overlay).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import Field

from edgeroll.api.common import API_VERSION, ApiModel
from edgeroll.render.canonical import DIGEST_PREFIX, digest_hex

MANIFEST_NAME = "manifest.json"


def object_prefix(prefix: str, namespace: str, name: str) -> str:
    parts = [p for p in (prefix.strip("/"), namespace, name) if p]
    return "/".join(parts)


def revision_key(prefix: str, namespace: str, name: str, digest: str) -> str:
    return f"{object_prefix(prefix, namespace, name)}/{digest_hex(digest)}.json"


def manifest_key(prefix: str, namespace: str, name: str) -> str:
    return f"{object_prefix(prefix, namespace, name)}/{MANIFEST_NAME}"


def digest_of_key(prefix: str, namespace: str, name: str, key: str) -> str | None:
    """The digest a revision key names (`<prefix>/<ns>/<name>/<hex>.json`), None for any other key."""
    head, _, file = key.rpartition("/")
    hexpart = file.removesuffix(".json")
    if head != object_prefix(prefix, namespace, name) or file == hexpart:
        return None
    try:
        return DIGEST_PREFIX + digest_hex(DIGEST_PREFIX + hexpart)
    except ValueError:
        return None


class ManifestEntry(ApiModel):
    digest: str
    key: str
    size: int
    published_at: str
    signature: str = Field(description="base64 HMAC-SHA256 of the body, as in the object's metadata")


class Manifest(ApiModel):
    api_version: str = API_VERSION
    kind: str = "RevisionManifest"
    namespace: str
    name: str
    revisions: list[ManifestEntry] = Field(default_factory=list)

    def find(self, digest: str) -> ManifestEntry | None:
        return next((e for e in self.revisions if e.digest == digest), None)


def record(manifest: Manifest, entries: Iterable[ManifestEntry]) -> Manifest:
    """Put `entries` at the front (newest first), replacing older entries of the same digest."""
    new = list(entries)
    digests = {e.digest for e in new}
    kept = [e for e in manifest.revisions if e.digest not in digests]
    return manifest.model_copy(update={"revisions": [*new, *kept]})


def select_garbage(history: Sequence[ManifestEntry], keep: int, in_use: Iterable[str]) -> list[ManifestEntry]:
    """Entries beyond the newest `keep`, except those a cluster still serves or is moving to."""
    used = set(in_use)
    return [e for e in history[max(keep, 0) :] if e.digest not in used]


def without(manifest: Manifest, garbage: Iterable[ManifestEntry]) -> Manifest:
    gone = {e.digest for e in garbage}
    return manifest.model_copy(update={"revisions": [e for e in manifest.revisions if e.digest not in gone]})
