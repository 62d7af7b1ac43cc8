"""Depth limit: checked without recursion, before anything recursive; a deep spec is Stalled, not a crash."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import kopf
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeroll.api.routerconfig import ConfigFormat, RouterConfigSpec
from edgeroll.handlers import STORAGE_PREFIX, DigestDiffBaseStorage
from edgeroll.render.canonical import json_sha256
from edgeroll.render.errors import RenderError
from edgeroll.render.limits import MAX_DEPTH, check_depth, too_deep
from edgeroll.render.overlays import ClusterFacts
from edgeroll.render.revision import decode_config, render_set

pytestmark = pytest.mark.unit

APISERVER_MAX = 10_000  # the apiserver's JSON nesting limit; everything it accepts must be handled
EU = ClusterFacts("edge-eu", {"region": "eu"})


def nest(depth: int, kind: str, leaf: Any = 1) -> Any:
    """`depth` levels of objects (`{"a": ...}`) or lists (`[...]`) around `leaf`, built without recursion."""
    value = leaf
    for _ in range(depth):
        value = {"a": value} if kind == "object" else [value]
    return value


scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=30,
)


def depth_of(value: Any) -> int:
    """The reference definition, recursive: a scalar is 0, a container one more than its deepest child."""
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


@given(json_values, st.integers(min_value=0, max_value=6))
def test_too_deep_agrees_with_the_recursive_definition(value: Any, limit: int) -> None:
    path = too_deep(value, limit)
    assert (path is not None) == (depth_of(value) > limit)
    if path is not None:  # the path leads to a container at level limit + 1
        node = value
        for seg in path:
            node = node[seg]
        assert len(path) == limit and isinstance(node, dict | list)


@pytest.mark.parametrize("kind", ["object", "list"])
@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 500, 1000, 3000, APISERVER_MAX])
def test_check_depth_at_the_limit_and_far_past_it(depth: int, kind: str) -> None:
    value = nest(depth, kind)
    if depth <= MAX_DEPTH:
        check_depth(value, "$")
        return
    with pytest.raises(RenderError) as err:
        check_depth(value, "$", "spec.config")
    assert err.value.reason == "ConfigTooDeep"
    assert f"limit of {MAX_DEPTH} levels" in err.value.message
    assert err.value.message.startswith("$.a.a" if kind == "object" else "$[0][0]")
    assert err.value.message.endswith("(in spec.config)")


def test_a_long_path_is_shortened_in_the_message() -> None:
    long_key = {"k" * 1000: nest(MAX_DEPTH, "object")}
    with pytest.raises(RenderError) as err:
        check_depth(long_key, "$")
    assert err.value.path.startswith("$.kkk") and err.value.path.endswith(".a.a")
    assert "…" in err.value.path and len(err.value.path) < 450


@pytest.mark.parametrize("depth", [500, 1000, 3000, APISERVER_MAX])
@pytest.mark.parametrize(
    "where",
    ["config", "config-list", "overlay", "overlay-unmatched"],
)
def test_a_deep_spec_is_a_render_error_naming_the_field_and_the_limit(depth: int, where: str) -> None:
    """What the reconciler turns into Stalled (RenderError -> _Stall(reason, message))."""
    config: dict[str, Any] = {"x": 1}
    patches: list[dict[str, Any]] = [{"y": 2}]
    if where == "config":
        config = {"deep": nest(depth, "object")}
    elif where == "config-list":
        config = {"deep": nest(depth, "list")}
    else:
        patches.append({"deep": nest(depth, "object")})
    region = "us" if where == "overlay-unmatched" else "eu"
    # pydantic parses it: the spec model must not be where a deep spec fails
    spec = RouterConfigSpec.model_validate(
        {
            "format": "json",
            "config": config,
            "overlays": [
                {"clusterSelector": {"matchLabels": {"region": region}}, "patch": p} for p in patches
            ],
            "targets": {"clusterSelector": {}},
            "signing": {"secretRef": {"name": "s", "key": "k"}},
        }
    )
    assert spec.config is not None
    with pytest.raises(RenderError) as err:
        render_set(ConfigFormat.JSON, spec.config, spec.overlays, [EU])
    assert err.value.reason == "ConfigTooDeep"
    assert f"limit of {MAX_DEPTH} levels" in err.value.message
    named = "spec.overlays[1].patch.deep" if where.startswith("overlay") else "(in spec.config)"
    assert named in err.value.message


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 3000, APISERVER_MAX])
def test_a_deep_configmap_config_is_a_render_error(depth: int) -> None:
    raw = '{"a":' * depth + "1" + "}" * depth  # json.dumps itself would recurse
    with pytest.raises(RenderError) as err:
        decode_config(raw, "ConfigMap ns/cm key cfg")
    assert err.value.reason == "ConfigTooDeep"
    assert f"limit of {MAX_DEPTH} levels" in err.value.message
    assert "ConfigMap ns/cm key cfg" in err.value.message


@given(json_values)
def test_json_sha256_is_the_digest_of_json_dumps(value: Any) -> None:
    """Same bytes as before, so the digests already stored on objects stay valid."""
    expected = hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert json_sha256(value) == expected


@pytest.mark.parametrize("kind", ["object", "list"])
def test_the_diff_base_digest_takes_a_spec_as_deep_as_the_apiserver_accepts(kind: str) -> None:
    storage = DigestDiffBaseStorage(prefix=STORAGE_PREFIX, key="last-handled-digest")

    def body(leaf: int) -> kopf.Body:
        return kopf.Body(
            {
                "apiVersion": "edgeroll.io/v1alpha1",
                "kind": "RouterConfig",
                "metadata": {
                    "name": "deep",
                    "namespace": "ns",
                    "labels": {"a": "b"},
                    # server-side apply records every field path of the spec: as deep as the spec
                    "managedFields": [{"manager": "kubectl", "fieldsV1": nest(APISERVER_MAX, "object", {})}],
                },
                "spec": {"format": "json", "config": nest(APISERVER_MAX, kind, leaf)},
            }
        )

    essence = storage.build(body=body(1))
    assert storage.build(body=body(1)) == essence
    assert storage.build(body=body(2))["spec-sha256"] != essence["spec-sha256"]
