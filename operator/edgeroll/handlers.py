"""kopf wiring, and nothing else: parse the body, call the controller, post events.

The reconcile and its per-object loops live in edgeroll.pipeline, the planner's pure
decisions in edgeroll.rollout, I/O in the adapters (clusters, publish). Reconciling is
level-based: create, update and resume call the same reconcile; a daemon per object re-runs
it on schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import kopf

from edgeroll.api.common import GROUP, VERSION
from edgeroll.api.edgecluster import PLURAL as EC_PLURAL
from edgeroll.api.routerconfig import PLURAL as RC_PLURAL
from edgeroll.clusters.edge_watch import EdgeWatches
from edgeroll.clusters.hub import HUB_TIMEOUT, HubNotReady, HubStatusWriter, connect_hub
from edgeroll.clusters.hub_login import hub_login
from edgeroll.clusters.kube import KubeClient
from edgeroll.clusters.prober import EdgeClusterProber, ProbeLoops
from edgeroll.clusters.registry import ClusterRegistry, EdgeClusterInfo, client_factory, edgecluster_info
from edgeroll.operator_metrics import OperatorMetrics
from edgeroll.pipeline.configmap_refs import ConfigMapKey, index_entries, routerconfigs_to_wake
from edgeroll.pipeline.controller import RouterConfigController, backoff
from edgeroll.pipeline.prometheus import PrometheusClient
from edgeroll.pipeline.reconciler import EventNote, Reconciler, RouterConfigObject, utc_now
from edgeroll.publish.publisher import RevisionPublisher
from edgeroll.publish.s3 import S3RevisionStore
from edgeroll.render.canonical import json_sha256
from edgeroll.rollout.commands import PREFIX as COMMAND_PREFIX
from edgeroll.settings import OperatorSettings
from edgeroll.sharding.assignment import ShardAssignment
from edgeroll.sharding.elector import ElectionTimings, ShardElector
from edgeroll.sharding.kube_store import KubeLeaseStore

RC = (GROUP, VERSION, RC_PLURAL)
EC = (GROUP, VERSION, EC_PLURAL)
FINALIZER = "edgeroll.io/finalizer"
# kopf's own bookkeeping (handler progress, last-handled digest). Kept off `edgeroll.io/`:
# kopf hides annotations under its storage prefix from change detection, and the rollout
# commands (`edgeroll.io/rollout-<kind>`, rollout/commands.py) must trigger an update.
STORAGE_PREFIX = "kopf.edgeroll.io"

log = logging.getLogger(__name__)


class DigestDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """Keep digests of the last-handled spec and metadata, not copies of them.

    kopf's default copies the whole spec into an annotation, which fails past
    the 256 KiB annotation limit (kopf #1087) with a large inline config. Our
    handlers are level-based and never read the diff, so a digest is enough to
    tell "changed" from "unchanged".

    The spec is hashed without recursion, and kept away from kopf's deep copy, as are the
    managedFields (which mirror the spec's shape, and which kopf drops): the apiserver accepts a
    spec nested thousands of levels deep, past Python's recursion limit.
    """

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        raw = dict(body)
        spec = raw.pop("spec", None)
        raw["metadata"] = {k: v for k, v in (raw.get("metadata") or {}).items() if k != "managedFields"}
        essence = super().build(body=kopf.Body(cast(kopf.RawBody, raw)), extra_fields=extra_fields)
        return {
            "spec-sha256": json_sha256(spec),
            "metadata-sha256": json_sha256(essence.get("metadata")),
        }


@dataclass
class OperatorContext:
    settings: OperatorSettings
    hub: KubeClient
    store: S3RevisionStore
    registry: ClusterRegistry
    controller: RouterConfigController
    probes: ProbeLoops
    watches: EdgeWatches
    elector: ShardElector
    assignment: ShardAssignment
    election: asyncio.Task[None] | None = None
    prometheus: PrometheusClient | None = None  # rollout analysis queries

    @classmethod
    async def create(cls, settings: OperatorSettings, metrics: OperatorMetrics) -> OperatorContext:
        try:
            hub = await connect_hub(settings.hub_kubeconfig, timeout=HUB_TIMEOUT)
        except HubNotReady as exc:
            raise kopf.PermanentError(str(exc)) from None
        writer = HubStatusWriter(hub)
        store = S3RevisionStore(settings.s3, metrics=metrics)
        overall = asyncio.Semaphore(settings.edge_concurrency)
        registry = ClusterRegistry(hub, settings.edge_timeout_seconds, client_factory(overall))
        publisher = RevisionPublisher(store, settings.s3.prefix)
        # Each edge Deployment event wakes the loop of the RouterConfig it belongs to.
        watches = EdgeWatches(lambda ns, name: controller.edge_changed(ns, name))
        prometheus = PrometheusClient(timeout=settings.edge_timeout_seconds)
        reconciler = Reconciler(
            hub, registry, publisher, settings, metrics=metrics, watches=watches, prometheus=prometheus
        )
        elector = ShardElector(
            KubeLeaseStore(hub, settings.lease_namespace),
            settings.identity,
            settings.shards,
            ElectionTimings(
                settings.lease_duration_seconds,
                settings.renew_deadline_seconds,
                settings.retry_period_seconds,
            ),
            on_acquired=lambda shards: shards_moved("took", shards),
            on_lost=lambda shards: shards_moved("gave up", shards),
        )
        assignment = ShardAssignment(elector)
        # The reconciler's metrics; acting only on RouterConfigs of the shards this replica holds.
        controller = RouterConfigController(reconciler, writer, settings, ownership=assignment)

        def shards_moved(what: str, shards: set[int]) -> None:
            log.info("%s shard(s) %s; acting on %s", what, sorted(shards), sorted(elector.acting()) or "none")
            metrics.set_shards(elector.acting(), elector.shards)
            controller.ownership_changed()

        prober = EdgeClusterProber(
            registry, writer, settings, now=utc_now, metrics=metrics, may_probe=assignment.probes_here
        )
        probes = ProbeLoops(prober, controller.poke_all)
        return cls(
            settings,
            hub,
            store,
            registry,
            controller,
            probes,
            watches,
            elector,
            assignment,
            prometheus=prometheus,
        )

    def start_election(self) -> None:
        self.election = asyncio.create_task(self.elector.run(lambda: False), name="shard-election")

    async def close(self) -> None:
        if self.election is not None:
            self.election.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.election
        await self.elector.release_all()  # the next holder need not wait for the leases to expire
        await self.watches.close()
        await self.probes.close()
        await self.registry.close()
        await self.store.close()
        if self.prometheus is not None:
            await self.prometheus.close()
        await self.hub.close()


def _ctx(memo: kopf.Memo) -> OperatorContext:
    return cast(OperatorContext, memo["ctx"])


def _rc(body: kopf.Body) -> RouterConfigObject:
    return RouterConfigObject(
        namespace=str(body.metadata.namespace),
        name=str(body.metadata.name),
        generation=int(body.metadata.get("generation", 0)),
        spec=dict(body.get("spec", {})),
        status=dict(body.get("status", {}) or {}),
        uid=str(body.metadata.uid or ""),
        deleting=body.metadata.deletion_timestamp is not None,
        annotations={k: str(v) for k, v in body.metadata.annotations.items() if k.startswith(COMMAND_PREFIX)},
        labels={k: str(v) for k, v in body.metadata.labels.items()},
        resource_version=str(body.metadata.get("resourceVersion") or ""),
    )


def _clusters(kwargs: Mapping[str, Any]) -> dict[str, EdgeClusterInfo]:
    """The EdgeCluster index, which kopf passes to every handler under the index function's name."""
    index = cast(kopf.Index[str, EdgeClusterInfo], kwargs["edgeclusters"])
    return {name: info for name, store in index.items() for info in store}


def _emitter(body: kopf.Body) -> Any:
    def emit(note: EventNote) -> None:
        kopf.event(body, type=note.type, reason=note.reason, message=note.message)

    return emit


# ---- startup -----------------------------------------------------------------------------------------


@kopf.on.login()
async def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf reaches the hub with the credentials the operator's own hub client uses (exec plugins,
    files, the ServiceAccount); called again when the hub answers 401."""
    settings = cast(OperatorSettings | None, memo.get("settings"))
    hub = await hub_login(settings.hub_kubeconfig if settings else None)
    expires = getattr(hub.tokens, "expires_at", None)  # an exec plugin's token: kopf logs in again then
    return kopf.ConnectionInfo(
        server=hub.credentials.server,
        ca_data=hub.credentials.ca_pem,
        insecure=not hub.credentials.verify,
        token=await hub.tokens.token(),
        certificate_data=hub.credentials.cert_pem,
        private_key_data=hub.credentials.key_pem,
        default_namespace=hub.namespace,
        expiration=datetime.datetime.fromtimestamp(expires, datetime.UTC) if expires else None,
    )


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=STORAGE_PREFIX)
    settings.persistence.diffbase_storage = DigestDiffBaseStorage(
        prefix=STORAGE_PREFIX, key="last-handled-digest"
    )
    # Our events are posted explicitly (kopf.event); log lines become events only from WARNING up.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "edgeroll"
    settings.posting.event_name_prefix = "edgeroll-"
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
    settings.peering.standalone = True  # one replica, Recreate; kopf peering is not leader election
    settings.scanning.disabled = True  # serve the CRDs present at startup; no cluster-wide CRD watch
    # operator_main.py serves these metrics; a memo without them (tests) gets a registry of its own.
    metrics = cast(OperatorMetrics, memo.get("metrics") or OperatorMetrics())
    memo["ctx"] = ctx = await OperatorContext.create(cast(OperatorSettings, memo["settings"]), metrics)
    ctx.start_election()


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if "ctx" in memo:
        await _ctx(memo).close()


# ---- EdgeClusters --------------------------------------------------------------------------------------


@kopf.index(*EC)
def edgeclusters(
    name: str, labels: Mapping[str, str], spec: Mapping[str, Any], status: Mapping[str, Any], **_: Any
) -> dict[str, Any]:
    """Every RouterConfig handler waits until this index is filled: no target is lost at startup."""
    return {name: edgecluster_info(name, labels, spec, status)}


@kopf.on.event(*EC)
async def edgecluster_changed(
    type: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    ctx = _ctx(memo)
    if type == "DELETED":
        ctx.watches.forget(name)
        await ctx.probes.forget(name)
    else:
        info = edgecluster_info(name, body.metadata.labels, body.get("spec", {}), body.get("status"))
        ctx.probes.observe(info, int(body.metadata.get("generation", 0)), dict(body.get("status", {}) or {}))
    ctx.controller.poke_all()


# ---- ConfigMaps a RouterConfig reads -------------------------------------------------------------------


@kopf.index(*RC)
def routerconfig_configmaps(
    namespace: str | None, name: str, spec: Mapping[str, Any], **_: Any
) -> dict[ConfigMapKey, str]:
    """(namespace, ConfigMap) -> the RouterConfigs that read it (configFrom, persistedOperations)."""
    return index_entries(str(namespace), name, spec)


# kopf watches ConfigMaps in the operator's namespaces (or all). It keeps no bodies: the handler reads
# the event's name only, and the reconcile it wakes reads the ConfigMap itself. Async, so that kopf
# calls it on the loop (a sync handler runs in a thread, and the wake-up is an asyncio.Event).
@kopf.on.event("", "v1", "configmaps")
async def configmap_changed(
    type: str | None, namespace: str | None, name: str, memo: kopf.Memo, **kwargs: Any
) -> None:
    index = cast(kopf.Index[ConfigMapKey, str], kwargs["routerconfig_configmaps"])
    for rc in routerconfigs_to_wake(type, str(namespace), name, index):
        _ctx(memo).controller.inputs_changed(str(namespace), rc)


# ---- RouterConfigs -------------------------------------------------------------------------------------


@kopf.on.create(*RC)
@kopf.on.update(*RC)
@kopf.on.resume(*RC)
async def reconcile(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    await _ctx(memo).controller.reconcile(_rc(body), _clusters(kwargs), _emitter(body), full=True)


# The loop notices `stopped` within a second and exits on its own; the backoff lets it, so kopf
# does not have to cancel it (which it reports as a warning event).
@kopf.daemon(*RC, cancellation_backoff=3.0, cancellation_timeout=5.0)
async def resync(body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, **kwargs: Any) -> None:
    await _ctx(memo).controller.run_loop(
        lambda: _rc(body), lambda: _clusters(kwargs), _emitter(body), lambda: bool(stopped)
    )


async def _await_owner(ctx: OperatorContext, obj: RouterConfigObject) -> bool:
    """Wait until this replica holds the object's shard (True) or the owner has finished (False).

    Waiting here, rather than failing the handler to be retried, keeps kopf's retry records off the
    object: every replica runs this handler, and the owner would read another replica's records."""
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{obj.namespace}/{RC_PLURAL}/{obj.name}"
    while ctx.controller.acting(obj) is None:
        await asyncio.sleep(ctx.settings.retry_period_seconds)
        try:
            live = await ctx.hub.get_path(path)
        except Exception as exc:  # the hub is down: keep waiting
            log.debug("waiting for the owner of %s/%s: %s", obj.namespace, obj.name, exc)
            continue
        if live is None:
            return False
        if str((live.get("metadata") or {}).get("uid")) != obj.uid:
            raise kopf.TemporaryError("re-created under the same name", delay=1)
    return True


@kopf.on.delete(*RC)
async def finalize(body: kopf.Body, memo: kopf.Memo, retry: int, **kwargs: Any) -> None:
    ctx = _ctx(memo)
    obj = _rc(body)
    if not await _await_owner(ctx, obj):
        return  # the owner removed the edge objects and the finalizer
    result = await ctx.controller.finalize(obj, _clusters(kwargs), _emitter(body))
    if not result.done:
        delay = backoff(retry + 1, 2.0, ctx.settings.max_backoff_seconds)
        raise kopf.TemporaryError(f"edge caches still to remove in: {', '.join(result.pending)}", delay=delay)
