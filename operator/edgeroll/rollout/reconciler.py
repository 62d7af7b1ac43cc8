"""One RouterConfig, end to end: gather, render, publish, observe, plan, execute, status.

Level-based: every call starts from what is (spec, ConfigMap, Secret, edge
objects), never from a diff, so a restart at any point converges to the same
state without rewriting what is already right.

I/O goes through three seams: the hub (`KubeApi`), the edge clusters
(`ClusterRegistry` handing out `KubeApi`s) and S3 (`RevisionPublisher`).
Decisions are pure: `render_set`, `plan_rollout`, `phase_for`, `build_status`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from edgeroll.api.routerconfig import ClusterPhase, RouterConfigSpec, RouterConfigStatus
from edgeroll.api.selectors import selector_matches
from edgeroll.clusters.kube import ClusterUnreachable, KubeApi, KubeApiError
from edgeroll.clusters.objects import ObjectRef
from edgeroll.clusters.registry import ClusterRegistry, EdgeClusterInfo
from edgeroll.publish.history import ManifestEntry
from edgeroll.publish.publisher import RevisionPublisher
from edgeroll.publish.store import PublishError
from edgeroll.render.errors import RenderError
from edgeroll.render.overlays import ClusterFacts
from edgeroll.render.revision import decode_binary_data, decode_config, render_set
from edgeroll.rollout.executor import ensure_edge, remove_edge
from edgeroll.rollout.health import DeploymentHealth, phase_for, read_health
from edgeroll.rollout.planner import (
    Action,
    ApplyRevision,
    ClusterState,
    DesiredRevision,
    Hold,
    PlanInput,
    RemoveEdge,
    plan_rollout,
)
from edgeroll.rollout.resources import EdgeCacheParams, EdgeS3, deployment_ref, edge_manifests, edge_refs
from edgeroll.rollout.status import ClusterReport, Problem, build_status, condition_changed, short_digest
from edgeroll.settings import OperatorSettings

log = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class EventNote:
    type: EventType
    reason: str
    message: str


@dataclass(frozen=True)
class RouterConfigObject:
    """The parts of a RouterConfig body the reconciler reads."""

    namespace: str
    name: str
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any] = field(default_factory=dict)
    uid: str = ""  # tells a re-created object from its predecessor
    deleting: bool = False  # deletionTimestamp is set: only the finalizer may act


@dataclass(frozen=True)
class DesiredState:
    """Gathered, rendered and published: what each target should serve. Reused by progress checks."""

    generation: int
    targets: str  # fingerprint of the target clusters this was computed for
    spec: RouterConfigSpec
    base: ManifestEntry
    revisions: Mapping[str, DesiredRevision]  # cluster -> revision
    signing_key: bytes = field(repr=False)


@dataclass
class ReconcileResult:
    status: RouterConfigStatus
    events: list[EventNote]
    requeue_after: float
    settled: bool
    desired: DesiredState | None = None
    transient: bool = False  # a retryable failure: the caller backs off


@dataclass
class FinalizeResult:
    done: bool
    status: RouterConfigStatus
    events: list[EventNote]
    pending: list[str]


class _Stall(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.problem = Problem(reason, message)
        super().__init__(message)


class _Transient(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.problem = Problem(reason, message)
        super().__init__(message)


@dataclass
class _ClusterWork:
    """One cluster's observation and, after execution, its report and events."""

    name: str
    info: EdgeClusterInfo | None
    state: ClusterState
    api: KubeApi | None = None
    live: dict[str, Any] | None = None
    report: ClusterReport | None = None
    events: list[EventNote] = field(default_factory=list)


def parse_status(raw: Mapping[str, Any] | None) -> RouterConfigStatus:
    try:
        return RouterConfigStatus.model_validate(dict(raw or {}))
    except ValidationError:
        log.warning("ignoring a status that does not parse; it will be rewritten")
        return RouterConfigStatus()


def targets_of(spec: RouterConfigSpec, clusters: Mapping[str, EdgeClusterInfo]) -> list[EdgeClusterInfo]:
    return [
        info
        for name, info in sorted(clusters.items())
        if selector_matches(spec.targets.cluster_selector, info.labels)
    ]


class Reconciler:
    def __init__(
        self,
        hub: KubeApi,
        registry: ClusterRegistry,
        publisher: RevisionPublisher,
        settings: OperatorSettings,
        now: Callable[[], str] = utc_now,
    ) -> None:
        self.hub = hub
        self.registry = registry
        self.publisher = publisher
        self.settings = settings
        self.now = now

    # ---- fingerprints -----------------------------------------------------------------------------

    def fingerprint(self, spec: RouterConfigSpec | None, clusters: Mapping[str, EdgeClusterInfo]) -> str:
        """What the target set looks like: names, labels, spec and reachability of matched clusters."""
        rows = []
        for info in targets_of(spec, clusters) if spec is not None else clusters.values():
            probe = self.registry.last_probe(info.name)
            rows.append(
                [
                    info.name,
                    dict(info.labels),
                    info.spec.to_wire() if info.spec is not None else None,
                    probe.reachable if probe is not None else None,
                ]
            )
        return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()

    # ---- gathering ----------------------------------------------------------------------------------

    async def _hub_get(self, ref: ObjectRef) -> dict[str, Any] | None:
        try:
            return await self.hub.get(ref)
        except (ClusterUnreachable, KubeApiError) as exc:
            raise _Transient("HubReadFailed", f"reading {ref}: {exc}") from None

    async def _config(self, namespace: str, spec: RouterConfigSpec) -> tuple[dict[str, Any], str]:
        if spec.config is not None:
            return spec.config, "spec.config"
        assert spec.config_from is not None  # the CRD's CEL rule guarantees one of the two
        ref = spec.config_from.config_map_key_ref
        source = f"ConfigMap {namespace}/{ref.name} key {ref.key}"
        cm = await self._hub_get(ObjectRef("v1", "ConfigMap", namespace, ref.name))
        if cm is None:
            raise _Stall(
                "ConfigMapNotFound", f"{source}: ConfigMap not found (spec.configFrom.configMapKeyRef)"
            )
        data, binary = cm.get("data") or {}, cm.get("binaryData") or {}
        try:
            if ref.key in data:
                return decode_config(data[ref.key], source), source
            if ref.key in binary:
                return decode_config(decode_binary_data(binary[ref.key], source), source), source
        except RenderError as exc:
            raise _Stall(exc.reason, exc.message) from None
        raise _Stall("ConfigKeyNotFound", f"{source}: no such key (spec.configFrom.configMapKeyRef.key)")

    async def _signing_key(self, namespace: str, spec: RouterConfigSpec) -> bytes:
        ref = spec.signing.secret_ref
        where = f"Secret {namespace}/{ref.name}"
        secret = await self._hub_get(ObjectRef("v1", "Secret", namespace, ref.name))
        if secret is None:
            raise _Stall("SigningKeyNotFound", f"{where} not found (spec.signing.secretRef)")
        value = (secret.get("data") or {}).get(ref.key)
        if value is None:
            raise _Stall("SigningKeyNotFound", f"{where} has no key {ref.key!r} (spec.signing.secretRef.key)")
        try:
            key = base64.b64decode(value, validate=True)
        except ValueError:
            raise _Stall("InvalidSigningKey", f"{where} key {ref.key!r} is not base64") from None
        if not key:
            raise _Stall("InvalidSigningKey", f"{where} key {ref.key!r} is empty (spec.signing.secretRef)")
        return key

    async def _desired(
        self, obj: RouterConfigObject, spec: RouterConfigSpec, targets: list[EdgeClusterInfo], fp: str
    ) -> tuple[DesiredState, list[EventNote]]:
        config, source = await self._config(obj.namespace, spec)
        signing_key = await self._signing_key(obj.namespace, spec)
        facts = [ClusterFacts(t.name, dict(t.labels)) for t in targets]
        try:
            rendered = render_set(spec.format, config, spec.overlays, facts, source)
        except RenderError as exc:
            raise _Stall(exc.reason, exc.message) from None
        revisions = list(rendered.revisions().values())
        try:
            outcome = await self.publisher.publish(
                obj.namespace, obj.name, revisions, signing_key, self.now()
            )
        except PublishError as exc:
            raise _Transient(exc.reason, exc.message) from None
        events = [
            EventNote(
                "Normal",
                "Published",
                f"published {d} ({outcome.entries[d].size} bytes) to "
                f"s3://{self.publisher.store.bucket}/{outcome.entries[d].key}",
            )
            for d in outcome.written
        ]
        per_cluster = {
            name: DesiredRevision(
                rev.digest, outcome.entries[rev.digest].key, outcome.entries[rev.digest].signature
            )
            for name, rev in rendered.clusters.items()
        }
        desired = DesiredState(
            generation=obj.generation,
            targets=fp,
            spec=spec,
            base=outcome.entries[rendered.base.digest],
            revisions=per_cluster,
            signing_key=signing_key,
        )
        return desired, events

    # ---- edges ----------------------------------------------------------------------------------------

    async def _observe(
        self, name: str, info: EdgeClusterInfo | None, obj: RouterConfigObject
    ) -> _ClusterWork:
        if info is None:
            return _ClusterWork(
                name, None, ClusterState(name, False, exists=False, message="EdgeCluster not found")
            )
        if info.spec is None:
            return _ClusterWork(name, info, ClusterState(name, False, message="EdgeCluster spec is invalid"))
        paused = info.spec.paused
        probe = self.registry.last_probe(name)
        if probe is not None and not probe.reachable:
            return _ClusterWork(name, info, ClusterState(name, False, paused, message=probe.message))
        try:
            api = await self.registry.client(info)
            live = await api.get(deployment_ref(obj.namespace, obj.name, info.spec.namespace))
        except ClusterUnreachable as exc:
            self.registry.mark_unreachable(name, str(exc))
            return _ClusterWork(name, info, ClusterState(name, False, paused, message=str(exc)))
        except KubeApiError as exc:
            # Reachable, but reading the Deployment is refused: report it, do not guess.
            state = ClusterState(name, True, paused, message=f"reading the edge Deployment: {exc}")
            return _ClusterWork(name, info, state, api=None)
        health = read_health(live) if live is not None else None
        return _ClusterWork(name, info, ClusterState(name, True, paused, health=health), api=api, live=live)

    def _params(
        self, obj: RouterConfigObject, desired: DesiredState, info: EdgeClusterInfo
    ) -> EdgeCacheParams:
        assert info.spec is not None
        spec, rev, s3 = desired.spec, desired.revisions[info.name], self.settings
        return EdgeCacheParams(
            rc_namespace=obj.namespace,
            rc_name=obj.name,
            cluster=info.name,
            namespace=info.spec.namespace,
            digest=rev.digest,
            key=rev.key,
            signature=rev.signature,
            signing_key=desired.signing_key,
            s3=EdgeS3(
                bucket=s3.s3.bucket,
                endpoint=s3.edge_s3.endpoint,
                region=s3.edge_s3.region,
                access_key_id=s3.edge_s3.access_key_id,
                secret_access_key=s3.edge_s3.secret_access_key,
            ),
            image=spec.cache.image or s3.cache_image,
            replicas=spec.cache.replicas,
            port=spec.cache.port,
            resources=spec.cache.resources,
            cosmo_organization_id=spec.cosmo.organization_id if spec.cosmo else None,
            cosmo_federated_graph_id=spec.cosmo.federated_graph_id if spec.cosmo else None,
        )

    async def _execute(
        self,
        work: _ClusterWork,
        action: Action,
        obj: RouterConfigObject,
        desired: DesiredState,
        prev: RouterConfigStatus,
        full: bool,
    ) -> None:
        prev_digest = next((c.digest for c in prev.clusters if c.name == work.name), None)
        health = work.state.health
        if isinstance(action, Hold):
            current = health.template_digest if health is not None else prev_digest
            if action.removal:
                work.report = ClusterReport(
                    work.name,
                    ClusterPhase.DELETING,
                    current,
                    message=f"removal pending: {action.reason}",
                    targeted=False,
                )
                return
            want = desired.revisions.get(work.name)
            phase = ClusterPhase.UNREACHABLE if not work.state.reachable else ClusterPhase.PAUSED
            if (
                phase is ClusterPhase.PAUSED
                and want is not None
                and phase_for(health, want.digest)[0] is ClusterPhase.READY
            ):
                phase = ClusterPhase.READY
            work.report = _report(work.name, phase, health, current, want, action.reason)
            return
        assert work.api is not None and work.info is not None and work.info.spec is not None
        if isinstance(action, RemoveEdge):
            try:
                removed = await remove_edge(
                    work.api, edge_refs(obj.namespace, obj.name, work.info.spec.namespace)
                )
            except (ClusterUnreachable, KubeApiError) as exc:
                if isinstance(exc, ClusterUnreachable):
                    self.registry.mark_unreachable(work.name, str(exc))
                work.report = ClusterReport(
                    work.name,
                    ClusterPhase.DELETING,
                    prev_digest,
                    message=f"removal failed: {exc}",
                    targeted=False,
                )
                return
            if removed:
                work.events.append(EventNote("Normal", "Removed", f"{work.name}: removed the edge cache"))
            return  # removed clusters leave the status
        assert isinstance(action, ApplyRevision)
        want = action.revision
        try:
            result = await ensure_edge(
                work.api,
                edge_manifests(self._params(obj, desired, work.info)),
                live_deployment=work.live,
                check_all=full,
            )
        except ClusterUnreachable as exc:
            self.registry.mark_unreachable(work.name, str(exc))
            work.report = _report(work.name, ClusterPhase.UNREACHABLE, health, prev_digest, want, str(exc))
            return
        except KubeApiError as exc:
            work.report = _report(
                work.name, ClusterPhase.FAILED, health, prev_digest, want, f"apply failed: {exc}"
            )
            return
        after = read_health(result.deployment)
        phase, message = phase_for(after, want.digest)
        work.report = _report(work.name, phase, after, after.template_digest, want, message)
        if result.changes:
            before = health.template_digest if health is not None else None
            if work.live is None:
                reason = "Created"
            elif before != want.digest:
                reason = "Applied"
            else:
                reason = "DriftCorrected"
            what = ", ".join(str(c) for c in result.changes)
            work.events.append(
                EventNote("Normal", reason, f"{work.name}: {short_digest(want.digest)}: {what}")
            )

    # ---- the reconcile --------------------------------------------------------------------------------

    def _requeue(self, status: RouterConfigStatus) -> tuple[float, bool]:
        phases = {c.phase for c in status.clusters}
        s = self.settings
        if phases & {ClusterPhase.PENDING, ClusterPhase.PROGRESSING}:
            return s.progress_seconds, False
        if phases & {ClusterPhase.UNREACHABLE, ClusterPhase.DELETING}:
            return min(s.probe_seconds, s.resync_seconds), False
        return s.resync_seconds, True

    async def reconcile(
        self,
        obj: RouterConfigObject,
        clusters: Mapping[str, EdgeClusterInfo],
        prev: RouterConfigStatus,
        cached: DesiredState | None = None,
        full: bool = True,
    ) -> ReconcileResult:
        now = self.now()
        events: list[EventNote] = []
        try:
            spec = RouterConfigSpec.model_validate(dict(obj.spec))
        except ValidationError as exc:
            err = exc.errors()[0]
            path = "spec." + ".".join(str(p) for p in err["loc"])
            problem = Problem("InvalidSpec", f"{path}: {err['msg']}")
            status = build_status(prev, generation=obj.generation, now=now, reports=None, stalled=problem)
            return self._finish(prev, status, events, self.settings.resync_seconds, None)
        targets = targets_of(spec, clusters)
        fp = self.fingerprint(spec, clusters)
        desired = cached if cached is not None and not full else None
        if desired is not None and (desired.generation != obj.generation or desired.targets != fp):
            desired, full = None, True
        if desired is None:
            try:
                desired, published_events = await self._desired(obj, spec, targets, fp)
                events += published_events
            except _Stall as stall:
                status = build_status(
                    prev, generation=obj.generation, now=now, reports=None, stalled=stall.problem
                )
                return self._finish(prev, status, events, self.settings.resync_seconds, None)
            except _Transient as err:
                status = build_status(
                    prev, generation=obj.generation, now=now, reports=None, publish_error=err.problem
                )
                result = self._finish(prev, status, events, self.settings.progress_seconds, None)
                result.transient, result.settled = True, False
                return result

        managed = {c.name for c in prev.clusters}
        names = sorted({t.name for t in targets} | managed)
        works = await asyncio.gather(*(self._observe(n, clusters.get(n), obj) for n in names))
        by_name = {w.name: w for w in works}
        actions = plan_rollout(
            PlanInput(
                desired={t.name: desired.revisions[t.name] for t in targets},
                observed={w.name: w.state for w in works},
                previously_managed=frozenset(managed),
                policy=spec.rollout,
            )
        )
        await asyncio.gather(
            *(
                self._guarded(
                    by_name[a.cluster], self._execute(by_name[a.cluster], a, obj, desired, prev, full)
                )
                for a in actions
            )
        )
        for w in works:  # an unreadable Deployment in a reachable cluster: nothing was planned for it
            if w.report is None and w.state.reachable and w.api is None and w.name in desired.revisions:
                want = desired.revisions[w.name]
                w.report = _report(w.name, ClusterPhase.FAILED, None, None, want, w.state.message)
            events += w.events
        reports = [w.report for w in works if w.report is not None]
        status = build_status(
            prev, generation=obj.generation, now=now, reports=reports, published=desired.base
        )
        requeue, settled = self._requeue(status)
        result = self._finish(prev, status, events, requeue, desired)
        result.settled = settled
        if full and settled:
            await self._collect_garbage(obj, spec, desired, prev, status)
        return result

    async def _guarded(self, work: _ClusterWork, job: Awaitable[None]) -> None:
        """One cluster never holds up the others for longer than a few request timeouts."""
        try:
            await asyncio.wait_for(job, timeout=self.settings.edge_timeout_seconds * 4)
        except TimeoutError:
            message = f"no answer within {self.settings.edge_timeout_seconds * 4:.0f}s"
            self.registry.mark_unreachable(work.name, message)
            work.report = ClusterReport(work.name, ClusterPhase.UNREACHABLE, message=message)

    async def _collect_garbage(
        self,
        obj: RouterConfigObject,
        spec: RouterConfigSpec,
        desired: DesiredState,
        prev: RouterConfigStatus,
        status: RouterConfigStatus,
    ) -> None:
        in_use: set[str] = {desired.base.digest, *(r.digest for r in desired.revisions.values())}
        for c in (*prev.clusters, *status.clusters):
            in_use.update(d for d in (c.digest, c.desired_digest) if d)
        try:
            deleted = await self.publisher.collect_garbage(
                obj.namespace, obj.name, spec.revision_history_limit, in_use
            )
        except PublishError as exc:
            log.warning(
                "revision garbage collection for %s/%s failed: %s", obj.namespace, obj.name, exc.message
            )
            return
        if deleted:
            log.info("deleted %d old revisions of %s/%s", len(deleted), obj.namespace, obj.name)

    def _finish(
        self,
        prev: RouterConfigStatus,
        status: RouterConfigStatus,
        events: list[EventNote],
        requeue: float,
        desired: DesiredState | None,
    ) -> ReconcileResult:
        events = events + transition_events(prev, status)
        return ReconcileResult(status, events, requeue, settled=False, desired=desired)

    # ---- deletion -------------------------------------------------------------------------------------

    async def finalize(
        self, obj: RouterConfigObject, clusters: Mapping[str, EdgeClusterInfo], prev: RouterConfigStatus
    ) -> FinalizeResult:
        """Remove the edge caches everywhere. Unreachable clusters that have one stay pending."""
        now = self.now()
        try:
            spec: RouterConfigSpec | None = RouterConfigSpec.model_validate(dict(obj.spec))
        except ValidationError:
            spec = None
        recorded = {c.name: c for c in prev.clusters}
        names = sorted(set(recorded) | {t.name for t in (targets_of(spec, clusters) if spec else [])})
        works = await asyncio.gather(*(self._observe(n, clusters.get(n), obj) for n in names))
        events: list[EventNote] = []
        pending: list[ClusterReport] = []

        async def remove(work: _ClusterWork) -> None:
            had_edge = recorded.get(work.name) is not None and recorded[work.name].digest is not None
            if work.info is None or work.info.spec is None:
                if had_edge:
                    events.append(
                        EventNote(
                            "Warning",
                            "CleanupSkipped",
                            f"{work.name}: EdgeCluster is gone or invalid; "
                            "its edge cache could not be removed",
                        )
                    )
                return
            if work.api is not None:
                try:
                    removed = await remove_edge(
                        work.api, edge_refs(obj.namespace, obj.name, work.info.spec.namespace)
                    )
                    if removed:
                        events.append(EventNote("Normal", "Removed", f"{work.name}: removed the edge cache"))
                    return
                except ClusterUnreachable as exc:
                    self.registry.mark_unreachable(work.name, str(exc))
                    message = str(exc)
                except KubeApiError as exc:
                    message = f"removal failed: {exc}"
            else:
                message = work.state.message or "unreachable"
            if had_edge:
                digest = recorded[work.name].digest
                pending.append(
                    ClusterReport(
                        work.name, ClusterPhase.DELETING, digest, message=f"removal pending: {message}"
                    )
                )
            else:
                events.append(
                    EventNote(
                        "Warning", "CleanupSkipped", f"{work.name}: never received an edge cache; {message}"
                    )
                )

        await asyncio.gather(*(remove(w) for w in works))
        names_pending = sorted(r.name for r in pending)
        problem = Problem(
            "Deleting",
            "removing edge caches"
            if not pending
            else f"waiting to remove edge caches from: {', '.join(names_pending)}",
        )
        status = build_status(prev, generation=obj.generation, now=now, reports=pending, deleting=problem)
        return FinalizeResult(done=not pending, status=status, events=events, pending=names_pending)


def _report(
    name: str,
    phase: ClusterPhase,
    health: DeploymentHealth | None,
    digest: str | None,
    want: DesiredRevision | None,
    message: str,
) -> ClusterReport:
    return ClusterReport(
        name=name,
        phase=phase,
        digest=digest,
        desired_digest=want.digest if want else None,
        key=want.key if want else None,
        ready_replicas=health.ready_replicas if health else 0,
        replicas=health.replicas if health else 0,
        message=message,
    )


def transition_events(prev: RouterConfigStatus, new: RouterConfigStatus) -> list[EventNote]:
    """Warnings and milestones, only when they change: a steady state posts no events."""
    out: list[EventNote] = []
    for type_ in ("Stalled", "Published"):
        if condition_changed(prev, new, type_):
            cond = next((c for c in new.conditions if c.type == type_), None)
            if cond is not None and (type_ == "Stalled") == (cond.status == "True"):
                out.append(EventNote("Warning", cond.reason, cond.message))
    if condition_changed(prev, new, "Ready"):
        cond = next((c for c in new.conditions if c.type == "Ready"), None)
        if cond is not None and cond.status == "True":
            out.append(EventNote("Normal", "Ready", cond.message))
    before = {c.name: c.phase for c in prev.clusters}
    for c in new.clusters:
        if c.phase != before.get(c.name) and c.phase in (ClusterPhase.UNREACHABLE, ClusterPhase.FAILED):
            reason = "ClusterUnreachable" if c.phase is ClusterPhase.UNREACHABLE else "ClusterFailed"
            out.append(EventNote("Warning", reason, f"{c.name}: {c.message or c.phase.value}"))
    return out
