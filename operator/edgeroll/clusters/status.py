"""EdgeCluster status from a probe (pure). The probe time is written on change or on heartbeat only."""

from __future__ import annotations

from edgeroll.api.conditions import set_condition
from edgeroll.api.edgecluster import EdgeClusterStatus
from edgeroll.clusters.registry import ProbeResult


def edgecluster_status(
    prev: EdgeClusterStatus,
    probe: ProbeResult,
    *,
    paused: bool,
    generation: int,
    now: str,
    heartbeat: bool,
) -> EdgeClusterStatus:
    """The next status. `heartbeat` refreshes lastProbeTime even when nothing else changed."""
    conds = list(prev.conditions)
    if probe.reachable:
        conds = set_condition(
            conds, "Reachable", "True", "Probed", probe.message, now=now, generation=generation
        )
        if paused:
            conds = set_condition(
                conds, "Ready", "False", "Paused", "spec.paused is true", now=now, generation=generation
            )
        else:
            conds = set_condition(
                conds, "Ready", "True", "Reachable", probe.message, now=now, generation=generation
            )
    else:
        conds = set_condition(
            conds, "Reachable", "False", "Unreachable", probe.message, now=now, generation=generation
        )
        conds = set_condition(
            conds, "Ready", "False", "Unreachable", probe.message, now=now, generation=generation
        )
    conds.sort(key=lambda c: ["Ready", "Reachable"].index(c.type) if c.type in ("Ready", "Reachable") else 9)
    draft = EdgeClusterStatus(
        observed_generation=generation,
        conditions=conds,
        server_version=probe.server_version if probe.reachable else prev.server_version,
        last_probe_time=prev.last_probe_time,
    )
    if heartbeat or draft.to_wire() != prev.to_wire() or prev.last_probe_time is None:
        draft = draft.model_copy(update={"last_probe_time": now})
    return draft
