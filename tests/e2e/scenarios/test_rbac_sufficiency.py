"""RBAC sufficiency, proved: the operator under the chart's ServiceAccount does the whole core job.

The chart is installed into the hub (a run-scoped release and namespace; on the
local provider with `deployOperator=false`), and the operator authenticates with
a token of the chart's ServiceAccount, nothing else. It must take a RouterConfig
through apply -> Published -> 3/3 Ready -> update -> delete, touching every kind
the chart grants (RouterConfigs and their status and finalizer, EdgeCluster
status, Secrets in the listed namespace, a ConfigMap, events) without one 403.
What the ServiceAccount must NOT be able to do is tests/integration/chart/test_chart.py.
"""

from __future__ import annotations

import json

import pytest
from scenario_kit import Fleet, assert_served, condition, digests, expect, fetch_from_edges, forbidden_lines
from tests.e2e.providers.e2e_provider import helm
from tests.polling import wait_until

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.rollout.resources import edge_name

pytestmark = pytest.mark.e2e

EDGE_KINDS = ("deployment", "service", "secret", "serviceaccount")


def test_operator_with_only_the_charts_service_account_completes_the_core_scenario(fleet: Fleet) -> None:
    e2e, scope, clusters = fleet.e2e, fleet.scope, fleet.provider.clusters
    release = json.loads(helm(clusters, "status", scope.release, "-n", scope.system_ns, "-o", "json").stdout)
    assert release["info"]["status"] == "deployed"
    assert fleet.provider.operator_identity(scope) == scope.username
    log_start = len(e2e.operator.log())

    v1 = {"checkout": {"newPaymentFlow": False, "maxCartItems": 50}, "banner": "rbac v1"}
    v2 = {**v1, "banner": "rbac v2"}
    e2e.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "rbac-config", "namespace": scope.ns},
            "data": {"v1.json": json.dumps(v1), "v2.json": json.dumps(v2)},
        }
    )

    def routerconfig(key: str) -> dict:
        rc = e2e.routerconfig(
            "rbac", format="json", configFrom={"configMapKeyRef": {"name": "rbac-config", "key": key}}
        )
        del rc["spec"]["cosmo"]
        return rc

    # apply -> Published -> 3/3 Ready
    e2e.apply(routerconfig("v1.json"))
    status = e2e.wait_ready("rbac")
    first = expect(ConfigFormat.JSON, v1)
    assert condition(status, "Published")["status"] == "True"
    assert status["revision"]["digest"] == first.digest and status["readyClusters"] == "3/3"
    assert e2e.get("rbac")["metadata"]["finalizers"] == ["edgeroll.io/finalizer"]
    events = json.loads(
        e2e.hub(
            "-n", scope.ns, "get", "events", "--field-selector", "involvedObject.name=rbac", "-o", "json"
        ).stdout
    )
    assert "Published" in {e["reason"] for e in events["items"]}

    # update -> the new digest everywhere: in status, in every edge Deployment, and served
    e2e.apply(routerconfig("v2.json"))
    second = expect(ConfigFormat.JSON, v2)
    status = e2e.wait_status(
        "rbac",
        lambda s: s.get("phase") == "Ready" and set(digests(s).values()) == {second.digest},
        what="every cluster on the new digest",
    )
    assert status["revision"]["digest"] == second.digest
    assert all(e2e.edge_digest(edge, "rbac") == second.digest for edge in e2e.edges)
    for got in fetch_from_edges(fleet, "rbac").values():
        assert_served(got, second)

    # delete -> the edge resources are gone in every edge
    e2e.hub("-n", scope.ns, "delete", "rtc", "rbac", "--timeout=100s")
    name = edge_name(scope.ns, "rbac")

    def leftovers() -> list[tuple[str, str]]:
        return [(e, k) for e in e2e.edges for k in EDGE_KINDS if e2e.edge_object(e, k, name) is not None]

    wait_until(lambda: not leftovers(), timeout=60, message=lambda: f"edge resources removed: {leftovers()}")

    # Probes of every EdgeCluster wrote their status with the same identity.
    for edgecluster in e2e.edges.values():
        ec = json.loads(e2e.hub("get", "edgecluster", edgecluster, "-o", "json").stdout)
        assert ec["status"]["serverVersion"], ec["status"]
    denied = forbidden_lines(e2e.operator.log()[log_start:])
    assert not denied, "\n".join(denied)
