"""Overlays of a cosmo config reach every feature flag's config, and a broken flag is refused with its
JSON path (issue 12, item 4). Data: the config `wgc router compose` wrote for data/feature-flags/graph.yaml,
with a second flag so "every flag" means more than one."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from edgeroll.api.mergepatch import merge_patch
from edgeroll.api.routerconfig import ConfigFormat, Overlay
from edgeroll.render.cosmo_split import split_config
from edgeroll.render.errors import RenderError
from edgeroll.render.formats import finalize, validate_cosmo
from edgeroll.render.overlays import ClusterFacts, apply_overlays, patch_flags, substitute
from edgeroll.render.revision import RenderSet, make_revision, render_set

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
COMPOSED = json.loads((DATA / "cosmo-feature-flags.json").read_text())
MINIMAL = json.loads((DATA / "cosmo-minimal.json").read_text())
EU = ClusterFacts("edge-eu", {"region": "eu"})
US = ClusterFacts("edge-us", {"region": "us"})
FLASH = '$.featureFlagConfigs.configByFeatureFlagName["flash-sale"]'


def composed() -> dict[str, Any]:
    """The composed config with a second flag, `beta`, a copy of `flash-sale` of another version."""
    doc = copy.deepcopy(COMPOSED)
    by_name = doc["featureFlagConfigs"]["configByFeatureFlagName"]
    by_name["beta"] = {**copy.deepcopy(by_name["flash-sale"]), "version": "beta-version"}
    return doc


def overlay(patch: dict[str, Any], region: str = "eu") -> Overlay:
    return Overlay.model_validate({"clusterSelector": {"matchLabels": {"region": region}}, "patch": patch})


def flags(document: dict[str, Any]) -> dict[str, Any]:
    by_name: dict[str, Any] = document["featureFlagConfigs"]["configByFeatureFlagName"]
    return by_name


def rendered(rs: RenderSet, cluster: ClusterFacts) -> dict[str, Any]:
    served: dict[str, Any] = json.loads(rs.clusters[cluster.name].body)
    return served


def test_an_engine_config_overlay_reaches_the_base_and_every_flag_of_matching_clusters_only() -> None:
    rs = render_set(
        ConfigFormat.COSMO, composed(), [overlay({"engineConfig": {"defaultFlushInterval": 50}})], [EU, US]
    )
    eu, us = rendered(rs, EU), rendered(rs, US)
    assert eu["engineConfig"]["defaultFlushInterval"] == 50
    assert {name: f["engineConfig"]["defaultFlushInterval"] for name, f in flags(eu).items()} == {
        "beta": 50,
        "flash-sale": 50,
    }
    # Only the patched member changes: each flag keeps its own schema, subgraphs and version.
    assert "flashSalePriceCents" in flags(eu)["flash-sale"]["engineConfig"]["graphqlSchema"]
    assert flags(eu)["beta"]["version"] == "beta-version"
    assert flags(eu)["flash-sale"]["subgraphs"] == flags(COMPOSED)["flash-sale"]["subgraphs"]
    assert rs.clusters[US.name] == rs.base
    assert [f["engineConfig"]["defaultFlushInterval"] for f in flags(us).values()] == ["500", "500"]


def test_a_subgraphs_overlay_replaces_the_list_of_the_base_and_of_every_flag() -> None:
    subgraphs = [
        {"id": "0", "name": "products", "routingUrl": "http://${cluster.name}.products:4001/graphql"}
    ]
    rs = render_set(ConfigFormat.COSMO, composed(), [overlay({"subgraphs": subgraphs})], [EU, US])
    expected = substitute(subgraphs, EU, "p")  # RFC 7386: an array is replaced as a whole
    eu = rendered(rs, EU)
    assert eu["subgraphs"] == expected
    assert [f["subgraphs"] for f in flags(eu).values()] == [expected, expected]
    assert rs.clusters[US.name] == rs.base


def test_the_split_files_of_a_patched_cluster_carry_the_change_in_each_flag_file() -> None:
    rs = render_set(
        ConfigFormat.COSMO, composed(), [overlay({"engineConfig": {"defaultFlushInterval": 50}})], [EU, US]
    )
    eu, us = split_config(rendered(rs, EU)), split_config(rendered(rs, US))
    assert sorted(eu.flags) == ["beta", "flash-sale"]
    for name, file in eu.flags.items():
        assert json.loads(file.body)["engineConfig"]["defaultFlushInterval"] == 50
        assert json.loads(us.flags[name].body)["engineConfig"]["defaultFlushInterval"] == "500"
    assert json.loads(eu.base.body)["engineConfig"]["defaultFlushInterval"] == 50


@pytest.mark.parametrize(
    ("flag_patch", "path"),
    [
        ({"engineConfig": {"graphqlSchema": ""}}, f"{FLASH}.engineConfig.graphqlSchema"),
        ({"engineConfig": {"graphqlSchema": None}}, f"{FLASH}.engineConfig.graphqlSchema"),
        ({"engineConfig": "nope"}, f"{FLASH}.engineConfig"),
        ({"engineConfig": None}, f"{FLASH}.engineConfig"),
    ],
)
def test_a_patch_that_breaks_a_flag_is_refused_with_its_path_and_the_cluster(
    flag_patch: dict[str, Any], path: str
) -> None:
    patch = {"featureFlagConfigs": {"configByFeatureFlagName": {"flash-sale": flag_patch}}}
    with pytest.raises(RenderError) as err:
        render_set(ConfigFormat.COSMO, composed(), [overlay(patch)], [US, EU])
    assert err.value.reason == "InvalidConfig"
    assert err.value.path == path
    assert path in str(err.value) and "after the overlays for cluster edge-eu" in str(err.value)


def test_a_flag_the_patch_creates_gets_the_graph_members_and_must_still_be_whole() -> None:
    # The flag exists after the base patch, so it gets engineConfig {defaultFlushInterval} and nothing more.
    patch = {
        "engineConfig": {"defaultFlushInterval": 50},
        "featureFlagConfigs": {"configByFeatureFlagName": {"new": {"version": "v"}, "beta": None}},
    }
    with pytest.raises(RenderError) as err:
        render_set(ConfigFormat.COSMO, composed(), [overlay(patch)], [EU])
    assert err.value.path == "$.featureFlagConfigs.configByFeatureFlagName.new.engineConfig.graphqlSchema"
    assert "edge-eu" in str(err.value)
    # Given a whole config, the new flag is patched too; the deleted one is simply gone.
    patch["featureFlagConfigs"]["configByFeatureFlagName"]["new"] = flags(COMPOSED)["flash-sale"]
    eu = rendered(render_set(ConfigFormat.COSMO, composed(), [overlay(patch)], [EU]), EU)
    assert {name: f["engineConfig"]["defaultFlushInterval"] for name, f in flags(eu).items()} == {
        "flash-sale": 50,
        "new": 50,
    }


def test_a_graph_patch_that_breaks_base_and_flags_alike_names_the_base_first() -> None:
    with pytest.raises(RenderError) as err:
        render_set(ConfigFormat.COSMO, composed(), [overlay({"engineConfig": {"graphqlSchema": " "}})], [EU])
    assert err.value.path == "$.engineConfig.graphqlSchema"
    assert "edge-eu" in str(err.value)


def test_overlays_apply_flag_by_flag_in_spec_order() -> None:
    overlays = [
        overlay({"engineConfig": {"defaultFlushInterval": 50, "stringStorage": {"k": "${cluster.name}"}}}),
        overlay({"engineConfig": {"defaultFlushInterval": 70, "stringStorage": {"k": None}}}),
    ]
    eu = apply_overlays(composed(), overlays, EU, fmt=ConfigFormat.COSMO)
    for config in [eu, *flags(eu).values()]:
        assert config["engineConfig"]["defaultFlushInterval"] == 70
        assert "k" not in config["engineConfig"]["stringStorage"]


def test_the_json_format_patches_the_document_alone() -> None:
    overlays = [overlay({"engineConfig": {"defaultFlushInterval": 50}})]
    plain = merge_patch(composed(), {"engineConfig": {"defaultFlushInterval": 50}})
    assert apply_overlays(composed(), overlays, EU) == plain  # JSON is the default
    rs = render_set(ConfigFormat.JSON, composed(), overlays, [EU])
    assert rs.clusters[EU.name] == make_revision(ConfigFormat.JSON, plain)
    assert [f["engineConfig"]["defaultFlushInterval"] for f in flags(rendered(rs, EU)).values()] == [
        "500",
        "500",
    ]


def test_snake_case_flags_are_patched_too() -> None:
    doc = composed()
    doc["feature_flag_configs"] = {"config_by_feature_flag_name": flags(doc)}
    del doc["featureFlagConfigs"]
    out = apply_overlays(
        doc, [overlay({"engineConfig": {"defaultFlushInterval": 50}})], EU, fmt=ConfigFormat.COSMO
    )
    by_name = out["feature_flag_configs"]["config_by_feature_flag_name"]
    assert [f["engineConfig"]["defaultFlushInterval"] for f in by_name.values()] == [50, 50]
    assert [f["engineConfig"]["defaultFlushInterval"] for f in flags(composed()).values()] == ["500", "500"]


@pytest.mark.parametrize(
    ("config", "patch"),
    [
        (MINIMAL, {"engineConfig": {"defaultFlushInterval": 50}, "subgraphs": [{"id": "${cluster.name}"}]}),
        (COMPOSED, {"compatibilityVersion": "1:${cluster.name}"}),  # touches no flag member
    ],
)
def test_renders_that_touch_no_flag_are_what_they_were(config: dict[str, Any], patch: dict[str, Any]) -> None:
    plain = merge_patch(config, substitute(patch, EU, "p"))
    assert patch_flags(plain, patch) is plain
    rs = render_set(ConfigFormat.COSMO, copy.deepcopy(config), [overlay(patch)], [EU, US])
    assert rs.clusters[EU.name] == make_revision(ConfigFormat.COSMO, plain)
    assert rs.clusters[US.name] == rs.base == make_revision(ConfigFormat.COSMO, config)


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda f: f.pop("engineConfig"), "$.featureFlagConfigs.configByFeatureFlagName.myflag.engineConfig"),
        (lambda f: f.clear(), "$.featureFlagConfigs.configByFeatureFlagName.myflag.engineConfig"),
        (
            lambda f: f["engineConfig"].__setitem__("graphqlSchema", ""),
            "$.featureFlagConfigs.configByFeatureFlagName.myflag.engineConfig.graphqlSchema",
        ),
        (
            lambda f: f["engineConfig"].pop("graphqlSchema"),
            "$.featureFlagConfigs.configByFeatureFlagName.myflag.engineConfig.graphqlSchema",
        ),
        (
            lambda f: f["engineConfig"].__setitem__("graphqlSchema", 7),
            "$.featureFlagConfigs.configByFeatureFlagName.myflag.engineConfig.graphqlSchema",
        ),
    ],
)
def test_validation_refuses_a_flag_without_a_graph(mutate: Any, path: str) -> None:
    doc = copy.deepcopy(COMPOSED)
    flag = flags(doc)["myflag"] = copy.deepcopy(flags(doc)["flash-sale"])
    mutate(flag)
    with pytest.raises(RenderError) as err:
        finalize(ConfigFormat.COSMO, doc)
    assert (err.value.reason, err.value.path) == ("InvalidConfig", path)


def test_validation_of_flags_names_the_spelling_used_and_accepts_null_only_as_missing() -> None:
    validate_cosmo(COMPOSED)
    doc = copy.deepcopy(COMPOSED)
    flag = flags(doc)["flash-sale"]
    flag["engine_config"] = flag.pop("engineConfig")
    flag["engine_config"]["graphql_schema"] = flag["engine_config"].pop("graphqlSchema")
    doc["feature_flag_configs"] = {"config_by_feature_flag_name": flags(doc)}
    del doc["featureFlagConfigs"]
    validate_cosmo(doc)
    flag["engine_config"]["graphql_schema"] = ""
    with pytest.raises(RenderError) as err:
        validate_cosmo(doc)
    assert (
        err.value.path
        == '$.feature_flag_configs.config_by_feature_flag_name["flash-sale"].engine_config.graphql_schema'
    )
    doc["feature_flag_configs"]["config_by_feature_flag_name"]["flash-sale"] = None
    with pytest.raises(RenderError) as err:
        validate_cosmo(doc)
    assert err.value.path == '$.feature_flag_configs.config_by_feature_flag_name["flash-sale"].engineConfig'
