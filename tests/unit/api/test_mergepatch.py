"""RFC 7386 merge patch: the RFC's own examples plus properties."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeroll.api.mergepatch import merge_diff, merge_patch

pytestmark = pytest.mark.unit

# RFC 7386 appendix A.
RFC_CASES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC_CASES)
def test_rfc7386_examples(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
keys = st.text(alphabet="abcde", min_size=1, max_size=2)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)
objects = st.dictionaries(keys, json_values, max_size=5)


def _no_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_no_nulls(v) for v in value]
    return value


@given(objects, objects)
@settings(max_examples=300)
def test_patch_never_mutates_inputs(target: dict[str, Any], patch: dict[str, Any]) -> None:
    before_t, before_p = copy.deepcopy(target), copy.deepcopy(patch)
    merge_patch(target, patch)
    assert target == before_t
    assert patch == before_p


@given(objects, objects)
@settings(max_examples=300)
def test_patch_is_idempotent(target: dict[str, Any], patch: dict[str, Any]) -> None:
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once


@given(objects, objects)
@settings(max_examples=300)
def test_patched_keys_follow_the_patch(target: dict[str, Any], patch: dict[str, Any]) -> None:
    result = merge_patch(target, patch)
    for key, value in patch.items():
        if value is None:
            assert key not in result
        elif not isinstance(value, dict):
            assert result[key] == value
    for key in target.keys() - patch.keys():
        assert result[key] == target[key]


@given(objects)
def test_empty_patch_is_identity(target: dict[str, Any]) -> None:
    assert merge_patch(target, {}) == target


@given(objects, objects)
@settings(max_examples=300)
def test_diff_then_patch_reaches_the_target(source: dict[str, Any], target: dict[str, Any]) -> None:
    target = _no_nulls(target)
    assert merge_patch(source, merge_diff(source, target)) == target


@given(objects)
def test_diff_of_equal_documents_is_empty(doc: dict[str, Any]) -> None:
    assert merge_diff(doc, json.loads(json.dumps(doc))) == {}
