"""Models parse what users write, selectors match like Kubernetes, conditions keep their times."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edgeroll.api.common import LabelSelector
from edgeroll.api.conditions import find_condition, set_condition
from edgeroll.api.edgecluster import EdgeClusterSpec
from edgeroll.api.routerconfig import ConfigFormat, RouterConfigSpec
from edgeroll.api.selectors import selector_matches

pytestmark = pytest.mark.unit

SPEC = {
    "format": "cosmo",
    "configFrom": {"configMapKeyRef": {"name": "big", "key": "config.json.gz"}},
    "targets": {"clusterSelector": {"matchLabels": {"tier": "edge"}}},
    "overlays": [{"clusterSelector": {"matchLabels": {"region": "eu"}}, "patch": {"a": {"b": None}}}],
    "signing": {"secretRef": {"name": "sign", "key": "key"}},
    "cosmo": {"organizationId": "org", "federatedGraphId": "graph"},
}


def test_routerconfig_spec_defaults_and_aliases() -> None:
    spec = RouterConfigSpec.model_validate(SPEC)
    assert spec.format is ConfigFormat.COSMO
    assert spec.config_from is not None and spec.config_from.config_map_key_ref.key == "config.json.gz"
    assert spec.cache.port == 8080 and spec.cache.replicas == 2 and spec.cache.image is None
    assert spec.revision_history_limit == 10
    assert spec.rollout.strategy == "AllAtOnce" and spec.rollout.auto_rollback is True
    assert spec.overlays[0].patch == {"a": {"b": None}}
    wire = spec.to_wire()
    assert wire["configFrom"] == SPEC["configFrom"] and wire["revisionHistoryLimit"] == 10


def test_edgecluster_defaults_and_refusals() -> None:
    spec = EdgeClusterSpec.model_validate(
        {"kubeconfigSecretRef": {"namespace": "ns", "name": "kc", "key": "v"}}
    )
    assert spec.namespace == "edgeroll-system" and spec.paused is False
    with pytest.raises(ValidationError):
        EdgeClusterSpec.model_validate({"kubeconfigSecretRef": {"name": "kc", "key": "v"}})


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {}, True),
        ({"matchLabels": {"tier": "edge"}}, {"tier": "edge", "x": "y"}, True),
        ({"matchLabels": {"tier": "edge"}}, {"tier": "core"}, False),
        (
            {"matchExpressions": [{"key": "region", "operator": "In", "values": ["eu", "us"]}]},
            {"region": "us"},
            True,
        ),
        ({"matchExpressions": [{"key": "region", "operator": "In", "values": ["eu"]}]}, {}, False),
        ({"matchExpressions": [{"key": "region", "operator": "NotIn", "values": ["eu"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "region", "operator": "NotIn", "values": ["eu"]}]},
            {"region": "eu"},
            False,
        ),
        ({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, {"gpu": ""}, True),
        ({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, {"gpu": ""}, False),
        (
            {"matchLabels": {"tier": "edge"}, "matchExpressions": [{"key": "r", "operator": "Exists"}]},
            {"tier": "edge"},
            False,
        ),
    ],
)
def test_selector_semantics(selector: dict[str, object], labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(LabelSelector.model_validate(selector), labels) is expected


def test_condition_transition_time_moves_only_on_status_change() -> None:
    conds = set_condition([], "Ready", "False", "Progressing", "1/3", now="t1")
    conds = set_condition(conds, "Published", "True", "Published", "k", now="t1")
    conds = set_condition(conds, "Ready", "False", "Progressing", "2/3", now="t2")
    ready = find_condition(conds, "Ready")
    assert ready is not None and ready.last_transition_time == "t1" and ready.message == "2/3"
    conds = set_condition(conds, "Ready", "True", "Ready", "3/3", now="t3")
    ready = find_condition(conds, "Ready")
    assert ready is not None and ready.last_transition_time == "t3"
    assert [c.type for c in conds] == ["Ready", "Published"]
