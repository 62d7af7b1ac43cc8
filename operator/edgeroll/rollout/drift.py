"""Is the live object still what we applied? A pure, server-defaults-tolerant comparison.

Desired must be contained in live: every field we set has our value, while
fields the apiserver defaults (or others own) are ignored. Lists compare
element by element and must have the same length. Resource quantities
compare by value, since the apiserver normalises them ("0.5" -> "500m").
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from edgeroll.rollout.resources import (
    SECRET_ACCESS_KEY_ID,
    SECRET_GRAPH_TOKEN_SECRET,
    SECRET_SECRET_ACCESS_KEY,
)

# Edge Secret keys only the operator writes. One it stopped sending (the S3 key, once the caches use
# workload identity; a graph token secret taken out of the spec) must not linger there: it is drift,
# and the server-side apply drops what our field manager no longer sends.
_DROPPED_SECRET_KEYS = (SECRET_ACCESS_KEY_ID, SECRET_SECRET_ACCESS_KEY, SECRET_GRAPH_TOKEN_SECRET)

_SUFFIXES = {
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$")


def parse_quantity(value: object) -> Decimal | None:
    """A Kubernetes quantity as a number, or None when it is not one."""
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        return None
    try:
        number = Decimal(match.group(1))
        if match.group(2):
            return number * Decimal(10) ** int(match.group(2)[1:])
        return number * _SUFFIXES[match.group(3) or ""]
    except (InvalidOperation, ValueError):
        return None


def _equal_leaf(desired: Any, live: Any, in_resources: bool) -> bool:
    if desired == live and type(desired) is type(live):
        return True
    if in_resources:
        a, b = parse_quantity(desired), parse_quantity(live)
        return a is not None and a == b
    return False


def first_difference(desired: Any, live: Any, path: str = "", in_resources: bool = False) -> str | None:
    """The first path where `live` does not hold `desired`, or None when it does."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return path or "."
        for key, value in desired.items():
            sub = f"{path}.{key}" if path else key
            if key not in live:
                if value in ({}, []):  # the apiserver drops empty objects and lists
                    continue
                return sub
            found = first_difference(value, live[key], sub, in_resources or key == "resources")
            if found is not None:
                return found
        return None
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return path or "."
        for i, (d, v) in enumerate(zip(desired, live, strict=True)):
            found = first_difference(d, v, f"{path}[{i}]", in_resources)
            if found is not None:
                return found
        return None
    return None if _equal_leaf(desired, live, in_resources) else (path or ".")


def drifted(desired: dict[str, Any], live: dict[str, Any] | None) -> str | None:
    """Why `live` needs an apply: "missing", a field path, or None when it is in sync."""
    if live is None:
        return "missing"
    if desired.get("kind") == "Secret":
        sent, held = desired.get("data") or {}, live.get("data") or {}
        for key in _DROPPED_SECRET_KEYS:
            if key in held and key not in sent:
                return f"data.{key}"
    body = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind")}
    return first_difference(body, live)
