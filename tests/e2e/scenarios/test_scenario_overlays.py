"""Overlays per region: the EU edge gets its own render (its own digest and Cosmo version), with
`${cluster.name}` and `${cluster.labels.region}` substituted; the other edges share the base render."""

from __future__ import annotations

import copy
import json
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from scenario_kit import (
    ComposedGraph,
    Fleet,
    assert_served,
    cosmo_variant,
    expect,
    fetch_from_edges,
    http_answer,
    signed_graph_token,
)
from tests.wgc import compose

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.lab.pod_runner import CacheEndpoint
from edgeroll.render.signing import verify
from edgeroll.rollout.resources import edge_name

pytestmark = pytest.mark.e2e


def eu_subgraphs(graph: dict[str, Any], template: str) -> list[dict[str, Any]]:
    """The composed `subgraphs`, with every routing URL rewritten (a merge patch replaces arrays whole)."""
    subgraphs = copy.deepcopy(graph["subgraphs"])
    for sub in subgraphs:
        sub["routingUrl"] = template.format(name=sub["name"])
    return subgraphs


def test_eu_overlay_gives_edge_eu_its_own_render(fleet: Fleet, composed_graph: ComposedGraph) -> None:
    e2e = fleet.e2e
    base = cosmo_variant(composed_graph.config, "overlays")
    eu = fleet.edgecluster("edge-eu")
    patch = {
        "subgraphs": eu_subgraphs(
            base, "http://{name}.${{cluster.labels.region}}.${{cluster.name}}:4000/graphql"
        )
    }
    overlay = {"clusterSelector": {"matchLabels": {"region": "eu"}}, "patch": patch}
    e2e.apply(e2e.routerconfig("regional", base, overlays=[overlay]))
    status = e2e.wait_ready("regional")

    want_base = expect(ConfigFormat.COSMO, base)
    rendered_eu = {**base, "subgraphs": eu_subgraphs(base, "http://{name}.eu." + eu + ":4000/graphql")}
    want_eu = expect(ConfigFormat.COSMO, rendered_eu)
    assert want_eu.digest != want_base.digest and want_eu.version != want_base.version

    clusters = {c["name"]: c for c in status["clusters"]}
    assert status["revision"]["digest"] == want_base.digest
    assert clusters[eu]["digest"] == clusters[eu]["desiredDigest"] == want_eu.digest
    for edge in ("edge-us", "edge-ap"):
        assert clusters[fleet.edgecluster(edge)]["digest"] == want_base.digest
    assert e2e.edge_digest("edge-eu", "regional") == want_eu.digest

    served = fetch_from_edges(fleet, "regional")
    assert_served(served["edge-eu"], want_eu)
    assert_served(served["edge-us"], want_base)
    assert_served(served["edge-ap"], want_base)


FLAGGED_GRAPH = Path(__file__).parents[2] / "unit" / "render" / "data" / "feature-flags" / "graph.yaml"


def flag_file(cache: CacheEndpoint, flag: str) -> dict[str, Any]:
    """A feature flag's config as a router with split config loading reads it, signature checked."""
    token = signed_graph_token(None, "org-e2e", "graph-e2e", features=["split-config-loading"])
    status, headers, body = http_answer(
        urllib.request.Request(  # noqa: S310 - loopback or port-forward
            f"{cache.url}/org-e2e/graph-e2e/manifest/feature-flags/{flag}.json",
            data=b'{"version": ""}',
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
    )
    assert status == 200, body[:300]
    assert verify(cache.signing_key, body, headers["x-signature-sha256"])
    return dict(json.loads(body))


def test_an_overlay_reaches_the_feature_flags_of_the_clusters_it_selects(
    fleet: Fleet, tmp_path_factory: pytest.TempPathFactory
) -> None:
    e2e, ns = fleet.e2e, fleet.scope.ns
    graph = compose(FLAGGED_GRAPH, tmp_path_factory.mktemp("wgc") / "flags.json")
    base = cosmo_variant(graph, "flag-overlays")
    overlay = {
        "clusterSelector": {"matchLabels": {"region": "eu"}},
        "patch": {"engineConfig": {"defaultFlushInterval": "250"}},
    }
    e2e.apply(e2e.routerconfig("flagged", base, overlays=[overlay]))
    e2e.wait_ready("flagged", timeout=240)

    work = Path(tempfile.mkdtemp(prefix="flag-overlays-", dir=fleet.work))
    intervals = {}
    for edge in ("edge-eu", "edge-us"):
        with fleet.provider.edge_cache(edge, ns, edge_name(ns, "flagged"), work / edge) as cache:
            flag = flag_file(cache, "flash-sale")
            assert any(s["name"] == "products-flash" for s in flag["subgraphs"])  # the flag's own
            intervals[edge] = flag["engineConfig"].get("defaultFlushInterval")
    assert intervals["edge-eu"] == "250"
    assert intervals["edge-us"] != "250"
