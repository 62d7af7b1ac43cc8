"""What changed between two JSON documents, as JSON paths, and values cut to a width for a terminal.

Pure. Objects are compared key by key, arrays index by index (a rendered config's arrays are ordered:
RFC 7386 replaces them whole, so an index is as good a name as any); anything else by value. A subtree
that appears or goes is one change at its root, not one per leaf.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

ChangeKind = Literal["added", "removed", "changed"]
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ABSENT = object()  # a side that has no value at a path (None is JSON null, a value)
ELLIPSIS = "…"


@dataclass(frozen=True)
class Change:
    path: str  # "$.engineConfig.datasourceConfigurations[2].id"
    kind: ChangeKind
    old: Any = None  # the value before (None for "added")
    new: Any = None  # the value after (None for "removed")


def child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if _IDENTIFIER.match(key) else f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def json_changes(old: Any, new: Any, path: str = "$") -> list[Change]:
    """Every change from `old` to `new`, in document order (object keys sorted)."""
    out: list[Change] = []
    _walk(old, new, path, out)
    return out


def _walk(old: Any, new: Any, path: str, out: list[Change]) -> None:
    # Recursive: rendered documents nest at most render.limits.MAX_DEPTH (64) levels.
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            _walk(old.get(key, _ABSENT), new.get(key, _ABSENT), child_path(path, key), out)
    elif isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            a = old[i] if i < len(old) else _ABSENT
            b = new[i] if i < len(new) else _ABSENT
            _walk(a, b, child_path(path, i), out)
    elif old is _ABSENT:
        if new is not _ABSENT:
            out.append(Change(path, "added", None, new))
    elif new is _ABSENT:
        out.append(Change(path, "removed", old, None))
    elif type(old) is not type(new) or old != new:  # 1 and 1.0, or 1 and true, are different JSON
        out.append(Change(path, "changed", old, new))


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def cut(text: str, width: int) -> str:
    """`text` within `width` characters, ending in an ellipsis when cut; width 0 keeps it whole."""
    if width <= 0 or len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + ELLIPSIS


def cut_pair(old: Any, new: Any, width: int) -> tuple[str, str]:
    """Both sides of a change as compact JSON within `width`. Two long texts that share a beginning are
    shown from a little before where they first differ: the part a reader needs (a schema edited at its
    end would otherwise show the same first 80 characters twice)."""
    a, b = compact(old), compact(new)
    if width <= 0 or (len(a) <= width and len(b) <= width):
        return a, b
    same = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        same += 1
    start = max(same - width // 4, 0)
    if start > 0:
        return cut(ELLIPSIS + a[start:], width), cut(ELLIPSIS + b[start:], width)
    return cut(a, width), cut(b, width)


def describe(change: Change, width: int) -> str:
    """One line: `~ path: old -> new`, `+ path: new`, `- path: old`."""
    if change.kind == "added":
        return f"+ {change.path}: {cut(compact(change.new), width)}"
    if change.kind == "removed":
        return f"- {change.path}: {cut(compact(change.old), width)}"
    old, new = cut_pair(change.old, change.new, width)
    return f"~ {change.path}: {old} -> {new}"
