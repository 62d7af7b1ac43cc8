"""`spec.rollout`: the waves a policy implies for a set of target clusters.

Pure: int-or-percent arithmetic and the deterministic split of the target
clusters into waves. The policy model itself is `edgeroll.api.rollout.RolloutPolicy`
(re-exported here); `planner.py` decides what to do with the waves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edgeroll.api.common import LabelSelector
from edgeroll.api.rollout import IntOrPercent as IntOrPercent
from edgeroll.api.rollout import RolloutPolicy as RolloutPolicy
from edgeroll.api.rollout import RolloutStep as RolloutStep
from edgeroll.api.rollout import Strategy as Strategy
from edgeroll.api.rollout import UnreachablePolicy as UnreachablePolicy
from edgeroll.api.selectors import selector_matches


def resolve_count(value: int | str, total: int, *, minimum: int = 0) -> int:
    """An int as is; "N%" of `total` rounded down (as Kubernetes' maxUnavailable); never below `minimum`."""
    if isinstance(value, int):
        return max(value, minimum)
    percent = int(value.rstrip("%"))
    return max(total * percent // 100, minimum)


@dataclass(frozen=True)
class WaveSpec:
    """A wave as computed from the policy: its clusters in rollout order and its parallelism."""

    name: str
    clusters: tuple[str, ...]
    max_parallel: int | None  # None: the whole wave at once


REST_WAVE = "(rest)"
"""The implicit last wave that takes the targets no step selects (they must not be forgotten).
Not a DNS label, so it never collides with a step name."""


def plan_waves(policy: RolloutPolicy, clusters: Mapping[str, Mapping[str, str]]) -> list[WaveSpec]:
    """Split the targets (name -> labels) into waves. Deterministic: names are sorted.

    Always returns at least one wave, so a target that appears later has one to join.
    """
    names = sorted(clusters)
    if policy.strategy == "AllAtOnce":
        return [WaveSpec("all", tuple(names), None)]
    waves: list[WaveSpec] = []
    if policy.steps:
        taken: set[str] = set()
        for step in policy.steps:
            selector = step.cluster_selector or LabelSelector()
            members = tuple(n for n in names if n not in taken and selector_matches(selector, clusters[n]))
            taken.update(members)
            parallel = None
            if step.max_parallel is not None:
                parallel = resolve_count(step.max_parallel, len(members), minimum=1)
            waves.append(WaveSpec(step.name, members, parallel))
        rest = tuple(n for n in names if n not in taken)
        if rest:
            waves.append(WaveSpec(REST_WAVE, rest, None))
        return waves
    remaining = names
    if policy.canary is not None:
        waves.append(WaveSpec("canary", tuple(remaining[: policy.canary]), None))
        remaining = remaining[policy.canary :]
    if policy.batch_size is None:
        if remaining or not waves:
            waves.append(WaveSpec("batch-1", tuple(remaining), None))
        return waves
    size = resolve_count(policy.batch_size, len(names), minimum=1)
    for index, start in enumerate(range(0, len(remaining), size), start=1):
        waves.append(WaveSpec(f"batch-{index}", tuple(remaining[start : start + size]), None))
    if not waves:
        waves.append(WaveSpec("batch-1", (), None))
    return waves
