"""The reconciler with spec.rollout.analysis: a bad condition is Stalled naming the field."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pipeline_fakes import World
from tests.unit.analysis_specs import metric, policy

from edgeroll.api.edgecluster import PrometheusEndpoint
from edgeroll.clusters.registry import EdgeClusterInfo

pytestmark = pytest.mark.unit


async def test_a_bad_condition_stalls_the_routerconfig_naming_the_field() -> None:
    w = World()
    w.update(rollout=policy(metric(successCondition="result <")))

    status = await w.reconcile()

    stalled = next(c for c in status.conditions if c.type == "Stalled")
    assert stalled.reason == "InvalidSpec"
    assert stalled.message.startswith(
        "spec.rollout.analysis.metrics[0].successCondition: Value error, not valid CEL"
    )
    assert w.edge_writes() == 0


# ---- the analysis wired into the reconciler, Prometheus's answers faked ---------------------------------

CANARY, REST = "edge-ap", ("edge-eu", "edge-us")


class FakePrometheus:
    """Answers per cluster (found in the query), or a failure for everyone while `down`; records queries."""

    def __init__(self) -> None:
        self.values: dict[str, float | None] = {}
        self.down: str | None = None
        self.queries: list[tuple[str, str]] = []

    async def query(self, address: str, promql: str) -> tuple[float | None, str | None]:
        self.queries.append((address, promql))
        if self.down is not None:
            return None, self.down
        cluster = next(c for c in (CANARY, *REST) if f'"{c}"' in promql)
        value = self.values.get(cluster, 0.0)
        return (None, "empty result") if value is None else (value, None)


def analysed_world(**overrides: Any) -> tuple[World, FakePrometheus]:
    w = World()
    w.spec["config"]["engineConfig"]["graphqlSchema"] += " # v1"
    w.spec["rollout"] = {
        "strategy": "Progressive",
        "canary": 1,
        "soakSeconds": 5,
        "analysis": {"intervalSeconds": 10, "metrics": [metric(**overrides)]},
    }
    for name, info in w.clusters.items():  # the default address, as an EdgeCluster gives it
        assert info.spec is not None
        endpoint = PrometheusEndpoint(address=f"http://prom-{name}:9090")
        w.clusters[name] = EdgeClusterInfo(
            info.name, info.labels, info.spec.model_copy(update={"prometheus": endpoint})
        )
    fake = FakePrometheus()
    w.reconciler.prometheus = fake
    return w, fake


async def settle(w: World, seconds: float) -> Any:
    """Every edge finishes its rolling update, the clock moves on, and a progress check runs."""
    for edge in w.edges.values():
        edge.finish_rollouts()
    w.tick(seconds)
    return await w.reconcile(full=False)


async def until_phase(w: World, phase: str, limit: int = 20) -> Any:
    for _ in range(limit):
        status = await settle(w, 10)
        if status.rollout.phase == phase:
            return status
    raise AssertionError(f"not {phase}: {status.rollout}")


def condition(status: Any, type_: str) -> Any:
    return next((c for c in status.conditions if c.type == type_), None)


async def test_a_healthy_canary_passes_its_analysis_then_the_rest_follow() -> None:
    w, prometheus = analysed_world(count=2)
    await w.reconcile()
    status = await settle(w, 0)
    assert status.rollout.phase == "Soaking" and not prometheus.queries  # the first one is due in 10 s
    status = await settle(w, 10)
    address, promql = prometheus.queries[-1]
    assert address == "http://prom-edge-ap:9090" and promql == 'sum(rate(errors{cluster="edge-ap"}[1m]))'
    assert all(w.template_digest(e) is None for e in REST), "soaked, but the analysis has not passed yet"
    status = await settle(w, 10)
    assert all(w.template_digest(e) == status.revision.digest for e in REST)
    (entry,) = [a for a in status.rollout.analysis if a.wave == 0]
    assert entry.phase == "Successful" and [m.verdict for m in entry.measurements] == ["Successful"] * 2
    assert "AnalysisPassed" in w.reasons()
    status = await until_phase(w, "Completed")
    assert status.phase == "Ready"
    assert {a.wave for a in status.rollout.analysis} == {0, 1}  # the last wave is analysed too


async def test_a_canary_whose_errors_rise_fails_its_analysis_and_is_rolled_back() -> None:
    w, prometheus = analysed_world(failureLimit=1, count=3)
    await w.reconcile()
    status = await until_phase(w, "Completed")  # v1 everywhere
    v1 = w.template_digest(CANARY)
    w.update(config={**w.spec["config"], "engineConfig": {"graphqlSchema": "type Query { v2: String }"}})
    await w.reconcile()
    status = await settle(w, 0)
    prometheus.values[CANARY] = 0.25
    status = await settle(w, 10)
    assert status.rollout.phase == "Soaking", "one failure is within failureLimit=1"
    status = await settle(w, 10)
    assert status.rollout.phase == "RolledBack" and status.rollout.reason == "AnalysisFailed"
    stalled = condition(status, "Stalled")
    assert (
        stalled.reason == "AnalysisFailed" and "metric error-rate failed 2 measurement(s)" in stalled.message
    )
    record = status.rollout.record(CANARY)
    assert record.failure_reason == "AnalysisFailed" and record.rollback_to == v1
    await settle(w, 1)
    assert w.template_digest(CANARY) == v1 and all(w.template_digest(e) == v1 for e in REST)
    failed = [e for e in w.events if e.reason == "AnalysisMeasurementFailed"]
    assert failed and "metric error-rate on edge-ap = 0.25" in failed[0].message


async def test_prometheus_gone_pauses_the_rollout_without_rollback_and_it_resumes() -> None:
    w, prometheus = analysed_world(inconclusiveLimit=1, count=2)
    await w.reconcile()
    await settle(w, 0)
    prometheus.down = "Prometheus at http://prom-edge-ap:9090 unreachable: connection refused"
    status = await settle(w, 10)
    assert status.rollout.phase == "Soaking", "one inconclusive measurement is within inconclusiveLimit=1"
    status = await settle(w, 10)
    assert status.rollout.phase == "Paused" and status.rollout.reason == "AnalysisInconclusive"
    reconciling = condition(status, "Reconciling")
    assert reconciling.reason == "AnalysisInconclusive" and "connection refused" in reconciling.message
    assert condition(status, "Stalled") is None and all(w.template_digest(e) is None for e in REST)
    assert "AnalysisInconclusive" in w.reasons()
    status = await settle(w, 10)
    assert status.rollout.phase == "Paused", "still inconclusive: still paused"
    prometheus.down = None
    status = await settle(w, 10)
    assert status.rollout.phase in ("Soaking", "Progressing") and status.rollout.reason is None
    assert "AnalysisResumed" in w.reasons()
    status = await settle(w, 10)  # the second conclusive one: passed, the next wave starts
    assert all(w.template_digest(e) == status.revision.digest for e in REST)


async def test_no_address_anywhere_is_inconclusive_and_says_where_to_set_one() -> None:
    w, prometheus = analysed_world()
    for name, info in w.clusters.items():
        assert info.spec is not None
        w.clusters[name] = EdgeClusterInfo(
            info.name, info.labels, info.spec.model_copy(update={"prometheus": None})
        )
    await w.reconcile()
    await settle(w, 0)
    status = await settle(w, 10)
    assert status.rollout.phase == "Paused" and not prometheus.queries
    assert "spec.prometheus.address on EdgeCluster edge-ap" in (status.rollout.message or "")


async def test_a_metric_naming_a_prometheus_nobody_allowed_stalls_before_anything_is_published() -> None:
    w, prometheus = analysed_world(prometheus={"query": "up", "address": "http://10.0.0.1:9090"})

    status = await w.reconcile()

    stalled = condition(status, "Stalled")
    assert status.phase == "Stalled" and stalled.reason == "PrometheusNotAllowed"
    assert stalled.message.startswith("spec.rollout.analysis.metrics[0].prometheus.address: ")
    assert w.edge_writes() == 0 and w.store.counters["put"] == 0 and not prometheus.queries


async def test_a_metric_may_name_its_clusters_prometheus_or_one_the_operator_allows() -> None:
    w, _ = analysed_world(prometheus={"query": "up", "address": "http://prom-edge-ap:9090"})
    assert (await w.reconcile()).phase != "Stalled"  # an EdgeCluster admin named it

    w, _ = analysed_world(prometheus={"query": "up", "address": "https://metrics.internal"})
    w.reconciler.settings = dataclasses.replace(
        w.reconciler.settings, allowed_prometheus_addresses=("https://metrics.internal",)
    )
    assert (await w.reconcile()).phase != "Stalled"
