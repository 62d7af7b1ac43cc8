"""`helm upgrade` to a changed value, then `helm uninstall`, with real pods (kind; `make e2e-kind`).

Runs after every other scenario (marker `uninstalls`): it removes the session's release. What
uninstall means is in docs/architecture.md (Uninstall): the operator and everything the chart
made leave the hub; RouterConfigs, EdgeClusters and the CRDs are the user's and stay; the edge
caches keep serving the last revision they verified, since nothing is left to move them.
"""

from __future__ import annotations

import json

import pytest
from kind_kit import cache_pods, kind, operator, operator_pods, ready, run_client
from scenario_kit import ComposedGraph, Fleet, cosmo_variant, expect
from test_kind_data_plane import assert_client_served
from tests.e2e.providers.e2e_provider import CHART, helm
from tests.polling import wait_until

from edgeroll.api.routerconfig import ConfigFormat

pytestmark = [pytest.mark.e2e, pytest.mark.kind, pytest.mark.uninstalls]

CHART_KINDS = (
    "deployments,replicasets,pods,serviceaccounts,secrets,roles,rolebindings,services,poddisruptionbudgets"
)


def test_helm_upgrade_then_uninstall(fleet: Fleet, composed_graph: ComposedGraph) -> None:
    e2e, clusters, scope = fleet.e2e, kind(fleet).clusters, fleet.scope
    handle = operator(fleet)
    v1, v2 = (cosmo_variant(composed_graph.config, f"lifecycle-{v}") for v in ("v1", "v2"))
    e2e.apply(e2e.routerconfig("lifecycle", v1))
    e2e.wait_ready("lifecycle", timeout=240)
    before = {p["metadata"]["name"] for p in operator_pods(fleet)}

    # Upgrade: a changed value rolls the operator's replicas one by one (RollingUpdate, maxUnavailable
    # 0, so one is always Ready), and the new pods take the shard over.
    helm(clusters, "upgrade", scope.release, str(CHART), "-n", scope.system_ns, "--reuse-values",
         "--set", "timings.probeSeconds=3", "--wait", "--timeout", "180s")  # fmt: skip
    dep = clusters.get_json("hub", "-n", scope.system_ns, "deployment", scope.service_account)
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["EDGEROLL_PROBE_SECONDS"] == "3"

    def rolled() -> bool:
        pods = operator_pods(fleet)
        return (
            len(pods) == 2
            and all(ready(p) for p in pods)
            and not before & {p["metadata"]["name"] for p in pods}
        )

    wait_until(rolled, timeout=180, message="both operator replicas rolled and Ready")
    wait_until(
        lambda: (holder := handle.shard_holder(0)) is not None and holder not in before,
        timeout=60,
        message="an upgraded replica holding shard 0",
    )
    want = expect(ConfigFormat.COSMO, v2)
    e2e.apply(e2e.routerconfig("lifecycle", v2))
    e2e.wait_status(
        "lifecycle",
        lambda st: st.get("phase") == "Ready" and st.get("revision", {}).get("digest") == want.digest,
        timeout=240,
        what="the upgraded operator rolled out v2",
    )

    # Uninstall: nothing of the chart stays in the hub; the edges keep serving v2. Helm deletes
    # the RBAC while the operator pods are still shutting down, so their 403s from then on are expected.
    fleet.rbac_checked_until = len(handle.log())
    helm(clusters, "uninstall", scope.release, "-n", scope.system_ns, "--wait", "--timeout", "180s")
    selector = f"app.kubernetes.io/instance={scope.release}"

    def left() -> list[str]:
        names = clusters.kubectl("hub", "get", CHART_KINDS, "-A", "-l", selector, "-o", "name").stdout.split()
        cluster_wide = "clusterroles,clusterrolebindings"
        return (
            names + clusters.kubectl("hub", "get", cluster_wide, "-l", selector, "-o", "name").stdout.split()
        )

    # `--wait` covers what helm deleted; the operator pods are garbage-collected after their ReplicaSet
    # and shut down gracefully, so the hub is polled until nothing of the release is left.
    wait_until(lambda: left() == [], timeout=120, message=lambda: f"helm uninstall left {left()}")
    listed = json.loads(helm(clusters, "list", "-A", "-o", "json").stdout)
    assert scope.release not in [r["name"] for r in listed]
    assert e2e.get("lifecycle")["metadata"]["name"] == "lifecycle", "the RouterConfig is the user's"
    for edge in sorted(e2e.edges):
        assert all(ready(p) for p in cache_pods(fleet, edge, "lifecycle"))
        assert_client_served(run_client(fleet, edge, "lifecycle"), want.digest, f"client pod in {edge}")
