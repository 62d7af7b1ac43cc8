"""spec.rollout parses what users write and refuses what the CRD's CEL rules refuse."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from edgeroll.api.crds import rendered_files
from edgeroll.api.rollout import RolloutPolicy, RolloutState

pytestmark = pytest.mark.unit


def test_defaults_are_a_safe_all_at_once() -> None:
    policy = RolloutPolicy()
    assert policy.strategy == "AllAtOnce" and policy.auto_rollback and policy.unreachable_policy == "Skip"
    assert policy.max_unavailable == 0 and policy.progress_deadline_seconds == 600 and not policy.paused


@pytest.mark.parametrize(
    "spec",
    [
        {"strategy": "Progressive", "canary": 1, "batchSize": "50%", "maxUnavailable": "10%"},
        {"strategy": "Progressive", "steps": [{"name": "eu", "maxParallel": 2}, {"name": "rest"}]},
        {"strategy": "Progressive", "steps": [{"name": "a", "maxParallel": "100%"}], "soakSeconds": 5},
        {"strategy": "AllAtOnce", "maxUnavailable": 1, "unreachablePolicy": "Block", "paused": True},
    ],
)
def test_accepted(spec: dict[str, Any]) -> None:
    assert RolloutPolicy.model_validate(spec).to_wire()["strategy"] == spec["strategy"]


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({"canary": 1}, "need strategy Progressive"),
        ({"strategy": "Progressive", "steps": [{"name": "a"}], "canary": 1}, "not both"),
        ({"strategy": "Progressive", "steps": [{"name": "a"}, {"name": "a"}]}, "unique"),
        ({"strategy": "Progressive", "steps": [{"name": "a", "maxParallel": 0}]}, "at least 1"),
        ({"strategy": "Progressive", "batchSize": 0}, "at least 1"),
        ({"maxUnavailable": "10"}, "percentage"),
        ({"maxUnavailable": "101%"}, "percentage"),
        ({"maxUnavailable": -1}, "negative"),
        ({"strategy": "BlueGreen"}, "AllAtOnce"),
        ({"unreachablePolicy": "Wait"}, "Skip"),
        ({"progressDeadlineSeconds": 0}, "greater than or equal to 1"),
    ],
)
def test_refused(spec: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        RolloutPolicy.model_validate(spec)


def test_the_crd_carries_the_same_rules_as_cel() -> None:
    crd = yaml.safe_load(rendered_files()["edgeroll.io_routerconfigs.yaml"])
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rollout = spec["properties"]["rollout"]
    messages = [r["message"] for r in rollout["x-kubernetes-validations"]]
    assert messages == [
        "steps, canary and batchSize need strategy Progressive",
        "use either steps or canary/batchSize, not both",
    ]
    props = rollout["properties"]
    for node in (
        props["batchSize"],
        props["maxUnavailable"],
        props["steps"]["items"]["properties"]["maxParallel"],
    ):
        assert node["x-kubernetes-int-or-string"] is True
        assert node["maxLength"] == 4  # bounds the CEL cost of matches()
        assert "matches(" in node["x-kubernetes-validations"][0]["rule"]
    assert props["steps"]["x-kubernetes-list-type"] == "map"  # duplicate step names refused
    assert props["steps"]["x-kubernetes-list-map-keys"] == ["name"]


def test_status_rollout_round_trips_through_json() -> None:
    state = RolloutState.model_validate(
        {
            "revision": "r1",
            "phase": "Soaking",
            "wave": 1,
            "waveProgress": "2/3",
            "startedAt": "2026-01-01T00:00:00Z",
            "waves": [
                {"name": "canary", "startedAt": "2026-01-01T00:00:00Z", "healthyAt": "2026-01-01T00:00:05Z"}
            ],
            "clusters": [{"name": "a", "wave": 0, "target": "sha256:aa", "lastGood": "sha256:bb"}],
        }
    )
    wire = state.to_status()
    assert RolloutState.from_status(wire) == state
    assert wire["completedAt"] is None  # top-level nulls kept: a merge patch clears them
    assert "rollbackTo" not in wire["clusters"][0]  # list items carry no nulls
    assert RolloutState.from_status(None) == RolloutState()
