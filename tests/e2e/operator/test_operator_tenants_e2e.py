"""Issue 11 on the lab: two tenants of one install whose RouterConfigs shared an edge object name in
edgeroll 0.1 (`team-a/web` and `team/a-web` both became `edgeroll-team-a-web`), and an object in the
way that edgeroll did not make. Each tenant gets its own cache, neither ever writes the other's, and
deleting one leaves the other serving; the object in the way is neither written over nor deleted.

This module starts its own operator watching two hub namespaces, `<ns>` and `<ns>-a`: with
RouterConfigs `a-web` and `web` in them, the pair spells the report's collision.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from operator_e2e_kit import OperatorE2E, cosmo_config, running_operator, tenant_view
from tests.polling import wait_until

from edgeroll.lab import Lab
from edgeroll.rollout.resources import (
    ANNOTATION_ROUTERCONFIG,
    LABEL_RC_UID,
    edge_name,
    legacy_edge_name,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two_tenants(
    lab: Lab, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OperatorE2E, OperatorE2E]]:
    with running_operator(lab, tmp_path_factory.mktemp("tenants"), "ten", tenants=["a"]) as e2e:
        yield e2e, tenant_view(e2e, f"{e2e.ns}-a")


def _deployment(ops: OperatorE2E, edge: str, name: str) -> dict[str, Any] | None:
    return ops.edge_object(edge, "deployment", name)


def test_two_tenants_with_the_colliding_pair_each_get_their_own_cache(
    two_tenants: tuple[OperatorE2E, OperatorE2E],
) -> None:
    team, team_a = two_tenants  # team/a-web and team-a/web, as in the report
    assert legacy_edge_name(team.ns, "a-web") == legacy_edge_name(team_a.ns, "web")
    team_a.apply(team_a.routerconfig("web", cosmo_config()))
    team.apply(team.routerconfig("a-web", cosmo_config()))
    team_a.wait_ready("web", timeout=120)
    team.wait_ready("a-web", timeout=120)

    for ops, rc in ((team_a, "web"), (team, "a-web")):
        uid = ops.get(rc)["metadata"]["uid"]
        for edge in team.edges:
            dep = _deployment(team, edge, edge_name(ops.ns, rc))  # the edge namespace is the run's
            assert dep is not None, f"{edge}: no cache for {ops.ns}/{rc}"
            meta = dep["metadata"]
            assert meta["annotations"][ANNOTATION_ROUTERCONFIG] == f"{ops.ns}/{rc}"
            assert meta["labels"][LABEL_RC_UID] == uid
            # In 0.1 the two rewrote one Deployment every second: here each was written once.
            assert meta["generation"] == 1, f"{edge}: {ops.ns}/{rc} was rewritten ({meta['generation']})"

    # Deleting one tenant's RouterConfig removes its caches only.
    team_a.hub("-n", team_a.ns, "delete", "rtc", "web", "--timeout=90s")
    for edge in team.edges:
        assert _deployment(team, edge, edge_name(team_a.ns, "web")) is None
        assert _deployment(team, edge, edge_name(team.ns, "a-web")) is not None
    assert team.condition("a-web", "Ready")["status"] == "True"  # type: ignore[index]


def test_an_object_in_the_way_stalls_naming_it_and_is_never_written_over_nor_deleted(
    two_tenants: tuple[OperatorE2E, OperatorE2E],
) -> None:
    ops, _ = two_tenants
    edge = sorted(ops.edges)[0]
    name = edge_name(ops.ns, "squatter")
    ops.lab.kubectl(edge, "create", "namespace", ops.ns, check=False)  # the edge namespace, if not yet
    service_account = {  # made by hand, under the name the cache's ServiceAccount would take
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": ops.ns, "labels": {"owner": "someone-else"}},
    }
    ops.lab.kubectl(edge, "apply", "-f", "-", input=json.dumps(service_account))

    ops.apply(ops.routerconfig("squatter", cosmo_config()))
    status = ops.wait_status(
        "squatter",
        lambda s: any(c["type"] == "Stalled" and c["status"] == "True" for c in s.get("conditions", [])),
        what="Stalled on the object in the way",
    )
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "EdgeObjectConflict"
    assert (
        f"{ops.edges[edge]}: ServiceAccount {ops.ns}/{name} exists and was not made by edgeroll"
        in stalled["message"]
    )
    assert _deployment(ops, edge, name) is None  # nothing applied after it
    others = [e for e in ops.edges if e != edge]
    wait_until(
        lambda: all(_deployment(ops, e, name) is not None for e in others),
        timeout=60,
        message="the other clusters get their caches",
    )

    ops.hub("-n", ops.ns, "delete", "rtc", "squatter", "--timeout=90s")
    kept = ops.edge_object(edge, "serviceaccount", name)
    assert kept is not None and kept["metadata"]["labels"] == {"owner": "someone-else"}
    assert all(_deployment(ops, e, name) is None for e in others)
