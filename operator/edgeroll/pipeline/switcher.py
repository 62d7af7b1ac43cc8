"""In-place switching's I/O: the revision pointer to S3, and every cache pod told to re-read it.

The pods are reached through their edge apiserver's proxy (`pods/<pod>:<port>/proxy/-/revision`,
which needs `pods/proxy` create there), so nothing new has to be exposed or routed to the hub.
The decisions (which pods, what their answers mean) are `rollout.inplace`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from edgeroll.api.edge_objects import ANNOTATION_DIGEST, ANNOTATION_REFUSED, ANNOTATION_WANTED
from edgeroll.clusters.kube import ClusterUnreachable, KubeApi
from edgeroll.pipeline.executor import ensure_edge
from edgeroll.publish.history import object_prefix
from edgeroll.publish.store import RevisionStore
from edgeroll.render.pointer import SWITCH_PATH, RevisionPointer, encode_pointer, pointer_key, sign_pointer
from edgeroll.rollout.health import read_health
from edgeroll.rollout.inplace import PodAnswer, SwitchVerdict, pods_to_notify, read_answer, verdict
from edgeroll.rollout.ownership import Owner
from edgeroll.rollout.resources import EdgeCacheParams, deployment, selector_labels

# A pod's answer waits for its S3 fetch and verification (the cache bounds a switch at about 10 s).
SWITCH_TIMEOUT_SECONDS = 15.0


def revision_pointer_key(prefix: str, namespace: str, name: str, cluster: str) -> str:
    return pointer_key(object_prefix(prefix, namespace, name), cluster)


async def write_pointer(store: RevisionStore, key: str, pointer: RevisionPointer, signing_key: bytes) -> None:
    """Point the cluster's caches at `pointer.digest` (raises PublishError)."""
    body = encode_pointer(pointer)
    await store.put(key, body, sign_pointer(signing_key, body))


async def tell_pods(
    api: KubeApi, namespace: str, selector: Mapping[str, str], port: int, digest: str
) -> SwitchVerdict:
    """Ask every running pod of the Deployment to switch to the pointer's revision, all at once."""
    labels = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    pods, _ = await api.list_objects(f"/api/v1/namespaces/{namespace}/pods", [("labelSelector", labels)])
    notify, waiting = pods_to_notify(pods)
    answers = await asyncio.gather(*(_ask(api, namespace, pod, port) for pod in notify))
    return verdict(digest, len(notify) + len(waiting), waiting, answers)


async def _ask(api: KubeApi, namespace: str, pod: str, port: int) -> PodAnswer:
    # A pod's proxy takes a port number (only a Service's resolves names).
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy{SWITCH_PATH}"
    try:
        status, body = await api.proxy_post(path, SWITCH_TIMEOUT_SECONDS)
    except ClusterUnreachable as exc:  # this pod's answer is late; the cluster's reachability is the prober's
        return PodAnswer(pod, 0, None, None, str(exc))
    return read_answer(pod, status, body)


def switch_params(p: EdgeCacheParams, live: Mapping[str, Any] | None) -> EdgeCacheParams:
    """`p` with what the live Deployment says of the switch to `p.digest`: the digest all its pods
    serve and a refusal, both as recorded for this switch. A new switch (the wanted digest moves)
    forgets both: some pods may have taken the last one before another refused it, so "all serve
    X" holds again only once every pod has said so, and a retry asks anew."""
    own = ((live or {}).get("metadata") or {}).get("annotations") or {}
    if own.get(ANNOTATION_WANTED) != p.digest:
        return replace(p, served_digest=None, refused=None)
    refused = own.get(ANNOTATION_REFUSED)
    keep = refused if refused and refused.split(" ", 1)[0] == p.digest else None
    return replace(p, served_digest=own.get(ANNOTATION_DIGEST), refused=keep)


def pointer_moves(p: EdgeCacheParams, live: Mapping[str, Any] | None) -> bool:
    """Whether the pointer must be written before the objects: the wanted digest changes here."""
    own = ((live or {}).get("metadata") or {}).get("annotations") or {}
    return own.get(ANNOTATION_WANTED) != p.digest


async def settle(
    api: KubeApi, p: EdgeCacheParams, live: dict[str, Any], owner: Owner
) -> tuple[dict[str, Any], SwitchVerdict | None]:
    """Once the objects name `p.digest`: tell the pods, and record on the Deployment that they all
    serve it, or that one refused it. Returns the Deployment and the pods' verdict (None: nothing
    to ask, the switch is done or refused already)."""
    health = read_health(live)
    if health.digest == p.digest or health.refused_reason(p.digest) is not None:
        return live, None
    found = await tell_pods(api, p.namespace, selector_labels(p), p.port, p.digest)
    if found.done:
        recorded = replace(p, served_digest=p.digest, refused=None)
    elif found.refused is not None:
        recorded = replace(p, refused=found.refused)
    else:
        return live, found
    result = await ensure_edge(
        api, [deployment(recorded)], live_deployment=live, check_all=False, owner=owner
    )
    return result.deployment, found
