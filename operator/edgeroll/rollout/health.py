"""What a live edge Deployment says about the rollout in that cluster (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgeroll.api.edge_objects import ANNOTATION_DIGEST, ANNOTATION_REFUSED
from edgeroll.api.routerconfig import ClusterPhase


@dataclass(frozen=True)
class DeploymentHealth:
    generation: int
    observed_generation: int
    replicas: int  # wanted (spec)
    current_replicas: int  # status.replicas: pods of every template
    updated_replicas: int
    ready_replicas: int
    available_replicas: int
    available: bool  # the Available condition
    deadline_exceeded: bool  # Progressing=False, reason ProgressDeadlineExceeded
    # The digest every pod serves: the pod template's (Restart), or, with no digest in the template,
    # the one all pods have said they serve (InPlace, on the Deployment's own annotations).
    digest: str | None
    message: str = ""
    refused: str | None = None  # InPlace: "<digest> <why>", a pod refused that digest

    def refused_reason(self, digest: str) -> str | None:
        """Why a pod refused `digest`, if one did (InPlace)."""
        if self.refused is None:
            return None
        refused, _, why = self.refused.partition(" ")
        return (why or "refused") if refused == digest else None

    @property
    def rolled_out(self) -> bool:
        """The controller has seen the spec and every pod runs it, available."""
        return (
            self.observed_generation >= self.generation
            and self.updated_replicas == self.replicas
            and self.current_replicas == self.replicas
            and self.available_replicas == self.replicas
            and (self.available or self.replicas == 0)
        )


def read_health(deployment: Mapping[str, Any]) -> DeploymentHealth:
    meta = deployment.get("metadata", {})
    spec = deployment.get("spec", {})
    status = deployment.get("status", {}) or {}
    annotations = spec.get("template", {}).get("metadata", {}).get("annotations", {}) or {}
    own = meta.get("annotations") or {}
    conditions = {c.get("type"): c for c in status.get("conditions", []) or []}
    available = conditions.get("Available", {}).get("status") == "True"
    progressing = conditions.get("Progressing", {})
    deadline = (
        progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded"
    )
    return DeploymentHealth(
        generation=int(meta.get("generation", 0)),
        observed_generation=int(status.get("observedGeneration", 0)),
        replicas=int(spec.get("replicas", 1)),
        current_replicas=int(status.get("replicas", 0)),
        updated_replicas=int(status.get("updatedReplicas", 0)),
        ready_replicas=int(status.get("readyReplicas", 0)),
        available_replicas=int(status.get("availableReplicas", 0)),
        available=available,
        deadline_exceeded=deadline,
        digest=annotations.get(ANNOTATION_DIGEST) or own.get(ANNOTATION_DIGEST),
        message=str(progressing.get("message", "")) if deadline else "",
        refused=own.get(ANNOTATION_REFUSED),
    )


def phase_for(health: DeploymentHealth | None, desired_digest: str) -> tuple[ClusterPhase, str]:
    """The cluster's phase for a wanted digest, and a message saying why."""
    if health is None:
        return ClusterPhase.PENDING, "edge cache not deployed yet"
    if health.digest != desired_digest:
        why = health.refused_reason(desired_digest)
        if why is not None:
            return ClusterPhase.FAILED, f"edge cache refused {desired_digest[:19]}: {why}"
        return ClusterPhase.PROGRESSING, f"edge cache runs {health.digest or 'no digest'}"
    if health.deadline_exceeded:
        return ClusterPhase.FAILED, f"rollout stuck: {health.message or 'ProgressDeadlineExceeded'}"
    if health.rolled_out:
        return ClusterPhase.READY, f"{health.available_replicas}/{health.replicas} replicas available"
    if health.observed_generation < health.generation:
        return ClusterPhase.PROGRESSING, "waiting for the Deployment controller"
    return (
        ClusterPhase.PROGRESSING,
        f"{health.updated_replicas}/{health.replicas} updated, {health.available_replicas} available",
    )
