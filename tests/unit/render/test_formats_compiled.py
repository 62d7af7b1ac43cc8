"""The compiled Cosmo validator accepts and rejects exactly what the schema walk does.

`validate_cosmo` asks the compiled predicate first and walks the schema (`_check`) only to name
the first error. The reference below is `validate_cosmo` before that change: the schema walk on
every document (the predicate patched to say "invalid"). Documents are drawn from the schema
tables themselves, in both spellings, with wrong-typed values anywhere.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeroll.render import formats
from edgeroll.render.errors import PathSegment, RenderError

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"

# Values of every JSON kind, including the near misses of each type: digit strings (also "--3"
# and non-ASCII digits, which str.isdigit accepts), bools for ints, enum names, nulls in lists.
_ODD: list[Any] = [
    None,
    True,
    False,
    0,
    -7,
    2**70,
    1.5,
    "",
    "x",
    "12",
    "-3",
    "--3",
    "²",
    "STATIC",
    "GRAPHQL",
    "FIELD_ARGUMENT",
    [],
    ["a"],
    [None],
    ["a", 1],
    {},
    {"a": "b"},
    {"a": None},
]
_odd = st.sampled_from(_ODD)


def _typed(type_: Any, odd: bool) -> st.SearchStrategy[Any]:
    """Values of `type_`; with `odd`, any value can also be a wrong-typed one."""
    if type_ == formats._STR:
        return st.text(max_size=3)
    if type_ == formats._BOOL:
        return st.booleans()
    if type_ == formats._INT:
        digits = st.from_regex(r"-?[0-9]{1,3}", fullmatch=True)
        return st.integers() | (st.text(alphabet="-0123456789²x", max_size=4) if odd else digits)
    if type_ == formats._OBJ:
        return st.dictionaries(st.text(max_size=2), st.none() | st.integers(), max_size=2)
    if isinstance(type_, tuple) and type_[0] == "enum":
        return st.sampled_from(sorted(type_[1])) | st.integers()
    if isinstance(type_, tuple) and type_[0] == "list":
        return st.lists(_value(type_[1], odd), max_size=3)
    if isinstance(type_, tuple) and type_[0] == "map":
        return st.dictionaries(st.text(max_size=3), _value(type_[1], odd), max_size=2)
    assert isinstance(type_, Mapping), type_
    optional: dict[str, st.SearchStrategy[Any]] = {"unknownField": _odd}
    for name, sub in type_.items():
        optional[name] = optional[formats._snake(name)] = _value(sub, odd)
    return st.fixed_dictionaries({}, optional=optional)


def _value(type_: Any, odd: bool) -> st.SearchStrategy[Any]:
    typed = _typed(type_, odd)
    return st.one_of(typed, typed, typed, _odd) if odd else st.none() | typed


def _outcome(fn: Callable[[], None]) -> tuple[str, str, str] | None:
    try:
        fn()
    except RenderError as exc:
        return exc.reason, exc.path, exc.message
    return None


def _reference(document: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """`validate_cosmo` as it was: the schema walk, for every document."""
    with mock.patch.object(formats, "_ROUTER_CONFIG_OK", lambda _: False):
        return _outcome(lambda: formats.validate_cosmo(document))


def _schema_walk_passes(document: Mapping[str, Any]) -> bool:
    return _outcome(lambda: formats._check(dict(document), formats._ROUTER_CONFIG, ())) is None


def _assert_same(document: dict[str, Any]) -> None:
    assert formats._ROUTER_CONFIG_OK(dict(document)) == _schema_walk_passes(document)
    assert _outcome(lambda: formats.validate_cosmo(document)) == _reference(document)


@given(_value(formats._ROUTER_CONFIG, odd=True).filter(lambda d: isinstance(d, dict)))
@settings(max_examples=800, suppress_health_check=[HealthCheck.too_slow])
def test_the_compiled_validator_agrees_with_the_schema_walk(document: dict[str, Any]) -> None:
    _assert_same(document)


@given(_value(formats._ROUTER_CONFIG, odd=False).filter(lambda d: isinstance(d, dict)))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_well_typed_documents_pass_both(document: dict[str, Any]) -> None:
    """Not vacuous: deep, well-typed documents in either spelling are accepted by both."""
    assert formats._ROUTER_CONFIG_OK(document)
    assert _schema_walk_passes(document)


def _leaves(value: Any, path: tuple[PathSegment, ...] = ()) -> Iterator[tuple[PathSegment, ...]]:
    if not isinstance(value, dict | list):
        return
    for key, child in value.items() if isinstance(value, dict) else enumerate(value):
        yield (*path, key)
        yield from _leaves(child, (*path, key))


def _swap(document: Any, path: tuple[PathSegment, ...], value: Any) -> Any:
    """Put `value` at `path`, returning what was there."""
    for segment in path[:-1]:
        document = document[segment]
    old, document[path[-1]] = document[path[-1]], value
    return old


@pytest.mark.parametrize("name", ["cosmo-minimal.json", "cosmo-feature-flags.json"])
def test_every_member_of_a_real_config_replaced_by_every_odd_value(name: str) -> None:
    config = json.loads((DATA / name).read_text())
    _assert_same(config)
    assert formats._ROUTER_CONFIG_OK(config)
    rejected = 0
    for path in list(_leaves(config)):
        for odd in _ODD:
            was = _swap(config, path, copy.deepcopy(odd))
            _assert_same(config)
            rejected += not formats._ROUTER_CONFIG_OK(config)
            _swap(config, path, was)
    assert rejected > 100  # the mutations do reach checked fields


def test_a_golden_config_passes_the_compiled_validator() -> None:
    config = json.loads((DATA / "cosmo-golden.json").read_text())
    assert formats._ROUTER_CONFIG_OK(config)
    assert _schema_walk_passes(config)
