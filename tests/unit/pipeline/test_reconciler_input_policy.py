"""Inputs the operator refuses before anything moves: a signing key a Cosmo router or an edge cache
cannot use, a cache image the operator does not allow, a Secret or ConfigMap the operator may not
read. Stalled, named, and nothing applied."""

from __future__ import annotations

import dataclasses

import pytest
from pipeline_fakes import COSMO, KEY, World, configmap, secret

from edgeroll.api.routerconfig import RouterConfigStatus
from edgeroll.clusters.kube import KubeApiError
from edgeroll.clusters.objects import ObjectRef

pytestmark = pytest.mark.unit

FOREIGN = "evil.example/cache:latest"
OWN = "ghcr.io/edgeroll/edgeroll:0.1.0"


def _stalled(status: RouterConfigStatus) -> tuple[str, str]:
    cond = next(c for c in status.conditions if c.type == "Stalled")
    assert cond.status == "True"
    return cond.reason, cond.message


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (b"\xff\xfe" + b"k" * 30, "is not valid UTF-8 text"),
        (b"k" * 31, "is 31 bytes"),
        (b"k" * 32 + b"\n", "is 33 bytes"),
        ("ü".encode() + b"k" * 30, "is 31 characters in 32 bytes"),
    ],
)
async def test_an_unusable_signing_key_stalls_naming_the_secret_and_key(key: bytes, says: str) -> None:
    w = World()
    w.hub.put(secret("prod", "sign", {"key": key}))
    status = await w.reconcile()
    assert status.phase == "Stalled"
    reason, message = _stalled(status)
    assert reason == "InvalidSigningKey"
    assert message.startswith("Secret prod/sign key 'key' ") and says in message
    assert "spec.signing.secretRef" in message
    assert key.decode("utf-8", "replace").strip() not in message
    assert w.edge_writes() == 0 and w.store.counters["put"] == 0
    assert w.reasons()["InvalidSigningKey"] == 1


async def test_a_key_rotated_to_a_bad_one_moves_no_cache() -> None:
    w = World()
    good = (await w.converge()).revision
    assert good is not None
    writes, puts = w.edge_writes(), w.store.counters["put"]
    w.hub.put(secret("prod", "sign", {"key": b"\xc3\x28" * 16}))
    status = await w.reconcile(full=True)
    assert _stalled(status)[0] == "InvalidSigningKey"
    assert w.edge_writes() == writes and w.store.counters["put"] == puts
    assert all(w.template_digest(e) == good.digest for e in w.edges)
    w.hub.put(secret("prod", "sign", {"key": KEY}))  # fixed: Ready again, Stalled gone
    status = await w.converge()
    assert status.phase == "Ready" and not any(c.type == "Stalled" for c in status.conditions)


async def test_a_foreign_cache_image_stalls_and_nothing_is_applied() -> None:
    w = World()
    w.spec["cache"] = {"image": FOREIGN}
    status = await w.reconcile()
    assert status.phase == "Stalled"
    reason, message = _stalled(status)
    assert reason == "CacheImageNotAllowed"
    assert message == (
        f"spec.cache.image: {FOREIGN!r} is not an allowed cache image; allowed: {OWN} "
        "(the operator's --allowed-cache-image)"
    )
    assert w.edge_writes() == 0 and w.store.counters["put"] == 0


async def test_switching_a_running_config_to_a_foreign_image_keeps_the_edges() -> None:
    w = World()
    good = (await w.converge()).revision
    assert good is not None
    writes = w.edge_writes()
    w.update(cache={"image": FOREIGN})
    status = await w.reconcile()
    assert _stalled(status)[0] == "CacheImageNotAllowed" and status.observed_generation == w.generation
    assert w.edge_writes() == writes
    for edge in w.edges.values():
        assert edge.deployments()[0]["spec"]["template"]["spec"]["containers"][0]["image"] == OWN


@pytest.mark.parametrize("image", [OWN, "registry.internal/edgeroll:0.1.0"])
async def test_the_default_and_listed_images_roll_out(image: str) -> None:
    w = World()
    w.settings = dataclasses.replace(w.settings, allowed_cache_images=("registry.internal/edgeroll:0.1.0",))
    w.restart()
    w.spec["cache"] = {"image": image}
    status = await w.converge()
    assert status.phase == "Ready"
    for edge in w.edges.values():
        assert edge.deployments()[0]["spec"]["template"]["spec"]["containers"][0]["image"] == image


async def test_a_signing_secret_the_operator_may_not_read_stalls_naming_the_chart_value() -> None:
    w = World()
    w.hub.forbidden.add(("Secret", "prod"))  # prod is not in the chart's secretNamespaces
    status = await w.reconcile()
    assert status.phase == "Stalled"
    assert _stalled(status) == (
        "SecretForbidden",
        "the operator may not read Secret prod/sign (403): add prod to the chart's secretNamespaces "
        "(spec.signing.secretRef)",
    )
    assert w.edge_writes() == 0 and w.store.counters["put"] == 0
    w.hub.forbidden.clear()  # the administrator adds prod: the next resync proceeds
    status = await w.converge()
    assert status.phase == "Ready" and not any(c.type == "Stalled" for c in status.conditions)


async def test_a_config_map_the_operator_may_not_read_stalls_naming_the_grant() -> None:
    w = World()
    w.hub.put(configmap("prod", "cfg", {"config.json": COSMO}))
    del w.spec["config"]
    w.spec["configFrom"] = {"configMapKeyRef": {"name": "cfg", "key": "config.json"}}
    w.hub.forbidden.add(("ConfigMap", "prod"))
    status = await w.reconcile()
    assert _stalled(status) == (
        "ConfigMapForbidden",
        "the operator may not read ConfigMap prod/cfg (403): grant the operator get on configmaps in prod "
        "(spec.configFrom.configMapKeyRef)",
    )
    assert w.edge_writes() == 0 and w.store.counters["put"] == 0


async def test_other_hub_errors_are_retried_not_stalled(monkeypatch: pytest.MonkeyPatch) -> None:
    w = World()

    async def overloaded(ref: ObjectRef) -> None:
        raise KubeApiError(500, "InternalError", "etcdserver: request timed out")

    monkeypatch.setattr(w.hub, "get", overloaded)
    status = await w.reconcile()
    assert status.phase != "Stalled" and not any(c.type == "Stalled" for c in status.conditions)
    published = next(c for c in status.conditions if c.type == "Published")
    assert published.status == "False" and published.reason == "HubReadFailed"
