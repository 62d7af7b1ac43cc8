"""Cluster registry: clients cached per EdgeCluster, rebuilt when the Secret changes, probes never leak."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from edgeroll.api.edgecluster import EdgeClusterSpec, EdgeClusterStatus
from edgeroll.clusters.kube import ClusterUnreachable
from edgeroll.clusters.objects import ObjectRef
from edgeroll.clusters.registry import ClusterRegistry, EdgeClusterInfo, ProbeResult
from edgeroll.clusters.status import edgecluster_status

pytestmark = pytest.mark.unit

TOKEN = "very-secret-token"


class Hub:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.rv = 0

    def set_kubeconfig(self, ns: str, name: str, text: str) -> None:
        self.rv += 1
        self.secrets[(ns, name)] = {
            "metadata": {"resourceVersion": str(self.rv)},
            "data": {"kubeconfig": base64.b64encode(text.encode()).decode()},
        }

    async def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        return self.secrets.get((ref.namespace or "", ref.name))


class Edge:
    def __init__(self, server: str, up: bool = True) -> None:
        self.server, self.up, self.closed, self.probes = server, up, False, 0

    async def version(self) -> str:
        self.probes += 1
        if not self.up:
            raise ClusterUnreachable("edge unreachable: timed out")
        return "v1.34.4"

    async def close(self) -> None:
        self.closed = True


def kubeconfig(server: str) -> str:
    return yaml.safe_dump(
        {
            "clusters": [{"name": "c", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": {"token": TOKEN}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
    )


def info(name: str = "edge-1", paused: bool = False) -> EdgeClusterInfo:
    spec = EdgeClusterSpec.model_validate(
        {"kubeconfigSecretRef": {"namespace": "ns", "name": name, "key": "kubeconfig"}, "paused": paused}
    )
    return EdgeClusterInfo(name, {"tier": "edge"}, spec)


def registry(hub: Hub, built: list[Edge]) -> ClusterRegistry:
    async def factory(cfg: Mapping[str, Any], timeout: float, name: str) -> Edge:
        edge = Edge(cfg["clusters"][0]["cluster"]["server"])
        built.append(edge)
        return edge

    return ClusterRegistry(hub, timeout=1.0, factory=factory)  # type: ignore[arg-type]


async def test_client_is_cached_and_rebuilt_when_the_secret_changes() -> None:
    hub, built = Hub(), []  # type: ignore[var-annotated]
    hub.set_kubeconfig("ns", "edge-1", kubeconfig("https://127.0.0.1:6443"))
    reg = registry(hub, built)
    a = await reg.client(info())
    assert await reg.client(info()) is a
    assert (await reg.probe(info())).reachable and len(built) == 1  # same resourceVersion: same client
    hub.set_kubeconfig("ns", "edge-1", kubeconfig("https://127.0.0.1:7443"))
    result = await reg.probe(info())
    assert result.reachable and len(built) == 2 and built[0].closed
    assert built[1].server == "https://127.0.0.1:7443"


@pytest.mark.parametrize(
    ("setup", "expect"),
    [
        (lambda hub: None, "not found"),
        (lambda hub: hub.set_kubeconfig("ns", "edge-1", "{not yaml: ["), "not a YAML kubeconfig"),
        (lambda hub: hub.set_kubeconfig("ns", "edge-1", "just a string"), "not a kubeconfig"),
    ],
)
async def test_broken_kubeconfigs_are_unreachable_and_named_not_shown(setup: Any, expect: str) -> None:
    hub = Hub()
    setup(hub)
    reg = registry(hub, [])
    result = await reg.probe(info())
    assert not result.reachable and expect in result.message and "ns/edge-1" in result.message
    with pytest.raises(ClusterUnreachable):
        await reg.client(info())


async def test_probe_failure_is_recorded_without_secrets() -> None:
    hub, built = Hub(), []  # type: ignore[var-annotated]
    hub.set_kubeconfig("ns", "edge-1", kubeconfig("https://127.0.0.1:6443"))
    reg = registry(hub, built)
    await reg.client(info())
    built[0].up = False
    result = await reg.probe(info())
    assert not result.reachable and TOKEN not in result.message
    assert reg.last_probe("edge-1") == result
    await reg.forget("edge-1")
    assert reg.last_probe("edge-1") is None and built[0].closed


def test_edgecluster_status_writes_probe_time_only_on_change_or_heartbeat() -> None:
    up = ProbeResult(True, "v1.34.4", "reachable, v1.34.4", 0.0)
    down = ProbeResult(False, None, "timed out", 0.0)
    s1 = edgecluster_status(EdgeClusterStatus(), up, paused=False, generation=1, now="t1", heartbeat=False)
    assert s1.last_probe_time == "t1" and s1.server_version == "v1.34.4"
    assert {c.type: c.status for c in s1.conditions} == {"Ready": "True", "Reachable": "True"}
    s2 = edgecluster_status(s1, up, paused=False, generation=1, now="t2", heartbeat=False)
    assert s2 == s1  # nothing new: no write
    s3 = edgecluster_status(s1, up, paused=False, generation=1, now="t3", heartbeat=True)
    assert s3.last_probe_time == "t3"
    s4 = edgecluster_status(s1, down, paused=False, generation=1, now="t4", heartbeat=False)
    assert {c.type: c.status for c in s4.conditions} == {"Ready": "False", "Reachable": "False"}
    assert s4.last_probe_time == "t4" and s4.server_version == "v1.34.4"
    s5 = edgecluster_status(s1, up, paused=True, generation=2, now="t5", heartbeat=False)
    assert next(c for c in s5.conditions if c.type == "Ready").reason == "Paused"


class Writer:
    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    async def patch_edgecluster_status(self, name: str, patch: Mapping[str, Any]) -> None:
        self.patches.append(dict(patch))


async def test_probe_loops_write_on_change_only_and_stop_when_forgotten() -> None:
    import asyncio

    from edgeroll.clusters.prober import EdgeClusterProber, ProbeLoops
    from edgeroll.settings import EdgeS3Credentials, OperatorSettings, S3Settings

    hub, built = Hub(), []  # type: ignore[var-annotated]
    hub.set_kubeconfig("ns", "edge-1", kubeconfig("https://127.0.0.1:6443"))
    settings = OperatorSettings(S3Settings("b"), EdgeS3Credentials("i", "s"), probe_seconds=0.05)
    writer, changes = Writer(), []
    prober = EdgeClusterProber(registry(hub, built), writer, settings, now=lambda: "t")
    loops = ProbeLoops(prober, lambda: changes.append(1))
    loops.observe(info(), 1, {})
    for _ in range(100):
        if len(writer.patches) == 1 and prober.registry.last_probe("edge-1") is not None:
            break
        await asyncio.sleep(0.01)
    seen = built[0].probes
    for _ in range(200):  # three more probes that find nothing new
        if built[0].probes >= seen + 3:
            break
        await asyncio.sleep(0.01)
    assert built[0].probes >= seen + 3
    assert len(writer.patches) == 1 and changes == [1]
    built[0].up = False
    for _ in range(100):
        if len(writer.patches) == 2:
            break
        await asyncio.sleep(0.01)
    assert writer.patches[1]["conditions"][0]["status"] == "False" and changes == [1, 1]
    await loops.forget("edge-1")
    assert built[0].closed and prober.registry.last_probe("edge-1") is None
