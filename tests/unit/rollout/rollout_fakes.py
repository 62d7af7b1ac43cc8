"""In-memory stand-ins for the hub and edge apiservers (the KubeApi seam)."""

from __future__ import annotations

import base64
import copy
import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

import yaml

from edgeroll.clusters.kube import ClusterUnreachable, KubeApiError
from edgeroll.clusters.objects import ObjectRef, ref_of


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base.get(k), v)
        return out
    return copy.deepcopy(patch)


class FakeKube:
    """Objects by (kind, namespace, name). `apply` merges like a forced server-side apply would for
    fields we own; a Deployment's generation moves when its spec changes."""

    def __init__(self, name: str = "fake", namespaces: tuple[str, ...] = ("default",)) -> None:
        self.name = name
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.namespaces = set(namespaces)
        self.calls: Counter[str] = Counter()
        self.unreachable = False
        self.closed = False
        self._rv = 0

    def _check(self, op: str) -> None:
        self.calls[op] += 1
        if self.unreachable:
            raise ClusterUnreachable(f"{self.name} unreachable: ConnectionRefusedError")

    @property
    def writes(self) -> int:
        return self.calls["apply"] + self.calls["delete"]

    def put(self, obj: Mapping[str, Any]) -> None:
        ref = ref_of(obj)
        self._rv += 1
        stored = copy.deepcopy(dict(obj))
        stored.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        self.objects[(ref.kind, ref.namespace, ref.name)] = stored
        if ref.kind == "Namespace":
            self.namespaces.add(ref.name)

    def obj(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    async def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        self._check("get")
        found = self.objects.get((ref.kind, ref.namespace, ref.name))
        return copy.deepcopy(found) if found is not None else None

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        self._check("apply")
        ref = ref_of(manifest)
        if ref.namespace is not None and ref.namespace not in self.namespaces:
            raise KubeApiError(404, "NotFound", f'namespaces "{ref.namespace}" not found')
        key = (ref.kind, ref.namespace, ref.name)
        old = self.objects.get(key)
        new = _merge(old or {}, dict(manifest))
        if ref.kind == "Deployment":
            gen = int((old or {}).get("metadata", {}).get("generation", 0))
            changed = old is None or old.get("spec") != new.get("spec")
            new["metadata"]["generation"] = gen + 1 if changed else gen
            new.setdefault("status", {})
        self.put(new)
        if ref.kind == "Namespace":
            self.namespaces.add(ref.name)
        return copy.deepcopy(self.objects[key])

    async def delete(self, ref: ObjectRef) -> bool:
        self._check("delete")
        return self.objects.pop((ref.kind, ref.namespace, ref.name), None) is not None

    async def version(self) -> str:
        self._check("version")
        return "v1.34.4"

    async def close(self) -> None:
        self.closed = True

    def deployments(self) -> list[dict[str, Any]]:
        return [o for (kind, _, _), o in self.objects.items() if kind == "Deployment"]

    def finish_rollouts(self) -> None:
        """What the Deployment controller and kwok do: every replica updated and available."""
        for d in self.deployments():
            n = d["spec"].get("replicas", 1)
            d["status"] = {
                "observedGeneration": d["metadata"]["generation"],
                "replicas": n,
                "updatedReplicas": n,
                "readyReplicas": n,
                "availableReplicas": n,
                "conditions": [{"type": "Available", "status": "True"}],
            }


def kubeconfig_secret(namespace: str, name: str, server: str) -> dict[str, Any]:
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    return secret(namespace, name, {"kubeconfig": yaml.safe_dump(kubeconfig)})


def secret(namespace: str, name: str, data: Mapping[str, str | bytes]) -> dict[str, Any]:
    def b64(v: str | bytes) -> str:
        return base64.b64encode(v.encode() if isinstance(v, str) else v).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: b64(v) for k, v in data.items()},
    }


def configmap(
    namespace: str,
    name: str,
    data: Mapping[str, Any] | None = None,
    binary: Mapping[str, bytes] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
    }
    if data:
        out["data"] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    if binary:
        out["binaryData"] = {k: base64.b64encode(v).decode() for k, v in binary.items()}
    return out
