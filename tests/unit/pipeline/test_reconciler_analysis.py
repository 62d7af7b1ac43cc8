"""The reconciler with spec.rollout.analysis: a bad condition is Stalled naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from pipeline_fakes import World

pytestmark = pytest.mark.unit


def metric(**overrides: Any) -> dict[str, Any]:
    base = {
        "name": "error-rate",
        "prometheus": {"query": 'sum(rate(errors{cluster="${cluster.name}"}[1m]))'},
        "successCondition": "result < 0.05",
    }
    return {**base, **overrides}


def policy(*metrics: dict[str, Any], interval: int = 30) -> dict[str, Any]:
    return {"strategy": "Progressive", "analysis": {"intervalSeconds": interval, "metrics": list(metrics)}}


async def test_a_bad_condition_stalls_the_routerconfig_naming_the_field() -> None:
    w = World()
    w.update(rollout=policy(metric(successCondition="result <")))

    status = await w.reconcile()

    stalled = next(c for c in status.conditions if c.type == "Stalled")
    assert stalled.reason == "InvalidSpec"
    assert stalled.message.startswith(
        "spec.rollout.analysis.metrics[0].successCondition: Value error, not valid CEL"
    )
    assert w.edge_writes() == 0
