"""The kube adapter against a real edge apiserver: server-side apply, drift, unreachable detection."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import yaml
from tests.e2e.operator.operator_e2e_kit import kubeconfig_text

from edgeroll.clusters.kube import ClusterUnreachable, KubeClient
from edgeroll.clusters.objects import ObjectRef
from edgeroll.lab import Lab

pytestmark = pytest.mark.integration


async def client_for(path: Path, timeout: float = 5.0) -> KubeClient:
    return await KubeClient.from_kubeconfig_dict(yaml.safe_load(kubeconfig_text(path)), timeout, "edge")


async def test_server_side_apply_get_and_delete(lab: Lab) -> None:
    api = await client_for(lab.edge_kubeconfigs["edge-us"])
    ns = f"it-{uuid.uuid4().hex[:8]}"
    try:
        assert (await api.version()).startswith("v1.")
        await api.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        cm = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": ns},
            "data": {"a": "1"},
        }
        live = await api.apply(cm)
        fields = live["metadata"]["managedFields"]
        assert [f["manager"] for f in fields] == ["edgeroll"] and fields[0]["operation"] == "Apply"
        rv = live["metadata"]["resourceVersion"]
        assert (await api.apply(cm))["metadata"]["resourceVersion"] == rv  # identical apply is no write
        ref = ObjectRef("v1", "ConfigMap", ns, "c")
        assert (await api.get(ref))["data"] == {"a": "1"}  # type: ignore[index]
        assert await api.delete(ref) is True
        assert await api.get(ref) is None and await api.delete(ref) is False
    finally:
        await api.delete(ObjectRef("v1", "Namespace", None, ns))
        await api.close()


async def test_unreachable_and_refused_credentials_fail_fast(lab: Lab) -> None:
    cfg = yaml.safe_load(kubeconfig_text(lab.edge_kubeconfigs["edge-us"]))
    cfg["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"  # nothing listens
    dead = await KubeClient.from_kubeconfig_dict(cfg, 2.0, "dead")
    started = time.monotonic()
    with pytest.raises(ClusterUnreachable):
        await dead.version()
    assert time.monotonic() - started < 5
    await dead.close()

    cfg = yaml.safe_load(kubeconfig_text(lab.edge_kubeconfigs["edge-us"]))
    user = cfg["users"][0]["user"]
    for k in ("client-certificate", "client-key", "client-certificate-data", "client-key-data"):
        user.pop(k, None)
    user["token"] = "not-a-token"
    refused = await KubeClient.from_kubeconfig_dict(cfg, 5.0, "refused")
    with pytest.raises(ClusterUnreachable, match="401"):
        await refused.get(ObjectRef("v1", "Namespace", None, "default"))
    await refused.close()


async def test_garbage_kubeconfig_is_refused_without_echoing_it() -> None:
    with pytest.raises(ClusterUnreachable) as err:
        await KubeClient.from_kubeconfig_dict({"clusters": "nope", "users": "secret-token-here"}, 1.0)
    assert "secret-token-here" not in str(err.value)
