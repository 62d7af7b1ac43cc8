"""`spec.rollout`: how a new revision reaches the target clusters, and the waves that implies.

Pure: the policy model, int-or-percent arithmetic and the deterministic split of
the target clusters into waves. `planner.py` decides what to do with the waves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from edgeroll.api.common import DNS1123_LABEL, ApiModel, LabelSelector
from edgeroll.api.selectors import selector_matches

_PERCENT = re.compile(r"^(100|[1-9]?[0-9])%$")


def _check_int_or_percent(value: int | str) -> int | str:
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must not be negative: {value}")
        return value
    if not _PERCENT.match(value):
        raise ValueError(f'must be an integer or a percentage such as "25%": {value!r}')
    return value


IntOrPercent = Annotated[int | str, AfterValidator(_check_int_or_percent)]
"""An int, or "N%" (0-100) of some total; the CRD renders it as x-kubernetes-int-or-string."""

Strategy = Literal["AllAtOnce", "Progressive"]
UnreachablePolicy = Literal["Skip", "Block"]


def resolve_count(value: int | str, total: int, *, minimum: int = 0) -> int:
    """An int as is; "N%" of `total` rounded down (as Kubernetes' maxUnavailable); never below `minimum`."""
    if isinstance(value, int):
        return max(value, minimum)
    percent = int(value.rstrip("%"))
    return max(total * percent // 100, minimum)


class RolloutStep(ApiModel):
    """One wave of a progressive rollout: the clusters its selector matches, at most maxParallel at once."""

    name: str = Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)
    cluster_selector: LabelSelector | None = Field(
        default=None,
        description="Which targets this step takes; unset or empty matches every target not taken yet.",
    )
    max_parallel: IntOrPercent | None = Field(
        default=None,
        description="Clusters of this wave updating at once: an int or a percentage of the wave "
        "(rounded down, at least 1). Unset: the whole wave.",
    )

    @model_validator(mode="after")
    def _positive_parallel(self) -> Self:
        if isinstance(self.max_parallel, int) and self.max_parallel < 1:
            raise ValueError("maxParallel must be at least 1")
        return self


class RolloutPolicy(ApiModel):
    """`spec.rollout` of a RouterConfig."""

    strategy: Strategy = "AllAtOnce"
    steps: list[RolloutStep] = Field(
        default_factory=list,
        max_length=32,
        description="Ordered waves (Progressive). A cluster matching several steps joins the first.",
    )
    canary: int | None = Field(
        default=None, ge=1, description="Without steps: the first N targets (by name) form the first wave."
    )
    batch_size: IntOrPercent | None = Field(
        default=None,
        description="Without steps: the remaining targets go in waves of this many (or this percentage "
        "of all targets, at least 1). Unset: one wave.",
    )
    max_unavailable: IntOrPercent = Field(
        default=0,
        description="Failure budget across the whole rollout: an int or a percentage of the targets "
        "(rounded down). More failed clusters than this fails the rollout.",
    )
    soak_seconds: int = Field(
        default=0, ge=0, description="How long a wave must stay healthy before the next one starts."
    )
    progress_deadline_seconds: int = Field(
        default=600,
        ge=1,
        description="A cluster not healthy this long after it was moved to the new digest has failed.",
    )
    auto_rollback: bool = Field(
        default=True, description="On failure, send every moved cluster back to its last-good digest."
    )
    unreachable_policy: UnreachablePolicy = Field(
        default="Skip",
        description="Skip: an unreachable cluster is reported Stale and never holds the rollout. "
        "Block: the rollout waits for it.",
    )
    paused: bool = Field(default=False, description="Hold: no cluster is moved and no wave starts.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.strategy == "AllAtOnce" and (self.steps or self.canary is not None or self.batch_size):
            raise ValueError("steps, canary and batchSize need strategy Progressive")
        if self.steps and (self.canary is not None or self.batch_size is not None):
            raise ValueError("use either steps or canary/batchSize, not both")
        names = [s.name for s in self.steps]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"step names must be unique: {', '.join(duplicates)}")
        if isinstance(self.batch_size, int) and self.batch_size < 1:
            raise ValueError("batchSize must be at least 1")
        return self

    @property
    def effective_soak_seconds(self) -> int:
        """AllAtOnce has a single wave and nothing to gate, so it never soaks."""
        return self.soak_seconds if self.strategy == "Progressive" else 0


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
