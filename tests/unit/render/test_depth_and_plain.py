"""The depth check's walk also says whether a value is plain JSON, and the render uses that answer.

`canonical_json(value, plain=)` trusts the caller: a wrong "plain" would hand orjson a float or a
subclass and change the bytes, so the answer is checked here against the encoder's own type walk,
over values with subclasses and every non-plain leaf, and the render's digests are pinned.
"""

from __future__ import annotations

import enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.render.test_canonical_encoder import GOLDEN, SYNTHETIC, _cosmo, _json_values, _outcome

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.render.canonical import _plain, canonical_json, canonical_json_reference, content_digest
from edgeroll.render.limits import check_depth, too_deep
from edgeroll.render.overlays import ClusterFacts
from edgeroll.render.revision import make_revision, render_set

pytestmark = pytest.mark.unit


class _Dict(dict[str, Any]):
    pass


class _List(list[Any]):
    pass


class _Str(str):
    pass


class _Int(int):
    pass


class _Color(enum.IntEnum):
    RED = 1


def _wrapped(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=3), children, max_size=4)
        | st.lists(children, max_size=3).map(_List)
        | st.dictionaries(st.text(max_size=3), children, max_size=3).map(_Dict)
        | st.lists(children, max_size=3).map(tuple)
    )


_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=4)
    | st.text(max_size=3).map(_Str)
    | st.integers().map(_Int)
    | st.just(_Color.RED)
)
_values = st.recursive(_leaves, _wrapped, max_leaves=30) | _json_values


@given(_values)
@settings(max_examples=1500)
def test_check_depth_says_plain_exactly_when_the_encoder_would(value: Any) -> None:
    assert check_depth(value, "$") == _plain(value)


@given(_values)
@settings(max_examples=800)
def test_the_bytes_with_the_depth_checks_answer_are_the_reference_bytes(value: Any) -> None:
    plain = check_depth(value, "$")
    assert _outcome(lambda v: canonical_json(v, plain), value) == _outcome(canonical_json_reference, value)
    assert _outcome(
        lambda v: make_revision(ConfigFormat.JSON, {"v": v}, plain=check_depth({"v": v}, "$")), value
    ) == (_outcome(lambda v: make_revision(ConfigFormat.JSON, {"v": v}), value))


@given(_values, st.integers(min_value=0, max_value=5))
def test_a_subclass_still_counts_for_the_depth(value: Any, limit: int) -> None:
    wrapped = _List([_Dict(v=value)])
    assert (too_deep(wrapped, limit) is None) == (too_deep([{"v": value}], limit) is None)


def test_render_set_digests_of_known_configs_do_not_change() -> None:
    """render_set hands the depth check's answer to the encoder: the digests taken before stand."""
    clusters = [ClusterFacts("edge-eu", {"region": "eu"})]
    assert render_set(ConfigFormat.JSON, SYNTHETIC, [], clusters).base.digest == GOLDEN["synthetic"]
    for name in ("cosmo-minimal.json", "cosmo-golden.json"):
        for extra, golden in ((False, GOLDEN[name]), (True, GOLDEN[f"{name}+synthetic"])):
            rendered = render_set(ConfigFormat.COSMO, _cosmo(name, extra), [], clusters)
            assert rendered.base.digest == rendered.clusters["edge-eu"].digest == golden


@pytest.mark.parametrize(
    "config",
    [
        {"f": float("nan"), "g": [float("-inf"), 0.1]},  # floats orjson would take and spell `null`
        {"s": _Str("x"), "d": _Dict(a=[float("inf")])},  # and inside subclasses
    ],
)
def test_render_set_keeps_values_outside_plain_json_off_orjson(config: dict[str, Any]) -> None:
    expected = content_digest(canonical_json_reference(config))
    assert render_set(ConfigFormat.JSON, config, [], []).base.digest == expected
