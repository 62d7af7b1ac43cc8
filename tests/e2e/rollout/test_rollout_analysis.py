"""Metric analysis on the lab, against its real Prometheus (Debian's, scraping every cache a test starts).

Each of the six targets gets a real edge cache process, started from the Deployment the operator wrote
(`edge_cache_from_cluster`), which registers itself with the lab's Prometheus labelled with its
EdgeCluster's name. Every EdgeCluster names that Prometheus in `spec.prometheus.address`, the default
the metric relies on. The metric is the share of a cluster's cache requests that end in 4xx/5xx over the
last 5 s; Prometheus's own scrapes of /metrics are requests too, so a cache that is scraped always has a
denominator, and one that is not gives an empty result (inconclusive).

- the canary's cache is sent requests with a bad token (401) while it soaks: its analysis fails and the
  rollout rolls back (AnalysisFailed), no other cluster ever moved;
- with no bad requests every wave passes its analysis and the rollout completes;
- Prometheus stopped during the canary's soak pauses the rollout (AnalysisInconclusive, no rollback, the
  next wave does not start); started again, the rollout resumes and completes.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from rollout_e2e_kit import RolloutLab, cosmo_variant, digest_of, hold_for
from tests.e2e.operator.operator_e2e_kit import cosmo_config
from tests.polling import wait_until

from edgeroll.lab import Lab
from edgeroll.lab.pod_runner import LocalEdgeCache, edge_cache_from_cluster
from edgeroll.rollout.resources import edge_name

pytestmark = [pytest.mark.e2e, pytest.mark.lab_only("the lab's Prometheus scrapes local cache processes")]

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
def lab_fleet(fleet: RolloutLab, lab: Lab) -> RolloutLab:
    """The fleet, its EdgeClusters pointing at the lab's Prometheus."""
    patch = json.dumps({"spec": {"prometheus": {"address": lab.prometheus_url}}})
    for name in fleet.names:
        fleet.e2e.hub("patch", "edgecluster", name, "--type=merge", "-p", patch)
    return fleet


@contextmanager
def caches(fleet: RolloutLab, lab: Lab, rc: str, work: Path) -> Iterator[dict[str, LocalEdgeCache]]:
    """A running, scraped edge cache for every target of `rc`, as kubelets would run them."""
    with ExitStack() as stack:
        running = {}
        for name, t in fleet.targets.items():
            cache = edge_cache_from_cluster(
                lab, t.edge, t.namespace, edge_name(fleet.e2e.ns, rc), work / name
            )
            running[name] = stack.enter_context(cache.start())
        for cache in running.values():
            cache.wait_ready()
        for name in running:
            wait_scraped(lab, name)
        yield running


def wait_scraped(lab: Lab, cluster: str) -> None:
    wait_until(
        lambda: lab.prometheus_query(f'up{{cluster="{cluster}"}} == 1'),
        timeout=30,
        message=f"Prometheus scraping the cache of {cluster}",
    )


@contextmanager
def bad_requests(cache: LocalEdgeCache, rc_ns: str, rc: str) -> Iterator[list[int]]:
    """Clients with a bad token hit the cache (401s) until the block ends; yields the statuses seen."""
    stop, seen = threading.Event(), []

    def hammer() -> None:
        while not stop.is_set():
            request = urllib.request.Request(  # noqa: S310 - the lab's cache on loopback
                f"{cache.url}/configs/{rc_ns}/{rc}", headers={"Authorization": "Bearer not-the-token"}
            )
            try:
                with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
                    seen.append(response.status)
            except urllib.error.HTTPError as exc:
                seen.append(exc.code)
            except OSError:
                seen.append(0)
            stop.wait(0.02)  # about 50 requests a second: load pacing, not synchronisation

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=5)


def start_v1(fleet: RolloutLab, rc: str, tag: str) -> tuple[dict[str, Any], dict[str, Any]]:
    v1, v2 = (cosmo_variant(cosmo_config(), f"{tag}-{v}") for v in ("v1", "v2"))
    fleet.apply(rc, v1, PLAIN)
    fleet.wait_phase(rc, "Completed", digest_of(v1), timeout=120)
    return v1, v2


def analysis_of(status: dict[str, Any], wave: int) -> dict[str, Any]:
    return next(a for a in status["rollout"].get("analysis", []) if a["wave"] == wave)


def test_a_canary_whose_caches_answer_errors_fails_its_analysis_and_rolls_back(
    lab_fleet: RolloutLab, lab: Lab, tmp_path: Path
) -> None:
    fleet = lab_fleet
    v1, v2 = start_v1(fleet, "failing", "failing")
    canary, rest = fleet.names[0], fleet.names[1:]
    with caches(fleet, lab, "failing", tmp_path) as running:
        with bad_requests(running[canary], fleet.e2e.ns, "failing") as seen:
            fleet.apply("failing", v2, analysed())

            def rolled_back(st: dict[str, Any]) -> bool:
                r = st.get("rollout") or {}
                return r.get("revision") == digest_of(v2) and r.get("phase") == "RolledBack"

            status = fleet.wait_rollout("failing", rolled_back, timeout=90, what="the canary rolled back")
        assert seen and set(seen) == {401}
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


def test_healthy_caches_pass_the_analysis_of_every_wave(
    lab_fleet: RolloutLab, lab: Lab, tmp_path: Path
) -> None:
    fleet = lab_fleet
    _, v2 = start_v1(fleet, "healthy", "healthy")
    with caches(fleet, lab, "healthy", tmp_path):
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
    lab_fleet: RolloutLab, lab: Lab, tmp_path: Path
) -> None:
    fleet = lab_fleet
    v1, v2 = start_v1(fleet, "outage", "outage")
    canary, rest = fleet.names[0], fleet.names[1:]
    with caches(fleet, lab, "outage", tmp_path):
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
        lab.stop_prometheus()
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
            lab.start_prometheus()
        for name in fleet.names:
            wait_scraped(lab, name)
        status = fleet.wait_phase("outage", "Completed", digest_of(v2), timeout=120)
    reasons = fleet.reasons("outage")
    assert "AnalysisInconclusive" in reasons and "AnalysisResumed" in reasons
    assert "RollbackStarted" not in reasons
    inconclusive = [m for m in analysis_of(status, 0)["measurements"] if m["verdict"] == "Inconclusive"]
    assert all(m["cluster"] == canary for m in inconclusive)
    assert set(fleet.digests("outage").values()) == {digest_of(v2)}
    fleet.delete("outage")
