"""The operator's Prometheus metrics, and the HTTP endpoint that serves them (`--metrics-addr`).

Every metric lives in the `OperatorMetrics` object's own registry, never in prometheus_client's global
one: a process makes one and hands it to every component, and each unit test gets a fresh one. Labels
are bounded by what the operator manages (RouterConfigs, EdgeClusters) or by fixed sets in the code
(steps, phases, reasons, S3 operations and status codes, admission verdicts); no label ever carries a
message, a URL or a secret.
(The edge cache's metrics are its own: cache/metrics.py.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Final, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

from edgeroll.api.routerconfig import StatusPhase
from edgeroll.settings import MetricsAddress

log = logging.getLogger(__name__)

# The reconcile's steps, in order (pipeline/reconciler.py). A progress check skips gather, render,
# admission and publish (it reuses the last render); admission runs only with spec.admission.webhook;
# retention runs only once everything has settled. `persist` (the status as planned, on record) runs
# inside `apply`, before the first write of an action, and only when an action writes.
STEPS: Final = (
    "parse",
    "gather",
    "render",
    "admission",
    "publish",
    "observe",
    "measure",
    "plan",
    "persist",
    "apply",
    "report",
    "retention",
)
# status.phase of a RouterConfig: Ready, Progressing, Degraded, Stalled, Deleting.
PHASES: Final[tuple[str, ...]] = get_args(StatusPhase)

# An admission webhook's verdict on one revision (pipeline/admission.py): a 2xx admits, a 4xx but 429
# refuses, anything else (no answer in time, connection refused, 5xx, 429, 3xx) gives none.
ADMISSION_RESULTS: Final = ("admitted", "refused", "unavailable")

# A reconcile step takes milliseconds (a render, a HEAD) to a few edge timeouts (an apply).
_STEP_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# A webhook answers in milliseconds; no answer takes the whole --admission-timeout-seconds (10 s).
_ADMISSION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A new revision reaches every cluster in seconds (AllAtOnce) to hours (waves with soaks).
_PROPAGATION_BUCKETS: Final = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class OperatorMetrics:
    """The metric families of one operator process (docs/architecture.md, Operator metrics)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.reconcile_duration = Histogram(
            "edgeroll_reconcile_duration_seconds",
            "Time spent in each step of a RouterConfig reconcile.",
            ["step"],
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.reconcile_errors = Counter(
            "edgeroll_reconcile_errors_total",
            "Reconcile steps that ended in a Stalled or retryable error, by reason.",
            ["step", "reason"],
            registry=r,
        )
        self.propagation = Histogram(
            "edgeroll_propagation_seconds",
            "From the first sight of a new RouterConfig generation or revision to every target "
            "cluster Ready on its digest.",
            buckets=_PROPAGATION_BUCKETS,
            registry=r,
        )
        self.rollout_phase = Gauge(
            "edgeroll_rollout_phase",
            "1 for the RouterConfig's current status.phase, 0 for the other phases.",
            ["namespace", "name", "phase"],
            registry=r,
        )
        self.edgecluster_reachable = Gauge(
            "edgeroll_edgecluster_reachable",
            "1 when the EdgeCluster's apiserver answered its last probe, else 0.",
            ["edgecluster"],
            registry=r,
        )
        self.s3_requests = Counter(
            "edgeroll_s3_requests_total",
            "S3 requests by operation and HTTP status code (or the error class when no response came).",
            ["op", "code"],
            registry=r,
        )
        self.workqueue_depth = Gauge(
            "edgeroll_workqueue_depth",
            "RouterConfigs whose reconcile (or finalizer) is waiting for its turn or running.",
            registry=r,
        )
        self.shard_held = Gauge(
            "edgeroll_shard_held",
            "1 for each shard whose Lease this replica holds and acts on, 0 for the others.",
            ["shard"],
            registry=r,
        )
        # One request per revision not yet admitted; never labelled with the URL, the RouterConfig or
        # the reason (a webhook writes those freely).
        self.admission_requests = Counter(
            "edgeroll_admission_requests_total",
            "Admission webhook requests by verdict: admitted (2xx), refused (4xx but 429), unavailable "
            "(no answer in time, connection refused, 5xx, 429, 3xx).",
            ["result"],
            registry=r,
        )
        self.admission_duration = Histogram(
            "edgeroll_admission_duration_seconds",
            "Time from sending an admission webhook request to its verdict, or to giving up on it.",
            buckets=_ADMISSION_BUCKETS,
            registry=r,
        )
        # Pre-declare the fixed label sets so that dashboards see zeros rather than no series.
        for step in STEPS:
            self.reconcile_duration.labels(step)
        for result in ADMISSION_RESULTS:
            self.admission_requests.labels(result)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time one reconcile step (also when it raises)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.reconcile_duration.labels(name).observe(time.perf_counter() - started)

    def error(self, step: str, reason: str) -> None:
        self.reconcile_errors.labels(step, reason).inc()

    def set_phase(self, namespace: str, name: str, phase: str | None) -> None:
        if phase is None:
            return
        for p in PHASES:
            self.rollout_phase.labels(namespace, name, p).set(1 if p == phase else 0)

    def forget_routerconfig(self, namespace: str, name: str) -> None:
        for p in PHASES:
            with suppress(KeyError):  # never had a phase (deleted before its first status)
                self.rollout_phase.remove(namespace, name, p)

    def set_reachable(self, edgecluster: str, reachable: bool) -> None:
        self.edgecluster_reachable.labels(edgecluster).set(1 if reachable else 0)

    def forget_edgecluster(self, edgecluster: str) -> None:
        with suppress(KeyError):  # never probed
            self.edgecluster_reachable.remove(edgecluster)

    def set_shards(self, held: Mapping[int, int], shards: int) -> None:
        for shard in range(shards):
            self.shard_held.labels(str(shard)).set(1 if shard in held else 0)

    def s3_request(self, op: str, code: int | str) -> None:
        self.s3_requests.labels(op, str(code)).inc()

    def admission_request(self, result: str, seconds: float) -> None:
        """One admission webhook request and its `result`, one of ADMISSION_RESULTS."""
        self.admission_requests.labels(result).inc()
        self.admission_duration.observe(seconds)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


class MetricsServer:
    """prometheus_client's WSGI server on a thread of its own: a scrape never waits for kopf's loop."""

    def __init__(self, metrics: OperatorMetrics, address: MetricsAddress) -> None:
        self._server, self._thread = start_http_server(
            address.port, addr=address.host or "0.0.0.0", registry=metrics.registry
        )
        self.port: int = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(metrics: OperatorMetrics, address: MetricsAddress | None) -> MetricsServer | None:
    """Start the endpoint; None when disabled, or when the address cannot be bound. The latter only
    warns: reconciling matters more than its metrics, and a port taken by another local operator
    (tests, benchmarks) must not stop this one."""
    if address is None:
        return None
    try:
        server = MetricsServer(metrics, address)
    except OSError as exc:
        log.warning("operator metrics are off: cannot listen on %s: %s", address, exc)
        return None
    log.info("operator metrics on http://%s:%d/metrics", address.host or "0.0.0.0", server.port)
    return server
