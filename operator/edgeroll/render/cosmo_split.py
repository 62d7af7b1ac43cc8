"""Split config loading (pure): the files a Cosmo router reads under `manifest/` instead of one config.

A router whose graph token carries the feature `split-config-loading` asks the CDN for
`manifest/mapper.json`, then `manifest/latest.json` and `manifest/feature-flags/<name>.json`,
and assembles the execution config from them (router/pkg/controlplane/configpoller in
wundergraph/cosmo). Cosmo's control plane writes these files (CompositionService.ts):

- `latest.json`: the base graph's config, without `featureFlagConfigs`;
- `feature-flags/<name>.json`: each flag's `engineConfig`, `version` and `subgraphs`, with the base's
  `compatibilityVersion`;
- `mapper.json`: a flat object, `""` (the base) and each flag's name to the sha256 hex of that file's
  bytes. The router compares the hashes to find what changed; it fetches files by name.

The edge derives all three from the one verified config it serves, so there is nothing more to publish
or to trust: every file is as genuine as the config it comes from. Files are canonical JSON, so a
hash changes only when the content does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeroll.render.canonical import canonical_json
from edgeroll.render.cosmo_fields import BY_NAME, COMPATIBILITY, FLAG_FIELDS, FLAGS

FEATURE = "split-config-loading"  # the graph-token feature that turns split loading on in a router
BASE = ""  # the base graph's key in mapper.json


@dataclass(frozen=True)
class SplitFile:
    body: bytes = field(repr=False)
    # What a client sends back as {"version": ...} for a 304: the config's own version (as Cosmo stores
    # it in the object's metadata), the mapper's sha256 for the mapper.
    version: str


@dataclass(frozen=True)
class CosmoSplit:
    mapper: SplitFile
    base: SplitFile
    flags: Mapping[str, SplitFile]


def _first(document: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    return next((document[n] for n in names if n in document), None)


def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def split_config(document: Mapping[str, Any]) -> CosmoSplit:
    """The manifest files of a Cosmo execution config (one that `render.formats` accepted)."""
    version = document.get("version")
    version = version if isinstance(version, str) else ""
    base = SplitFile(canonical_json({k: v for k, v in document.items() if k not in FLAGS}), version)
    compatibility = {n: document[n] for n in COMPATIBILITY if n in document}
    by_name = _first(_first(document, FLAGS) or {}, BY_NAME) or {}
    flags: dict[str, SplitFile] = {}
    for name, flag in sorted(by_name.items()):
        if isinstance(flag, Mapping):
            body = {k: flag[k] for k in FLAG_FIELDS if k in flag} | compatibility
            flags[name] = SplitFile(canonical_json(body), version)
    hashes = {BASE: _sha256(base.body), **{name: _sha256(f.body) for name, f in flags.items()}}
    mapper_body = canonical_json(hashes)
    return CosmoSplit(SplitFile(mapper_body, _sha256(mapper_body)), base, flags)
