"""Drift tolerates server defaults and normalised quantities; health reads a Deployment honestly."""

from __future__ import annotations

from decimal import Decimal

import pytest

from edgeroll.api.routerconfig import ClusterPhase
from edgeroll.rollout.drift import drifted, first_difference, parse_quantity
from edgeroll.rollout.health import phase_for, read_health

pytestmark = pytest.mark.unit

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", "0.5"),
        ("1", "1"),
        ("1Gi", str(2**30)),
        ("1e3", "1000"),
        ("2k", "2000"),
        ("0.5", "0.5"),
        (3, "3"),
    ],
)
def test_quantities(text: object, value: str) -> None:
    assert parse_quantity(text) == Decimal(value)


def test_not_a_quantity() -> None:
    assert parse_quantity("lots") is None


def test_server_defaults_and_normalised_quantities_are_not_drift() -> None:
    desired = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x", "labels": {"a": "b"}},
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "ports": [{"containerPort": 80}],
                            "resources": {"requests": {"cpu": "0.5"}},
                        }
                    ],
                    "volumes": [{"name": "v", "emptyDir": {}}],
                }
            },
        },
    }
    live = {
        "metadata": {"name": "x", "labels": {"a": "b", "extra": "1"}, "uid": "u"},
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 600,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {"requests": {"cpu": "500m"}},
                            "terminationMessagePath": "/dev/termination-log",
                        }
                    ],
                    "volumes": [{"name": "v", "emptyDir": {}}],
                }
            },
        },
    }
    assert drifted(desired, live) is None
    live["spec"]["replicas"] = 5
    assert drifted(desired, live) == "spec.replicas"
    live["spec"]["replicas"] = 2
    live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1"
    assert drifted(desired, live) == "spec.template.spec.containers[0].resources.requests.cpu"
    assert drifted(desired, None) == "missing"


def test_lists_must_keep_their_length_and_types_matter() -> None:
    assert first_difference({"l": [1, 2]}, {"l": [1, 2, 3]}) == "l"
    assert first_difference({"n": 1}, {"n": "1"}) == "n"
    assert first_difference({"b": False}, {"b": 0}) == "b"


def test_the_path_names_the_first_difference_however_deep() -> None:
    desired = {"a": [{"b": 1}, {"c": {"d": [5, 6]}}], "e": 2}
    assert first_difference(desired, {"a": [{"b": 1}, {"c": {"d": [5, 7]}}], "e": 2}) == "a[1].c.d[1]"
    assert first_difference(desired, {"a": [{"b": 1}, {"c": {"d": [5, 6]}}], "e": 3}) == "e"
    assert first_difference(desired, {"a": [{"b": 1}, {"c": "x"}], "e": 2}) == "a[1].c"
    assert first_difference(desired, {"a": [{"b": 1}, {}], "e": 2}) == "a[1].c"
    assert first_difference([{"k": 1}], [{"k": 2}]) == "[0].k"
    assert first_difference(desired, "not a mapping") == "."
    assert first_difference(desired, {**desired, "extra": 1}) is None


def deployment(
    digest: str,
    *,
    gen: int = 2,
    observed: int = 2,
    updated: int = 2,
    available: int = 2,
    total: int = 2,
    avail_cond: bool = True,
    deadline: bool = False,
) -> dict:  # type: ignore[type-arg]
    conds = [{"type": "Available", "status": "True" if avail_cond else "False"}]
    if deadline:
        conds.append(
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "x"}
        )
    return {
        "metadata": {"generation": gen},
        "spec": {"replicas": 2, "template": {"metadata": {"annotations": {"edgeroll.io/digest": digest}}}},
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": available,
            "availableReplicas": available,
            "conditions": conds,
        },
    }


@pytest.mark.parametrize(
    ("dep", "want", "phase"),
    [
        (None, D1, ClusterPhase.PENDING),
        (deployment(D1), D1, ClusterPhase.READY),
        (deployment(D2), D1, ClusterPhase.PROGRESSING),
        (deployment(D1, observed=1), D1, ClusterPhase.PROGRESSING),  # stale status is not health
        (deployment(D1, updated=1), D1, ClusterPhase.PROGRESSING),
        (deployment(D1, total=3), D1, ClusterPhase.PROGRESSING),  # an old pod still runs
        (deployment(D1, avail_cond=False), D1, ClusterPhase.PROGRESSING),
        (deployment(D1, updated=1, deadline=True), D1, ClusterPhase.FAILED),
    ],
)
def test_phase_for(dep: dict | None, want: str, phase: ClusterPhase) -> None:  # type: ignore[type-arg]
    assert phase_for(read_health(dep) if dep else None, want)[0] is phase


def test_an_edge_secret_holding_a_key_no_longer_sent_is_drift() -> None:
    desired = {"kind": "Secret", "data": {"signing-key": "aw=="}}
    live = {"data": {"signing-key": "aw==", "aws-access-key-id": "aWQ=", "aws-secret-access-key": "cw=="}}
    assert drifted(desired, live) == "data.aws-access-key-id"
    assert drifted(desired, {"data": {"signing-key": "aw==", "other": "eA=="}}) is None  # not ours to drop
    assert drifted({"kind": "ConfigMap", "data": {}}, {"data": {"aws-access-key-id": "x"}}) is None
