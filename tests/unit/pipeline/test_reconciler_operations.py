"""Persisted operations through the reconcile: read from their ConfigMap, validated, published in one
revision with the config (so an edit to the operations alone rolls out, and a bad one moves nothing),
and refused with the ConfigMap key that is wrong."""

from __future__ import annotations

import hashlib
import json

import pytest
from pipeline_fakes import World, configmap

from edgeroll.api.routerconfig import RouterConfigStatus
from edgeroll.render.operations import unbundle

pytestmark = pytest.mark.unit

HELLO = "query Hello { hello }"
HASH = hashlib.sha256(HELLO.encode()).hexdigest()
REF = {"configMapRef": {"name": "ops"}}


def _stalled(status: RouterConfigStatus) -> tuple[str, str]:
    cond = next(c for c in status.conditions if c.type == "Stalled")
    assert cond.status == "True"
    return cond.reason, cond.message


async def test_operations_ride_in_the_revision_and_an_edit_to_them_alone_rolls_out() -> None:
    w = World()
    w.hub.put(configmap("prod", "ops", {f"web.{HASH}.graphql": HELLO}))
    w.update(persistedOperations=REF)
    first = (await w.converge()).revision
    assert first is not None
    _, operations = unbundle(w.store.objects[first.key][0])
    assert operations is not None and operations.by_client == {"web": {HASH: HELLO}}
    assert all(w.template_digest(e) == first.digest for e in w.edges)

    other = "query Other { other }"
    w.hub.put(configmap("prod", "ops", {f"web.{HASH}.graphql": HELLO, "manifest.json": _manifest(other)}))
    second = (await w.converge()).revision  # same generation: the resync sees it
    assert second is not None and second.digest != first.digest
    assert all(w.template_digest(e) == second.digest for e in w.edges)


def _manifest(document: str) -> str:
    sha = hashlib.sha256(document.encode()).hexdigest()
    return json.dumps({"version": 1, "operations": {sha: document}})


async def test_a_missing_operations_configmap_stalls_naming_the_field() -> None:
    w = World()
    w.update(persistedOperations=REF)
    status = await w.reconcile()
    assert _stalled(status) == (
        "ConfigMapNotFound",
        "ConfigMap prod/ops: ConfigMap not found (spec.persistedOperations.configMapRef)",
    )
    assert w.edge_writes() == 0 and w.store.counters["put"] == 0


async def test_an_operation_filed_under_a_wrong_hash_moves_nothing() -> None:
    w = World()
    good = (await w.converge()).revision
    writes, puts = w.edge_writes(), w.store.counters["put"]
    w.hub.put(configmap("prod", "ops", {f"web.{'0' * 64}.graphql": HELLO}))
    w.update(persistedOperations=REF)
    status = await w.reconcile()
    reason, message = _stalled(status)
    assert reason == "InvalidPersistedOperations"
    assert f"ConfigMap prod/ops key 'web.{'0' * 64}.graphql'" in message and HASH in message
    assert w.edge_writes() == writes and w.store.counters["put"] == puts
    assert good is not None and all(w.template_digest(e) == good.digest for e in w.edges)
