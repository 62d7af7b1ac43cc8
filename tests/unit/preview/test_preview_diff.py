"""The preview's changes: JSON paths of what differs between two renders, values cut to a width."""

from __future__ import annotations

import pytest

from edgeroll.preview.diff import Change, cut, cut_pair, describe, json_changes
from edgeroll.preview.output import short_revision

pytestmark = pytest.mark.unit


def test_paths_name_each_change_once_at_its_root() -> None:
    old = {"a": {"b": 1, "gone": {"deep": [1, 2]}}, "list": [1, 2, 3], "same": "x"}
    new = {"a": {"b": 2, "new": {"deep": True}}, "list": [1, 5], "same": "x"}
    assert json_changes(old, new) == [
        Change("$.a.b", "changed", 1, 2),
        Change("$.a.gone", "removed", {"deep": [1, 2]}, None),
        Change("$.a.new", "added", None, {"deep": True}),
        Change("$.list[1]", "changed", 2, 5),
        Change("$.list[2]", "removed", 3, None),
    ]


def test_keys_that_are_not_identifiers_are_quoted_and_null_is_a_value() -> None:
    changes = json_changes({"x.y": None, "ok": 1}, {"x.y": 0, "ok": 1, "with space": None})
    assert changes == [
        Change('$["with space"]', "added", None, None),
        Change('$["x.y"]', "changed", None, 0),
    ]


def test_json_types_count_one_and_true_and_one_point_oh_differ() -> None:
    assert [c.path for c in json_changes({"a": 1, "b": 1}, {"a": True, "b": 1.0})] == ["$.a", "$.b"]
    assert json_changes({"a": [1, {"b": "c"}]}, {"a": [1, {"b": "c"}]}) == []


def test_cut_ends_in_an_ellipsis_and_width_zero_keeps_everything() -> None:
    assert cut("abcdefghij", 5) == "abcd…"
    assert cut("abc", 5) == "abc"
    assert cut("abcdefghij", 0) == "abcdefghij"


def test_long_texts_that_share_a_beginning_are_shown_where_they_differ() -> None:
    schema = "type Query { products: [Product] } " * 20
    old, new = cut_pair(schema + "# v1", schema + "# v2", 40)
    assert len(old) <= 40 and len(new) <= 40
    assert old.startswith("…") and old.endswith('# v1"') and new.endswith('# v2"')


def test_describe_marks_added_removed_and_changed() -> None:
    assert describe(Change("$.a", "added", None, {"b": 1}), 80) == '+ $.a: {"b":1}'
    assert describe(Change("$.a", "removed", "x", None), 80) == '- $.a: "x"'
    assert describe(Change("$.a", "changed", 1, 2), 80) == "~ $.a: 1 -> 2"


def test_a_revision_is_shortened_to_its_base_digest_and_keeps_the_overlays_hash() -> None:
    base = "sha256:" + "a" * 64
    assert short_revision(base) == "sha256:aaaaaaaaaaaa…"
    assert short_revision(base + "+overlays:0123456789ab") == "sha256:aaaaaaaaaaaa…+overlays:0123456789ab"
    assert short_revision(None) == "-"
