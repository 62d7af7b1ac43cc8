"""Metric analysis against a real Prometheus scraping real edge caches, on the lab or on kind.

On the lab, Prometheus is the lab's (Debian's) and each of the six targets gets a real edge cache
process started from the Deployment the operator wrote; on kind, Prometheus runs in a container on the
kind network and scrapes the real cache pods through each edge's API server (analysis_kit.py). Every
EdgeCluster names that Prometheus in `spec.prometheus.address`, the default the metric relies on. The
metric is the share of a cluster's cache requests that end in 4xx/5xx over the last 5 s; Prometheus's
own scrapes of /metrics are requests too, so a cache that is scraped always has a denominator, and one
that is not gives an empty result (inconclusive).

- the canary's cache is sent requests with a bad token (401) while it soaks: its analysis fails and the
  rollout rolls back (AnalysisFailed), no other cluster ever moved;
- with no bad requests every wave passes its analysis and the rollout completes;
- Prometheus stopped during the canary's soak pauses the rollout (AnalysisInconclusive, no rollback, the
  next wave does not start); started again, the rollout resumes and completes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from analysis_kit import AnalysisRig, KindAnalysis, LabAnalysis
from rollout_e2e_kit import RolloutLab, cosmo_variant, digest_of, hold_for
from tests.e2e.operator.operator_e2e_kit import cosmo_config
from tests.e2e.providers.e2e_provider import E2EProvider

pytestmark = [pytest.mark.e2e]

ERROR_RATIO = (
    '(sum(rate(edgeroll_cache_requests_total{cluster="${cluster.name}",code=~"4..|5.."}[5s])) or vector(0))'
    ' / sum(rate(edgeroll_cache_requests_total{cluster="${cluster.name}"}[5s]))'
)


def analysed(count: int = 2, inconclusive_limit: int = 0) -> dict[str, Any]:
    return {
        "strategy": "Progressive",
        "canary": 1,
        "batchSize": 3,
        "soakSeconds": 1,
        "progressDeadlineSeconds": 60,
        "analysis": {
            "intervalSeconds": 2,
            "metrics": [
                {
                    "name": "error-ratio",
                    "prometheus": {"query": ERROR_RATIO},
                    "successCondition": "result < 0.2",
                    "count": count,
                    "inconclusiveLimit": inconclusive_limit,
                }
            ],
        },
    }


PLAIN = {"strategy": "Progressive", "canary": 1, "batchSize": 3, "soakSeconds": 0}


@pytest.fixture(scope="module")
def rig(
    fleet: RolloutLab, provider: E2EProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AnalysisRig]:
    """The fleet's EdgeClusters pointing at a real Prometheus that scrapes their caches."""
    analysis: AnalysisRig
    if provider.name == "local":
        from tests.e2e.providers.local_provider import LocalProvider

        assert isinstance(provider, LocalProvider)
        analysis = LabAnalysis(fleet, provider.lab)
        analysis.point_edgeclusters()
    else:
        from tests.e2e.providers.kind_provider import KindProvider

        assert isinstance(provider, KindProvider)
        analysis = KindAnalysis(fleet, provider, provider.prometheus(tmp_path_factory.mktemp("prometheus")))
        # In place: a cache pod, and so its counters, live through the rollout, as the lab's processes do.
        analysis.point_edgeclusters(revisionSwitch="InPlace")
    yield analysis


def start_v1(fleet: RolloutLab, rc: str, tag: str) -> tuple[dict[str, Any], dict[str, Any]]:
    v1, v2 = (cosmo_variant(cosmo_config(), f"{tag}-{v}") for v in ("v1", "v2"))
    fleet.apply(rc, v1, PLAIN)
    fleet.wait_phase(rc, "Completed", digest_of(v1), timeout=120)
    return v1, v2


def analysis_of(status: dict[str, Any], wave: int) -> dict[str, Any]:
    return next(a for a in status["rollout"].get("analysis", []) if a["wave"] == wave)


def test_a_canary_whose_caches_answer_errors_fails_its_analysis_and_rolls_back(
    rig: AnalysisRig, tmp_path: Path
) -> None:
    fleet = rig.fleet
    v1, v2 = start_v1(fleet, "failing", "failing")
    canary, rest = fleet.names[0], fleet.names[1:]
    with rig.serving("failing", tmp_path) as serving:
        with serving.bad_requests(canary) as seen:
            fleet.apply("failing", v2, analysed())

            def rolled_back(st: dict[str, Any]) -> bool:
                r = st.get("rollout") or {}
                return r.get("revision") == digest_of(v2) and r.get("phase") == "RolledBack"

            status = fleet.wait_rollout("failing", rolled_back, timeout=90, what="the canary rolled back")
        answered = [code for code in seen if code]  # 0: no answer (on kind, a Service endpoint changing)
        assert len(answered) > 20 and set(answered) == {401}, seen[-20:]
    rollout = status["rollout"]
    assert rollout["reason"] == "AnalysisFailed" and canary in rollout["message"]
    entry = analysis_of(status, 0)
    assert entry["phase"] == "Failed"
    failed = [m for m in entry["measurements"] if m["verdict"] == "Failed"]
    assert failed and all(m["cluster"] == canary and m["value"] >= 0.2 for m in failed)
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "AnalysisFailed" and "error-ratio" in stalled["message"]
    fleet.wait_rollout("failing", lambda st: st["rollout"].get("rolledBackAt"), timeout=60, what="back on v1")
    assert set(fleet.digests("failing").values()) == {digest_of(v1)}
    assert all(r.get("movedAt") is None for r in rollout["clusters"] if r["name"] in rest)
    events = fleet.events("failing")
    measured = [e["message"] for e in events if e.get("reason") == "AnalysisMeasurementFailed"]
    assert any(f"metric error-ratio on {canary} = " in m for m in measured), measured
    out = fleet.cli("status", "failing")
    assert "error-ratio" in out and "Failed" in out
    fleet.delete("failing")


def test_healthy_caches_pass_the_analysis_of_every_wave(rig: AnalysisRig, tmp_path: Path) -> None:
    fleet = rig.fleet
    _, v2 = start_v1(fleet, "healthy", "healthy")
    with rig.serving("healthy", tmp_path):
        fleet.apply("healthy", v2, analysed())
        status = fleet.wait_phase("healthy", "Completed", digest_of(v2), timeout=120)
    waves = status["rollout"]["waves"]
    assert len(waves) == 3
    for index in range(len(waves)):
        entry = analysis_of(status, index)
        assert entry["phase"] == "Successful"
        members = {r["name"] for r in status["rollout"]["clusters"] if r["wave"] == index}
        assert {t["cluster"] for t in entry["tallies"]} == members
        assert all(t["successful"] >= 2 and t["failed"] == 0 for t in entry["tallies"])
        assert all(m["value"] is not None and m["value"] < 0.2 for m in entry["measurements"])
    assert "AnalysisPassed" in fleet.reasons("healthy")
    assert set(fleet.digests("healthy").values()) == {digest_of(v2)}
    fleet.delete("healthy")


def test_prometheus_stopped_mid_soak_pauses_the_rollout_until_it_is_back(
    rig: AnalysisRig, tmp_path: Path
) -> None:
    fleet = rig.fleet
    v1, v2 = start_v1(fleet, "outage", "outage")
    canary, rest = fleet.names[0], fleet.names[1:]
    with rig.serving("outage", tmp_path):
        fleet.apply("outage", v2, analysed(count=3, inconclusive_limit=1))
        fleet.wait_rollout(
            "outage",
            lambda st: (
                (st.get("rollout") or {}).get("revision") == digest_of(v2)
                and st["rollout"]["phase"] == "Soaking"
            ),
            timeout=60,
            what="the canary soaking",
        )
        rig.prometheus.stop()
        try:

            def paused(st: dict[str, Any]) -> bool:
                r = st.get("rollout") or {}
                return r.get("phase") == "Paused" and r.get("reason") == "AnalysisInconclusive"

            status = fleet.wait_rollout("outage", paused, timeout=60, what="paused: analysis inconclusive")
            assert "unreachable" in status["rollout"]["message"]
            reconciling = next(c for c in status["conditions"] if c["type"] == "Reconciling")
            assert reconciling["reason"] == "AnalysisInconclusive"

            def still_paused() -> None:
                r = fleet.rollout("outage")
                assert r["phase"] == "Paused" and r["wave"] == 0, r["phase"]
                assert all(fleet.digest(n, "outage") == digest_of(v1) for n in rest)

            hold_for(6, still_paused)  # several intervals: no rollback, no next wave
        finally:
            rig.prometheus.start()
        rig.wait_all_scraped()
        status = fleet.wait_phase("outage", "Completed", digest_of(v2), timeout=120)
    reasons = fleet.reasons("outage")
    assert "AnalysisInconclusive" in reasons and "AnalysisResumed" in reasons
    assert "RollbackStarted" not in reasons
    inconclusive = [m for m in analysis_of(status, 0)["measurements"] if m["verdict"] == "Inconclusive"]
    assert all(m["cluster"] == canary for m in inconclusive)
    assert set(fleet.digests("outage").values()) == {digest_of(v2)}
    fleet.delete("outage")
