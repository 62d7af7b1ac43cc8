"""Formats: cosmo validation names the JSON path; the version is stable and content-derived."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.render.canonical import canonical_json
from edgeroll.render.errors import RenderError, json_path
from edgeroll.render.formats import cosmo_version, finalize, served_bytes
from edgeroll.render.revision import make_revision

pytestmark = pytest.mark.unit

COSMO = json.loads((Path(__file__).parent / "data" / "cosmo-minimal.json").read_text())


def cosmo() -> dict[str, Any]:
    return copy.deepcopy(COSMO)


def test_cosmo_version_is_sha256_of_the_config_without_version() -> None:
    doc = cosmo()
    out = finalize(ConfigFormat.COSMO, doc)
    without = {k: v for k, v in doc.items() if k != "version"}
    assert out["version"] == hashlib.sha256(canonical_json(without)).hexdigest()
    assert doc["version"] == COSMO["version"]  # input untouched


def test_cosmo_version_ignores_the_incoming_version_and_key_order() -> None:
    a = cosmo()
    b = json.loads(json.dumps(cosmo(), sort_keys=True))
    b["version"] = "something-else"
    assert make_revision(ConfigFormat.COSMO, a) == make_revision(ConfigFormat.COSMO, b)


def test_cosmo_version_changes_with_content() -> None:
    a = cosmo()
    b = cosmo()
    b["engineConfig"]["graphqlSchema"] += " "
    assert cosmo_version(a) != cosmo_version(b)


def test_served_cosmo_bytes_carry_their_version_and_round_trip() -> None:
    rev = make_revision(ConfigFormat.COSMO, cosmo())
    served = json.loads(rev.body)
    assert served["version"] == cosmo_version(served)
    assert make_revision(ConfigFormat.COSMO, served) == rev  # re-rendering served bytes is a fixed point


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d.pop("engineConfig"), "$.engineConfig"),
        (lambda d: d.__setitem__("engineConfig", "nope"), "$.engineConfig"),
        (lambda d: d["engineConfig"].__setitem__("graphqlSchema", ""), "$.engineConfig.graphqlSchema"),
        (lambda d: d["engineConfig"].__setitem__("graphqlSchema", 42), "$.engineConfig.graphqlSchema"),
        (
            lambda d: d["engineConfig"]["datasourceConfigurations"][0].__setitem__("kind", "SOAP"),
            "$.engineConfig.datasourceConfigurations[0].kind",
        ),
        (
            lambda d: d["engineConfig"]["datasourceConfigurations"][0]["rootNodes"][0].__setitem__(
                "fieldNames", "products"
            ),
            "$.engineConfig.datasourceConfigurations[0].rootNodes[0].fieldNames",
        ),
        (
            lambda d: d["engineConfig"]["datasourceConfigurations"][0]["rootNodes"][0].__setitem__(
                "fieldNames", ["products", None, 3]
            ),
            "$.engineConfig.datasourceConfigurations[0].rootNodes[0].fieldNames[2]",
        ),
        (
            lambda d: d["engineConfig"].__setitem__("defaultFlushInterval", "soon"),
            "$.engineConfig.defaultFlushInterval",
        ),
        (lambda d: d["subgraphs"][0].__setitem__("routingUrl", ["x"]), "$.subgraphs[0].routingUrl"),
        (lambda d: d.__setitem__("subgraphs", {}), "$.subgraphs"),
        (
            lambda d: d["engineConfig"].__setitem__("stringStorage", {"a": 1}),
            "$.engineConfig.stringStorage.a",
        ),
    ],
)
def test_bad_cosmo_configs_name_the_path(mutate: Any, path: str) -> None:
    doc = cosmo()
    mutate(doc)
    with pytest.raises(RenderError) as err:
        finalize(ConfigFormat.COSMO, doc)
    assert err.value.reason == "InvalidConfig"
    assert err.value.path == path
    assert path in str(err.value)


def test_cosmo_accepts_snake_case_unknown_fields_and_enum_numbers() -> None:
    doc = cosmo()
    doc["someFutureField"] = {"x": 1}
    doc["engineConfig"]["datasourceConfigurations"][0]["kind"] = 1
    doc["engine_config"] = doc.pop("engineConfig")
    out = finalize(ConfigFormat.COSMO, doc)
    assert out["someFutureField"] == {"x": 1}


def test_json_format_takes_any_object_but_not_other_values() -> None:
    assert finalize(ConfigFormat.JSON, {"a": [1, None]}) == {"a": [1, None]}
    with pytest.raises(RenderError) as err:
        finalize(ConfigFormat.JSON, [1, 2])
    assert err.value.path == "$"


def test_json_path_quotes_awkward_keys() -> None:
    assert json_path(["a", 0, "b.c", 'q"'], "$") == '$.a[0]["b.c"]["q\\""]'


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=10,
)
_SCHEMA_FIELDS = {
    "engineConfig",
    "engine_config",
    "subgraphs",
    "featureFlagConfigs",
    "feature_flag_configs",
    "compatibilityVersion",
    "compatibility_version",
    "version",
}
# Keys that sort around "version" (and unicode ones), so the assembled object's member order is exercised.
_keys = st.sampled_from(
    ["version", "versio", "versionA", "Version", "vérsion", "a", "zz", "engineConfigX"]
) | st.text(max_size=8)


@given(st.dictionaries(_keys, _values, max_size=6))
@settings(max_examples=300)
def test_served_bytes_are_the_canonical_bytes_of_the_finalized_config(extra: dict[str, Any]) -> None:
    doc = {**cosmo(), **{k: v for k, v in extra.items() if k not in _SCHEMA_FIELDS}}
    if "version" in extra:
        doc["version"] = str(extra["version"])  # any incoming version string is replaced
    assert served_bytes(ConfigFormat.COSMO, doc) == canonical_json(finalize(ConfigFormat.COSMO, doc))
    assert served_bytes(ConfigFormat.JSON, extra) == canonical_json(extra)


def test_served_bytes_fail_like_the_plain_path_on_keys_json_cannot_sort() -> None:
    doc: dict[Any, Any] = {**cosmo(), 1: "one"}  # only Python callers can build this; JSON keys are strings
    with pytest.raises(TypeError):
        canonical_json(finalize(ConfigFormat.COSMO, doc))
    with pytest.raises(TypeError):
        served_bytes(ConfigFormat.COSMO, doc)
