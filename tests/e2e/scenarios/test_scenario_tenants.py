"""Two tenants of one install whose RouterConfigs shared one edge object name in edgeroll 0.1
(`team/a-web` and `team-a/web` were both `edgeroll-team-a-web`), on the lab and on kind: each gets
its own caches, a client in every edge gets each tenant's own config through its own Service, and
deleting one tenant's RouterConfig leaves the other's serving."""

from __future__ import annotations

import pytest
from scenario_kit import ComposedGraph, Fleet, assert_served, cosmo_variant, expect, fetch_from_edges
from tests.e2e.operator.operator_e2e_kit import tenant_view

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.rollout.resources import edge_name, legacy_edge_name

pytestmark = pytest.mark.e2e


def test_the_colliding_pair_each_serve_their_own_config_everywhere(
    fleet: Fleet, composed_graph: ComposedGraph
) -> None:
    e2e, scope = fleet.e2e, fleet.scope
    tenant = tenant_view(e2e, scope.tenant_ns)
    assert legacy_edge_name(scope.ns, "a-web") == legacy_edge_name(scope.tenant_ns, "web")
    assert edge_name(scope.ns, "a-web") != edge_name(scope.tenant_ns, "web")
    mine, theirs = (cosmo_variant(composed_graph.config, tag) for tag in ("tenant-team", "tenant-team-a"))
    e2e.apply(e2e.routerconfig("a-web", mine))
    tenant.apply(tenant.routerconfig("web", theirs))
    e2e.wait_ready("a-web", timeout=240)
    tenant.wait_ready("web", timeout=240)

    for result in fetch_from_edges(fleet, "a-web").values():
        assert_served(result, expect(ConfigFormat.COSMO, mine))
    for result in fetch_from_edges(fleet, "web", rc_namespace=scope.tenant_ns).values():
        assert_served(result, expect(ConfigFormat.COSMO, theirs))

    tenant.hub("-n", scope.tenant_ns, "delete", "rtc", "web", "--timeout=120s")
    edge = sorted(e2e.edges)[0]
    gone = e2e.edge_object(edge, "deployment", edge_name(scope.tenant_ns, "web"))
    assert gone is None, "the deleted tenant's cache is removed"
    (kept,) = fetch_from_edges(fleet, "a-web", edges=[edge]).values()
    assert_served(kept, expect(ConfigFormat.COSMO, mine))
