"""A RouterConfig follows edits of the ConfigMaps it reads: the index and wake decision (pure), the
kopf wiring, and the loop's full reconcile on a wake, which writes nothing when the render is unchanged."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import kopf
import pytest
from pipeline_fakes import COSMO, World, configmap

from edgeroll.handlers import configmap_changed, routerconfig_configmaps
from edgeroll.pipeline.configmap_refs import index_entries, referenced_configmaps, routerconfigs_to_wake

pytestmark = pytest.mark.unit

CONFIG_FROM = {"configMapKeyRef": {"name": "cfg", "key": "config.json"}}
OPERATIONS = {"configMapRef": {"name": "ops"}}


def test_the_spec_names_its_configmaps_even_when_it_does_not_validate() -> None:
    assert referenced_configmaps({"configFrom": CONFIG_FROM, "persistedOperations": OPERATIONS}) == {
        "cfg",
        "ops",
    }
    assert referenced_configmaps({"config": {"a": 1}}) == set()
    assert referenced_configmaps({"configFrom": {"configMapKeyRef": {"key": "k"}}}) == set()
    assert referenced_configmaps({"configFrom": "cfg", "persistedOperations": {"configMapRef": 3}}) == set()


def test_index_entries_are_in_the_routerconfigs_own_namespace() -> None:
    spec = {"configFrom": CONFIG_FROM, "persistedOperations": {"configMapRef": {"name": "cfg"}}}
    assert index_entries("prod", "graph", spec) == {("prod", "cfg"): "graph"}
    assert index_entries("prod", "graph", {"config": {}}) == {}


@pytest.mark.parametrize("event", ["ADDED", "MODIFIED", "DELETED"])
def test_a_change_of_a_referenced_configmap_wakes_its_readers(event: str) -> None:
    index = {("prod", "cfg"): ["graph", "api", "graph"], ("dev", "cfg"): ["other"]}
    assert routerconfigs_to_wake(event, "prod", "cfg", index) == ["api", "graph"]


def test_a_listing_or_an_unreferenced_configmap_wakes_nobody() -> None:
    index = {("prod", "cfg"): ["graph"]}
    assert routerconfigs_to_wake(None, "prod", "cfg", index) == []  # kopf's initial listing
    assert routerconfigs_to_wake("MODIFIED", "prod", "kube-root-ca.crt", index) == []
    assert routerconfigs_to_wake("MODIFIED", "dev", "cfg", index) == []  # same name, other namespace


async def test_the_kopf_handler_wakes_each_reader_through_the_controller() -> None:
    woken: list[tuple[str, str]] = []
    controller = SimpleNamespace(inputs_changed=lambda ns, name: woken.append((ns, name)))
    memo = kopf.Memo(ctx=SimpleNamespace(controller=controller))
    spec = {"configFrom": CONFIG_FROM}
    entries = routerconfig_configmaps(namespace="prod", name="graph", spec=spec)
    index = {key: [rc] for key, rc in entries.items()}
    for event, name in [(None, "cfg"), ("MODIFIED", "other"), ("MODIFIED", "cfg")]:
        await configmap_changed(
            type=event, namespace="prod", name=name, memo=memo, routerconfig_configmaps=index
        )
    assert woken == [("prod", "graph")]


def _from_configmap(w: World, config: dict[str, Any], **extra: str) -> None:
    w.hub.put(configmap("prod", "cfg", {"config.json": config, **extra}))
    del w.spec["config"]
    w.update(configFrom=copy.deepcopy(CONFIG_FROM))


async def _until(what: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not what():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)


async def test_a_woken_loop_reads_the_configmap_again_long_before_the_resync() -> None:
    w = World()
    w.settings = dataclasses.replace(w.settings, progress_seconds=0.05, resync_seconds=3600)
    w.restart()
    _from_configmap(w, COSMO)
    first = (await w.converge()).revision
    assert first is not None
    stop = asyncio.Event()
    loop = asyncio.create_task(w.controller.run_loop(w.obj, lambda: w.clusters, w.events.append, stop.is_set))
    try:
        edited = copy.deepcopy(COSMO)
        edited["engineConfig"]["graphqlSchema"] += " # edited"
        w.hub.put(configmap("prod", "cfg", {"config.json": edited}))
        w.controller.inputs_changed("prod", "other")  # another RouterConfig's: this loop keeps waiting
        # Not a wait for something to happen: the settled loop is idle, so nothing can be polled for;
        # this gives it four progress periods (0.05 s) in which it must *not* pick up the edit.
        await asyncio.sleep(0.2)
        assert all(w.template_digest(e) == first.digest for e in w.edges)
        w.controller.inputs_changed("prod", "graph")
        await _until(lambda: (w.statuses.status.get("revision") or {}).get("digest") != first.digest)
        await _until(lambda: any(w.template_digest(e) != first.digest for e in w.edges))
    finally:
        stop.set()
        await asyncio.wait_for(loop, timeout=5)
    assert w.generation == 2  # the same generation: only the wake made it read the ConfigMap


async def test_a_wake_while_a_reconcile_runs_is_not_lost() -> None:
    """A reconcile that started before the edit may have read the old ConfigMap: the wake stays set."""
    w = World()
    _from_configmap(w, COSMO)
    await w.converge()
    memo = w.controller._memo(w.controller.key_of(w.obj()))
    async with memo.lock:  # a reconcile holds the object
        w.controller.inputs_changed("prod", "graph")
    assert memo.inputs_changed and memo.wake.is_set()
    await w.reconcile(full=False)  # a progress pass does not read inputs: the wake stays
    assert memo.inputs_changed
    await w.reconcile(full=True)
    assert not memo.inputs_changed


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda cm: cm["metadata"].update(labels={"team": "x"}), id="a-label"),
        pytest.param(lambda cm: cm["data"].update({"notes.txt": "unrelated"}), id="another-key"),
    ],
)
async def test_an_edit_that_leaves_the_render_alone_writes_nothing(edit: Callable[[Any], None]) -> None:
    w = World()
    _from_configmap(w, COSMO)
    before = (await w.converge()).revision
    writes, puts, patches = w.edge_writes(), w.store.counters["put"], w.statuses.patches
    cm = configmap("prod", "cfg", {"config.json": COSMO})
    edit(cm)
    w.hub.put(cm)
    w.controller.inputs_changed("prod", "graph")
    status = await w.reconcile(full=True)  # what the woken loop runs
    assert status.revision == before
    assert (w.edge_writes(), w.store.counters["put"], w.statuses.patches) == (writes, puts, patches)
