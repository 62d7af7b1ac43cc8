"""What the preview reads, and nothing it writes: the hub's EdgeClusters, the RouterConfig as it is on
the hub (spec and status), and the ConfigMaps a spec names, read through the operator's own gather
steps (`pipeline.gather`). ConfigMaps in the previewed file stand in for the hub's, as `kubectl apply -f`
of that file would make them. Secrets are never read: digests are of the served bytes, which the
signing key does not touch.

The operator's flags are not on the hub: the Prometheus addresses it allows besides the target
EdgeClusters' own come from `edgeroll plan --allowed-prometheus-address` (default: the operator's
variable, EDGEROLL_ALLOWED_PROMETHEUS_ADDRESSES), and the check is the operator's own.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from edgeroll.api.common import GROUP, VERSION
from edgeroll.api.edgecluster import PLURAL as EC_PLURAL
from edgeroll.api.routerconfig import PLURAL as RC_PLURAL
from edgeroll.api.routerconfig import RouterConfigSpec, RouterConfigStatus
from edgeroll.clusters.objects import ObjectRef
from edgeroll.clusters.registry import EdgeClusterInfo, edgecluster_info
from edgeroll.pipeline.gather import (
    HubReader,
    Stalled,
    check_prometheus_addresses,
    parse_spec,
    read_config,
    read_operations,
    render_targets,
    targets_of,
)
from edgeroll.preview.model import Gathered, Preview, Refusal, build_preview
from edgeroll.render.revision import RenderSet

NO_ALLOW_LIST = (
    "no --allowed-prometheus-address given (nor EDGEROLL_ALLOWED_PROMETHEUS_ADDRESSES): only the target "
    "EdgeClusters' spec.prometheus.address counted as allowed; pass the operator's list to preview as it "
    "would decide"
)


class PreviewHub(HubReader, Protocol):
    """The hub, read only: objects by reference or by path, and collections."""

    async def get_path(self, path: str) -> dict[str, Any] | None: ...

    async def list_objects(
        self, path: str, query: list[tuple[str, str]]
    ) -> tuple[list[dict[str, Any]], str]: ...


class WithFileObjects:
    """The hub, with the file's ConfigMaps in place of the hub's of the same namespace and name."""

    def __init__(self, hub: HubReader, config_maps: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
        self.hub, self.config_maps = hub, config_maps

    async def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        found = self.config_maps.get((ref.namespace or "", ref.name)) if ref.kind == "ConfigMap" else None
        return copy.deepcopy(dict(found)) if found is not None else await self.hub.get(ref)


async def edge_clusters(hub: PreviewHub) -> dict[str, EdgeClusterInfo]:
    """Every EdgeCluster, as the operator's index holds it (labels, spec, reported reachability)."""
    items, _ = await hub.list_objects(f"/apis/{GROUP}/{VERSION}/{EC_PLURAL}", [])
    out = {}
    for item in items:
        meta = item.get("metadata") or {}
        name = str(meta.get("name"))
        out[name] = edgecluster_info(
            name, meta.get("labels") or {}, item.get("spec") or {}, item.get("status")
        )
    return out


async def render_spec(
    hub: HubReader, namespace: str, spec: RouterConfigSpec, targets: Sequence[EdgeClusterInfo]
) -> RenderSet:
    """The operator's gather and render steps, up to (not including) publishing."""
    config, source = await read_config(hub, namespace, spec)
    operations = await read_operations(hub, namespace, spec)
    return render_targets(spec, config, source, operations, list(targets))


async def _live(
    hub: PreviewHub, namespace: str, found: Mapping[str, Any] | None, clusters: Mapping[str, EdgeClusterInfo]
) -> tuple[RouterConfigStatus | None, RenderSet | None, frozenset[str], list[str]]:
    """The RouterConfig on the hub: its status, what its spec renders now and for whom, and notes."""
    if found is None:
        return None, None, frozenset(), []
    notes: list[str] = []
    try:
        status = RouterConfigStatus.model_validate(found.get("status") or {})
    except ValidationError:  # a status from another version: compare with nothing rather than guess
        status = RouterConfigStatus()
        notes.append("the status on the hub does not parse: what clusters serve now is unknown")
    try:
        spec = parse_spec(found.get("spec") or {})
        targets = targets_of(spec, clusters)
        live = await render_spec(hub, namespace, spec, targets)
    except Stalled as exc:
        notes.append(f"the spec on the hub does not render ({exc.reason}: {exc.message}): no changes shown")
        return status, None, frozenset(), notes
    return status, live, frozenset(t.name for t in targets), notes


async def preview_routerconfig(
    hub: PreviewHub,
    doc: Mapping[str, Any],
    config_maps: Mapping[tuple[str, str], Mapping[str, Any]],
    clusters: Mapping[str, EdgeClusterInfo],
    now: datetime,
    allowed_prometheus: Sequence[str] = (),
) -> Preview:
    """The preview of one RouterConfig document (its namespace set). A refusal is a preview that says
    so; a hub that does not answer raises `Retryable`. `allowed_prometheus` stands in for the operator's
    --allowed-prometheus-address."""
    meta = doc.get("metadata") or {}
    namespace, name = str(meta["namespace"]), str(meta.get("name") or "")
    found = await hub.get_path(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{RC_PLURAL}/{name}")
    try:
        spec = parse_spec(doc.get("spec") or {})
        targets = targets_of(spec, clusters)
        check_prometheus_addresses(spec, allowed_prometheus, targets)  # as the operator: before any read
        rendered = await render_spec(WithFileObjects(hub, config_maps), namespace, spec, targets)
    except Stalled as exc:
        unlisted = exc.reason == "PrometheusNotAllowed" and not allowed_prometheus
        refused = Refusal(exc.reason, exc.message)
        return Preview(
            namespace,
            name,
            exists=found is not None,
            refused=refused,
            notes=(NO_ALLOW_LIST,) if unlisted else (),
        )
    status, live, live_targets, notes = await _live(hub, namespace, found, clusters)
    gathered = Gathered(namespace, name, spec, rendered, targets, status, live, live_targets, notes)
    return build_preview(gathered, now)
