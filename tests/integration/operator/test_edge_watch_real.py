"""The shared watch of edge Deployments against a real edge apiserver: list, then events from the list's
resourceVersion; only Deployments with edgeroll's label are held; each change wakes its RouterConfig."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from tests.e2e.operator.operator_e2e_kit import kubeconfig_text

from edgeroll.api.edgecluster import EdgeClusterSpec
from edgeroll.clusters.edge_watch import EdgeWatches
from edgeroll.clusters.kube import KubeClient
from edgeroll.clusters.objects import ObjectRef
from edgeroll.clusters.registry import EdgeClusterInfo
from edgeroll.lab import Lab

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def deployment(ns: str, name: str, rc: str, digest: str, managed: bool = True) -> dict[str, Any]:
    labels = {"app": name, "edgeroll.io/routerconfig-namespace": "team", "edgeroll.io/routerconfig-name": rc}
    if managed:
        labels["app.kubernetes.io/managed-by"] = "edgeroll"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"edgeroll.io/digest": digest}},
                "spec": {"containers": [{"name": "c", "image": "localhost:5000/none:0"}]},
            },
        },
    }


async def until(check: Callable[[], bool], timeout: float = 20.0) -> float:
    """Seconds until `check()` held; fails past `timeout`."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "condition not met in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def digest_of(obj: dict[str, Any] | None) -> str | None:
    return None if obj is None else obj["spec"]["template"]["metadata"]["annotations"]["edgeroll.io/digest"]


async def test_the_watch_holds_our_deployments_and_wakes_their_owner_on_each_change(lab: Lab) -> None:
    cfg = yaml.safe_load(kubeconfig_text(lab.edge_kubeconfigs["edge-us"]))
    api = await KubeClient.from_kubeconfig_dict(cfg, 5.0, "edge-us")
    ns = f"it-watch-{uuid.uuid4().hex[:8]}"
    woken: list[tuple[str, str]] = []
    watches = EdgeWatches(lambda n, name: woken.append((n, name)))
    spec = {"kubeconfigSecretRef": {"namespace": "hub", "name": "x", "key": "k"}, "namespace": ns}
    info = EdgeClusterInfo("edge-us", {}, EdgeClusterSpec.model_validate(spec))
    try:
        await api.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        await api.apply(deployment(ns, "listed", "one", "sha256:a"))
        watches.ensure(info, api)
        await until(lambda: watches.lookup("edge-us", ns, "listed") is not None)
        assert ("team", "one") in woken  # the list wakes what it found

        await api.apply(deployment(ns, "listed", "one", "sha256:b"))
        await until(lambda: digest_of(watches.lookup("edge-us", ns, "listed")) == "sha256:b")
        assert woken.count(("team", "one")) >= 2

        await api.apply(deployment(ns, "created", "two", "sha256:c"))
        await until(lambda: ("team", "two") in woken)
        assert digest_of(watches.lookup("edge-us", ns, "created")) == "sha256:c"

        await api.apply(deployment(ns, "foreign", "three", "sha256:d", managed=False))
        await api.apply(deployment(ns, "created", "two", "sha256:e"))  # an event after the foreign one
        await until(lambda: digest_of(watches.lookup("edge-us", ns, "created")) == "sha256:e")
        assert watches.lookup("edge-us", ns, "foreign") is None and ("team", "three") not in woken

        await api.delete(ObjectRef("apps/v1", "Deployment", ns, "listed"))
        await until(lambda: watches.lookup("edge-us", ns, "listed") is None)
    finally:
        await watches.close()
        await api.delete(ObjectRef("v1", "Namespace", None, ns))
        await api.close()
