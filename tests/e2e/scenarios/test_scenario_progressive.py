"""A progressive rollout whose canary fails for real, and rolls back on its own (issue 4's API).

The canary is the first target by name. Its edge namespace gets a ResourceQuota at exactly the number of
pods running there: what runs keeps running, but no new pod can be created, so the new revision can
never become Available on that cluster while the others could. (A spec-level fault such as impossible
`spec.cache.resources` would not do: it is not part of the revision, so the rollback would carry it too.)
The rollout must halt at the canary, send it back to its last-good digest, never move the other
clusters, and say why; every edge then still serves the old revision.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from scenario_kit import (
    ComposedGraph,
    Fleet,
    assert_served,
    condition,
    cosmo_variant,
    digests,
    expect,
    fetch_from_edges,
    phases,
)
from tests.polling import wait_until

from edgeroll.api.routerconfig import ConfigFormat

pytestmark = pytest.mark.e2e

POLICY = {
    "strategy": "Progressive",
    "canary": 1,
    "maxUnavailable": 0,
    "progressDeadlineSeconds": 20,
    "autoRollback": True,
}
QUOTA = "e2e-no-new-pods"


@pytest.fixture
def no_new_pods(fleet: Fleet) -> Iterator[Any]:
    """`block(edge)` freezes the pod count of the run's namespace in that edge; undone afterwards."""
    blocked: list[str] = []

    def kubectl(edge: str, *args: str, check: bool = True) -> str:
        return str(fleet.e2e.lab.kubectl(edge, "-n", fleet.scope.ns, *args, check=check).stdout)

    def quota() -> dict[str, Any]:
        return dict(json.loads(kubectl(blocked[-1], "get", "resourcequota", QUOTA, "-o", "json")))

    def block(edge: str) -> None:
        blocked.append(edge)
        kubectl(edge, "create", "quota", QUOTA, "--hard=pods=1000")
        used = wait_until(lambda: quota().get("status", {}).get("used", {}).get("pods"), timeout=30)
        kubectl(
            edge,
            "patch",
            "resourcequota",
            QUOTA,
            "--type=merge",
            "-p",
            json.dumps({"spec": {"hard": {"pods": used}}}),
        )
        wait_until(
            lambda: quota()["status"]["hard"]["pods"] == used, timeout=30, message="the quota in force"
        )

    yield block
    for edge in blocked:
        kubectl(edge, "delete", "resourcequota", QUOTA, "--ignore-not-found", check=False)


def test_failing_canary_halts_the_rollout_and_rolls_back(
    fleet: Fleet, composed_graph: ComposedGraph, no_new_pods: Any
) -> None:
    e2e = fleet.e2e
    v1, v2 = (cosmo_variant(composed_graph.config, f"canary-{v}") for v in ("v1", "v2"))
    old, new = expect(ConfigFormat.COSMO, v1), expect(ConfigFormat.COSMO, v2)
    canary = sorted(e2e.edges.values())[0]
    canary_edge = fleet.edge_of(canary)
    rest = [e for e in sorted(e2e.edges) if e != canary_edge]

    e2e.apply(e2e.routerconfig("canary", v1, rollout=POLICY))
    e2e.wait_status(
        "canary",
        lambda st: st.get("phase") == "Ready" and st.get("rollout", {}).get("phase") == "Completed",
        what="the first revision rolled out (status.rollout.phase Completed; no status.rollout at all "
        "means the reconciler does not run the progressive planner yet)",
    )
    generations = {e: e2e.edge_deployment(e, "canary")["metadata"]["generation"] for e in rest}  # type: ignore[index]

    no_new_pods(canary_edge)
    e2e.apply(e2e.routerconfig("canary", v2, rollout=POLICY))

    # The canary moves first, alone.
    wait_until(
        lambda: e2e.edge_digest(canary_edge, "canary") == new.digest,
        timeout=60,
        interval=0.2,
        message=f"the canary {canary} moved to the new revision",
    )
    assert all(e2e.edge_digest(e, "canary") == old.digest for e in rest)

    status = e2e.wait_status(
        "canary",
        lambda st: st.get("rollout", {}).get("phase") == "RolledBack" and st["rollout"].get("rolledBackAt"),
        timeout=150,
        what="the rollout rolled back",
    )
    rollout = status["rollout"]
    assert rollout["reason"] in ("HealthDeadlineExceeded", "ProgressDeadlineExceeded"), rollout
    assert canary in rollout["message"], rollout["message"]
    assert condition(status, "Ready")["status"] == "False"
    assert phases(status)[canary] == "RolledBack"
    assert set(digests(status).values()) == {old.digest}
    assert e2e.edge_digest(canary_edge, "canary") == old.digest
    for edge in rest:  # never moved: the canary gates every later wave
        dep = e2e.edge_deployment(edge, "canary")
        assert dep is not None and dep["metadata"]["generation"] == generations[edge]

    for result in fetch_from_edges(fleet, "canary").values():
        assert_served(result, old)
