"""Per-cluster overlays: `${cluster.*}` substitution, then RFC 7386 merge patches in order."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeroll.api.mergepatch import merge_patch
from edgeroll.api.routerconfig import Overlay
from edgeroll.api.selectors import selector_matches
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


def apply_overlays(
    document: dict[str, Any], overlays: Sequence[Overlay], cluster: ClusterFacts
) -> dict[str, Any]:
    result: Any = document
    for i in matching_overlays(overlays, cluster):
        patch = substitute(overlays[i].patch, cluster, f"spec.overlays[{i}].patch")
        result = merge_patch(result, patch)
    if not isinstance(result, dict):  # cannot happen with object patches; kept as a guard
        raise RenderError("InvalidOverlay", "spec.overlays", "overlays must keep the config an object")
    return result
