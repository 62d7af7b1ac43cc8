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
from edgeroll.render.canonical import content_digest, digest_hex
from edgeroll.render.errors import RenderError
from edgeroll.render.formats import served_bytes
from edgeroll.render.limits import MAX_DEPTH, check_depth
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


def make_revision(fmt: ConfigFormat, document: Any) -> Revision:
    body = served_bytes(fmt, document)
    return Revision(body=body, digest=content_digest(body))


def decode_config(raw: bytes | str, source: str) -> dict[str, Any]:
    """Parse a config from a ConfigMap value: JSON text, or gzip-compressed JSON bytes."""
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    if data[:2] == GZIP_MAGIC:
        try:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = d.decompress(data, MAX_DECOMPRESSED)
            if d.unconsumed_tail:
                raise RenderError(
                    "InvalidConfig", "$", f"decompresses to over {MAX_DECOMPRESSED} bytes", source
                )
            if not d.eof:
                raise RenderError("InvalidConfig", "$", "truncated gzip data", source)
        except (zlib.error, EOFError, gzip.BadGzipFile) as exc:
            raise RenderError("InvalidConfig", "$", f"invalid gzip data: {exc}", source) from exc
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


def render_set(
    fmt: ConfigFormat,
    config: dict[str, Any],
    overlays: Sequence[Overlay],
    clusters: Sequence[ClusterFacts],
    source: str = "spec.config",
) -> RenderSet:
    """Render the base and every cluster; raises RenderError naming the first bad path.

    All or nothing: one bad cluster render fails the whole set, so a
    broken change is never half-published.
    """
    # Before anything recursive; every overlay, matched or not (content_revision encodes them all).
    # A merge patch result nests no deeper than its target or its patch, so checking both suffices.
    check_depth(config, "$", source)
    for i, overlay in enumerate(overlays):
        check_depth(overlay.patch, f"spec.overlays[{i}].patch")
    try:
        base = make_revision(fmt, config)
    except RenderError as exc:
        raise exc.with_source(source) from None
    per_cluster: dict[str, Revision] = {}
    for cluster in clusters:
        if not matching_overlays(overlays, cluster):
            per_cluster[cluster.name] = base
            continue
        document = apply_overlays(config, overlays, cluster)
        try:
            per_cluster[cluster.name] = make_revision(fmt, document)
        except RenderError as exc:
            raise exc.with_source(f"{source} after the overlays for cluster {cluster.name}") from None
    return RenderSet(base=base, clusters=per_cluster)
