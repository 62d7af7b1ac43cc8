"""`edgeroll plan` refuses the Prometheus addresses the operator refuses (PrometheusNotAllowed), with the
operator's own check and words: the allowed list is `--allowed-prometheus-address`, else the operator's
variable EDGEROLL_ALLOWED_PROMETHEUS_ADDRESSES, and a target EdgeCluster's spec.prometheus.address is
always allowed."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import io
import json
from typing import Any

import pytest
import yaml
from tests.unit.analysis_specs import metric
from tests.unit.pipeline.pipeline_fakes import World
from tests.unit.preview.preview_fakes import PreviewHub, preview

from edgeroll.api.edgecluster import PrometheusEndpoint
from edgeroll.clusters.registry import EdgeClusterInfo
from edgeroll.preview.cli import allowed_prometheus, execute, parse_manifests
from edgeroll.preview.reader import NO_ALLOW_LIST
from edgeroll.settings import SettingsError

pytestmark = pytest.mark.unit

ENV = "EDGEROLL_ALLOWED_PROMETHEUS_ADDRESSES"
FOREIGN = "http://169.254.169.254"
ALLOWED = "https://metrics.internal"


def analysed(address: str | None) -> World:
    """A World whose spec has one metric naming `address`; every EdgeCluster names its own Prometheus."""
    w = World()
    prometheus: dict[str, Any] = {"query": "up"} if address is None else {"query": "up", "address": address}
    w.spec["rollout"] = {
        "strategy": "Progressive",
        "canary": 1,
        "analysis": {"intervalSeconds": 10, "metrics": [metric(prometheus=prometheus)]},
    }
    for name, info in w.clusters.items():
        assert info.spec is not None
        endpoint = PrometheusEndpoint(address=f"http://prom-{name}:9090")
        w.clusters[name] = EdgeClusterInfo(
            info.name, info.labels, info.spec.model_copy(update={"prometheus": endpoint})
        )
    return w


def args(output: str = "text", allowed: list[str] | None = None) -> argparse.Namespace:
    return argparse.Namespace(output=output, width=60, max_changes=20, allowed_prometheus_address=allowed)


async def plan(w: World, a: argparse.Namespace, env: dict[str, str] | None = None) -> tuple[int, str]:
    rc = {
        "apiVersion": "edgeroll.io/v1alpha1",
        "kind": "RouterConfig",
        "metadata": {"name": w.name, "namespace": "prod"},
        "spec": w.spec,
    }
    out = io.StringIO()
    manifests = parse_manifests(yaml.safe_dump(rc), "prod", False)
    code = await execute(a, PreviewHub(w, exists=False), manifests, out, env=env or {})
    return code, out.getvalue()


async def test_an_address_nobody_allowed_is_refused_in_the_operators_words() -> None:
    w = analysed(FOREIGN)
    p = await preview(PreviewHub(w, exists=False), copy.deepcopy(w.spec))
    assert p.refused is not None and p.refused.reason == "PrometheusNotAllowed"
    assert p.refused.message.startswith("spec.rollout.analysis.metrics[0].prometheus.address: ")

    status = await w.reconcile()  # the operator, with no --allowed-prometheus-address either
    stalled = next(c for c in status.conditions if c.type == "Stalled")
    assert (stalled.reason, stalled.message) == (p.refused.reason, p.refused.message)
    assert w.edge_writes() == 0 and w.store.counters["put"] == 0


async def test_the_operator_and_the_preview_agree_once_the_same_address_is_allowed() -> None:
    w = analysed(ALLOWED)
    w.reconciler.settings = dataclasses.replace(
        w.reconciler.settings, allowed_prometheus_addresses=(ALLOWED,)
    )
    assert (await w.reconcile()).phase != "Stalled"
    code, out = await plan(w, args(allowed=[ALLOWED]))
    assert code == 0 and "would be refused" not in out


async def test_text_output_names_the_field_notes_the_missing_allow_list_and_exits_1() -> None:
    code, out = await plan(analysed(FOREIGN), args())
    assert code == 1
    headline, note = out.splitlines()[:2]
    assert headline.startswith(
        "routerconfig prod/graph: would be refused (PrometheusNotAllowed): "
        f"spec.rollout.analysis.metrics[0].prometheus.address: {FOREIGN!r} is not an allowed Prometheus"
    )
    assert note == f"note: {NO_ALLOW_LIST}"


async def test_json_output_carries_the_refusal_and_the_note() -> None:
    code, out = await plan(analysed(FOREIGN), args("json"))
    (item,) = json.loads(out)["items"]
    assert code == 1 and item["refused"]["reason"] == "PrometheusNotAllowed"
    assert item["refused"]["message"].startswith("spec.rollout.analysis.metrics[0].prometheus.address")
    assert item["notes"] == [NO_ALLOW_LIST] and item["clusters"] == []

    code, out = await plan(analysed(FOREIGN), args("json", allowed=[ALLOWED]))  # a list, just not this one
    (item,) = json.loads(out)["items"]
    assert code == 1 and item["refused"]["reason"] == "PrometheusNotAllowed" and item["notes"] == []
    assert f"{ALLOWED} (the operator's" in item["refused"]["message"]  # listed among the allowed


async def test_the_flag_or_else_the_operators_variable_allows_an_address() -> None:
    w = analysed(ALLOWED)
    assert (await plan(w, args("json", allowed=[f"{ALLOWED}/"])))[0] == 0  # a trailing / is the same
    assert (await plan(w, args("json"), env={ENV: f"https://other, {ALLOWED}"}))[0] == 0
    # The flags replace the variable, as the operator's flags replace its environment.
    assert (await plan(w, args("json", allowed=["https://other"]), env={ENV: ALLOWED}))[0] == 1


async def test_a_target_edgeclusters_own_address_is_allowed_another_clusters_is_not() -> None:
    w = analysed("http://prom-edge-eu:9090")
    assert (await plan(w, args("json")))[0] == 0
    assert (await plan(analysed(None), args("json")))[0] == 0  # no address: the cluster's own

    w.spec["targets"] = {"clusterSelector": {"matchLabels": {"region": "us"}}}  # edge-eu is no target
    code, out = await plan(w, args("json"))
    (item,) = json.loads(out)["items"]
    assert code == 1 and item["refused"]["reason"] == "PrometheusNotAllowed"
    assert "allowed: http://prom-edge-us:9090 " in item["refused"]["message"]


def test_a_malformed_allow_list_is_an_error() -> None:
    with pytest.raises(SettingsError, match=ENV):
        allowed_prometheus(args(), {ENV: "http://a b"})
    assert allowed_prometheus(args(allowed=["http://a,http://b"]), {}) == ("http://a", "http://b")
