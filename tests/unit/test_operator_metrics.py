"""The operator's metrics endpoint (a real HTTP server on a loopback port) and the EdgeCluster
reachability gauge the prober keeps."""

from __future__ import annotations

import json
import logging
import re
import socket
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgeroll.clusters.prober import EdgeClusterProber
from edgeroll.clusters.registry import EdgeClusterInfo, ProbeResult
from edgeroll.operator_metrics import MetricsServer, OperatorMetrics, serve_metrics
from edgeroll.settings import EdgeS3Credentials, MetricsAddress, OperatorSettings, S3Settings

pytestmark = pytest.mark.unit


def scrape(port: int) -> tuple[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.headers["Content-Type"], resp.read().decode()


def test_the_endpoint_serves_the_operator_registry_and_nothing_else() -> None:
    metrics = OperatorMetrics()
    metrics.set_phase("prod", "graph", "Progressing")
    server = serve_metrics(metrics, MetricsAddress("127.0.0.1", 0))
    assert isinstance(server, MetricsServer) and server.port > 0
    try:
        content_type, body = scrape(server.port)
        metrics.set_phase("prod", "graph", "Ready")
        _, after = scrape(server.port)  # each scrape reads the live registry
    finally:
        server.close()
    assert content_type.startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(body)}
    assert "edgeroll_workqueue_depth" in names and "edgeroll_rollout_phase" in names
    assert 'edgeroll_rollout_phase{name="graph",namespace="prod",phase="Progressing"} 1.0' in body
    assert 'edgeroll_rollout_phase{name="graph",namespace="prod",phase="Ready"} 1.0' in after
    assert "process_cpu_seconds_total" not in body  # not the global registry: our families only


def test_off_serves_nothing() -> None:
    assert serve_metrics(OperatorMetrics(), None) is None


def test_a_taken_port_warns_and_the_operator_runs_on(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="edgeroll.operator_metrics"):
            assert serve_metrics(OperatorMetrics(), MetricsAddress("127.0.0.1", port)) is None
    assert f"operator metrics are off: cannot listen on 127.0.0.1:{port}" in caplog.text


@dataclass
class FakeRegistry:
    """The prober's view of the ClusterRegistry: one probe result per cluster."""

    reachable: bool = True

    def last_probe(self, name: str) -> ProbeResult | None:
        return None

    async def probe(self, info: EdgeClusterInfo) -> ProbeResult:
        return ProbeResult(self.reachable, "v1.34.4" if self.reachable else None, "", 0.0)


class NoWrites:
    async def patch_edgecluster_status(self, name: str, patch: object) -> None:
        pass


async def test_the_prober_keeps_reachability_per_edgecluster_and_drops_it_when_the_cluster_goes() -> None:
    metrics, registry = OperatorMetrics(), FakeRegistry()
    settings = OperatorSettings(S3Settings("b"), EdgeS3Credentials())
    prober = EdgeClusterProber(registry, NoWrites(), settings, now=lambda: "t", metrics=metrics)  # type: ignore[arg-type]

    def reachable(name: str) -> float | None:
        return metrics.registry.get_sample_value("edgeroll_edgecluster_reachable", {"edgecluster": name})

    await prober.probe(EdgeClusterInfo("edge-eu", {}, None), 1, {})
    registry.reachable = False
    await prober.probe(EdgeClusterInfo("edge-us", {}, None), 1, {})
    assert (reachable("edge-eu"), reachable("edge-us")) == (1.0, 0.0)
    prober.forget("edge-us")
    assert (reachable("edge-eu"), reachable("edge-us")) == (1.0, None)


def test_every_metric_the_charts_dashboard_queries_is_one_the_operator_exposes() -> None:
    dashboard = Path(__file__).resolve().parents[2] / "charts/edgeroll/dashboards/edgeroll-operator.json"
    exprs = [t["expr"] for p in json.loads(dashboard.read_text())["panels"] for t in p.get("targets", [])]
    queried = {m for e in exprs for m in re.findall(r"\bedgeroll_[a-z0-9_]+", e)}
    suffixes = ("", "_total", "_bucket", "_sum", "_count")
    exposed = {f.name + s for f in OperatorMetrics().registry.collect() for s in suffixes}
    assert "edgeroll_admission_requests_total" in queried and queried <= exposed, queried - exposed
