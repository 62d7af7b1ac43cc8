"""How deeply a config or an overlay patch may nest, checked without recursion.

The apiserver accepts JSON nested up to 10000 levels, and the CRD cannot bound the depth of a
free-form (`x-kubernetes-preserve-unknown-fields`) subtree: neither OpenAPI nor CEL can recurse.
So the renderer checks the depth first, iteratively, before anything recursive (merge patch,
substitution, JSON encoding, pydantic serialization) touches the document.
"""

from __future__ import annotations

from typing import Any

from edgeroll.render.canonical import PLAIN_LEAVES
from edgeroll.render.errors import PathSegment, RenderError, json_path

# Objects and lists count alike; a top-level object is level 1. Real Cosmo execution configs
# stay under 20 levels; 64 leaves room for any hand-written JSON config and stays far below
# every recursive step after it (Python's recursion limit of 1000, pydantic's serializer).
MAX_DEPTH = 64
_SHOWN = 400  # characters of a path kept in a message


def _survey(value: Any, limit: int) -> tuple[bool, bool]:
    """(no object or list nested deeper than `limit` levels, `value` is plain JSON as
    canonical.py means it), in one walk without recursion or paths: every render walks the
    whole config, and the encoder needs the second answer, so it need not walk it again."""
    if not isinstance(value, dict | list):
        return True, type(value) in PLAIN_LEAVES
    plain = type(value) is dict or type(value) is list
    level: list[Any] = [value]  # level by level: no depth stored per container
    depth = 0
    while level:
        if depth >= limit:
            return False, plain
        deeper: list[Any] = []
        push = deeper.append
        for item in level:
            for child in item.values() if isinstance(item, dict) else item:
                kind = type(child)  # exact types first: the common case, and what "plain" asks
                if kind is dict or kind is list:
                    push(child)
                elif kind not in PLAIN_LEAVES:
                    plain = False
                    if isinstance(child, dict | list):  # a subclass still nests
                        push(child)
        level = deeper
        depth += 1
    return True, plain


def too_deep(value: Any, limit: int = MAX_DEPTH) -> tuple[PathSegment, ...] | None:
    """The path of the first object or list nested deeper than `limit` levels, or None."""
    if _survey(value, limit)[0]:
        return None
    pending: list[tuple[Any, tuple[PathSegment, ...]]] = [(value, ())]
    while pending:
        item, path = pending.pop()
        if isinstance(item, dict):
            children: list[tuple[PathSegment, Any]] = list(item.items())
        elif isinstance(item, list):
            children = list(enumerate(item))
        else:
            continue
        if len(path) >= limit:
            return path
        pending.extend((v, (*path, k)) for k, v in reversed(children) if isinstance(v, dict | list))
    return None


def check_depth(value: Any, root: str, source: str = "", limit: int = MAX_DEPTH) -> bool:
    """Raise RenderError `ConfigTooDeep` naming the path and the limit when `value` nests deeper.

    Returns whether `value` is plain JSON, for `canonical_json(value, plain=)`: found in the same walk.
    """
    within, plain = _survey(value, limit)
    path = None if within else too_deep(value, limit)  # the path is built only for an error
    if path is None:
        return plain
    where = json_path(path, root)
    if len(where) > _SHOWN:
        where = f"{where[: _SHOWN // 2]}…{where[-_SHOWN // 2 :]}"
    raise RenderError(
        "ConfigTooDeep",
        where,
        f"nested deeper than the limit of {limit} levels (objects and lists count alike)",
        source,
    )
