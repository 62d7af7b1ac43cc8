"""`edgeroll operator`: run the kopf operator against the hub cluster.

The hub is reached with EDGEROLL_HUB_KUBECONFIG, else KUBECONFIG, else the
in-cluster service account. Liveness is kopf's probe endpoint (`/healthz`); Prometheus metrics are
served on --metrics-addr (operator_metrics.py).
Flags override the environment (settings.py lists the variables).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any

from edgeroll.operator_metrics import OperatorMetrics, serve_metrics
from edgeroll.settings import OperatorSettings, SettingsError, settings_from_env

DEFAULT_LIVENESS = "http://127.0.0.1:8080/healthz"

_FLAG_ENV = {
    "s3_endpoint": "EDGEROLL_S3_ENDPOINT",
    "s3_bucket": "EDGEROLL_S3_BUCKET",
    "s3_prefix": "EDGEROLL_S3_PREFIX",
    "cache_image": "EDGEROLL_CACHE_IMAGE",
    "allowed_cache_image": "EDGEROLL_ALLOWED_CACHE_IMAGES",
    "allowed_prometheus_address": "EDGEROLL_ALLOWED_PROMETHEUS_ADDRESSES",
    "allow_shared_edge_key": "EDGEROLL_ALLOW_SHARED_EDGE_KEY",
    "admission_url_prefix": "EDGEROLL_ADMISSION_URL_PREFIXES",
    "admission_timeout_seconds": "EDGEROLL_ADMISSION_TIMEOUT_SECONDS",
    "hub_kubeconfig": "EDGEROLL_HUB_KUBECONFIG",
    "resync_seconds": "EDGEROLL_RESYNC_SECONDS",
    "progress_seconds": "EDGEROLL_PROGRESS_SECONDS",
    "probe_seconds": "EDGEROLL_PROBE_SECONDS",
    "edge_timeout_seconds": "EDGEROLL_EDGE_TIMEOUT_SECONDS",
    "edge_concurrency": "EDGEROLL_EDGE_CONCURRENCY",
    "metrics_addr": "EDGEROLL_METRICS_ADDR",
    "shards": "EDGEROLL_SHARDS",
    "lease_namespace": "EDGEROLL_LEASE_NAMESPACE",
    "lease_duration_seconds": "EDGEROLL_LEASE_DURATION_SECONDS",
    "renew_deadline_seconds": "EDGEROLL_RENEW_DEADLINE_SECONDS",
    "retry_period_seconds": "EDGEROLL_RETRY_PERIOD_SECONDS",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch RouterConfigs in this namespace (repeatable)",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="watch RouterConfigs in every namespace (the default)",
    )
    parser.add_argument(
        "--liveness", default=DEFAULT_LIVENESS, help=f"liveness endpoint (default {DEFAULT_LIVENESS})"
    )
    parser.add_argument(
        "--hub-kubeconfig", help="kubeconfig of the hub (EDGEROLL_HUB_KUBECONFIG, KUBECONFIG)"
    )
    parser.add_argument("--s3-endpoint", help="S3 endpoint URL (EDGEROLL_S3_ENDPOINT)")
    parser.add_argument("--s3-bucket", help="S3 bucket (EDGEROLL_S3_BUCKET)")
    parser.add_argument("--s3-prefix", help="key prefix (EDGEROLL_S3_PREFIX, default edgeroll)")
    parser.add_argument("--cache-image", help="default edge cache image (EDGEROLL_CACHE_IMAGE)")
    parser.add_argument(
        "--allowed-cache-image",
        action="append",
        metavar="IMAGE",
        help="an image a RouterConfig may set in spec.cache.image (repeatable; "
        "EDGEROLL_ALLOWED_CACHE_IMAGES, comma-separated); the default cache image is always allowed",
    )
    parser.add_argument(
        "--allowed-prometheus-address",
        action="append",
        metavar="URL",
        help="a Prometheus a RouterConfig's analysis may name in prometheus.address (repeatable; "
        "EDGEROLL_ALLOWED_PROMETHEUS_ADDRESSES, comma-separated); EdgeClusters' spec.prometheus.address "
        "is always allowed",
    )
    _add_admission_arguments(parser)
    parser.add_argument(
        "--allow-shared-edge-key",
        action="store_true",
        default=None,  # unset: the environment decides
        help="development only: let the edge caches' S3 key be the operator's own "
        "(EDGEROLL_ALLOW_SHARED_EDGE_KEY=true)",
    )
    parser.add_argument(
        "--resync-seconds", type=float, help="full resync period (EDGEROLL_RESYNC_SECONDS, 60)"
    )
    parser.add_argument(
        "--progress-seconds", type=float, help="in-flight check period (EDGEROLL_PROGRESS_SECONDS, 2)"
    )
    parser.add_argument(
        "--probe-seconds", type=float, help="EdgeCluster probe period (EDGEROLL_PROBE_SECONDS, 15)"
    )
    parser.add_argument(
        "--edge-timeout-seconds",
        type=float,
        help="per-request edge timeout (EDGEROLL_EDGE_TIMEOUT_SECONDS, 10)",
    )
    parser.add_argument(
        "--edge-concurrency",
        type=int,
        help="requests in flight to all edge apiservers together (EDGEROLL_EDGE_CONCURRENCY, 64)",
    )
    parser.add_argument(
        "--metrics-addr",
        metavar="[HOST]:PORT",
        help="serve Prometheus /metrics here, or off (EDGEROLL_METRICS_ADDR, default :8081)",
    )
    _add_sharding_arguments(parser)
    parser.add_argument(
        "--log-level",
        default=os.environ.get("EDGEROLL_LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING (INFO)",
    )


def _add_admission_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("pre-publish admission (docs/rollout.md, Admission)")
    group.add_argument(
        "--admission-url-prefix",
        action="append",
        metavar="URL",
        help="a URL prefix spec.admission.webhook.url may lie under (repeatable; "
        "EDGEROLL_ADMISSION_URL_PREFIXES, comma-separated); none: admission webhooks are refused; "
        "https unless the prefix says http",
    )
    group.add_argument(
        "--admission-timeout-seconds",
        type=float,
        help="per-request admission webhook timeout (EDGEROLL_ADMISSION_TIMEOUT_SECONDS, 10)",
    )


def _add_sharding_arguments(parser: argparse.ArgumentParser) -> None:
    ha = parser.add_argument_group("high availability (docs/architecture.md, High availability and sharding)")
    ha.add_argument(
        "--shards",
        type=int,
        help="split RouterConfigs into N shards, one Lease each, spread over the replicas "
        "(EDGEROLL_SHARDS, 1)",
    )
    ha.add_argument(
        "--lease-namespace",
        help="where the shard Leases live (EDGEROLL_LEASE_NAMESPACE; else POD_NAMESPACE, "
        "else the first --namespace, else default)",
    )
    ha.add_argument(
        "--lease-duration-seconds", type=float, help="EDGEROLL_LEASE_DURATION_SECONDS (15, as client-go)"
    )
    ha.add_argument(
        "--renew-deadline-seconds", type=float, help="EDGEROLL_RENEW_DEADLINE_SECONDS (10, as client-go)"
    )
    ha.add_argument(
        "--retry-period-seconds", type=float, help="EDGEROLL_RETRY_PERIOD_SECONDS (2, as client-go)"
    )


def load_settings(args: argparse.Namespace, env: dict[str, str] | None = None) -> OperatorSettings:
    merged = dict(os.environ if env is None else env)
    namespaces = getattr(args, "namespace", None) or []
    if namespaces and not merged.get("EDGEROLL_LEASE_NAMESPACE") and not merged.get("POD_NAMESPACE"):
        # Out of cluster, an operator scoped to namespaces keeps its leases in the first one, so
        # operators for different namespaces on one hub never contend.
        merged["EDGEROLL_LEASE_NAMESPACE"] = namespaces[0]
    for attr, var in _FLAG_ENV.items():
        value = getattr(args, attr, None)
        if value is not None:
            merged[var] = ",".join(value) if isinstance(value, list) else str(value)
    return settings_from_env(merged)


def _logging(level: str) -> None:
    import kopf

    chosen = getattr(logging, level.upper(), logging.INFO)
    # kopf's formatter prefixes object messages with [namespace/name].
    kopf.configure(debug=chosen <= logging.DEBUG, quiet=chosen >= logging.WARNING, log_prefix=True)
    logging.getLogger().setLevel(chosen)
    # Clients that could print request or response bodies (kubeconfigs, Secrets) stay quiet.
    for noisy in ("botocore", "boto3", "urllib3", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> int:
    _logging(args.log_level)
    try:
        settings = load_settings(args)
    except SettingsError as exc:
        print(f"edgeroll operator: {exc}", file=sys.stderr)
        return 2
    if settings.allow_shared_edge_key:
        logging.getLogger("edgeroll.operator").warning(
            "EDGEROLL_ALLOW_SHARED_EDGE_KEY is set: the edge caches may be given the operator's own S3 key, "
            "which can write and delete revisions; for development only"
        )
    if settings.hub_kubeconfig:
        # kopf logs in through KUBECONFIG; our own hub client reads the same file.
        os.environ["KUBECONFIG"] = settings.hub_kubeconfig

    import kopf

    import edgeroll.handlers  # noqa: F401 - registers the handlers

    namespaces: list[str] = list(args.namespace or [])
    metrics = OperatorMetrics()  # one per process; handlers.py hands it to every component
    kwargs: dict[str, Any] = {
        "clusterwide": not namespaces,
        "namespaces": namespaces,
        "standalone": True,
        "liveness_endpoint": args.liveness,
        "memo": kopf.Memo(settings=settings, metrics=metrics),
    }
    loop_factory: Any = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        pass
    # The apiserver accepts JSON nested 10000 levels deep, and kopf's watch parses each event with
    # json.loads, which recurses once per level: below that, one deep object would stop the operator.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            problem = runner.run(hub_problem(settings))
            if problem is not None:
                # One plain line and an exit code, rather than a traceback from kopf's startup handler.
                print(f"edgeroll operator: {problem}", file=sys.stderr)
                return 1
            server = serve_metrics(metrics, settings.metrics_address)
            try:
                runner.run(kopf.operator(**kwargs))
            finally:
                if server is not None:
                    server.close()
    except KeyboardInterrupt:
        return 130
    return 0


async def hub_problem(settings: OperatorSettings) -> str | None:
    """Why the operator cannot start against its hub (credentials, RBAC, network, CRDs), or None."""
    from edgeroll.clusters.hub import HUB_TIMEOUT, HubNotReady, connect_hub

    try:
        hub = await connect_hub(settings.hub_kubeconfig, timeout=HUB_TIMEOUT)
    except HubNotReady as exc:
        return str(exc)
    await hub.close()
    return None
