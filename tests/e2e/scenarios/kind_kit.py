"""Helpers for the scenarios that only a real data plane can show (kind provider only).

`run_client(fleet, edge, rc)` runs kind_client.py as a pod in an edge cluster, next to where
routers run, against the edge cache's Service DNS name; `cache_pods` reads the real pods of an
edge cache Deployment, `operator_pods` those of the operator's.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from scenario_kit import Fleet
from tests.e2e.providers.kind_provider import InClusterOperator, KindProvider
from tests.polling import wait_until

from edgeroll.rollout.resources import edge_name

CLIENT = Path(__file__).with_name("kind_client.py")
CACHE_PORT = 8080


def kind(fleet: Fleet) -> KindProvider:
    assert isinstance(fleet.provider, KindProvider), "a kind-only scenario ran on another provider"
    return fleet.provider


def operator(fleet: Fleet) -> InClusterOperator:
    """The chart's operator Deployment, as the kind provider installed it."""
    handle = fleet.e2e.operator
    assert isinstance(handle, InClusterOperator), "a kind-only scenario ran on another provider"
    return handle


def operator_pods(fleet: Fleet) -> list[dict[str, Any]]:
    """The operator's pods, terminating ones left out."""
    return [p for p in operator(fleet).pods() if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def restarts(pod: dict[str, Any]) -> int:
    return sum(int(c.get("restartCount", 0)) for c in pod["status"].get("containerStatuses", []))


def cache_pods(fleet: Fleet, edge: str, rc: str) -> list[dict[str, Any]]:
    """The edge cache pods of `rc` in `edge`, terminating ones left out."""
    clusters, ns = kind(fleet).clusters, fleet.scope.ns
    dep = clusters.get_json(edge, "-n", ns, "deployment", edge_name(ns, rc))
    selector = ",".join(f"{k}={v}" for k, v in dep["spec"]["selector"]["matchLabels"].items())
    pods = clusters.get_json(edge, "-n", ns, "pods", "-l", selector)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def pod_digest(pod: dict[str, Any]) -> str | None:
    value = pod["metadata"].get("annotations", {}).get("edgeroll.io/digest")
    return str(value) if value else None


def run_client(fleet: Fleet, edge: str, rc: str, timeout: float = 90) -> dict[str, Any]:
    """kind_client.py as a pod in `edge`: what a router there gets through the cache's Service."""
    provider, ns = kind(fleet), fleet.scope.ns
    service = edge_name(ns, rc)
    pod = f"client-{uuid.uuid4().hex[:6]}"
    cosmo = fleet.e2e.get(rc)["spec"].get("cosmo") or {}
    env = {
        "CACHE_URL": f"http://{service}.{ns}.svc:{CACHE_PORT}",
        "CONFIG_NAMESPACE": ns,
        "CONFIG_NAME": rc,
        "COSMO_ORG": cosmo.get("organizationId", ""),
        "COSMO_GRAPH": cosmo.get("federatedGraphId", ""),
    }
    manifest = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": pod, "namespace": ns},
                "data": {"client.py": CLIENT.read_text()},
            },
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod, "namespace": ns, "labels": {"app": "e2e-client"}},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "name": "client",
                            "image": provider.setup.image,
                            "imagePullPolicy": "Never",
                            "command": ["python3", "/client/client.py"],
                            "env": [
                                *({"name": k, "value": v} for k, v in env.items()),
                                {  # the key the edge cache holds: the one a router's graph.sign_key is
                                    "name": "SIGNING_KEY",
                                    "valueFrom": {"secretKeyRef": {"name": service, "key": "signing-key"}},
                                },
                            ],
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [{"name": "client", "mountPath": "/client"}],
                        }
                    ],
                    "volumes": [{"name": "client", "configMap": {"name": pod}}],
                },
            },
        ],
    }
    clusters = provider.clusters
    clusters.kubectl(edge, "apply", "-f", "-", input=json.dumps(manifest))
    try:

        def finished() -> str | None:
            phase = clusters.get_json(edge, "-n", ns, "pod", pod)["status"].get("phase")
            return str(phase) if phase in ("Succeeded", "Failed") else None

        phase = wait_until(finished, timeout=timeout, message=f"the client pod in {edge}")
        logs = clusters.kubectl(edge, "-n", ns, "logs", pod).stdout
        assert phase == "Succeeded", f"the client pod in {edge} failed:\n{logs}"
        return dict(json.loads(logs.strip().splitlines()[-1]))
    finally:
        clusters.kubectl(edge, "-n", ns, "delete", "pod,configmap", pod, "--wait=false", check=False)
