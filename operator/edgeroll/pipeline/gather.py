"""The reconcile's first steps, shared with the plan preview: parse the spec, pick the targets, check
the Prometheus addresses its analysis names, gather its config from the hub, render them.

Reads only (a `get` on the hub) and pure decisions, so `edgeroll plan` runs exactly what the operator
runs up to the render and no further: whatever these refuse, the operator refuses in the same words.
Failures are typed: `Stalled` (the object must change; becomes a Stalled condition) or `Retryable` (a
hub blip; retried with backoff). Secrets are read by the reconciler itself, never here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from edgeroll.api.routerconfig import RouterConfigSpec
from edgeroll.api.selectors import selector_matches
from edgeroll.clusters.kube import ClusterUnreachable, KubeApiError
from edgeroll.clusters.objects import ObjectRef
from edgeroll.clusters.registry import EdgeClusterInfo
from edgeroll.render.errors import RenderError
from edgeroll.render.operations import PersistedOperations
from edgeroll.render.overlays import ClusterFacts
from edgeroll.render.revision import (
    RenderSet,
    decode_binary_data,
    decode_config,
    decode_operations,
    render_set,
)
from edgeroll.rollout.prometheus_policy import prometheus_address_problem


class Stalled(Exception):
    """The RouterConfig cannot go on as it is: `reason` for the condition, `message` naming the field."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason, self.message = reason, message
        super().__init__(message)


class Retryable(Exception):
    """A failure that may pass by itself (the hub did not answer): retried with backoff."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason, self.message = reason, message
        super().__init__(message)


class HubReader(Protocol):
    """The hub as these steps use it: one object by reference (None when it does not exist)."""

    async def get(self, ref: ObjectRef) -> dict[str, Any] | None: ...


def parse_spec(raw: Mapping[str, Any]) -> RouterConfigSpec:
    """The spec as the operator reads it; Stalled `InvalidSpec` naming the first bad field."""
    try:
        return RouterConfigSpec.model_validate(dict(raw))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise Stalled("InvalidSpec", f"{spec_path(err['loc'])}: {err['msg']}") from None


def spec_path(loc: Sequence[int | str]) -> str:
    """A pydantic error location as the field a user edits: `spec.rollout.analysis.metrics[0].query`."""
    return "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def targets_of(spec: RouterConfigSpec, clusters: Mapping[str, EdgeClusterInfo]) -> list[EdgeClusterInfo]:
    """The EdgeClusters the spec's selector matches, by name."""
    return [
        info
        for name, info in sorted(clusters.items())
        if selector_matches(spec.targets.cluster_selector, info.labels)
    ]


def content_revision(spec: RouterConfigSpec, base_digest: str) -> str:
    """What is rolled out, as an id: the base digest, plus a hash of the overlays when there are any.

    A new value supersedes the rollout in progress. Neither the policy (soak, pause) nor spec.cache
    is part of it, and neither are the clusters: a target that joins is rolled out within the current
    revision even when an overlay gives it a digest of its own.
    """
    if not spec.overlays:
        return base_digest
    overlays = json.dumps([o.to_wire() for o in spec.overlays], sort_keys=True, separators=(",", ":"))
    return f"{base_digest}+overlays:{hashlib.sha256(overlays.encode()).hexdigest()[:12]}"


def check_prometheus_addresses(
    spec: RouterConfigSpec, allowed: Sequence[str], targets: Sequence[EdgeClusterInfo]
) -> None:
    """Stalled `PrometheusNotAllowed` naming the metric when spec.rollout.analysis names a Prometheus that
    is neither in `allowed` (the operator's --allowed-prometheus-address) nor a target EdgeCluster's
    spec.prometheus.address. Pure; before anything is read."""
    edge_defaults = (t.spec.prometheus.address for t in targets if t.spec is not None and t.spec.prometheus)
    problem = prometheus_address_problem(spec.rollout.analysis, allowed, edge_defaults)
    if problem is not None:
        raise Stalled("PrometheusNotAllowed", problem)


async def hub_get(hub: HubReader, ref: ObjectRef, field: str) -> dict[str, Any] | None:
    """`ref` from the hub; a 403 stalls naming what to grant (no retry helps), other errors retry."""
    try:
        return await hub.get(ref)
    except KubeApiError as exc:
        if exc.status == 403:
            where = f"{ref.kind} {ref.namespace}/{ref.name}"
            if ref.kind == "Secret":  # the chart grants Secrets only in these namespaces
                fix = f"add {ref.namespace} to the chart's secretNamespaces"
            else:  # the chart's ClusterRole grants ConfigMaps everywhere: RBAC was changed by hand
                fix = f"grant the operator get on {ref.kind.lower()}s in {ref.namespace}"
            message = f"the operator may not read {where} (403): {fix} ({field})"
            raise Stalled(f"{ref.kind}Forbidden", message) from None
        raise Retryable("HubReadFailed", f"reading {ref}: {exc}") from None
    except ClusterUnreachable as exc:
        raise Retryable("HubReadFailed", f"reading {ref}: {exc}") from None


async def read_config(hub: HubReader, namespace: str, spec: RouterConfigSpec) -> tuple[dict[str, Any], str]:
    """The config to render and where it came from (inline, or the ConfigMap key, gzip allowed)."""
    if spec.config is not None:
        return spec.config, "spec.config"
    assert spec.config_from is not None  # the CRD's CEL rule guarantees one of the two
    ref = spec.config_from.config_map_key_ref
    source = f"ConfigMap {namespace}/{ref.name} key {ref.key}"
    field = "spec.configFrom.configMapKeyRef"
    cm = await hub_get(hub, ObjectRef("v1", "ConfigMap", namespace, ref.name), field)
    if cm is None:
        raise Stalled("ConfigMapNotFound", f"{source}: ConfigMap not found ({field})")
    data, binary = cm.get("data") or {}, cm.get("binaryData") or {}
    try:
        if ref.key in data:
            return decode_config(data[ref.key], source), source
        if ref.key in binary:
            return decode_config(decode_binary_data(binary[ref.key], source), source), source
    except RenderError as exc:
        raise Stalled(exc.reason, exc.message) from None
    raise Stalled("ConfigKeyNotFound", f"{source}: no such key ({field}.key)")


async def read_operations(
    hub: HubReader, namespace: str, spec: RouterConfigSpec
) -> PersistedOperations | None:
    """The persisted operations the spec names, validated; None when it names none."""
    wanted = spec.persisted_operations
    if wanted is None:
        return None
    name, field = wanted.config_map_ref.name, "spec.persistedOperations.configMapRef"
    source = f"ConfigMap {namespace}/{name}"
    cm = await hub_get(hub, ObjectRef("v1", "ConfigMap", namespace, name), field)
    if cm is None:
        raise Stalled("ConfigMapNotFound", f"{source}: ConfigMap not found ({field})")
    try:
        return decode_operations(cm, source, cache_warmup=wanted.cache_warmup)
    except RenderError as exc:
        raise Stalled(exc.reason, f"{exc.message} ({field})") from None


def render_targets(
    spec: RouterConfigSpec,
    config: dict[str, Any],
    source: str,
    operations: PersistedOperations | None,
    targets: list[EdgeClusterInfo],
) -> RenderSet:
    """The base render and every target's (overlays applied); Stalled with the JSON path when any is
    refused. Pure and CPU-bound: the reconciler runs it in a thread."""
    facts = [ClusterFacts(t.name, dict(t.labels)) for t in targets]
    try:
        return render_set(spec.format, config, spec.overlays, facts, source, operations)
    except RenderError as exc:
        raise Stalled(exc.reason, exc.message) from None
