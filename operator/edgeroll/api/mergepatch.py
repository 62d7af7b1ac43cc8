"""RFC 7386 JSON merge patch, and its inverse (the diff that produces a target).

Inputs are never mutated. Results may share unchanged subtrees with the
target, so treat every document as immutable after rendering.
"""

from __future__ import annotations

from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply `patch` to `target` as RFC 7386 describes."""
    if not isinstance(patch, dict):
        return patch
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def merge_diff(source: Any, target: Any) -> Any:
    """A merge patch that turns `source` into `target`.

    Exact for targets without nulls (a merge patch cannot set a null).
    Returns `{}` when both are equal objects.
    """
    if not isinstance(source, dict) or not isinstance(target, dict):
        return target
    patch: dict[str, Any] = {}
    for key in source.keys() - target.keys():
        patch[key] = None
    for key, value in target.items():
        if key not in source:
            patch[key] = value
        elif source[key] != value:
            if isinstance(source[key], dict) and isinstance(value, dict):
                patch[key] = merge_diff(source[key], value)
            else:
                patch[key] = value
    return patch
