"""Overlays: selection, substitution, order, and errors that name the overlay path."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from edgeroll.api.common import LabelSelector
from edgeroll.api.routerconfig import ConfigFormat, Overlay
from edgeroll.render.errors import RenderError
from edgeroll.render.overlays import ClusterFacts, apply_overlays, substitute
from edgeroll.render.revision import decode_config, render_set

pytestmark = pytest.mark.unit

EU = ClusterFacts("edge-eu", {"tier": "edge", "region": "eu", "topology.kubernetes.io/zone": "eu-1a"})
US = ClusterFacts("edge-us", {"tier": "edge", "region": "us"})
AP = ClusterFacts("edge-ap", {"tier": "edge", "region": "ap"})


def overlay(selector: dict[str, Any], patch: dict[str, Any]) -> Overlay:
    return Overlay.model_validate({"clusterSelector": selector, "patch": patch})


def test_substitution_of_name_and_labels_in_values_only() -> None:
    patch = {
        "${cluster.name}": "${cluster.name}/${cluster.labels.region}",
        "l": ["${cluster.labels.tier}", 3],
    }
    assert substitute(patch, EU, "p") == {"${cluster.name}": "edge-eu/eu", "l": ["edge", 3]}


def test_substitution_of_prefixed_label_keys_and_escapes() -> None:
    assert substitute("${cluster.labels.topology.kubernetes.io/zone}", EU, "p") == "eu-1a"
    assert substitute("$${cluster.name} ${other} $x", EU, "p") == "${cluster.name} ${other} $x"


def test_missing_label_names_the_overlay_path_and_cluster() -> None:
    with pytest.raises(RenderError) as err:
        substitute({"a": [{"b": "${cluster.labels.zone}"}]}, US, "spec.overlays[2].patch")
    assert err.value.path == "spec.overlays[2].patch.a[0].b"
    assert "edge-us" in err.value.detail and "zone" in err.value.detail


def test_unknown_substitution_is_refused() -> None:
    with pytest.raises(RenderError, match=r"cluster\.uid"):
        substitute("${cluster.uid}", US, "p")


def test_overlays_apply_in_order_to_matching_clusters() -> None:
    overlays = [
        overlay({"matchLabels": {"tier": "edge"}}, {"a": 1, "b": {"c": 1}}),
        overlay(
            {"matchExpressions": [{"key": "region", "operator": "In", "values": ["eu"]}]}, {"a": 2, "b": None}
        ),
    ]
    base = {"a": 0, "b": {"c": 0}, "z": True}
    assert apply_overlays(base, overlays, EU) == {"a": 2, "z": True}
    assert apply_overlays(base, overlays, US) == {"a": 1, "b": {"c": 1}, "z": True}
    assert base == {"a": 0, "b": {"c": 0}, "z": True}


def test_render_set_gives_only_overlaid_clusters_their_own_digest() -> None:
    overlays = [overlay({"matchLabels": {"region": "eu"}}, {"region": "${cluster.labels.region}"})]
    rs = render_set(ConfigFormat.JSON, {"x": 1}, overlays, [EU, US, AP])
    assert rs.clusters["edge-us"] == rs.base == rs.clusters["edge-ap"]
    assert rs.clusters["edge-eu"] != rs.base
    assert json.loads(rs.clusters["edge-eu"].body) == {"x": 1, "region": "eu"}
    assert list(rs.revisions()) == [rs.base.digest, rs.clusters["edge-eu"].digest]


def test_render_set_is_all_or_nothing_and_names_the_cluster() -> None:
    overlays = [overlay({}, {"engineConfig": None})]
    cosmo = {"engineConfig": {"graphqlSchema": "type Query { a: Int }"}}
    with pytest.raises(RenderError) as err:
        render_set(ConfigFormat.COSMO, cosmo, overlays, [US])
    assert err.value.path == "$.engineConfig"
    assert "edge-us" in str(err.value)


def test_empty_selector_matches_everything_and_notin_matches_absent_labels() -> None:
    sel = LabelSelector.model_validate(
        {"matchExpressions": [{"key": "region", "operator": "NotIn", "values": ["eu"]}]}
    )
    ov = Overlay(cluster_selector=sel, patch={"n": "${cluster.name}"})
    assert apply_overlays({}, [ov], ClusterFacts("bare", {})) == {"n": "bare"}
    assert apply_overlays({}, [ov], EU) == {}


def test_decode_config_accepts_text_and_gzip_and_names_bad_input() -> None:
    doc = {"a": "b" * 100}
    assert decode_config(json.dumps(doc), "cm") == doc
    assert decode_config(gzip.compress(json.dumps(doc).encode()), "cm") == doc
    with pytest.raises(RenderError, match="not valid JSON"):
        decode_config("{", "ConfigMap big key config.json")
    with pytest.raises(RenderError, match="truncated"):
        decode_config(gzip.compress(b"{}")[:-6], "cm")
    with pytest.raises(RenderError, match="object"):
        decode_config("[1]", "cm")
