"""In-place switching on real pods (kind provider; `make e2e-kind`).

With `EdgeCluster.spec.revisionSwitch: InPlace` a new revision is fetched and swapped by the cache
pods that already run, told through each edge apiserver's pod proxy: no pod starts, no probe, no
endpoint change. These tests turn the fleet's three EdgeClusters to InPlace for their own
RouterConfig and back afterwards, and assert on what a user sees: the same pods (uid, zero
restarts) serving the new verified bytes to a client pod in each edge, and a refused revision rolled
back by the refusal itself while those pods keep serving.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kind_kit import cache_pods, kind, ready, restarts, run_client
from scenario_kit import ComposedGraph, Fleet, condition, cosmo_variant, digests, expect, phases
from test_kind_data_plane import assert_client_served

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.rollout.resources import edge_name

pytestmark = [pytest.mark.e2e, pytest.mark.kind]

RC = "inplace"
ROLLOUT = {
    "strategy": "Progressive",
    "canary": 1,
    "maxUnavailable": 0,
    "progressDeadlineSeconds": 90,
    "soakSeconds": 3,
    "autoRollback": True,
}


def set_switch(fleet: Fleet, mode: str) -> None:
    patch = json.dumps({"spec": {"revisionSwitch": mode}})
    for name in fleet.e2e.edges.values():
        fleet.e2e.hub("patch", "edgecluster", name, "--type=merge", "-p", patch)


@pytest.fixture
def in_place(fleet: Fleet) -> Iterator[None]:
    set_switch(fleet, "InPlace")
    try:
        yield
    finally:
        fleet.e2e.hub("-n", fleet.e2e.ns, "delete", "routerconfig", RC, "--ignore-not-found", "--wait=true")
        set_switch(fleet, "Restart")


def deployment(fleet: Fleet, edge: str) -> dict[str, Any]:
    ns = fleet.scope.ns
    return kind(fleet).clusters.get_json(edge, "-n", ns, "deployment", edge_name(ns, RC))


def pods_by_name(fleet: Fleet, edge: str) -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in cache_pods(fleet, edge, RC)}


class PodsWatch:
    """Every second, from the edge clusters: the named pods stay Running, Ready and unrestarted."""

    def __init__(self, fleet: Fleet, pods: dict[str, dict[str, str]]) -> None:
        self.fleet, self.pods = fleet, pods
        self.failures: list[str] = []
        self.checks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PodsWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            for edge, names in self.pods.items():
                now = {p["metadata"]["name"]: p for p in cache_pods(self.fleet, edge, RC)}
                for name, uid in names.items():
                    pod = now.get(name)
                    if pod is None or pod["metadata"]["uid"] != uid or not ready(pod) or restarts(pod):
                        self.failures.append(f"{time.strftime('%T')} {edge}/{name}: {pod and pod['status']}")
            self.checks += 1
            self._stop.wait(1.0)


def rolled_out(digest: str) -> Any:
    def check(st: dict[str, Any]) -> bool:
        return (
            st.get("phase") == "Ready"
            and st.get("rollout", {}).get("phase") == "Completed"
            and (st.get("revision") or {}).get("digest") == digest
        )

    return check


def test_running_pods_switch_in_place_and_a_refused_revision_is_rolled_back_at_once(
    fleet: Fleet, composed_graph: ComposedGraph, in_place: None
) -> None:
    e2e, clusters = fleet.e2e, kind(fleet).clusters
    v1, v2, v3 = (cosmo_variant(composed_graph.config, f"in-place-{v}") for v in ("v1", "v2", "v3"))
    first, second, third = (expect(ConfigFormat.COSMO, v) for v in (v1, v2, v3))
    spec = {"rollout": ROLLOUT, "cache": {"replicas": 2}}
    e2e.apply(e2e.routerconfig(RC, v1, **spec))
    e2e.wait_status(RC, rolled_out(first.digest), timeout=240, what="the first revision rolled out")
    pods = {edge: pods_by_name(fleet, edge) for edge in sorted(e2e.edges)}
    templates = {edge: deployment(fleet, edge)["spec"]["template"] for edge in pods}
    assert all(len(names) == 2 for names in pods.values()), pods

    # A new revision: the same pods serve it, verified, with no restart and the same pod template.
    with PodsWatch(fleet, pods) as watch:
        e2e.apply(e2e.routerconfig(RC, v2, **spec))
        status = e2e.wait_status(RC, rolled_out(second.digest), timeout=120, what="v2 switched in place")
    assert watch.failures == [] and watch.checks >= 1, watch.failures[:5]
    assert set(digests(status).values()) == {second.digest}
    for edge in sorted(pods):
        dep = deployment(fleet, edge)
        # (not the generation: a Deployment's moves with its annotations too)
        assert dep["spec"]["template"] == templates[edge], "the pod template changed"
        assert dep["metadata"]["annotations"]["edgeroll.io/digest"] == second.digest
        assert "edgeroll.io/digest" not in dep["spec"]["template"]["metadata"].get("annotations", {})
        assert pods_by_name(fleet, edge) == pods[edge]
        assert_client_served(run_client(fleet, edge, RC), second.digest, f"client pod in {edge}")
    reasons = {ev.get("reason") for ev in e2e.events(RC)}
    assert "Switched" in reasons, reasons

    # A revision whose bytes are altered between S3 and the edges: the canary's pods refuse it, the
    # refusal fails the canary without waiting out progressDeadlineSeconds, and nothing restarts.
    canary = sorted(e2e.edges.values())[0]
    key = e2e.s3_key(RC, third.digest)
    clusters.edge_s3.tamper(clusters.s3_bucket, key)
    try:
        with PodsWatch(fleet, pods) as watch:
            e2e.apply(e2e.routerconfig(RC, v3, **spec))
            applied = time.monotonic()
            status = e2e.wait_status(
                RC,
                lambda st: (
                    st.get("rollout", {}).get("phase") == "RolledBack" and st["rollout"].get("rolledBackAt")
                ),
                timeout=120,
                what="the refused revision rolled back",
            )
            took = time.monotonic() - applied
    finally:
        clusters.edge_s3.restore(clusters.s3_bucket, key)
    assert watch.failures == [], watch.failures[:5]
    assert took < ROLLOUT["progressDeadlineSeconds"], (
        f"rolled back after {took:.0f} s: it waited for the deadline"
    )
    rollout = status["rollout"]
    record = next(c for c in rollout["clusters"] if c["name"] == canary)
    assert record.get("failureReason") == "RevisionRefused", record
    assert phases(status)[canary] == "RolledBack"
    assert condition(status, "Ready")["status"] == "False"
    assert set(digests(status).values()) == {second.digest}
    for edge in sorted(pods):
        assert pods_by_name(fleet, edge) == pods[edge]
        assert_client_served(run_client(fleet, edge, RC), second.digest, f"client pod in {edge}")
