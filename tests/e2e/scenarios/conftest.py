"""Fixtures of the scenario suite: one provider, one chart install and one operator for the whole session
(`provider` and `chart` live in tests/e2e/conftest.py, shared with the rollout suite).

EDGEROLL_E2E_PROVIDER picks the clusters (`local`, the default: the kwokctl lab;
`kind`: see docs/e2e.md). Whatever the provider, the operator runs under the
chart's ServiceAccount, so every scenario also proves the chart's RBAC: a test
whose operator log shows a 403 fails.

Everything is scoped by one run id (RunScope): hub namespaces, the Helm release
and its cluster-scoped RBAC, EdgeClusters labelled `e2e-run=<id>`, the edge cache
namespace in every edge, and the S3 prefix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from scenario_kit import ComposedGraph, Fleet, forbidden_lines
from tests.e2e.operator.operator_e2e_kit import OperatorE2E, _teardown
from tests.e2e.providers.e2e_provider import ROOT, ChartRun
from tests.polling import wait_until
from tests.wgc import compose


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Scenarios that uninstall the session's release run after all the others."""
    items.sort(key=lambda item: item.get_closest_marker("uninstalls") is not None)


@pytest.fixture(autouse=True)
def real_pods_only_on_kind(request: pytest.FixtureRequest) -> None:
    """`kind` scenarios read real pods; `make test` deselects them, a bare pytest run says why."""
    provider = os.environ.get("EDGEROLL_E2E_PROVIDER", "local")
    if request.node.get_closest_marker("kind") is not None and provider != "kind":
        pytest.skip("needs real pods: run with EDGEROLL_E2E_PROVIDER=kind (make e2e-kind)")


@pytest.fixture(scope="session")
def fleet(chart: ChartRun) -> Iterator[Fleet]:
    """The chart in the hub (tests/e2e/conftest.py), the operator under its ServiceAccount, and one
    EdgeCluster per edge."""
    provider, scope, clusters = chart.provider, chart.scope, chart.provider.clusters
    e2e = OperatorE2E(clusters, scope.run, scope.ns, scope.prefix, {}, chart.operator)
    try:
        for edge in sorted(clusters.edge_labels):
            name = f"{scope.release}-{edge.removeprefix('edge-')}"
            labels = {**clusters.edge_labels[edge], "tier": "edge", "e2e-run": scope.run}
            e2e.add_edgecluster(name, labels, provider.edge_kubeconfig(edge))
            e2e.edges[edge] = name
        for name in e2e.edges.values():
            # EdgeCluster status is written by every operator on the hub; one that cannot read this
            # Secret (another release's, say `make demo`'s) would report it unreachable: show it all.
            wait_until(
                lambda n=name: e2e.edgecluster_ready(n) == "True",
                timeout=90,
                message=lambda n=name: (
                    f"EdgeCluster {n} Ready: {e2e.hub('get', 'edgecluster', n, '-o', 'json').stdout}\n"
                    f"operator log:\n{chart.operator.tail()}"
                ),
            )
        yield Fleet(provider, scope, e2e, chart.work)
    finally:
        _teardown(e2e, [scope.tenant_ns])


@pytest.fixture(autouse=True)
def no_forbidden_in_operator_log(fleet: Fleet) -> Iterator[None]:
    """The chart's RBAC must be enough for whatever a scenario makes the operator do."""
    before = len(fleet.e2e.operator.log())
    yield
    denied = forbidden_lines(fleet.e2e.operator.log()[before : fleet.rbac_checked_until])
    assert not denied, "the operator was denied (the chart's RBAC lacks a verb):\n" + "\n".join(denied[:20])


@pytest.fixture(scope="session")
def composed_graph(tmp_path_factory: pytest.TempPathFactory) -> ComposedGraph:
    """The Cosmo execution config of examples/graph, composed now by `wgc router compose`."""
    out = tmp_path_factory.mktemp("wgc") / "storefront.json"
    config = compose(ROOT / "examples" / "graph" / "graph.yaml", out)
    return ComposedGraph(out, config)
