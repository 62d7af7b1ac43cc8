"""Which Prometheus servers a RouterConfig's analysis may query (spec.rollout.analysis.metrics[].prometheus).

The operator sends each query from its own place in the network, and the answer (or why there was
none) lands in status and events the author reads. An address the author picks freely would let any
team make the operator send GETs into the cluster network and learn what answers (server-side request
forgery). So a metric's own address must be one the operator's admin allows (`--allowed-prometheus-address`)
or one an EdgeCluster admin set as a target's `spec.prometheus.address`; without an address of its own, a
metric uses its cluster's, which is always allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from edgeroll.api.rollout import RolloutAnalysis


def _normal(address: str) -> str:
    return address.strip().rstrip("/")


def prometheus_address_problem(
    analysis: RolloutAnalysis | None, allowed: Sequence[str], edge_defaults: Iterable[str | None]
) -> str | None:
    """Why the analysis may not run as written, naming the field, or None."""
    if analysis is None:
        return None
    permitted = {_normal(a) for a in (*allowed, *(d for d in edge_defaults if d)) if a.strip()}
    for i, metric in enumerate(analysis.metrics):
        address = metric.prometheus.address
        if address is not None and _normal(address) not in permitted:
            return (
                f"spec.rollout.analysis.metrics[{i}].prometheus.address: {address!r} is not an allowed "
                f"Prometheus; allowed: {', '.join(sorted(permitted)) or '(none)'} (the operator's "
                "--allowed-prometheus-address, or a target EdgeCluster's spec.prometheus.address; leave "
                "it unset to use the cluster's)"
            )
    return None
