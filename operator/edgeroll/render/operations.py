"""Persisted operations (pure): from a ConfigMap to one revision with the config, and to Cosmo's files.

A RouterConfig may carry persisted operations (`spec.persistedOperations`). They are versioned with
the config: the published revision is then a *bundle*, one canonical JSON object holding the served
config bytes, their digest and the operations, so one digest, one signature and one rollout cover
both, and a rollback restores both. A revision without operations stays the plain config, so no
existing digest changes.

From a verified bundle the edge cache serves what a Cosmo router reads from its CDN
(router/internal/persistedoperation in wundergraph/cosmo):

- `operations/manifest.json`: the PQL manifest, `{"operations": {<sha256>: <document>}, "revision":
  ..., "version": 1}`, every operation of every client; its revision is the sha256 of the operations,
  so a config-only change does not make routers download it again;
- `operations/<client>/<sha256>.json`: `{"version":1,"body":<document>}`, the object Cosmo's control
  plane stores (what its CDN's tests serve), for routers that fetch one operation at a time;
- `cache_warmup/operations.json` (opt-in): a `CacheWarmerOperations` message, one persisted-query
  request per operation, as Cosmo's cache warmer writes them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeroll.render.canonical import canonical_json, canonical_object, content_digest
from edgeroll.render.errors import RenderError

MANIFEST_KEY = "manifest.json"  # a ConfigMap key holding a Cosmo PQL manifest
DOCUMENT_SUFFIX = ".graphql"
BUNDLE_MARKER = "edgeroll.io/bundle"  # top-level member that makes a revision a bundle
BUNDLE_FORMAT = 1
_HASH = re.compile(r"[0-9a-f]{64}")
REASON = "InvalidPersistedOperations"


@dataclass(frozen=True)
class PersistedOperations:
    """Operation documents by sha256 hex: per client, and (`shared`) of no particular client."""

    by_client: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    shared: Mapping[str, str] = field(default_factory=dict)
    cache_warmup: bool = False

    def all(self) -> dict[str, str]:
        """Every operation by hash (one hash is one document, whoever it belongs to)."""
        merged = dict(self.shared)
        for operations in self.by_client.values():
            merged.update(operations)
        return merged

    def as_json(self) -> dict[str, Any]:
        return {"cacheWarmup": self.cache_warmup, "clients": self.by_client, "shared": self.shared}


def _fail(where: str, detail: str) -> RenderError:
    return RenderError(REASON, where, detail)


def _checked(hash_hex: str, document: Any, where: str) -> str:
    """The document, once its hash is well formed and is its sha256."""
    if not _HASH.fullmatch(hash_hex):
        raise _fail(where, f"{hash_hex!r} is not a sha256 in lowercase hex (64 digits)")
    if not isinstance(document, str) or not document.strip():
        raise _fail(where, "the operation document must be a non-empty string")
    actual = hashlib.sha256(document.encode("utf-8")).hexdigest()
    if actual != hash_hex:
        raise _fail(where, f"the document's sha256 is {actual}, not the {hash_hex} it is filed under")
    return document


def _manifest_operations(text: str, where: str) -> dict[str, str]:
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise _fail(where, f"not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("operations"), dict):
        raise _fail(where, 'a PQL manifest is an object with "operations": {"<sha256>": "<document>"}')
    if manifest.get("version", 1) != 1:
        raise _fail(f"{where}.version", f"unsupported manifest version {manifest['version']!r}; 1 is known")
    operations: dict[str, Any] = manifest["operations"]
    return {h: _checked(h, doc, f"{where}.operations[{h!r}]") for h, doc in operations.items()}


def parse_operations(entries: Mapping[str, str], source: str, *, cache_warmup: bool) -> PersistedOperations:
    """Operations from a ConfigMap's entries (values already decoded to text); RenderError names the
    first bad key and what is wrong with it."""
    by_client: dict[str, dict[str, str]] = {}
    shared: dict[str, str] = {}
    for key in sorted(entries):
        where = f"{source} key {key!r}"
        if key == MANIFEST_KEY:
            shared.update(_manifest_operations(entries[key], where))
            continue
        if not key.endswith(DOCUMENT_SUFFIX):
            raise _fail(
                where, f"expected {MANIFEST_KEY}, <client>.<sha256>{DOCUMENT_SUFFIX} or <sha256>.graphql"
            )
        client, _, hash_hex = key.removesuffix(DOCUMENT_SUFFIX).rpartition(".")
        document = _checked(hash_hex, entries[key], where)
        if client:
            by_client.setdefault(client, {})[hash_hex] = document
        else:
            shared[hash_hex] = document
    return PersistedOperations(by_client, shared, cache_warmup)


def bundle_body(config_body: bytes, operations: PersistedOperations) -> bytes:
    """The revision that holds config and operations: canonical JSON, members sorted, so "config"
    (the served config bytes, unchanged) comes first."""
    return canonical_object(
        {
            "config": config_body,
            "configDigest": canonical_json(content_digest(config_body)),
            BUNDLE_MARKER: canonical_json(BUNDLE_FORMAT),
            "persistedOperations": canonical_json(operations.as_json()),
        }
    )


class BundleError(ValueError):
    """A body that claims to be a bundle but is not a well-formed one."""


def _text_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BundleError(f"{what} is not an object of strings")
    return value


def _operations_from_json(value: Any) -> PersistedOperations:
    if not isinstance(value, dict) or not isinstance(value.get("clients"), dict):
        raise BundleError("persistedOperations is malformed")
    clients = {c: _text_map(ops, f"client {c!r}") for c, ops in value["clients"].items()}
    return PersistedOperations(
        clients, _text_map(value.get("shared"), "shared"), value.get("cacheWarmup") is True
    )


def unbundle(body: bytes) -> tuple[bytes, PersistedOperations | None]:
    """The config bytes and the operations of a revision body; a plain config is its own config.

    Called on verified bytes only (digest and HMAC checked), so a bundle is the operator's own; the
    config digest inside is checked anyway, as the re-encoded config must be the bytes published."""
    if not body.startswith(b'{"config":') or BUNDLE_MARKER.encode() not in body:
        return body, None
    try:
        document = json.loads(body)
    except ValueError:
        return body, None  # a JSON-format config that merely starts like one
    if not isinstance(document, dict) or document.get(BUNDLE_MARKER) != BUNDLE_FORMAT:
        return body, None
    config = canonical_json(document.get("config"))
    if content_digest(config) != document.get("configDigest"):
        raise BundleError("the bundle's config does not match its configDigest")
    return config, _operations_from_json(document.get("persistedOperations"))


# ---- what the edge cache serves ---------------------------------------------------------------


def pql_manifest(operations: PersistedOperations) -> tuple[bytes, str]:
    """The PQL manifest's bytes and its revision (the sha256 of the operations: the ETag)."""
    everything = operations.all()
    revision = hashlib.sha256(canonical_json(everything)).hexdigest()
    return canonical_json({"operations": everything, "revision": revision, "version": 1}), revision


def operation_file(document: str) -> bytes:
    """One operation as Cosmo's control plane stores it (`JSON.stringify({version: 1, body})`)."""
    return json.dumps({"version": 1, "body": document}, separators=(",", ":"), ensure_ascii=False).encode()


def warmup_file(operations: PersistedOperations) -> bytes | None:
    """`CacheWarmerOperations` (protojson) with one persisted-query request per operation; None when
    cache warmup is off or there is nothing to warm (the CDN's 404, which a router takes as none)."""
    items: list[dict[str, Any]] = []
    pairs = [("", h, d) for h, d in sorted(operations.shared.items())]
    pairs += [(c, h, d) for c, ops in sorted(operations.by_client.items()) for h, d in sorted(ops.items())]
    for client, hash_hex, document in pairs:
        item: dict[str, Any] = {
            "request": {
                "query": document,
                "extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash_hex}},
            }
        }
        if client:
            item["client"] = {"name": client}
        items.append(item)
    if not operations.cache_warmup or not items:
        return None
    return canonical_json({"operations": items})
