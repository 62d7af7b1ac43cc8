"""An edge cluster lost and regained, without stopping any shared apiserver: its EdgeCluster's kubeconfig
Secret is pointed at a closed port, then restored. While it is lost it shows Unreachable, keeps serving
what it had, and the others move on to the new revision; once regained it converges and serves it too."""

from __future__ import annotations

import json
from typing import Any

import pytest
from scenario_kit import (
    ComposedGraph,
    Fleet,
    assert_served,
    cosmo_variant,
    digests,
    expect,
    fetch_from_edges,
    phases,
    set_kubeconfig_secret,
    unreachable_kubeconfig,
)
from tests.polling import wait_until

from edgeroll.api.routerconfig import ConfigFormat

pytestmark = pytest.mark.e2e

LOST = "edge-us"


def reachable(fleet: Fleet, edgecluster: str) -> str | None:
    out = fleet.e2e.hub("get", "edgecluster", edgecluster, "-o", "json").stdout
    conditions = json.loads(out).get("status", {}).get("conditions", [])
    return next((c["status"] for c in conditions if c["type"] == "Reachable"), None)


def test_edge_cluster_lost_and_regained(fleet: Fleet, composed_graph: ComposedGraph) -> None:
    e2e = fleet.e2e
    lost = fleet.edgecluster(LOST)
    others = [fleet.edgecluster(e) for e in sorted(e2e.edges) if e != LOST]
    v1, v2 = (cosmo_variant(composed_graph.config, f"lost-{v}") for v in ("v1", "v2"))
    old, new = expect(ConfigFormat.COSMO, v1), expect(ConfigFormat.COSMO, v2)

    e2e.apply(e2e.routerconfig("lost", v1))
    e2e.wait_ready("lost")
    generation = e2e.edge_deployment(LOST, "lost")["metadata"]["generation"]  # type: ignore[index]

    set_kubeconfig_secret(fleet, lost, unreachable_kubeconfig(fleet, LOST))
    try:
        wait_until(
            lambda: reachable(fleet, lost) == "False", timeout=60, message=f"EdgeCluster {lost} unreachable"
        )
        e2e.apply(e2e.routerconfig("lost", v2))

        def others_moved(st: dict[str, Any]) -> bool:
            p, d = phases(st), digests(st)
            return p.get(lost) == "Unreachable" and all(
                p[o] == "Ready" and d[o] == new.digest for o in others
            )

        status = e2e.wait_status("lost", others_moved, what=f"{lost} Unreachable, the others Ready on v2")
        assert status["summary"]["unreachable"] == 1 and status["readyClusters"] == "2/3"
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False" and ready["reason"] == "ClustersUnreachable"
        # The operator could not touch the lost cluster; its cache keeps serving the revision it has.
        dep = e2e.edge_deployment(LOST, "lost")
        assert dep is not None and dep["metadata"]["generation"] == generation
        assert e2e.edge_digest(LOST, "lost") == old.digest
        served = fetch_from_edges(fleet, "lost")
        assert_served(served[LOST], old)
        for edge in served.keys() - {LOST}:
            assert_served(served[edge], new)
    finally:
        set_kubeconfig_secret(fleet, lost, fleet.provider.edge_kubeconfig(LOST))

    wait_until(
        lambda: reachable(fleet, lost) == "True", timeout=60, message=f"EdgeCluster {lost} reachable again"
    )
    status = e2e.wait_status(
        "lost",
        lambda st: st.get("phase") == "Ready" and set(digests(st).values()) == {new.digest},
        what="every cluster Ready on v2",
    )
    assert status["readyClusters"] == "3/3" and status["summary"]["unreachable"] == 0
    assert e2e.edge_digest(LOST, "lost") == new.digest
    assert_served(fetch_from_edges(fleet, "lost", [LOST])[LOST], new)
