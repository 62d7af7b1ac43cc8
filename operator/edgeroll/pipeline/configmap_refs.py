"""Which RouterConfigs a ConfigMap event concerns: pure decisions behind the ConfigMap watch.

A RouterConfig reads ConfigMaps of its own namespace (spec.configFrom.configMapKeyRef,
spec.persistedOperations.configMapRef) on demand. The kopf wiring keeps an index of those references,
(namespace, ConfigMap name) -> RouterConfig names, and wakes the RouterConfigs an event names for a
full reconcile, which reads the ConfigMap again. Nothing of a ConfigMap is kept but its name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

ConfigMapKey = tuple[str, str]  # namespace, ConfigMap name

# The events that change what a reader gets. kopf reports its initial listing (and a relist) as
# None: the resume handlers already reconcile everything at startup, so a listing wakes nobody.
WAKING_EVENTS = frozenset({"ADDED", "MODIFIED", "DELETED"})


def _name_at(spec: Mapping[str, Any], *path: str) -> str | None:
    node: Any = spec
    for step in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(step)
    return node if isinstance(node, str) and node else None


def referenced_configmaps(spec: Mapping[str, Any]) -> set[str]:
    """The ConfigMaps a RouterConfig's raw spec names. Read leniently, without validating the spec: a
    spec the reconciler stalls on (say, a missing ConfigMap) must still be woken when it appears."""
    names = (
        _name_at(spec, "configFrom", "configMapKeyRef", "name"),
        _name_at(spec, "persistedOperations", "configMapRef", "name"),
    )
    return {n for n in names if n is not None}


def index_entries(namespace: str, name: str, spec: Mapping[str, Any]) -> dict[ConfigMapKey, str]:
    """One RouterConfig's entries in the index: each ConfigMap it names, in its own namespace."""
    return {(namespace, cm): name for cm in sorted(referenced_configmaps(spec))}


def routerconfigs_to_wake(
    event: str | None,
    namespace: str,
    configmap: str,
    index: Mapping[ConfigMapKey, Iterable[str]],
) -> list[str]:
    """The RouterConfigs (names, in `namespace`) to reconcile fully for this ConfigMap event: none for a
    listing, none for a ConfigMap nobody references."""
    if event not in WAKING_EVENTS:
        return []
    return sorted(set(index.get((namespace, configmap), ())))
