"""Per-cluster overlays: `${cluster.*}` substitution, then RFC 7386 merge patches in order.

For a `cosmo` config, each patch also applies to every feature flag's config: after the patch is
merged into the whole document, its `engineConfig`/`subgraphs` members are merged into each flag at
`featureFlagConfigs.configByFeatureFlagName.<name>` (the flags the patched document holds).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeroll.api.mergepatch import merge_patch
from edgeroll.api.routerconfig import ConfigFormat, Overlay
from edgeroll.api.selectors import selector_matches
from edgeroll.render.cosmo_fields import OVERLAID_FLAG_FIELDS, flag_maps
from edgeroll.render.errors import PathSegment, RenderError, json_path

# `$${` is an escaped literal `${`; anything else starting with `${cluster.` must resolve.
_TOKEN = re.compile(r"\$\$\{|\$\{cluster\.([^}]*)\}")


@dataclass(frozen=True)
class ClusterFacts:
    """What an overlay may know about a cluster: its EdgeCluster name and labels."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


def substitute_string(value: str, cluster: ClusterFacts, path: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        ref = match.group(1)
        if ref == "name":
            return cluster.name
        if ref.startswith("labels.") and len(ref) > len("labels."):
            key = ref[len("labels.") :]
            if key not in cluster.labels:
                raise RenderError(
                    "InvalidOverlay",
                    path,
                    f"${{cluster.labels.{key}}}: cluster {cluster.name} has no label {key!r}",
                )
            return cluster.labels[key]
        raise RenderError(
            "InvalidOverlay",
            path,
            f"unknown substitution ${{cluster.{ref}}}; use ${{cluster.name}} or ${{cluster.labels.<key>}}",
        )

    return _TOKEN.sub(replace, value)


def substitute(value: Any, cluster: ClusterFacts, root: str, segments: tuple[PathSegment, ...] = ()) -> Any:
    """Substitute in every string value (never in keys) of a patch."""
    if isinstance(value, str):
        return substitute_string(value, cluster, json_path(segments, root))
    if isinstance(value, dict):
        return {k: substitute(v, cluster, root, (*segments, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, cluster, root, (*segments, i)) for i, v in enumerate(value)]
    return value


def matching_overlays(overlays: Sequence[Overlay], cluster: ClusterFacts) -> list[int]:
    """Indexes of the overlays whose selector matches the cluster, in spec order."""
    return [i for i, ov in enumerate(overlays) if selector_matches(ov.cluster_selector, cluster.labels)]


def patch_flags(document: Any, patch: Any) -> Any:
    """`document` with the members of `patch` a flag config also has merged into every flag's config.

    Flags are patched in sorted name order; a flag config that is not an object is left for
    validation to refuse. Without such members or without flags this returns `document` itself,
    so those renders are exactly what they were.
    """
    if not isinstance(document, dict) or not isinstance(patch, dict):
        return document
    flag_patch = {k: patch[k] for k in OVERLAID_FLAG_FIELDS if k in patch}
    found = list(flag_maps(document))
    if not flag_patch or not found:
        return document
    result = dict(document)  # inputs are never mutated: copy each level on the way down
    for outer, inner, by_name in found:
        patched = dict(by_name)
        for name in sorted(patched):
            if isinstance(patched[name], dict):
                patched[name] = merge_patch(patched[name], flag_patch)
        result[outer] = {**result[outer], inner: patched}
    return result


def apply_overlays(
    document: dict[str, Any],
    overlays: Sequence[Overlay],
    cluster: ClusterFacts,
    *,
    fmt: ConfigFormat = ConfigFormat.JSON,
) -> dict[str, Any]:
    result: Any = document
    for i in matching_overlays(overlays, cluster):
        patch = substitute(overlays[i].patch, cluster, f"spec.overlays[{i}].patch")
        result = merge_patch(result, patch)
        if fmt is ConfigFormat.COSMO:
            # Base first, then the flags the patched document holds: 3 levels deeper than in the
            # patch, far below every recursive step after the depth check of render_set.
            result = patch_flags(result, patch)
    if not isinstance(result, dict):  # cannot happen with object patches; kept as a guard
        raise RenderError("InvalidOverlay", "spec.overlays", "overlays must keep the config an object")
    return result
