"""A Cosmo execution config composed at test time by `wgc router compose` from examples/graph,
handed to the operator through a ConfigMap (`spec.configFrom`), served by every edge cache."""

from __future__ import annotations

import pytest
from scenario_kit import ComposedGraph, Fleet, assert_served, condition, expect, fetch_from_edges

from edgeroll.api.routerconfig import ConfigFormat

pytestmark = pytest.mark.e2e


def test_wgc_composed_graph_from_a_configmap_reaches_every_edge(
    fleet: Fleet, composed_graph: ComposedGraph
) -> None:
    e2e = fleet.e2e
    e2e.hub(
        "-n",
        fleet.scope.ns,
        "create",
        "configmap",
        "storefront-graph",
        f"--from-file=config.json={composed_graph.path}",
    )
    e2e.apply(
        e2e.routerconfig(
            "storefront",
            configFrom={"configMapKeyRef": {"name": "storefront-graph", "key": "config.json"}},
            cosmo={"organizationId": "acme", "federatedGraphId": "storefront"},
        )
    )
    status = e2e.wait_ready("storefront")

    want = expect(ConfigFormat.COSMO, composed_graph.config)
    assert want.version != "00000000-0000-0000-0000-000000000000"  # wgc's placeholder is replaced
    assert status["revision"]["digest"] == want.digest
    assert status["readyClusters"] == "3/3" and condition(status, "Published")["status"] == "True"
    assert {c["digest"] for c in status["clusters"]} == {want.digest}

    served = fetch_from_edges(fleet, "storefront")
    assert sorted(served) == sorted(e2e.edges)
    for result in served.values():
        assert_served(result, want)
