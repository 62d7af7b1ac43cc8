"""One RouterConfig, end to end: gather, render, publish, observe, plan, persist, execute, status.

Level-based: every call starts from what is (spec, ConfigMap, Secret, edge
objects, the rollout state persisted in status.rollout), never from a diff, so
a restart at any point converges to the same state without rewriting what is
already right. The plan's state is persisted *before* its actions write
anything (fence.py): a crash then re-issues actions rather than forgetting a
wave it started. A pass whose actions write nothing (a wake-up that only sees a
Deployment turn Available) writes its status once, with the report.

I/O goes through three seams: the hub (`KubeApi`), the edge clusters
(`ClusterRegistry` handing out `KubeApi`s) and S3 (`RevisionPublisher`).
The first steps (parse, gather, render) are in gather.py, shared with `edgeroll plan`.
Decisions are pure: `render_set`, `plan_rollout`, `phase_for`, `build_status`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from edgeroll.admission.client import AdmissionTransport
from edgeroll.api.common import SecretKeyRef
from edgeroll.api.routerconfig import ClusterPhase, ClusterStatus, RouterConfigSpec, RouterConfigStatus
from edgeroll.clusters.edge_watch import EdgeWatches
from edgeroll.clusters.kube import CALLER_BOUND, ClusterUnreachable, KubeApi, KubeApiError, paused
from edgeroll.clusters.objects import ObjectRef
from edgeroll.clusters.registry import ClusterRegistry, EdgeClusterInfo
from edgeroll.operator_metrics import OperatorMetrics
from edgeroll.pipeline.admission import KEY_REF_FIELD, WEBHOOK_FIELD, AdmissionGate, Asker, webhook_of
from edgeroll.pipeline.executor import ensure_edge, remove_edge, retire_legacy
from edgeroll.pipeline.fence import FencedApi, PlanNotRecorded, StatusWrites, WriteFence
from edgeroll.pipeline.gather import (
    Retryable,
    Stalled,
    check_prometheus_addresses,
    content_revision,
    hub_get,
    parse_spec,
    read_config,
    read_operations,
    render_targets,
    targets_of,
)
from edgeroll.pipeline.prometheus import MetricSource, PrometheusClient
from edgeroll.pipeline.status import (
    ClusterReport,
    Problem,
    RolloutView,
    build_status,
    condition_changed,
    short_digest,
    with_token_verification,
)
from edgeroll.pipeline.switcher import (
    pointer_moves,
    revision_pointer_key,
    settle,
    switch_params,
    write_pointer,
)
from edgeroll.publish.history import ManifestEntry, manifest_key
from edgeroll.publish.publisher import RevisionPublisher
from edgeroll.publish.store import PublishError
from edgeroll.render.operations import PersistedOperations
from edgeroll.render.pointer import RevisionPointer
from edgeroll.render.signing import signing_key_problem
from edgeroll.rollout.analysis import MeasurementRequest, MeasurementResult, due_measurements, query_for
from edgeroll.rollout.commands import parse_commands
from edgeroll.rollout.health import DeploymentHealth, phase_for, read_health
from edgeroll.rollout.image_policy import allowed_cache_images, cache_image_problem
from edgeroll.rollout.inplace import SwitchVerdict
from edgeroll.rollout.ownership import CONFLICT_REASON, EdgeObjectConflict, Owner, ownership_conflict
from edgeroll.rollout.planner import (
    ApplyRevision,
    ClusterAction,
    ClusterPlan,
    ClusterState,
    DesiredRevision,
    Hold,
    Plan,
    PlanInput,
    Rollback,
    plan_rollout,
)
from edgeroll.rollout.resources import (
    ANNOTATION_LAST_GOOD,
    NAMESPACE_EDGE_S3_SECRET,
    SECRET_ACCESS_KEY_ID,
    SECRET_SECRET_ACCESS_KEY,
    EdgeCacheParams,
    EdgeS3,
    S3Key,
    deployment_ref,
    edge_manifests,
    edge_refs,
    legacy_alias_service,
    legacy_refs,
)
from edgeroll.settings import OperatorSettings

log = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_clock() -> datetime:
    return datetime.now(UTC)


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
    annotations: Mapping[str, str] = field(default_factory=dict)  # rollout commands (rollout/commands.py)
    labels: Mapping[str, str] = field(default_factory=dict)  # edgeroll.io/shard pins the shard
    resource_version: str = ""  # the status write's precondition

    @property
    def owner(self) -> Owner:
        return Owner(self.namespace, self.name, self.uid)


# Persists the status as planned (status.rollout with the clusters' phases), then posts the plan's
# events, before the plan's actions write anything (fence.py).
PersistRollout = Callable[[RouterConfigStatus, Sequence[EventNote]], Awaitable[None]]


@dataclass(frozen=True)
class DesiredState:
    """Gathered, rendered and published: what each target should serve. Reused by progress checks."""

    generation: int
    targets: str  # fingerprint of the target clusters this was computed for
    spec: RouterConfigSpec
    base: ManifestEntry
    revisions: Mapping[str, DesiredRevision]  # cluster -> revision
    signing_key: bytes = field(repr=False)
    revision: str = ""  # content id of what is rolled out (content_revision)
    edge_key: S3Key | None = field(default=None, repr=False)  # the namespace's own; None: the global one
    graph_token_secret: bytes | None = field(default=None, repr=False)  # spec.cosmo.graphTokenSecretRef


@dataclass(frozen=True)
class _Inputs:
    """What `_desired` read from the hub (Secrets' values kept out of repr)."""

    config: dict[str, Any] = field(repr=False)
    source: str
    operations: PersistedOperations | None = field(repr=False)
    signing_key: bytes = field(repr=False)
    token_secret: bytes | None = field(repr=False)
    edge_key: S3Key | None = field(repr=False)
    admission_key: bytes | None = field(repr=False)


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
    view: ClusterPlan | None = None  # the planner's view of a target: phase, wave, wanted digest, message
    prev_digest: str | None = None  # what status said it ran (when it cannot be read now)
    prev_phase: ClusterPhase | None = None
    conflict: str | None = None  # an edge object in the way belongs to another owner (ownership.py)
    switch: SwitchVerdict | None = None  # InPlace: what the pods answered when told to switch
    # While its action runs: its time bound (paused while it waits for the plan to go on record) and
    # that wait, which every write of the action passes first (also through `api`, then a FencedApi).
    deadline: asyncio.Timeout | None = None
    gate: Callable[[], Awaitable[None]] | None = None


@dataclass
class _Pass:
    """One reconcile's inputs and what its steps have found so far."""

    obj: RouterConfigObject
    clusters: Mapping[str, EdgeClusterInfo]
    prev: RouterConfigStatus
    now: str
    full: bool
    unparsed: list[str]
    events: list[EventNote]
    targets: list[EdgeClusterInfo] = field(default_factory=list)
    managed: set[str] = field(default_factory=set)  # clusters that hold (or held) this RouterConfig's cache
    works: list[_ClusterWork] = field(default_factory=list)
    measurements: list[MeasurementResult] = field(default_factory=list)  # analysis queries made this pass


@dataclass(frozen=True)
class _Planned:
    """The plan step's outcome: what each cluster does, and the revisions a rollback may need."""

    plan: Plan
    clock: datetime
    actions: Mapping[str, ClusterAction]
    published: Mapping[str, DesiredRevision]
    manifest_problem: str | None
    fence: WriteFence = field(default_factory=lambda: WriteFence(None))  # the plan on record before writes
    events: Sequence[EventNote] = ()  # the plan's, posted once it is on record, else with the result

    @property
    def rollout(self) -> RolloutView:
        return RolloutView(self.plan.state, self.plan.message)


def _why(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


def _salvage_cluster(item: Any) -> tuple[ClusterStatus | None, list[str]]:
    """One status.clusters entry: its name is what matters (that cluster may hold a cache), so fields that
    do not parse are dropped, an unknown phase (e.g. from a newer version) becomes Pending."""
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not item["name"]:
        return None, ["not an entry with a name"]
    data: dict[str, Any] = dict(item)
    problems: list[str] = []
    for _ in range(len(ClusterStatus.model_fields) + 1):
        try:
            return ClusterStatus.model_validate(data), problems
        except ValidationError as exc:
            problems.append(_why(exc))
            bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            if "name" in bad or not bad:
                return None, problems
            for key in bad:
                data.pop(key, None)
            if "phase" in bad:
                data["phase"] = ClusterPhase.PENDING.value
    return None, problems


def salvage_status(raw: Any) -> tuple[RouterConfigStatus, list[str]]:
    """The status as far as it parses, and what did not (`status.<path>: why`). Never raises.

    A status that does not parse (a downgrade, a hand edit) is not replaced by an empty one: every
    top-level field that parses is kept, and every status.clusters entry with a name, since those are
    the clusters that may hold a cache (deletion and garbage collection read them)."""
    if raw is None:
        return RouterConfigStatus(), []
    if not isinstance(raw, Mapping):
        return RouterConfigStatus(), [f"status: not an object but {type(raw).__name__}"]
    try:
        return RouterConfigStatus.model_validate(dict(raw)), []
    except ValidationError:
        pass
    except Exception as exc:  # e.g. RecursionError on a hand-made nesting
        return RouterConfigStatus(), [f"status: {type(exc).__name__}"]
    kept: dict[str, Any] = {}
    problems: list[str] = []
    for name, info in RouterConfigStatus.model_fields.items():
        alias = info.alias or name
        if alias not in raw:
            continue
        value = raw[alias]
        if alias == "clusters" and isinstance(value, list):
            clusters = []
            for i, item in enumerate(value):
                cluster, why = _salvage_cluster(item)
                problems += [f"status.clusters[{i}]: {w}" for w in why]
                if cluster is not None:
                    clusters.append(cluster.to_wire())
            value = clusters
        try:
            RouterConfigStatus.model_validate({alias: value})
        except ValidationError as exc:
            problems.append(f"status.{_why(exc)}")
            continue
        except Exception as exc:
            problems.append(f"status.{alias}: {type(exc).__name__}")
            continue
        kept[alias] = value
    try:
        return RouterConfigStatus.model_validate(kept), problems
    except Exception as exc:  # each field parsed alone; defensive all the same
        return RouterConfigStatus(), [*problems, f"status: {type(exc).__name__}"]


def parse_status(raw: Mapping[str, Any] | None) -> RouterConfigStatus:
    status, problems = salvage_status(raw)
    if problems:
        log.warning("status kept as far as it parses until rewritten: %s", "; ".join(problems))
    return status


class Reconciler:
    def __init__(
        self,
        hub: KubeApi,
        registry: ClusterRegistry,
        publisher: RevisionPublisher,
        settings: OperatorSettings,
        now: Callable[[], str] = utc_now,
        clock: Callable[[], datetime] = utc_clock,
        metrics: OperatorMetrics | None = None,
        watches: EdgeWatches | None = None,
        prometheus: MetricSource | None = None,
        admission: AdmissionTransport | None = None,
    ) -> None:
        self.hub = hub
        # Rollout analysis queries, each bounded like an edge call.
        self.prometheus = prometheus or PrometheusClient(timeout=settings.edge_timeout_seconds)
        self.metrics = metrics if metrics is not None else OperatorMetrics()
        # spec.admission.webhook: the URL policy, the requests, the digests already admitted.
        self.admission = AdmissionGate(settings, admission, self.metrics)
        self.registry = registry
        # Edge Deployments from one shared watch per EdgeCluster (None: read each one, as tests do).
        self.watches = watches
        self.publisher = publisher
        self.settings = settings
        self.now = now  # status timestamps
        self.clock = clock  # the planner's `now` (soak, deadlines)
        # Command annotations that did not parse, per object, already reported (one event each).
        self._bad_commands: dict[tuple[str, str], frozenset[str]] = {}
        # Status fields that did not parse, per object, already reported (one event per set).
        self._bad_status: dict[tuple[str, str], frozenset[str]] = {}
        # Objects (namespace, name, uid) whose caches this process has looked for in every EdgeCluster.
        self._holders_found: set[tuple[str, str, str]] = set()
        # (namespace, name, uid, cluster) where nothing is left under the edgeroll 0.1 name.
        self._no_legacy: set[tuple[str, str, str, str]] = set()

    # ---- fingerprints -----------------------------------------------------------------------------

    def fingerprint(self, spec: RouterConfigSpec | None, clusters: Mapping[str, EdgeClusterInfo]) -> str:
        """What the target set looks like: names, labels, spec and reachability of matched clusters."""
        rows = []
        for info in targets_of(spec, clusters) if spec is not None else clusters.values():
            rows.append(
                [
                    info.name,
                    dict(info.labels),
                    info.spec.to_wire() if info.spec is not None else None,
                    self._unreachable(info) is None,
                ]
            )
        return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()

    def _unreachable(self, info: EdgeClusterInfo) -> str | None:
        """Why the cluster is unreachable, by our own last probe, else by the probing replica's report."""
        probe = self.registry.last_probe(info.name)
        # Our own probe counts while fresh: a replica that stopped probing (it lost shard 0) goes by
        # the status the new prober writes.
        fresh = 2 * self.settings.probe_seconds + self.settings.edge_timeout_seconds
        if probe is not None and time.monotonic() - probe.at <= fresh:
            return None if probe.reachable else probe.message
        return info.reported_unreachable

    @contextlib.contextmanager
    def _step(self, name: str) -> Iterator[None]:
        """Time one step of the reconcile; a Stalled or retryable error leaving it counts by reason."""
        with self.metrics.step(name):
            try:
                yield
            except (Stalled, Retryable) as exc:
                self.metrics.error(name, exc.reason)
                raise

    # ---- gathering ----------------------------------------------------------------------------------

    async def _secret_value(self, namespace: str, ref: SecretKeyRef, field: str, what: str) -> bytes:
        """The decoded, non-empty value at `ref`; Stalled `<What>NotFound` / `Invalid<What>` naming the
        Secret, its key and `field` (never the value) otherwise."""
        where = f"Secret {namespace}/{ref.name}"
        secret = await hub_get(self.hub, ObjectRef("v1", "Secret", namespace, ref.name), field)
        if secret is None:
            raise Stalled(f"{what}NotFound", f"{where} not found ({field})")
        value = (secret.get("data") or {}).get(ref.key)
        if value is None:
            raise Stalled(f"{what}NotFound", f"{where} has no key {ref.key!r} ({field}.key)")
        try:
            decoded = base64.b64decode(value, validate=True)
        except ValueError:
            raise Stalled(f"Invalid{what}", f"{where} key {ref.key!r} is not base64") from None
        if not decoded:
            raise Stalled(f"Invalid{what}", f"{where} key {ref.key!r} is empty ({field})")
        return decoded

    async def _signing_key(self, namespace: str, spec: RouterConfigSpec) -> bytes:
        ref, field = spec.signing.secret_ref, "spec.signing.secretRef"
        key = await self._secret_value(namespace, ref, field, "SigningKey")
        problem = signing_key_problem(key)
        if problem is not None:  # a cache given this key could not start, nor a router verify with it
            raise Stalled(
                "InvalidSigningKey", f"Secret {namespace}/{ref.name} key {ref.key!r} {problem} ({field})"
            )
        return key

    async def _graph_token_secret(self, namespace: str, spec: RouterConfigSpec) -> bytes | None:
        """The HS256 secret the caches verify graph tokens with; None when the spec names none."""
        ref = spec.cosmo.graph_token_secret_ref if spec.cosmo is not None else None
        if ref is None:
            return None
        field = "spec.cosmo.graphTokenSecretRef"
        secret = await self._secret_value(namespace, ref, field, "GraphTokenSecret")
        try:
            secret.decode("utf-8")  # the cache reads it from its environment as text
        except UnicodeDecodeError:
            where = f"Secret {namespace}/{ref.name} key {ref.key!r}"
            raise Stalled("InvalidGraphTokenSecret", f"{where} is not valid UTF-8 text ({field})") from None
        return secret

    async def _namespace_edge_key(self, namespace: str) -> S3Key | None:
        """The S3 key of this namespace's caches from its Secret NAMESPACE_EDGE_S3_SECRET; None when
        there is none (404): the caches get the operator's edge key. Messages name keys, never values.

        A 403 is not taken for "none": the signing Secret of the same namespace was just read, and the
        chart grants get on every Secret of a namespace or none, so a 403 here is RBAC narrowed by hand.
        Falling back would hand the tenant's caches the global key, which reads every namespace's
        configs: `_hub_get` stalls the RouterConfig instead (SecretForbidden)."""
        ref = ObjectRef("v1", "Secret", namespace, NAMESPACE_EDGE_S3_SECRET)
        where = f"Secret {namespace}/{NAMESPACE_EDGE_S3_SECRET}"
        try:
            secret = await hub_get(self.hub, ref, "the namespace's edge S3 key")
        except Stalled as stall:  # 403: secretNamespaces is not what is missing here
            message = (
                f"the operator may not read {where} (403) though it read the signing Secret there: grant it "
                "get on that Secret (the namespace's edge S3 key is never skipped)"
            )
            raise Stalled(stall.reason, message) from None
        if secret is None:
            return None
        data = secret.get("data") or {}
        values: list[str] = []
        for key in (SECRET_ACCESS_KEY_ID, SECRET_SECRET_ACCESS_KEY):
            if key not in data:
                raise Stalled("InvalidEdgeCredentials", f"{where} has no key {key!r}")
            try:
                value = base64.b64decode(data[key], validate=True).decode("utf-8").strip()
            except (TypeError, ValueError):  # binascii.Error and UnicodeDecodeError are ValueErrors
                problem = f"{where} key {key!r} is not base64 UTF-8 text"
                raise Stalled("InvalidEdgeCredentials", problem) from None
            if not value:
                raise Stalled("InvalidEdgeCredentials", f"{where} key {key!r} is empty")
            if any(c.isspace() or not c.isprintable() for c in value):  # it becomes an env value
                raise Stalled("InvalidEdgeCredentials", f"{where} key {key!r} is not a single-word key")
            values.append(value)
        return S3Key(values[0], values[1])

    async def _inputs(
        self, obj: RouterConfigObject, spec: RouterConfigSpec, targets: list[EdgeClusterInfo]
    ) -> _Inputs:
        """Everything the render and publish read from the hub; what the operator refuses by policy is
        refused first, before anything is read."""
        with self._step("gather"):
            allowed = allowed_cache_images(self.settings.cache_image, self.settings.allowed_cache_images)
            image_problem = cache_image_problem(spec.cache.image, allowed)
            if image_problem is not None:  # before anything is read, published or applied
                raise Stalled("CacheImageNotAllowed", image_problem)
            check_prometheus_addresses(spec, self.settings.allowed_prometheus_addresses, targets)
            self.admission.check_url(spec)  # an SSRF attempt reads nothing, not even the Secret
            config, source = await read_config(self.hub, obj.namespace, spec)
            operations = await read_operations(self.hub, obj.namespace, spec)
            signing_key = await self._signing_key(obj.namespace, spec)
            token_secret = await self._graph_token_secret(obj.namespace, spec)
            edge_key = await self._namespace_edge_key(obj.namespace)  # before anything is published
            webhook = webhook_of(spec)
            admission_key = None
            if webhook is not None:  # SecretKeyRef has no namespace: only the RouterConfig's own
                admission_key = await self._secret_value(
                    obj.namespace, webhook.secret_ref, KEY_REF_FIELD, "AdmissionSecret"
                )
        return _Inputs(config, source, operations, signing_key, token_secret, edge_key, admission_key)

    async def _desired(
        self, obj: RouterConfigObject, spec: RouterConfigSpec, targets: list[EdgeClusterInfo], fp: str
    ) -> tuple[DesiredState, list[EventNote]]:
        got = await self._inputs(obj, spec, targets)
        admitted: list[str] = []
        # The manifest read needs no digest: its round trip runs while the render does.
        async with self.publisher.manifest_read_ahead(obj.namespace, obj.name) as ahead:
            with self._step("render"):
                # CPU-bound (~10 ms for 2 MB): in a thread, so kopf's loop keeps serving other objects
                rendered = await asyncio.to_thread(
                    render_targets, spec, got.config, got.source, got.operations, targets
                )
            if got.admission_key is not None:
                with self._step("admission"):  # nothing is published that the webhook has not admitted
                    asker = Asker(obj.namespace, obj.name, obj.uid, obj.generation)
                    admitted = await self.admission.admit(
                        asker, spec, rendered, got.admission_key, [got.signing_key]
                    )
            revisions = list(rendered.revisions().values())
            with self._step("publish"):
                try:
                    outcome = await self.publisher.publish(
                        obj.namespace, obj.name, revisions, got.signing_key, self.now(), ahead=ahead
                    )
                except PublishError as exc:
                    raise Retryable(exc.reason, exc.message) from None
        signing_key, token_secret, edge_key = got.signing_key, got.token_secret, got.edge_key
        events = [
            EventNote("Normal", "Admitted", f"{WEBHOOK_FIELD} admitted {short_digest(d)}") for d in admitted
        ]
        events += [
            EventNote(
                "Normal",
                "Published",
                f"published {d} ({outcome.entries[d].size} bytes) to "
                f"s3://{self.publisher.store.bucket}/{outcome.entries[d].key}",
            )
            for d in outcome.written
        ]
        if outcome.rebuilt is not None:
            events.insert(
                0,
                EventNote(
                    "Warning",
                    "ManifestRebuilt",
                    f"s3://{self.publisher.store.bucket}/{outcome.rebuilt} did not parse; rebuilt from "
                    f"the listing of its prefix ({outcome.recovered} revisions recovered)",
                ),
            )
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
            revision=content_revision(spec, rendered.base.digest),
            edge_key=edge_key,
            graph_token_secret=token_secret,
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
        labels = dict(info.labels)
        if info.spec is None:
            state = ClusterState(name, False, labels=labels, message="EdgeCluster spec is invalid")
            return _ClusterWork(name, info, state)
        paused = info.spec.paused
        unreachable = self._unreachable(info)
        if unreachable is not None:
            state = ClusterState(name, False, paused, labels=labels, message=unreachable)
            return _ClusterWork(name, info, state)
        ref = deployment_ref(obj.namespace, obj.name, info.spec.namespace)
        try:
            api = await self.registry.client(info)
            live = self._watched(info, api, ref)
            if live is None:  # the watch cannot vouch for it: read it
                live = await api.get(ref)
        except ClusterUnreachable as exc:
            self.registry.mark_unreachable(name, str(exc))
            state = ClusterState(name, False, paused, labels=labels, message=str(exc))
            return _ClusterWork(name, info, state)
        except KubeApiError as exc:
            # Reachable, but reading the Deployment is refused: report it, do not guess.
            message = f"reading the edge Deployment: {exc}"
            state = ClusterState(name, True, paused, labels=labels, message=message)
            return _ClusterWork(name, info, state, api=None)
        conflict = ownership_conflict(ref, live, obj.owner)
        if conflict is not None:
            # Not ours: its health and last-good digest say nothing, and nothing may be applied there;
            # the planner holds it as it holds a cluster it cannot reach (the policy says whether that
            # blocks the wave), and the RouterConfig is Stalled naming the owner.
            state = ClusterState(name, False, paused, labels=labels, message=conflict)
            return _ClusterWork(name, info, state, api=api, conflict=conflict)
        health = read_health(live) if live is not None else None
        annotations = (live or {}).get("metadata", {}).get("annotations") or {}
        state = ClusterState(
            name, True, paused, health=health, labels=labels, last_good=annotations.get(ANNOTATION_LAST_GOOD)
        )
        return _ClusterWork(name, info, state, api=api, live=live)

    def _watched(self, info: EdgeClusterInfo, api: KubeApi, ref: ObjectRef) -> dict[str, Any] | None:
        """The Deployment as the cluster's shared watch holds it; None when there is no watch or it
        cannot vouch for it."""
        if self.watches is None or ref.namespace is None:
            return None
        self.watches.ensure(info, api)
        return self.watches.lookup(info.name, ref.namespace, ref.name)

    def _params(
        self,
        obj: RouterConfigObject,
        desired: DesiredState,
        info: EdgeClusterInfo,
        rev: DesiredRevision,
        last_good: str | None,
    ) -> EdgeCacheParams:
        assert info.spec is not None
        spec, s3 = desired.spec, self.settings
        access, secret = s3.edge_s3.access_key_id, s3.edge_s3.secret_access_key
        if desired.edge_key is not None:  # the namespace's own key replaces the global one
            access, secret = desired.edge_key.access_key_id, desired.edge_key.secret_access_key
        return EdgeCacheParams(
            rc_namespace=obj.namespace,
            rc_name=obj.name,
            rc_uid=obj.uid,
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
                access_key_id=access,
                secret_access_key=secret,
            ),
            image=spec.cache.image or s3.cache_image,
            replicas=spec.cache.replicas,
            port=spec.cache.port,
            resources=spec.cache.resources,
            cosmo_organization_id=spec.cosmo.organization_id if spec.cosmo else None,
            cosmo_federated_graph_id=spec.cosmo.federated_graph_id if spec.cosmo else None,
            graph_token_secret=desired.graph_token_secret,
            public_read=spec.cache.public_read,
            # Only a digest other than the one applied says something (the planner also takes the digest
            # a cluster is healthy on as good), and leaving it out saves a write when it would not.
            last_good=last_good if last_good != rev.digest else None,
            in_place=info.spec.revision_switch == "InPlace",
            pointer_key=revision_pointer_key(self.publisher.prefix, obj.namespace, obj.name, info.name),
        )

    async def _write_pointer(self, p: EdgeCacheParams, gate: Callable[[], Awaitable[None]] | None) -> None:
        """The revision pointer to S3, once the plan is on record (`gate`)."""
        assert p.pointer_key is not None
        if gate is not None:
            await gate()
        pointer = RevisionPointer(p.rc_namespace, p.rc_name, p.cluster, p.digest, p.key)
        await write_pointer(self.publisher.store, p.pointer_key, pointer, p.signing_key)

    async def _published(
        self, obj: RouterConfigObject, desired: DesiredState, digests: set[str]
    ) -> tuple[dict[str, DesiredRevision], str | None]:
        """Key and signature of each digest (a rollback target): from this render, else the manifest.
        Returns what was found and, when the manifest could not be read, why."""
        found = {r.digest: r for r in desired.revisions.values() if r.digest in digests}
        missing = digests - found.keys()
        if not missing:
            return found, None
        key = manifest_key(self.publisher.prefix, obj.namespace, obj.name)
        try:
            manifest = await self.publisher.store.read_manifest(key)
        except PublishError as exc:
            return found, exc.message
        for digest in missing:
            entry = manifest.find(digest) if manifest is not None else None
            if entry is not None:
                found[digest] = DesiredRevision(entry.digest, entry.key, entry.signature)
        return found, None

    async def _ensure(
        self,
        work: _ClusterWork,
        obj: RouterConfigObject,
        desired: DesiredState,
        rev: DesiredRevision,
        last_good: str | None,
        full: bool,
        why: str,
    ) -> DeploymentHealth | None:
        """Make the edge objects carry `rev`; None when the cluster could not be written (reported)."""
        assert work.api is not None and work.info is not None
        health = work.state.health
        params = self._params(obj, desired, work.info, rev, last_good)
        try:
            if params.in_place:
                params = switch_params(params, work.live)
                if pointer_moves(params, work.live):  # before the objects name it: a pod may ask at once
                    await self._write_pointer(params, work.gate)
            result = await ensure_edge(
                work.api,
                edge_manifests(params),
                live_deployment=work.live,
                check_all=full,
                owner=obj.owner,
                others_move_with_deployment=params.in_place,
            )
            live = result.deployment
            if params.in_place:
                live, work.switch = await settle(work.api, params, live, obj.owner)
            if self.watches is not None:
                self.watches.saw(work.name, live)
            after = read_health(live)
            legacy_key = (obj.namespace, obj.name, obj.uid, work.name)
            legacy = legacy_refs(obj.namespace, obj.name, params.namespace)
            ready = phase_for(after, rev.digest)[0] is ClusterPhase.READY
            if full and ready and legacy and legacy_key not in self._no_legacy:
                changes, found = await retire_legacy(
                    work.api, legacy, legacy_alias_service(params), obj.owner
                )
                result.changes.extend(changes)
                if not found:  # nothing of the 0.1 name there: no need to look on every resync
                    self._no_legacy.add(legacy_key)
        except EdgeObjectConflict as exc:
            work.conflict = exc.message
            work.report = self._report(work, ClusterPhase.FAILED, health, desired, exc.message)
            return None
        except ClusterUnreachable as exc:
            self.registry.mark_unreachable(work.name, str(exc))
            work.report = self._report(work, ClusterPhase.UNREACHABLE, health, desired, str(exc))
            return None
        except PublishError as exc:  # the revision pointer (InPlace): nothing named it yet
            message = f"writing the revision pointer: {exc.message}"
            self.metrics.error("apply", "PointerFailed")
            work.report = self._report(work, ClusterPhase.PROGRESSING, health, desired, message)
            return None
        except KubeApiError as exc:
            message = f"apply failed: {exc}"
            self.metrics.error("apply", "ApplyFailed")
            work.report = self._report(work, ClusterPhase.FAILED, health, desired, message)
            if work.prev_phase is not ClusterPhase.FAILED:  # once, not on every retry
                work.events.append(EventNote("Warning", "ApplyFailed", f"{work.name}: {message}"))
            return None
        if result.changes:
            before = health.digest if health is not None else None
            if work.live is None:
                reason = "Created"
            elif before != rev.digest:
                reason = "Applied"
            else:
                reason = "DriftCorrected"
            what = ", ".join(str(c) for c in result.changes)
            work.events.append(
                EventNote("Normal", reason, f"{work.name}: {short_digest(rev.digest)}{why}: {what}")
            )
        if work.switch is not None and work.switch.done:
            work.events.append(
                EventNote("Normal", "Switched", f"{work.name}: in place{why}: {work.switch.message}")
            )
        return after

    def _report(
        self,
        work: _ClusterWork,
        phase: ClusterPhase,
        health: DeploymentHealth | None,
        desired: DesiredState,
        message: str,
    ) -> ClusterReport:
        """A target's report (phase and message from the plan, replicas from the Deployment)."""
        if phase is ClusterPhase.UNREACHABLE and desired.spec.rollout.strategy != "AllAtOnce":
            phase = ClusterPhase.STALE
        want = desired.revisions.get(work.name)
        digest = health.digest if health is not None else None
        if digest is None and not work.state.reachable:
            digest = work.prev_digest
        return ClusterReport(
            name=work.name,
            phase=phase,
            digest=digest,
            desired_digest=want.digest if want else None,
            key=want.key if want else None,
            ready_replicas=health.ready_replicas if health else 0,
            replicas=health.replicas if health else 0,
            message=message,
            wave=work.view.wave_name if work.view is not None else None,
        )

    def _planned(
        self,
        work: _ClusterWork,
        action: ClusterAction,
        desired: DesiredState,
        published: Mapping[str, DesiredRevision],
        prev: RouterConfigStatus,
    ) -> ClusterReport:
        """The cluster's report as the plan sees it, before anything acts: what is persisted with
        status.rollout, so that the two never disagree. `_execute` refines it after acting."""
        health, view = work.state.health, work.view
        if view is None:  # not a target any more: as it was until it is removed
            old = next((c for c in prev.clusters if c.name == work.name), None)
            if old is None:  # found by its edge objects, not in the status
                digest = health.digest if health is not None else None
                message = "not a target; found by its edge objects"
                return ClusterReport(
                    work.name, ClusterPhase.DELETING, digest, message=message, targeted=False
                )
            return ClusterReport(
                old.name,
                old.phase,
                old.digest,
                old.desired_digest,
                old.key,
                old.ready_replicas,
                old.replicas,
                old.message or "",
                targeted=False,
                wave=old.wave,
            )
        if work.conflict is not None:
            return self._report(work, ClusterPhase.FAILED, None, desired, work.conflict)
        phase = _cluster_phase(view.phase, desired.spec.rollout.strategy)
        message = view.message
        if not work.state.actionable:
            if phase is ClusterPhase.PAUSED and health is not None:
                want = desired.revisions.get(work.name)
                if want is not None and phase_for(health, want.digest)[0] is ClusterPhase.READY:
                    phase = ClusterPhase.READY  # a paused cluster that already serves what it should
            return self._report(work, phase, health, desired, message)
        if work.api is None:  # reachable, but its Deployment cannot be read: nothing can be done there
            return self._report(work, ClusterPhase.FAILED, None, desired, work.state.message)
        if isinstance(action, Rollback) and action.digest not in published:
            message = f"{message}; cannot roll back: {short_digest(action.digest)} is not in the manifest"
        return self._report(work, phase, health, desired, message)

    async def _execute(
        self,
        work: _ClusterWork,
        action: ClusterAction,
        obj: RouterConfigObject,
        desired: DesiredState,
        published: Mapping[str, DesiredRevision],
        full: bool,
    ) -> None:
        """Carry out one cluster's action; `work.report` holds the planned report and is refined."""
        view, planned = work.view, work.report
        if view is None:
            await self._execute_removal(work, action, obj)
            return
        if not work.state.actionable or work.api is None or planned is None:
            return
        if isinstance(action, ApplyRevision):
            rev: DesiredRevision | None = action.revision
            last_good, why = action.last_good, ""
        elif isinstance(action, Rollback):
            rev = published.get(action.digest)
            last_good, why = action.digest, " (rollback)"
        else:  # Hold: keep the cluster on what it should hold now; drift correction follows the plan
            rev = published.get(view.digest) if view.digest is not None and work.live is not None else None
            last_good, why = view.digest, ""
        if rev is None:
            return
        after = await self._ensure(work, obj, desired, rev, last_good, full, why)
        if after is not None:
            message = planned.message
            if work.switch is not None and not work.switch.done and work.switch.refused is None:
                message = f"{message}; {work.switch.message}" if message else work.switch.message
            work.report = self._report(work, planned.phase, after, desired, message)

    async def _holders(
        self, obj: RouterConfigObject, clusters: Mapping[str, EdgeClusterInfo], skip: set[str]
    ) -> tuple[list[_ClusterWork], bool]:
        """The clusters outside `skip` that hold a Deployment of this RouterConfig (one GET each, by
        its name, which only the RouterConfig's namespace and name decide), and whether every one of
        them answered. Unreachable ones are left out: nothing says they hold one."""
        others = [n for n in sorted(clusters) if n not in skip]
        works = await asyncio.gather(*(self._observe(n, clusters[n], obj) for n in others))
        complete = all(w.state.reachable or w.conflict is not None for w in works)
        return [w for w in works if w.live is not None], complete

    async def _remove(self, work: _ClusterWork, obj: RouterConfigObject) -> list[ObjectRef]:
        """Delete the RouterConfig's edge objects in one cluster, under its current and legacy names;
        objects another owner holds are kept, with a warning event."""
        assert work.api is not None and work.info is not None and work.info.spec is not None
        namespace = work.info.spec.namespace
        refs = edge_refs(obj.namespace, obj.name, namespace) + legacy_refs(obj.namespace, obj.name, namespace)
        removed, kept = await remove_edge(work.api, refs, obj.owner)
        work.events += [
            EventNote("Warning", "NotRemoved", f"{work.name}: {why}; left in place") for why in kept
        ]
        return removed

    async def _execute_removal(
        self, work: _ClusterWork, action: ClusterAction, obj: RouterConfigObject
    ) -> None:
        """A cluster that is no longer a target: remove its edge cache, or say why not yet."""

        def pending(why: str) -> None:
            work.report = ClusterReport(
                work.name,
                ClusterPhase.DELETING,
                work.prev_digest,
                message=f"removal pending: {why}",
                targeted=False,
            )

        if isinstance(action, Hold):
            pending(action.reason)
            return
        if work.api is None or work.info is None or work.info.spec is None:
            pending(work.state.message or "cannot reach the edge cache")
            return
        try:
            removed = await self._remove(work, obj)
        except (ClusterUnreachable, KubeApiError) as exc:
            if isinstance(exc, ClusterUnreachable):
                self.registry.mark_unreachable(work.name, str(exc))
            work.report = ClusterReport(
                work.name,
                ClusterPhase.DELETING,
                work.prev_digest,
                message=f"removal failed: {exc}",
                targeted=False,
            )
            return
        work.report = None  # removed clusters leave the status
        if removed:
            work.events.append(EventNote("Normal", "Removed", f"{work.name}: removed the edge cache"))

    # ---- the reconcile --------------------------------------------------------------------------------

    def _requeue(self, status: RouterConfigStatus, plan: Plan, now: datetime) -> tuple[float, bool]:
        """When to look again, and whether everything has settled (then retention may run)."""
        phases = {c.phase for c in status.clusters}
        state, s = plan.state, self.settings
        moving = (
            state.phase in ("Progressing", "Soaking")
            or (state.phase == "RolledBack" and state.rolled_back_at is None)
            or ClusterPhase.PROGRESSING in phases
            or (ClusterPhase.PENDING in phases and state.phase == "Completed")
        )
        if moving:
            delay, settled = s.progress_seconds, False
        elif state.phase in ("Paused", "Waiting") or phases & {
            ClusterPhase.UNREACHABLE,
            ClusterPhase.STALE,
            ClusterPhase.DELETING,
        }:
            delay, settled = min(s.probe_seconds, s.resync_seconds), False
        else:
            delay, settled = s.resync_seconds, True
        gate = plan.requeue_after(now)
        if gate is not None:  # a soak ends or a deadline falls: plan again right then
            delay = min(delay, gate + 0.05)
        return delay, settled

    async def reconcile(
        self,
        obj: RouterConfigObject,
        clusters: Mapping[str, EdgeClusterInfo],
        prev: RouterConfigStatus,
        cached: DesiredState | None = None,
        full: bool = True,
        persist: PersistRollout | None = None,
    ) -> ReconcileResult:
        """Reconcile once, step by step: parse, gather + render + publish (`_desired`), observe, plan,
        apply, report, retention. A step that cannot go on returns the result to give; errors become
        conditions in `_stopped`. `persist` writes status.rollout before the first write of an action
        (the controller's; fence.py), and is not called when no action writes: the status as planned
        then goes out with the report, in one write. Without it, the plan's events go out with the
        result."""
        unparsed, events = self._status_problems(obj)
        run = _Pass(obj, clusters, prev, self.now(), full, unparsed, events)
        spec = self._parse(run)
        if isinstance(spec, ReconcileResult):
            return spec
        desired = await self._gather(run, spec, cached)
        if isinstance(desired, ReconcileResult):
            return desired
        await self._observe_all(run, spec)
        await self._measure(run, spec)
        planned = await self._plan(run, spec, desired, persist)
        await self._apply(run, planned, desired)
        await planned.fence.settled()
        if planned.fence.refused:  # nothing was written: look again, with backoff
            result = ReconcileResult(run.prev, run.events, self.settings.progress_seconds, settled=False)
            result.transient = True
            return result
        if planned.fence.writes is StatusWrites.REPORT_ONLY:  # nothing wrote: the plan goes with the report
            run.events += planned.events
        result, settled, status = self._report_status(run, spec, desired, planned)
        if run.full and settled and not run.unparsed:  # what the unparsed part said may still be in use
            with self._step("retention"):
                await self._collect_garbage(obj, spec, desired, prev, status)
        return result

    def _stopped(
        self,
        run: _Pass,
        spec: RouterConfigSpec | None,
        *,
        stalled: Problem | None = None,
        publish_error: Problem | None = None,
    ) -> ReconcileResult:
        """The result of a reconcile that stops before the edges: `stalled` (looked at again at the
        next resync) or `publish_error` (retried with backoff). The edges' status is kept."""
        obj = run.obj
        status = build_status(
            run.prev,
            generation=obj.generation,
            now=run.now,
            reports=None,
            stalled=stalled,
            publish_error=publish_error,
        )
        if spec is not None:
            status = with_token_verification(status, spec, now=run.now, generation=obj.generation)
        transient = publish_error is not None
        requeue = self.settings.progress_seconds if transient else self.settings.resync_seconds
        result = self._finish(run.prev, status, run.events, requeue, None)
        result.transient = transient
        return result

    def _parse(self, run: _Pass) -> RouterConfigSpec | ReconcileResult:
        try:
            with self.metrics.step("parse"):
                return parse_spec(run.obj.spec)
        except Stalled as exc:
            self.metrics.error("parse", exc.reason)
            return self._stopped(run, None, stalled=Problem(exc.reason, exc.message))

    async def _gather(
        self, run: _Pass, spec: RouterConfigSpec, cached: DesiredState | None
    ) -> DesiredState | ReconcileResult:
        """What to roll out: the cached render on a progress check, else gathered, rendered, published."""
        run.targets = targets_of(spec, run.clusters)
        fp = self.fingerprint(spec, run.clusters)
        desired = cached if cached is not None and not run.full else None
        if desired is not None and (desired.generation != run.obj.generation or desired.targets != fp):
            desired, run.full = None, True
        if desired is not None:
            return desired
        try:
            desired, published_events = await self._desired(run.obj, spec, run.targets, fp)
        except Stalled as stall:
            return self._stopped(run, spec, stalled=Problem(stall.reason, stall.message))
        except Retryable as err:
            return self._stopped(run, spec, publish_error=Problem(err.reason, err.message))
        run.events += published_events
        return desired

    async def _observe_all(self, run: _Pass, spec: RouterConfigSpec) -> None:
        """Every target and every cluster the status says holds a cache (and, when the status may
        have lost some, every cluster whose edge objects say so)."""
        obj, clusters = run.obj, run.clusters
        run.managed = {c.name for c in run.prev.clusters}
        names = sorted({t.name for t in run.targets} | run.managed)
        with self._step("observe"):
            works = list(await asyncio.gather(*(self._observe(n, clusters.get(n), obj) for n in names)))
            scan_key = (obj.namespace, obj.name, obj.uid)
            if run.full and (run.unparsed or scan_key not in self._holders_found):
                # The status may have lost clusters (a hand edit or a downgrade while no operator ran, or
                # a part that does not parse): once per process, and whenever it does not parse, the edge
                # objects themselves say who holds a cache.
                holders, complete = await self._holders(obj, clusters, skip=set(names))
                works += holders
                run.managed |= {w.name for w in holders}
                if complete:
                    self._holders_found.add(scan_key)
        previous = {c.name: c for c in run.prev.clusters}
        for w in works:
            if w.name in previous:
                w.prev_digest, w.prev_phase = previous[w.name].digest, previous[w.name].phase
        run.works = works

    async def _measure(self, run: _Pass, spec: RouterConfigSpec) -> None:
        """The analysis measurements due now (rollout/analysis.py says which), queried concurrently;
        an unreachable Prometheus or a missing address is an answer too: inconclusive."""
        due = due_measurements(run.prev.rollout, spec.rollout.analysis, self.clock())
        if not due or spec.rollout.analysis is None:
            return
        metrics = {m.name: m for m in spec.rollout.analysis.metrics}

        async def measure(request: MeasurementRequest) -> MeasurementResult:
            metric, info = metrics[request.metric], run.clusters.get(request.cluster)
            default = info.spec.prometheus if info is not None and info.spec is not None else None
            address = metric.prometheus.address or (default.address if default is not None else None)
            value: float | None = None
            try:
                labels = dict(info.labels) if info is not None else {}
                promql = query_for(metric, request.cluster, labels, request.digest)
            except ValueError as exc:
                error: str | None = f"query: {exc}"
            else:
                if address is None:
                    error = (
                        f"no Prometheus address: set prometheus.address on metric {metric.name} "
                        f"or spec.prometheus.address on EdgeCluster {request.cluster}"
                    )
                else:
                    value, error = await self.prometheus.query(address, promql)
            return MeasurementResult(
                request.metric, request.cluster, request.digest, self.clock(), value, error
            )

        with self._step("measure"):
            run.measurements = list(await asyncio.gather(*(measure(r) for r in due)))

    async def _plan(
        self, run: _Pass, spec: RouterConfigSpec, desired: DesiredState, persist: PersistRollout | None
    ) -> _Planned:
        """The planner's actions, each cluster's report as planned, and the fence that puts the status as
        planned (status.rollout with them) on record through `persist` before any action writes."""
        obj, by_name = run.obj, {w.name: w for w in run.works}
        with self._step("plan"):
            commands, problems = parse_commands(obj.annotations)
            run.events += self._command_problems(obj, problems)
            clock = self.clock()
            plan = plan_rollout(
                PlanInput(
                    desired={t.name: desired.revisions[t.name] for t in run.targets},
                    observed={w.name: w.state for w in run.works},
                    previously_managed=frozenset(run.managed),
                    policy=spec.rollout,
                    now=clock,
                    state=run.prev.rollout,
                    revision=desired.revision,
                    commands=commands,
                    measurements=run.measurements,
                )
            )
            plan_events = [EventNote(e.type, e.reason, e.message) for e in plan.events]
            for view in plan.clusters:
                by_name[view.name].view = view
            lookups = {a.digest for a in plan.rollbacks} | {
                v.digest for v in plan.clusters if v.digest is not None and by_name[v.name].live is not None
            }
            published, manifest_problem = await self._published(obj, desired, lookups)
            if manifest_problem is not None:
                log.warning(
                    "reading the revision manifest of %s/%s: %s", obj.namespace, obj.name, manifest_problem
                )
            actions = {a.cluster: a for a in plan.cluster_actions}
            for name, action in actions.items():
                by_name[name].report = self._planned(by_name[name], action, desired, published, run.prev)
            if persist is None:
                run.events += plan_events
                return _Planned(plan, clock, actions, published, manifest_problem)
            rollout = RolloutView(plan.state, plan.message)
            status = build_status(
                run.prev,
                generation=obj.generation,
                now=run.now,
                reports=[w.report for w in run.works if w.report is not None],
                published=desired.base,
                rollout=rollout,
            )
            fence = WriteFence(functools.partial(self._record, obj, persist, status, plan_events))
            return _Planned(plan, clock, actions, published, manifest_problem, fence, plan_events)

    async def _record(
        self,
        obj: RouterConfigObject,
        persist: PersistRollout,
        status: RouterConfigStatus,
        events: Sequence[EventNote],
    ) -> None:
        """The status as planned on record (the fence's write, before the first write of an action)."""
        with self.metrics.step("persist"):
            try:
                await persist(status, events)
            except Exception as exc:  # nothing acts on a plan that is not on record
                log.warning("persisting status.rollout of %s/%s failed: %s", obj.namespace, obj.name, exc)
                self.metrics.error("persist", "StatusPersistFailed")
                raise

    async def _gate(self, work: _ClusterWork, fence: WriteFence) -> None:
        """Wait for the plan to go on record before a write of this cluster's action; the hub's time is
        not counted against the cluster's bound."""
        with paused(work.deadline):
            await fence.pass_through()

    async def _apply(self, run: _Pass, planned: _Planned, desired: DesiredState) -> None:
        """Every cluster's action, concurrently; one cluster never holds up the others for long. Each
        write passes the plan's fence first: the first one puts the plan on record."""
        by_name = {w.name: w for w in run.works}
        for name in planned.actions:
            work = by_name[name]
            work.gate = functools.partial(self._gate, work, planned.fence)
            if work.api is not None:  # reads go straight through, writes wait for the plan's record
                work.api = FencedApi(work.api, work.gate)
        with self._step("apply"):
            await asyncio.gather(
                *(
                    self._guarded(
                        by_name[name],
                        self._execute(by_name[name], action, run.obj, desired, planned.published, run.full),
                    )
                    for name, action in planned.actions.items()
                )
            )

    def _report_status(
        self, run: _Pass, spec: RouterConfigSpec, desired: DesiredState, planned: _Planned
    ) -> tuple[ReconcileResult, bool, RouterConfigStatus]:
        """The status the clusters' reports make (Stalled when an edge object belongs to another owner),
        when to look again, and whether everything has settled."""
        obj = run.obj
        for w in run.works:
            run.events += w.events
        reports = [w.report for w in run.works if w.report is not None]
        conflicts = [
            f"{w.name}: {w.conflict}" for w in run.works if w.conflict is not None and w.view is not None
        ]
        if conflicts:
            self.metrics.error("apply", CONFLICT_REASON)
        status = build_status(
            run.prev,
            generation=obj.generation,
            now=run.now,
            reports=reports,
            published=desired.base,
            rollout=planned.rollout,
            stalled=Problem(CONFLICT_REASON, "; ".join(conflicts)) if conflicts else None,
        )
        status = with_token_verification(status, spec, now=run.now, generation=obj.generation)
        requeue, settled = self._requeue(status, planned.plan, planned.clock)
        settled = settled and planned.manifest_problem is None
        result = self._finish(run.prev, status, run.events, requeue, desired, planned=True)
        result.settled = settled
        return result, settled, status

    def _status_problems(self, obj: RouterConfigObject) -> tuple[list[str], list[EventNote]]:
        """What of the stored status does not parse, and a warning when that changed (not every resync)."""
        _, problems = salvage_status(obj.status)
        key = (obj.namespace, obj.name)
        seen = self._bad_status.get(key, frozenset())
        self._bad_status[key] = frozenset(problems)
        if not problems or set(problems) <= seen:
            return problems, []
        message = "status kept as far as it parses until rewritten; not parsed: " + "; ".join(problems)
        return problems, [EventNote("Warning", "InvalidStatus", message[:1024])]

    def _command_problems(self, obj: RouterConfigObject, problems: list[str]) -> list[EventNote]:
        """A warning per command annotation that does not parse, once (not on every resync)."""
        key = (obj.namespace, obj.name)
        seen = self._bad_commands.get(key, frozenset())
        self._bad_commands[key] = frozenset(problems)
        if problems:
            log.warning("%s/%s: %s", obj.namespace, obj.name, "; ".join(problems))
        return [EventNote("Warning", "InvalidCommand", p) for p in problems if p not in seen]

    async def _guarded(self, work: _ClusterWork, job: Awaitable[None]) -> None:
        """One cluster never holds up the others for longer than a few request timeouts (not counting
        the wait for the plan's record, nor for a connection of the cluster's client); nothing is
        written when the plan could not be recorded."""
        try:
            async with asyncio.timeout(self.settings.edge_timeout_seconds * 4) as work.deadline:
                # Requests wait for a connection of the cluster's client off this clock (kube.py).
                bound = CALLER_BOUND.set(work.deadline)
                try:
                    await job
                finally:
                    CALLER_BOUND.reset(bound)
        except PlanNotRecorded:
            return  # the whole pass is retried (`reconcile`)
        except TimeoutError:
            message = f"no answer within {self.settings.edge_timeout_seconds * 4:.0f}s"
            self.registry.mark_unreachable(work.name, message)
            wave = work.view.wave_name if work.view is not None else None
            work.report = ClusterReport(
                work.name, ClusterPhase.UNREACHABLE, work.prev_digest, message=message, wave=wave
            )

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
        for rollout in (prev.rollout, status.rollout):  # every digest a rollback may still need
            for r in rollout.clusters if rollout is not None else ():
                in_use.update(d for d in (r.target, r.last_good, r.verified, r.rollback_to) if d)
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
        planned: bool = False,
    ) -> ReconcileResult:
        events = events + transition_events(prev, status, planned)
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
        works = list(await asyncio.gather(*(self._observe(n, clusters.get(n), obj) for n in names)))
        # Whatever the status says, a cache anywhere else is found by its objects and removed too.
        works += (await self._holders(obj, clusters, skip=set(names)))[0]
        _, events = self._status_problems(obj)
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
                    removed = await self._remove(work, obj)
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
        for w in works:
            events += w.events
        names_pending = sorted(r.name for r in pending)
        problem = Problem(
            "Deleting",
            "removing edge caches"
            if not pending
            else f"waiting to remove edge caches from: {', '.join(names_pending)}",
        )
        status = build_status(prev, generation=obj.generation, now=now, reports=pending, deleting=problem)
        if not pending:
            self.admission.forget(obj.uid)
            self._holders_found.discard((obj.namespace, obj.name, obj.uid))
            self._no_legacy = {k for k in self._no_legacy if k[:3] != (obj.namespace, obj.name, obj.uid)}
        return FinalizeResult(done=not pending, status=status, events=events, pending=names_pending)


def _cluster_phase(phase: str, strategy: str) -> ClusterPhase:
    """The planner's phase for status.clusters[]. AllAtOnce has no waves for an unreachable cluster to
    be stale in: there it is plainly Unreachable."""
    if phase == "Stale" and strategy == "AllAtOnce":
        return ClusterPhase.UNREACHABLE
    return ClusterPhase(phase)


def transition_events(
    prev: RouterConfigStatus, new: RouterConfigStatus, planned: bool = False
) -> list[EventNote]:
    """Warnings and milestones, only when they change: a steady state posts no events.

    `planned`: the planner's own events went out for this reconcile; a rollout that failed or was rolled
    back (RolloutFailed, RollbackStarted) and a cluster that failed (ClusterFailed) are not told twice."""
    out: list[EventNote] = []
    rollout_stall = new.rollout is not None and new.rollout.phase in ("Failed", "RolledBack")
    for type_ in ("Stalled", "Published"):
        if type_ == "Stalled" and planned and rollout_stall:
            continue
        if condition_changed(prev, new, type_):
            cond = next((c for c in new.conditions if c.type == type_), None)
            if cond is not None and (type_ == "Stalled") == (cond.status == "True"):
                out.append(EventNote("Warning", cond.reason, cond.message))
    if condition_changed(prev, new, "Ready"):
        cond = next((c for c in new.conditions if c.type == "Ready"), None)
        if cond is not None and cond.status == "True":
            out.append(EventNote("Normal", "Ready", cond.message))
    before = {c.name: c.phase for c in prev.clusters}
    watched = {ClusterPhase.UNREACHABLE: "ClusterUnreachable", ClusterPhase.STALE: "ClusterUnreachable"}
    if not planned:
        watched[ClusterPhase.FAILED] = "ClusterFailed"
    for c in new.clusters:
        if c.phase != before.get(c.name) and c.phase in watched:
            out.append(EventNote("Warning", watched[c.phase], f"{c.name}: {c.message or c.phase.value}"))
    return out
