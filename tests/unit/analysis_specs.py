"""spec.rollout.analysis as a user writes it, for the API and reconciler tests of metric analysis."""

from __future__ import annotations

from typing import Any


def metric(**overrides: Any) -> dict[str, Any]:
    """One metric: an error rate per cluster that must stay under 5 %, with `overrides` on top."""
    base = {
        "name": "error-rate",
        "prometheus": {"query": 'sum(rate(errors{cluster="${cluster.name}"}[1m]))'},
        "successCondition": "result < 0.05",
    }
    return {**base, **overrides}


def policy(*metrics: dict[str, Any], interval: int = 30) -> dict[str, Any]:
    """A progressive rollout analysed with `metrics` every `interval` seconds."""
    return {"strategy": "Progressive", "analysis": {"intervalSeconds": interval, "metrics": list(metrics)}}
