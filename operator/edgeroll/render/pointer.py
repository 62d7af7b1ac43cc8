"""The revision pointer: which revision one cluster's edge caches should serve (in-place switching).

With `EdgeCluster.spec.revisionSwitch: InPlace` a new revision is not a new pod. The operator
writes a small signed object to S3, one per RouterConfig and cluster, then tells every running
cache pod to re-read it (`POST /-/revision`, through the edge apiserver's pod proxy). The pod
reads the pointer, fetches and verifies the revision it names exactly as at start-up, swaps it in,
and answers with the digest it now serves: that answer is the cluster's health gate.

The notification carries nothing: a cache believes only the pointer, which only the operator can
write (the caches' S3 key reads) and which is signed with the RouterConfig's key under a label of
its own, so no config body (signed with the same key) can pass for a pointer. Routers hold the
signing key but cannot write S3, and S3 writers without the key cannot forge a pointer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from edgeroll.render.canonical import DIGEST_PREFIX, canonical_json

POINTER_KIND = "edgeroll.io/revision-pointer/v1"
SWITCH_PATH = "/-/revision"  # POST: re-read the pointer and switch; GET: what is served
_LABEL = b"edgeroll-pointer\n"  # domain separation from config signatures (same key)


class PointerError(ValueError):
    """A pointer that is malformed or does not verify; `reason` is a metrics-safe word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class RevisionPointer:
    namespace: str  # the RouterConfig's
    name: str
    cluster: str  # the EdgeCluster it is for
    digest: str  # sha256:<hex> of the revision's bytes
    key: str  # its S3 key


def pointer_key(object_prefix: str, cluster: str) -> str:
    """`<prefix>/<ns>/<name>/targets/<cluster>.json`: beside the revisions, never taken for one."""
    return f"{object_prefix}/targets/{cluster}.json"


def encode_pointer(pointer: RevisionPointer) -> bytes:
    return canonical_json(
        {
            "kind": POINTER_KIND,
            "namespace": pointer.namespace,
            "name": pointer.name,
            "cluster": pointer.cluster,
            "digest": pointer.digest,
            "key": pointer.key,
        }
    )


def sign_pointer(signing_key: bytes, body: bytes) -> str:
    return hmac.new(signing_key, _LABEL + body, hashlib.sha256).hexdigest()


def read_pointer(
    body: bytes, signature: str | None, signing_key: bytes, *, namespace: str, name: str
) -> RevisionPointer:
    """The pointer in `body` if its signature verifies (constant time) and it is for this config."""
    if not signature or not hmac.compare_digest(
        sign_pointer(signing_key, body).encode("ascii"), signature.strip().encode("ascii", "replace")
    ):
        raise PointerError("signature", "the revision pointer's signature does not verify")
    try:
        raw = json.loads(body)
        fields = {f: raw[f] for f in ("namespace", "name", "cluster", "digest", "key")}
    except (ValueError, TypeError, KeyError) as exc:
        raise PointerError("malformed", f"the revision pointer is malformed: {exc!r}") from None
    if raw.get("kind") != POINTER_KIND or not all(isinstance(v, str) and v for v in fields.values()):
        raise PointerError("malformed", "the revision pointer is malformed")
    pointer = RevisionPointer(**fields)
    if (pointer.namespace, pointer.name) != (namespace, name):
        raise PointerError("config", f"the pointer is for {pointer.namespace}/{pointer.name}")
    if not pointer.digest.startswith(DIGEST_PREFIX):
        raise PointerError("malformed", "the revision pointer's digest is not sha256:<hex>")
    return pointer
