"""Edge credentials per namespace: a Secret `edgeroll-edge-s3` in a RouterConfig's namespace gives that
namespace's caches their own S3 key; a malformed one stalls the RouterConfig, named, and moves nothing;
no key at all (workload identity) puts none in the edge Secret or the env."""

from __future__ import annotations

import base64
import copy
import dataclasses
from typing import Any

import pytest
from pipeline_fakes import KEY, World, secret

from edgeroll.api.routerconfig import RouterConfigStatus
from edgeroll.clusters.kube import KubeApiError
from edgeroll.clusters.objects import ObjectRef
from edgeroll.pipeline.reconciler import RouterConfigObject
from edgeroll.rollout.resources import NAMESPACE_EDGE_S3_SECRET, edge_name
from edgeroll.settings import EdgeS3Credentials

pytestmark = pytest.mark.unit

TENANT_ID, TENANT_SECRET = "tenant-prod-id", "tenant-prod-secret"
KEYS = {"aws-access-key-id", "aws-secret-access-key"}


def _edge_secret(w: World, rc_namespace: str) -> dict[str, str]:
    """The decoded data of the edge Secret of `rc_namespace/graph` in edge-eu."""
    name = edge_name(rc_namespace, "graph")
    found = [o for (kind, _, n), o in w.edges["edge-eu"].objects.items() if kind == "Secret" and n == name]
    assert len(found) == 1, f"no edge Secret {name}"
    return {k: base64.b64decode(v).decode() for k, v in found[0]["data"].items()}


def _container_env(w: World) -> dict[str, Any]:
    dep = w.edges["edge-eu"].deployments()[0]
    return {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def _stalled(status: RouterConfigStatus) -> tuple[str, str]:
    cond = next(c for c in status.conditions if c.type == "Stalled")
    assert cond.status == "True"
    return cond.reason, cond.message


async def _reconcile_other_namespace(w: World, namespace: str) -> None:
    """A RouterConfig `graph` in another namespace, reconciled once (its status is not stored)."""
    w.hub.put(secret(namespace, "sign", {"key": KEY}))
    obj = RouterConfigObject(namespace, "graph", 1, copy.deepcopy(w.spec), {})
    result = await w.reconciler.reconcile(obj, w.clusters, RouterConfigStatus())
    assert not any(c.type == "Stalled" and c.status == "True" for c in result.status.conditions)


async def test_the_namespace_secret_replaces_the_global_key_for_that_namespace_only() -> None:
    w = World()
    w.hub.put(
        secret(
            "prod",
            NAMESPACE_EDGE_S3_SECRET,
            {"aws-access-key-id": TENANT_ID, "aws-secret-access-key": TENANT_SECRET + "\n"},
        )
    )
    status = await w.converge()
    assert status.phase == "Ready"
    data = _edge_secret(w, "prod")
    assert (data["aws-access-key-id"], data["aws-secret-access-key"]) == (TENANT_ID, TENANT_SECRET)
    await _reconcile_other_namespace(w, "staging")
    other = _edge_secret(w, "staging")
    assert (other["aws-access-key-id"], other["aws-secret-access-key"]) == ("ro-id", "ro-secret")
    # The values reach neither events nor status.
    assert not any(TENANT_SECRET in e.message or TENANT_ID in e.message for e in w.events)
    assert TENANT_SECRET not in str(w.statuses.status) and TENANT_ID not in str(w.statuses.status)


async def test_the_namespace_secret_is_read_once_per_reconcile() -> None:
    w = World()
    gets: list[str] = []
    real_get = w.hub.get

    async def counting_get(ref: ObjectRef) -> dict[str, Any] | None:
        gets.append(ref.name)
        return await real_get(ref)

    w.hub.get = counting_get  # type: ignore[method-assign]
    await w.reconcile()
    assert gets.count(NAMESPACE_EDGE_S3_SECRET) == 1  # three target clusters, one read


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"aws-access-key-id": TENANT_ID}, "has no key 'aws-secret-access-key'"),
        ({"aws-secret-access-key": TENANT_SECRET}, "has no key 'aws-access-key-id'"),
        (
            {"aws-access-key-id": "", "aws-secret-access-key": TENANT_SECRET},
            "key 'aws-access-key-id' is empty",
        ),
        ({"aws-access-key-id": TENANT_ID, "aws-secret-access-key": "two words"}, "not a single-word key"),
        ({"aws-access-key-id": TENANT_ID, "aws-secret-access-key": b"\xff\xfe"}, "is not base64 UTF-8 text"),
    ],
)
async def test_a_malformed_namespace_secret_stalls_naming_secret_and_key(
    data: dict[str, str | bytes], says: str
) -> None:
    w = World()
    w.hub.put(secret("prod", NAMESPACE_EDGE_S3_SECRET, data))
    status = await w.reconcile()
    assert status.phase == "Stalled"
    reason, message = _stalled(status)
    assert reason == "InvalidEdgeCredentials"
    assert message.startswith(f"Secret prod/{NAMESPACE_EDGE_S3_SECRET} ") and says in message
    assert TENANT_SECRET not in message and "two words" not in message
    assert w.edge_writes() == 0 and w.store.counters["put"] == 0
    assert not any(TENANT_SECRET in e.message for e in w.events)


async def test_a_value_that_is_not_base64_stalls() -> None:
    w = World()
    bad = secret("prod", NAMESPACE_EDGE_S3_SECRET, {"aws-access-key-id": TENANT_ID})
    bad["data"]["aws-secret-access-key"] = "not base64!"
    w.hub.put(bad)
    reason, message = _stalled(await w.reconcile())
    assert reason == "InvalidEdgeCredentials" and "key 'aws-secret-access-key' is not base64" in message
    assert w.edge_writes() == 0


async def test_a_malformed_secret_added_later_keeps_the_running_caches() -> None:
    w = World()
    assert (await w.converge()).phase == "Ready"
    writes = w.edge_writes()
    w.hub.put(secret("prod", NAMESPACE_EDGE_S3_SECRET, {"aws-access-key-id": TENANT_ID}))
    assert _stalled(await w.reconcile(full=True))[0] == "InvalidEdgeCredentials"
    assert w.edge_writes() == writes
    assert _edge_secret(w, "prod")["aws-access-key-id"] == "ro-id"


async def test_a_forbidden_namespace_secret_is_not_taken_for_absent() -> None:
    """Falling back to the global key would widen what the tenant's caches can read: stall instead."""
    w = World()
    real_get = w.hub.get

    async def get(ref: ObjectRef) -> dict[str, Any] | None:
        if ref.name == NAMESPACE_EDGE_S3_SECRET:
            raise KubeApiError(403, "Forbidden", f'secrets "{ref.name}" is forbidden')
        return await real_get(ref)

    w.hub.get = get  # type: ignore[method-assign]
    status = await w.reconcile()
    assert status.phase == "Stalled"
    reason, message = _stalled(status)
    assert reason == "SecretForbidden"
    assert message.startswith(f"the operator may not read Secret prod/{NAMESPACE_EDGE_S3_SECRET} (403)")
    assert w.edge_writes() == 0 and w.store.counters["put"] == 0


async def test_no_static_key_puts_no_key_in_the_edge_secret_or_env() -> None:
    w = World()
    w.settings = dataclasses.replace(
        w.settings, edge_s3=EdgeS3Credentials(endpoint="http://127.0.0.1:8333", region="us-east-1")
    )
    w.restart()
    assert (await w.converge()).phase == "Ready"
    assert set(_edge_secret(w, "prod")) == {"signing-key"}
    env = _container_env(w)
    assert "AWS_ACCESS_KEY_ID" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    # A namespace with its own key gets it even then.
    w.hub.put(
        secret(
            "prod",
            NAMESPACE_EDGE_S3_SECRET,
            {"aws-access-key-id": TENANT_ID, "aws-secret-access-key": TENANT_SECRET},
        )
    )
    await w.reconcile(full=True)
    assert set(_edge_secret(w, "prod")) >= KEYS
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(_container_env(w))


async def test_moving_to_workload_identity_drops_the_key_from_running_edge_secrets() -> None:
    """An edge Secret written with a key (e.g. the operator's own, before this release) must not keep it."""
    w = World()
    assert (await w.converge()).phase == "Ready"
    assert set(_edge_secret(w, "prod")) >= KEYS
    w.settings = dataclasses.replace(w.settings, edge_s3=EdgeS3Credentials(endpoint="http://127.0.0.1:8333"))
    w.restart()
    await w.reconcile(full=True)
    assert set(_edge_secret(w, "prod")) == {"signing-key"}
    assert "AWS_ACCESS_KEY_ID" not in _container_env(w)
    writes = w.edge_writes()
    await w.reconcile(full=True)  # settled: no apply on every resync
    assert w.edge_writes() == writes
