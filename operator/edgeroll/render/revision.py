"""From a config and its overlays to the exact bytes each cluster is served."""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgeroll.api.routerconfig import ConfigFormat, Overlay
from edgeroll.render.canonical import DIGEST_PREFIX, content_digest, digest_hex
from edgeroll.render.errors import RenderError
from edgeroll.render.formats import served
from edgeroll.render.limits import MAX_DEPTH, check_depth
from edgeroll.render.operations import REASON as OPERATIONS_REASON
from edgeroll.render.operations import PersistedOperations, bundle_body, parse_operations
from edgeroll.render.overlays import ClusterFacts, apply_overlays, matching_overlays

GZIP_MAGIC = b"\x1f\x8b"
MAX_DECOMPRESSED = 64 * 1024 * 1024  # a guard against gzip bombs in a ConfigMap


@dataclass(frozen=True)
class Revision:
    """One immutable published object: canonical bytes and their digest."""

    body: bytes
    digest: str

    @property
    def hex(self) -> str:
        return digest_hex(self.digest)

    @property
    def size(self) -> int:
        return len(self.body)


@dataclass(frozen=True)
class RenderSet:
    """The base render and the render for every target cluster (overlays give a cluster its own)."""

    base: Revision
    clusters: Mapping[str, Revision]

    def revisions(self) -> dict[str, Revision]:
        """Distinct revisions by digest, base first."""
        out = {self.base.digest: self.base}
        for rev in self.clusters.values():
            out.setdefault(rev.digest, rev)
        return out


def make_revision(
    fmt: ConfigFormat,
    document: Any,
    operations: PersistedOperations | None = None,
    plain: bool | None = None,
) -> Revision:
    """The revision of one render; with persisted operations, a bundle of config and operations.
    `plain`: whether `document` is plain JSON, when known (`check_depth` tells)."""
    body, sha256_hex = served(fmt, document, plain)
    if operations is None:
        return Revision(body=body, digest=DIGEST_PREFIX + sha256_hex)
    body = bundle_body(body, operations)
    return Revision(body=body, digest=content_digest(body))


def gunzip(data: bytes, source: str, reason: str = "InvalidConfig") -> bytes:
    """`data`, decompressed when it is gzip (a ConfigMap holds at most 1 MiB), within MAX_DECOMPRESSED."""
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data = d.decompress(data, MAX_DECOMPRESSED)
        if d.unconsumed_tail:
            raise RenderError(reason, "$", f"decompresses to over {MAX_DECOMPRESSED} bytes", source)
        if not d.eof:
            raise RenderError(reason, "$", "truncated gzip data", source)
    except (zlib.error, EOFError, gzip.BadGzipFile) as exc:
        raise RenderError(reason, "$", f"invalid gzip data: {exc}", source) from exc
    return data


def decode_config(raw: bytes | str, source: str) -> dict[str, Any]:
    """Parse a config from a ConfigMap value: JSON text, or gzip-compressed JSON bytes."""
    data = gunzip(raw.encode("utf-8") if isinstance(raw, str) else raw, source)
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RenderError("InvalidConfig", "$", f"not valid JSON: {exc}", source) from exc
    except RecursionError:  # deeper than Python's json parser goes, far past MAX_DEPTH
        raise RenderError(
            "ConfigTooDeep", "$", f"nested deeper than the limit of {MAX_DEPTH} levels", source
        ) from None
    if not isinstance(doc, dict):
        raise RenderError("InvalidConfig", "$", "the config must be a JSON object", source)
    check_depth(doc, "$", source)
    return doc


def decode_binary_data(value: str, source: str) -> bytes:
    """ConfigMap binaryData values are base64 on the wire."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RenderError("InvalidConfig", "$", f"binaryData is not base64: {exc}", source) from exc


def decode_operations(
    config_map: Mapping[str, Any], source: str, *, cache_warmup: bool
) -> PersistedOperations:
    """Persisted operations from a ConfigMap: `data` as text, `binaryData` base64 (gzip allowed)."""
    entries: dict[str, str] = dict(config_map.get("data") or {})
    for key, value in (config_map.get("binaryData") or {}).items():
        where = f"{source} key {key!r}"
        raw = gunzip(decode_binary_data(value, where), where, OPERATIONS_REASON)
        try:
            entries[key] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RenderError(OPERATIONS_REASON, where, "not UTF-8 text") from None
    return parse_operations(entries, source, cache_warmup=cache_warmup)


def render_set(
    fmt: ConfigFormat,
    config: dict[str, Any],
    overlays: Sequence[Overlay],
    clusters: Sequence[ClusterFacts],
    source: str = "spec.config",
    operations: PersistedOperations | None = None,
) -> RenderSet:
    """Render the base and every cluster; raises RenderError naming the first bad path.

    All or nothing: one bad cluster render fails the whole set, so a
    broken change is never half-published.
    """
    # Before anything recursive; every overlay, matched or not (content_revision encodes them all).
    # A merge patch result nests no deeper than its target or its patch, so checking both suffices
    # (a cosmo patch copied into a feature flag goes 3 levels deeper: far below any recursion limit).
    plain = check_depth(config, "$", source)  # and whether the encoder may skip its own type walk
    for i, overlay in enumerate(overlays):
        check_depth(overlay.patch, f"spec.overlays[{i}].patch")
    try:
        base = make_revision(fmt, config, operations, plain)
    except RenderError as exc:
        raise exc.with_source(source) from None
    per_cluster: dict[str, Revision] = {}
    for cluster in clusters:
        if not matching_overlays(overlays, cluster):
            per_cluster[cluster.name] = base
            continue
        document = apply_overlays(config, overlays, cluster, fmt=fmt)
        try:
            per_cluster[cluster.name] = make_revision(fmt, document, operations)
        except RenderError as exc:
            raise exc.with_source(f"{source} after the overlays for cluster {cluster.name}") from None
    return RenderSet(base=base, clusters=per_cluster)
