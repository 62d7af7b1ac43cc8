"""What only a real data plane can show (kind provider; `make e2e-kind`).

On the lab, kwok marks every pod Ready without running it, so a health gate there reads fake
readiness. Here every pod runs: the operator's two replicas in the hub from the built image under the
chart's ServiceAccount and probes, and the edge caches in the edges. Each test asserts on what a user
sees: pod status, what a client pod in each edge gets through the cache's Service, and the
RouterConfig's status.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kind_kit import cache_pods, kind, operator, operator_pods, pod_digest, ready, restarts, run_client
from scenario_kit import ComposedGraph, Fleet, condition, cosmo_variant, digests, expect, phases
from tests.polling import wait_until

from edgeroll.api.routerconfig import ConfigFormat

pytestmark = [pytest.mark.e2e, pytest.mark.kind]


def assert_client_served(result: dict[str, Any], digest: str, where: str) -> None:
    assert result["status"] == 200, f"{where}: HTTP {result['status']}"
    assert result["body_digest"] == digest == result["digest"], f"{where}: {result} want {digest}"
    assert result["signature_ok"], f"{where}: the signature does not verify with the cache's key"


def test_the_operator_is_a_live_pod_under_the_charts_service_account(fleet: Fleet) -> None:
    provider = kind(fleet)
    pods = operator_pods(fleet)
    assert len(pods) == 2, "the chart runs two operator replicas by default"
    for pod in pods:
        name, spec = pod["metadata"]["name"], pod["spec"]
        (container,) = spec["containers"]
        assert pod["status"]["phase"] == "Running" and ready(pod), f"{name}: {pod['status']}"
        assert restarts(pod) == 0, f"{name}: {pod['status']['containerStatuses']}"
        assert container["image"] == provider.setup.image
        assert spec["serviceAccountName"] == fleet.scope.service_account
        # The kubelet itself found it ready and alive on the operator's own endpoint.
        for probe in ("readinessProbe", "livenessProbe"):
            http_get = container[probe]["httpGet"]
            assert (http_get["path"], http_get["port"]) == ("/healthz", "health"), container[probe]
        uid = provider.clusters.kubectl(
            "hub", "-n", fleet.scope.system_ns, "exec", name, "--", "id", "-u"
        ).stdout.strip()
        assert uid == "65532", f"{name}: the operator runs as the image's non-root user"
    # One of them holds the (single, chart default) shard's Lease and acts; the other stands by.
    holder = wait_until(lambda: operator(fleet).shard_holder(0), timeout=30, message="a holder of shard 0")
    assert holder in {p["metadata"]["name"] for p in pods}, holder


def test_edge_caches_are_real_pods_and_a_client_in_each_edge_gets_verified_bytes(
    fleet: Fleet, composed_graph: ComposedGraph
) -> None:
    e2e = fleet.e2e
    config = cosmo_variant(composed_graph.config, "kind-data-plane")
    want = expect(ConfigFormat.COSMO, config)
    e2e.apply(e2e.routerconfig("dataplane", config))
    e2e.wait_ready("dataplane", timeout=240)
    for edge in sorted(e2e.edges):
        pods = cache_pods(fleet, edge, "dataplane")
        assert pods, f"no edge cache pod in {edge}"
        for pod in pods:
            where = f"{edge}/{pod['metadata']['name']}"
            assert pod["status"]["phase"] == "Running" and ready(pod), f"{where}: {pod['status']}"
            assert restarts(pod) == 0, f"{where} restarted: {pod['status']['containerStatuses']}"
            (status,) = pod["status"]["containerStatuses"]
            assert status["image"].endswith(kind(fleet).setup.image.split("/", 1)[1]), status["image"]
            assert pod_digest(pod) == want.digest
        result = run_client(fleet, edge, "dataplane")
        assert_client_served(result, want.digest, f"client pod in {edge}")
        assert result["cosmo_status"] == 200 and result["cosmo_same_bytes"], result
        assert result["cosmo_revalidate_status"] == 304, result


PROGRESSIVE = {
    "strategy": "Progressive",
    "canary": 1,
    "maxUnavailable": 0,
    "progressDeadlineSeconds": 45,
    "autoRollback": True,
}


def test_a_revision_the_caches_refuse_is_held_at_the_canary_and_rolled_back(
    fleet: Fleet, composed_graph: ComposedGraph
) -> None:
    """The new revision's bytes are altered between S3 and the edges (the edge S3 proxy), so every
    new cache pod refuses them (digest mismatch) and never becomes Ready: the canary wave fails on
    real readiness, is rolled back, and the pods that were serving keep serving throughout."""
    e2e, clusters = fleet.e2e, kind(fleet).clusters
    v1, v2 = (cosmo_variant(composed_graph.config, f"refused-{v}") for v in ("v1", "v2"))
    old, new = expect(ConfigFormat.COSMO, v1), expect(ConfigFormat.COSMO, v2)
    canary = sorted(e2e.edges.values())[0]
    canary_edge = fleet.edge_of(canary)
    e2e.apply(e2e.routerconfig("refused", v1, rollout=PROGRESSIVE))
    e2e.wait_status(
        "refused",
        lambda st: st.get("phase") == "Ready" and st.get("rollout", {}).get("phase") == "Completed",
        timeout=240,
        what="the first revision rolled out",
    )
    serving = {e: [p["metadata"]["name"] for p in cache_pods(fleet, e, "refused")] for e in e2e.edges}
    key = e2e.s3_key("refused", new.digest)
    clusters.edge_s3.tamper(clusters.s3_bucket, key)
    try:
        watcher = ServingWatch(fleet, "refused", old.digest, serving)
        watcher.start()
        e2e.apply(e2e.routerconfig("refused", v2, rollout=PROGRESSIVE))
        status = e2e.wait_status(
            "refused",
            lambda st: (
                st.get("rollout", {}).get("phase") == "RolledBack" and st["rollout"].get("rolledBackAt")
            ),
            timeout=240,
            what="the rollout rolled back",
        )
        watcher.stop()
        rollout = status["rollout"]
        assert canary in rollout["message"], rollout["message"]
        assert condition(status, "Ready")["status"] == "False"
        assert phases(status)[canary] == "RolledBack"
        assert set(digests(status).values()) == {old.digest}
        assert clusters.edge_s3.state()["served"] > 0, "no edge cache ever fetched the altered bytes"  # type: ignore[index]
        assert watcher.failures == [], watcher.failures[:5]
        assert watcher.checks >= 3
        # Every edge is back on (or never left) the old revision, served by the pods that served it.
        for edge in sorted(e2e.edges):
            assert e2e.edge_digest(edge, "refused") == old.digest
            assert_client_served(run_client(fleet, edge, "refused"), old.digest, f"client pod in {edge}")
        never_ready = [p for p in cache_pods(fleet, canary_edge, "refused") if pod_digest(p) == new.digest]
        assert all(not ready(p) for p in never_ready)
    finally:
        clusters.edge_s3.restore(clusters.s3_bucket, key)


class ServingWatch:
    """Watches, for a whole scenario, that the pods which served `digest` stay Running, Ready and
    unrestarted, and keep serving it: the kubelet's view, every second, from the edge clusters."""

    def __init__(self, fleet: Fleet, rc: str, digest: str, serving: dict[str, list[str]]) -> None:
        self.fleet, self.rc, self.digest, self.serving = fleet, rc, digest, serving
        self.failures: list[str] = []
        self.checks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            for edge, names in self.serving.items():
                pods = {p["metadata"]["name"]: p for p in cache_pods(self.fleet, edge, self.rc)}
                for name in names:
                    pod = pods.get(name)
                    if pod is None or not ready(pod) or restarts(pod) or pod_digest(pod) != self.digest:
                        self.failures.append(f"{time.strftime('%T')} {edge}/{name}: {pod and pod['status']}")
            self.checks += 1
            self._stop.wait(1.0)
