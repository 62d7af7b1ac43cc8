"""In-place switching's decisions (pure): which pods to tell, and what their answers add up to.

A cluster has switched once every pod of its edge Deployment that is not on its way out has
answered that it serves the wanted digest. A pod that refused it (the pointer or the revision did
not verify) fails the cluster at once; anything else (a pod still starting, a pod or the apiserver
not answering, S3 unreachable from the pod) is a wait, retried on the next progress tick.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_SHORT = len("sha256:") + 12  # as the planner shortens digests


@dataclass(frozen=True)
class PodAnswer:
    pod: str
    status: int  # the HTTP status through the apiserver's proxy
    outcome: str | None  # the cache's word (hack/CONTRACTS.md); None: not the cache answering
    serving: str | None
    reason: str


@dataclass(frozen=True)
class SwitchVerdict:
    done: bool  # every pod serves the digest
    refused: str | None  # "<digest> <why>" when a pod refused it
    message: str


def pods_to_notify(pods: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """(pods to tell, why each other pod is waited for). Terminating and finished pods are leaving:
    neither. A pod not Running yet will read the Secret when its container starts."""
    notify: list[str] = []
    waiting: list[str] = []
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        name = str(meta.get("name", ""))
        phase = status.get("phase")
        if meta.get("deletionTimestamp") or phase in ("Succeeded", "Failed"):
            continue
        if phase == "Running" and status.get("podIP"):
            notify.append(name)
        else:
            waiting.append(f"pod {name} is {phase or 'not scheduled'}")
    return sorted(notify), waiting


def read_answer(pod: str, status: int, body: bytes) -> PodAnswer:
    """A pod's answer; an apiserver's own error (a Status object, a proxy failure) has no outcome."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("outcome"), str):
        text = body[:200].decode("utf-8", "replace").strip()
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            text = data["message"][:200]
        return PodAnswer(pod, status, None, None, f"{status} {text}".strip())
    serving = data.get("serving")
    why = data.get("message") or data.get("reason") or ""
    return PodAnswer(
        pod, status, data["outcome"], serving if isinstance(serving, str) else None, str(why)[:300]
    )


def verdict(digest: str, pods: int, waiting: Sequence[str], answers: Sequence[PodAnswer]) -> SwitchVerdict:
    """What `pods` pods (non-leaving), `waiting` of them not asked, answered about `digest`."""
    refused = [a for a in answers if a.outcome == "refused"]
    if refused:
        first = refused[0]
        why = f"pod {first.pod}: {first.reason}"
        return SwitchVerdict(False, f"{digest} {why}", f"refused {digest[:_SHORT]}: {why}")
    serving = [a for a in answers if a.status == 200 and a.serving == digest]
    if not waiting and len(serving) == pods:
        return SwitchVerdict(True, None, f"{pods}/{pods} pods serve {digest[:_SHORT]}")
    pending = [f"pod {a.pod}: {a.reason or a.outcome}" for a in answers if a not in serving]
    why = "; ".join([*waiting, *pending][:3])
    return SwitchVerdict(False, None, f"{len(serving)}/{pods} pods serve {digest[:_SHORT]}; {why}")
