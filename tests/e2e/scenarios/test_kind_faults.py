"""Faults on the real data plane (kind provider; `make e2e-kind`): the operator pod that owns a
RouterConfig killed mid-rollout (the other replica takes its shard over), and S3 stopped for a minute
while edge cache pods serve and one is replaced."""

from __future__ import annotations

import time

import pytest
from kind_kit import cache_pods, kind, operator, pod_digest, ready, restarts, run_client
from scenario_kit import ComposedGraph, Fleet, cosmo_variant, expect
from test_kind_data_plane import ServingWatch, assert_client_served
from tests.e2e.rollout.rollout_e2e_kit import ts
from tests.polling import wait_until

from edgeroll.api.routerconfig import ConfigFormat

pytestmark = [pytest.mark.e2e, pytest.mark.kind]

SOAK = 20
WAVES = {"strategy": "Progressive", "canary": 1, "soakSeconds": SOAK, "maxUnavailable": 0}
S3_OUTAGE = 60.0


def test_the_operator_pod_killed_mid_rollout_is_replaced_and_the_rollout_completes_in_order(
    fleet: Fleet, composed_graph: ComposedGraph
) -> None:
    e2e, handle = fleet.e2e, operator(fleet)
    v1, v2 = (cosmo_variant(composed_graph.config, f"killed-{v}") for v in ("v1", "v2"))
    new = expect(ConfigFormat.COSMO, v2)
    e2e.apply(e2e.routerconfig("killed", v1, rollout=WAVES))
    e2e.wait_status("killed", lambda st: st.get("rollout", {}).get("phase") == "Completed", timeout=240)

    e2e.apply(e2e.routerconfig("killed", v2, rollout=WAVES))
    # The canary is healthy and soaking: the operator's memory of it is only in status.rollout now.
    soaking = e2e.wait_status(
        "killed",
        lambda st: (
            st.get("rollout", {}).get("revision") == new.digest
            and bool(st["rollout"]["waves"])
            and st["rollout"]["waves"][0].get("healthyAt") is not None
        ),
        timeout=180,
        what="the canary healthy and soaking",
    )
    # The victim is the replica acting on it: the holder of its shard's Lease; the other stands by and
    # takes the shard within a lease duration (15 s) and a retry period, or at once if the victim gave
    # its Lease back. delete_shard_holder returns once the Deployment's replacement is Ready too.
    owner = soaking["owner"]
    shard = int(owner["shard"])
    killed_at = time.time()
    victim, taker = handle.delete_shard_holder(shard)
    assert owner["replica"].startswith(f"{victim}/"), (owner, victim)
    status = e2e.wait_status(
        "killed",
        lambda st: (
            st.get("rollout", {}).get("phase") == "Completed" and st["rollout"].get("revision") == new.digest
        ),
        timeout=240,
        what="the rollout completed after the operator pod was replaced",
    )
    waves = status["rollout"]["waves"]
    assert len(waves) == 2, waves
    canary, rest = waves
    # In order, soak kept across the kill: the second wave opened only after the canary's full soak.
    assert ts(rest["startedAt"]) >= ts(canary["healthyAt"]) and ts(rest["startedAt"]).timestamp() >= (
        ts(canary["healthyAt"]).timestamp() + SOAK
    ), waves
    assert ts(rest["startedAt"]).timestamp() > killed_at, "the second wave started before the kill"
    # The replica that took the shard over finished it, in a later term.
    assert status["owner"]["replica"].startswith(f"{taker}/"), (status["owner"], taker)
    assert status["owner"]["term"] > owner["term"], (status["owner"], owner)
    for edge in sorted(e2e.edges):
        assert_client_served(run_client(fleet, edge, "killed"), new.digest, f"client pod in {edge}")


def test_s3_stopped_for_a_minute_caches_keep_serving_and_a_replaced_pod_serves_again(
    fleet: Fleet, composed_graph: ComposedGraph
) -> None:
    e2e, clusters = fleet.e2e, kind(fleet).clusters
    config = cosmo_variant(composed_graph.config, "s3-outage")
    want = expect(ConfigFormat.COSMO, config)
    e2e.apply(e2e.routerconfig("outage", config, cache={"replicas": 2}))
    e2e.wait_ready("outage", timeout=240)
    edges = sorted(e2e.edges)
    wait_until(
        lambda: all(len([p for p in cache_pods(fleet, e, "outage") if ready(p)]) == 2 for e in edges),
        timeout=120,
        message="two Ready edge cache pods in every edge",
    )
    victim_edge = edges[0]
    survivors = {
        e: [p["metadata"]["name"] for p in cache_pods(fleet, e, "outage")][(1 if e == victim_edge else 0) :]
        for e in edges
    }
    victim = cache_pods(fleet, victim_edge, "outage")[0]["metadata"]["name"]

    clusters.s3.stop()
    stopped_at = time.monotonic()
    try:
        watcher = ServingWatch(fleet, "outage", want.digest, survivors)
        watcher.start()
        for edge in edges:
            assert_client_served(run_client(fleet, edge, "outage"), want.digest, f"{edge}, S3 down")
        clusters.kubectl(victim_edge, "-n", fleet.scope.ns, "delete", "pod", victim, "--wait=false")

        def replaced_and_ready() -> bool:
            pods = [p for p in cache_pods(fleet, victim_edge, "outage") if p["metadata"]["name"] != victim]
            return len(pods) == 2 and all(ready(p) and pod_digest(p) == want.digest for p in pods)

        # The new pod has an empty state dir and no S3: it fills from a sibling behind its Service,
        # verifying digest and signature as it would from S3 (docs/edge-cache.md, Peer fill).
        wait_until(
            replaced_and_ready, timeout=S3_OUTAGE - 15, message="the replaced cache pod Ready without S3"
        )
        # For the rest of the minute, routers in every edge keep getting the verified revision.
        rounds = 0
        while time.monotonic() - stopped_at < S3_OUTAGE or rounds < 1:
            for edge in edges:
                assert_client_served(run_client(fleet, edge, "outage"), want.digest, f"{edge}, S3 down")
            rounds += 1
        watcher.stop()
        assert watcher.failures == [], watcher.failures[:5]
        assert watcher.checks >= 10
    finally:
        clusters.s3.start()
    for edge in edges:
        pods = cache_pods(fleet, edge, "outage")
        assert all(ready(p) and restarts(p) == 0 for p in pods), [p["status"] for p in pods]
