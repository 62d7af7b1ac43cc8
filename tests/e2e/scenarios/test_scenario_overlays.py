"""Overlays per region: the EU edge gets its own render (its own digest and Cosmo version), with
`${cluster.name}` and `${cluster.labels.region}` substituted; the other edges share the base render."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from scenario_kit import ComposedGraph, Fleet, assert_served, cosmo_variant, expect, fetch_from_edges

from edgeroll.api.routerconfig import ConfigFormat

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
