"""The rollout planner: a pure function from desired and observed state to actions.

All rollout decisions live here. `AllAtOnce` sends every reachable, unpaused
target its revision at once. Progressive waves (issue 4) extend `PlanInput`
with persisted rollout state and `now`, and add a strategy branch; the
executor and the reconciler only ever see `Action`s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from edgeroll.api.routerconfig import RolloutSpec, RolloutStrategy
from edgeroll.rollout.health import DeploymentHealth


@dataclass(frozen=True)
class DesiredRevision:
    """What one cluster should serve: a published revision and its signature."""

    digest: str
    key: str
    signature: str


@dataclass(frozen=True)
class ClusterState:
    """What we know of one cluster now."""

    name: str
    reachable: bool
    paused: bool = False
    exists: bool = True  # False: the EdgeCluster object is gone (nothing can be done there)
    health: DeploymentHealth | None = None  # None: no edge Deployment (or unknown when unreachable)
    message: str = ""


@dataclass(frozen=True)
class ApplyRevision:
    cluster: str
    revision: DesiredRevision


@dataclass(frozen=True)
class RemoveEdge:
    cluster: str


@dataclass(frozen=True)
class Hold:
    """Nothing can be done in this cluster now; `reason` says why (for status and events)."""

    cluster: str
    reason: str
    removal: bool = False  # the cluster still has edge resources we want gone


Action = ApplyRevision | RemoveEdge | Hold


@dataclass(frozen=True)
class PlanInput:
    desired: Mapping[str, DesiredRevision]  # target cluster -> revision for it
    observed: Mapping[str, ClusterState]  # every target and every previously managed cluster
    previously_managed: frozenset[str] = field(default_factory=frozenset)
    policy: RolloutSpec = field(default_factory=RolloutSpec)
    now: datetime | None = None  # unused by AllAtOnce; waves time soak and deadlines with it


def _plan_removals(inp: PlanInput) -> list[Action]:
    actions: list[Action] = []
    for name in sorted(inp.previously_managed - inp.desired.keys()):
        state = inp.observed.get(name)
        if state is None or not state.exists:
            continue  # the EdgeCluster is gone: nothing to reach, nothing to wait for
        if not state.reachable:
            actions.append(Hold(name, state.message or "unreachable", removal=True))
        else:
            actions.append(RemoveEdge(name))
    return actions


def _plan_all_at_once(inp: PlanInput) -> list[Action]:
    actions: list[Action] = []
    for name in sorted(inp.desired):
        state = inp.observed.get(name, ClusterState(name, reachable=False, message="not observed"))
        if state.paused:
            actions.append(Hold(name, "EdgeCluster is paused"))
        elif not state.reachable:
            actions.append(Hold(name, state.message or "unreachable"))
        else:
            actions.append(ApplyRevision(name, inp.desired[name]))
    return actions


def plan_rollout(inp: PlanInput) -> list[Action]:
    """Actions in a deterministic order: targets by name, then removals by name."""
    if inp.policy.strategy is RolloutStrategy.ALL_AT_ONCE:
        targets = _plan_all_at_once(inp)
    else:  # pragma: no cover - every strategy in the enum is handled above
        raise ValueError(f"unsupported rollout strategy {inp.policy.strategy!r}")
    return targets + _plan_removals(inp)
