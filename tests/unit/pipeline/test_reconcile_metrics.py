"""Operator metrics from the reconciler and the controller, against the in-memory World: the documented
families, step timings and errors, propagation, rollout phase and work queue depth."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from typing import Any

import pytest
from pipeline_fakes import COSMO, StatusStore, World, foreign_deployment
from prometheus_client.parser import text_string_to_metric_families

from edgeroll.api.edgecluster import DEFAULT_NAMESPACE as EDGE_NS
from edgeroll.operator_metrics import PHASES, STEPS, OperatorMetrics
from edgeroll.publish.store import PublishError
from edgeroll.rollout.ownership import CONFLICT_REASON

pytestmark = pytest.mark.unit

# name in the exposition -> (type, label names): the table in docs/architecture.md.
FAMILIES = {
    "edgeroll_reconcile_duration_seconds": ("histogram", {"step"}),
    "edgeroll_reconcile_errors_total": ("counter", {"step", "reason"}),
    "edgeroll_propagation_seconds": ("histogram", set()),
    "edgeroll_rollout_phase": ("gauge", {"namespace", "name", "phase"}),
    "edgeroll_edgecluster_reachable": ("gauge", {"edgecluster"}),
    "edgeroll_s3_requests_total": ("counter", {"op", "code"}),
    "edgeroll_workqueue_depth": ("gauge", set()),
    "edgeroll_shard_held": ("gauge", {"shard"}),
    "edgeroll_admission_requests_total": ("counter", {"result"}),
    "edgeroll_admission_duration_seconds": ("histogram", set()),
}


def sample(m: OperatorMetrics, metric: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(metric, labels)


def phases(m: OperatorMetrics, namespace: str = "prod", name: str = "graph") -> dict[str, float | None]:
    return {p: sample(m, "edgeroll_rollout_phase", namespace=namespace, name=name, phase=p) for p in PHASES}


async def test_every_family_is_exposed_with_its_labels_after_a_reconcile() -> None:
    w = World()
    m = w.controller.metrics
    m.set_reachable("edge-eu", True)  # the prober's and the S3 store's own tests cover how these are set
    m.s3_request("put", 200)
    m.error("gather", "SigningKeyNotFound")
    assert (await w.converge()).phase == "Ready"
    text = m.exposition().decode()
    for name, (kind, _) in FAMILIES.items():
        assert f"# TYPE {name} {kind}" in text
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("edgeroll_") or family.name.endswith("_created"):
            continue  # the parser lists prometheus_client's `_created` timestamps as families of their own
        name = family.name + ("_total" if family.type == "counter" else "")
        kind, labels = FAMILIES[name]
        assert family.type == kind
        for s in family.samples:
            assert set(s.labels) - {"le"} == labels, (s.name, s.labels)
    # A full reconcile, then a progress check (which reuses the render): every step but retention
    # (it waits for a settled full reconcile) ran, and report ran once per reconcile; persist (the plan
    # on record before an action writes) only in the first: the progress check wrote nothing.
    counts = {s: sample(m, "edgeroll_reconcile_duration_seconds_count", step=s) for s in STEPS}
    assert counts == {
        "parse": 2.0,
        "gather": 1.0,
        "render": 1.0,
        "admission": 0.0,  # only with spec.admission.webhook (test_reconciler_admission.py)
        "publish": 1.0,
        "observe": 2.0,
        "measure": 0.0,  # only when analysis measurements are due (test_reconciler_analysis.py)
        "plan": 2.0,
        "persist": 1.0,
        "apply": 2.0,
        "report": 2.0,
        "retention": 0.0,
    }
    assert phases(m) == {"Ready": 1.0, "Progressing": 0.0, "Degraded": 0.0, "Stalled": 0.0, "Deleting": 0.0}
    assert sample(m, "edgeroll_workqueue_depth") == 0.0
    await w.reconcile()  # settled, full: retention runs
    assert sample(m, "edgeroll_reconcile_duration_seconds_count", step="retention") == 1.0


async def test_errors_are_counted_by_step_and_reason() -> None:
    w = World()
    m = w.controller.metrics
    w.update(signing={"secretRef": {"name": "missing", "key": "key"}})
    assert (await w.reconcile()).phase == "Stalled"
    assert sample(m, "edgeroll_reconcile_errors_total", step="gather", reason="SigningKeyNotFound") == 1.0
    w.update(signing={"secretRef": {"name": "sign", "key": "key"}}, config={"no": "engineConfig"})
    assert (await w.reconcile()).phase == "Stalled"
    assert sample(m, "edgeroll_reconcile_errors_total", step="render", reason="InvalidConfig") == 1.0
    w.update(config=copy.deepcopy(COSMO))
    w.store.fail_with = PublishError("S3Unavailable", "s3://bucket/x: connection refused")
    await w.reconcile()
    assert sample(m, "edgeroll_reconcile_errors_total", step="publish", reason="S3Unavailable") == 1.0
    w.store.fail_with = None
    w.update(targets="not a selector")
    assert (await w.reconcile()).phase == "Stalled"
    assert sample(m, "edgeroll_reconcile_errors_total", step="parse", reason="InvalidSpec") == 1.0
    assert phases(m)["Stalled"] == 1.0


async def test_an_edge_object_of_another_owner_counts_as_an_apply_error() -> None:
    w = World()
    w.edges["edge-eu"].namespaces.add(EDGE_NS)
    w.edges["edge-eu"].put(foreign_deployment())
    await w.reconcile()
    m = w.controller.metrics
    assert sample(m, "edgeroll_reconcile_errors_total", step="apply", reason=CONFLICT_REASON) == 1.0
    assert phases(m)["Stalled"] == 1.0


class FailingStatus:
    """Status writes that fail from the `fail_from`-th on (1-based)."""

    def __init__(self, inner: StatusStore, fail_from: int) -> None:
        self.inner, self.fail_from, self.calls = inner, fail_from, 0

    async def patch_status(
        self, namespace: str, name: str, patch: Mapping[str, Any], resource_version: str | None = None
    ) -> str | None:
        self.calls += 1
        if self.calls >= self.fail_from:
            raise RuntimeError("hub down")
        return await self.inner.patch_status(namespace, name, patch, resource_version)

    async def read_status(self, namespace: str, name: str) -> tuple[dict[str, Any], str] | None:
        return await self.inner.read_status(namespace, name)


@pytest.mark.parametrize(
    ("fail_from", "step", "reason"),
    [(1, "persist", "StatusPersistFailed"), (2, "report", "StatusPatchFailed")],
)
async def test_a_failed_status_write_is_counted_where_it_failed(
    fail_from: int, step: str, reason: str
) -> None:
    w = World()
    m = w.controller.metrics
    w.controller.writer = FailingStatus(w.statuses, fail_from)  # status.rollout first, then the status
    await w.reconcile()
    assert sample(m, "edgeroll_reconcile_errors_total", step=step, reason=reason) == 1.0
    errors = [s for f in text_string_to_metric_families(m.exposition().decode()) for s in f.samples]
    assert sum(s.value for s in errors if s.name == "edgeroll_reconcile_errors_total") == 1.0


async def test_propagation_is_observed_once_per_new_revision_from_first_sight_to_ready_everywhere() -> None:
    w = World()
    now = [1000.0]
    w.controller.clock = lambda: now[0]
    m = w.controller.metrics
    await w.reconcile()  # first sight of generation 1: the Deployments are created
    now[0] += 12.5
    await w.reconcile(full=False)  # not Ready yet: nothing observed
    assert sample(m, "edgeroll_propagation_seconds_count") == 0.0
    for edge in w.edges.values():
        edge.finish_rollouts()
    now[0] += 2.5
    assert (await w.reconcile(full=False)).phase == "Ready"
    assert sample(m, "edgeroll_propagation_seconds_count") == 1.0
    assert sample(m, "edgeroll_propagation_seconds_sum") == 15.0
    await w.reconcile()  # a resync of the same revision: no second observation
    assert sample(m, "edgeroll_propagation_seconds_count") == 1.0

    w.update(config={**copy.deepcopy(COSMO), "extra": 1})
    await w.reconcile()
    assert sample(m, "edgeroll_propagation_seconds_count") == 1.0  # the new digest is rolling out
    for edge in w.edges.values():
        edge.finish_rollouts()
    now[0] += 4.0
    await w.reconcile(full=False)
    assert sample(m, "edgeroll_propagation_seconds_count") == 2.0
    assert sample(m, "edgeroll_propagation_seconds_sum") == 19.0


async def test_a_restart_that_finds_everything_ready_observes_no_propagation() -> None:
    w = World()
    await w.converge()
    w.restart()  # a new process, with metrics of its own
    assert (await w.reconcile()).phase == "Ready"
    assert sample(w.controller.metrics, "edgeroll_propagation_seconds_count") == 0.0


async def test_rollout_phase_follows_the_phase_and_is_removed_on_finalize() -> None:
    w = World()
    m = w.controller.metrics
    assert (await w.reconcile()).phase == "Progressing"
    assert phases(m) == {"Ready": 0.0, "Progressing": 1.0, "Degraded": 0.0, "Stalled": 0.0, "Deleting": 0.0}
    for edge in w.edges.values():
        edge.finish_rollouts()
    await w.reconcile(full=False)
    assert phases(m)["Ready"] == 1.0 and phases(m)["Progressing"] == 0.0
    assert (await w.controller.finalize(w.obj(), w.clusters, w.events.append)).done
    assert set(phases(m).values()) == {None}
    assert "edgeroll_rollout_phase{" not in m.exposition().decode()


class GatedStatus:
    """A status subresource whose writes wait for `open`: a reconcile holds its lock meanwhile."""

    def __init__(self, inner: StatusStore) -> None:
        self.inner = inner
        self.open = asyncio.Event()
        self.waiting = 0

    async def patch_status(
        self, namespace: str, name: str, patch: Mapping[str, Any], resource_version: str | None = None
    ) -> str | None:
        self.waiting += 1
        await self.open.wait()
        return await self.inner.patch_status(namespace, name, patch, resource_version)

    async def read_status(self, namespace: str, name: str) -> tuple[dict[str, Any], str] | None:
        return await self.inner.read_status(namespace, name)


async def test_workqueue_depth_counts_routerconfigs_waiting_or_running() -> None:
    w = World()
    m = w.controller.metrics
    gate = GatedStatus(w.statuses)
    w.controller.writer = gate
    running = asyncio.create_task(w.reconcile())
    async with asyncio.timeout(5):
        while gate.waiting == 0:  # the first reconcile holds the lock, writing status.rollout
            await asyncio.sleep(0.01)
    waiting = asyncio.create_task(w.reconcile())  # the same RouterConfig, waiting for its lock
    await asyncio.sleep(0)
    assert sample(m, "edgeroll_workqueue_depth") == 1.0  # RouterConfigs, not calls
    gate.open.set()
    await asyncio.gather(running, waiting)
    assert sample(m, "edgeroll_workqueue_depth") == 0.0
