"""The last-known-good revision on disk, written so that a crash never leaves a bad file behind.

Layout of the state directory (the only place the cache writes):

    current.rev    one JSON header line, then the exact body bytes
    .*.tmp         in-flight writes; removed at startup, never read

`current.rev` is only ever replaced by rename(2) of a fully written and
fsynced temporary file, followed by an fsync of the directory. Whatever is on
disk is still verified again (digest and HMAC) before it is served.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from edgeroll.cache.revision import Revision, VerificationError, verify_revision

log = logging.getLogger(__name__)

CURRENT_FILE = "current.rev"
FORMAT_VERSION = 1
# Far above any router config; a guard against reading a runaway file into memory.
MAX_STATE_FILE_BYTES = 256 * 1024 * 1024


class StateError(Exception):
    """The state file is unusable; the message says why (never includes key material)."""


@dataclass(frozen=True)
class StateIdentity:
    """Which RouterConfig this state dir belongs to: a reused PVC must not serve another config."""

    namespace: str
    name: str


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, chunks: list[bytes]) -> None:
    """tmp file in the same directory, write, fsync, rename over `path`, fsync the directory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


class StateDir:
    def __init__(self, root: Path, identity: StateIdentity) -> None:
        self.root = root
        self.identity = identity

    @property
    def current_path(self) -> Path:
        return self.root / CURRENT_FILE

    def prepare(self) -> None:
        """Create the directory if needed and drop leftovers of interrupted writes."""
        self.root.mkdir(parents=True, exist_ok=True)
        for leftover in self.root.glob(".*.tmp"):
            log.info("removing leftover of an interrupted write: %s", leftover.name)
            leftover.unlink(missing_ok=True)

    def store(self, revision: Revision) -> None:
        header = {
            "format": FORMAT_VERSION,
            "namespace": self.identity.namespace,
            "name": self.identity.name,
            "digest": revision.digest,
            "signature": revision.signature,
            "published_at": revision.published_at,
        }
        line = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n"
        write_atomic(self.current_path, [line, revision.body])

    def load(self, signing_key: bytes) -> Revision | None:
        """The stored revision if there is one; raises StateError or VerificationError if it is bad."""
        try:
            size = self.current_path.stat().st_size
        except FileNotFoundError:
            return None
        if size > MAX_STATE_FILE_BYTES:
            raise StateError(f"{self.current_path} is {size} bytes, over the {MAX_STATE_FILE_BYTES} limit")
        raw = self.current_path.read_bytes()
        header_line, sep, body = raw.partition(b"\n")
        if not sep:
            raise StateError(f"{self.current_path} has no header line")
        try:
            header = json.loads(header_line)
        except ValueError:
            raise StateError(f"{self.current_path} has a malformed header line") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT_VERSION:
            raise StateError(f"{self.current_path} has an unknown format")
        owner = (header.get("namespace"), header.get("name"))
        if owner != (self.identity.namespace, self.identity.name):
            raise StateError(
                f"{self.current_path} belongs to {owner[0]}/{owner[1]}, "
                f"not {self.identity.namespace}/{self.identity.name}"
            )
        digest = header.get("digest")
        signature = header.get("signature")
        published_at = header.get("published_at")
        if not isinstance(digest, str):
            raise StateError(f"{self.current_path} header has no digest")
        return verify_revision(
            body,
            expected_digest=digest,
            signature=signature if isinstance(signature, str) else None,
            signing_key=signing_key,
            published_at=float(published_at) if isinstance(published_at, int | float) else None,
        )


__all__ = ["StateDir", "StateError", "StateIdentity", "VerificationError", "fsync_dir", "write_atomic"]
