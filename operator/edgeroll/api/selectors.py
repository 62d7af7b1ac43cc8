"""Label selector matching, with the semantics of Kubernetes' LabelSelector."""

from __future__ import annotations

from collections.abc import Mapping

from edgeroll.api.common import LabelSelector, LabelSelectorRequirement


def _requirement_matches(req: LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    values = req.values or []
    if req.operator == "In":
        return req.key in labels and labels[req.key] in values
    if req.operator == "NotIn":
        return req.key not in labels or labels[req.key] not in values
    if req.operator == "Exists":
        return req.key in labels
    return req.key not in labels  # DoesNotExist


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """True when every term matches; an empty selector matches everything."""
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    return all(_requirement_matches(req, labels) for req in selector.match_expressions or [])
