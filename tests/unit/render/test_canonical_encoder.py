"""The fast canonical encoder (orjson) gives byte for byte what `json.dumps` gave, for every input.

Digests are S3 keys and versions a router round-trips: a changed byte would republish every
config and make every edge roll. The reference is the encoder edgeroll used before orjson.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.render.canonical import canonical_json, canonical_json_reference
from edgeroll.render.revision import make_revision

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"

# Strings that JSON escapes, that UTF-8 spells in 1 to 4 bytes, lone surrogates (not UTF-8).
_text = st.text(
    st.characters(codec=None, categories=None)
    | st.sampled_from(['"', "\\", "/", "\n", "\x00", "\x1f", "\x7f", "\u2028", "\ufeff", "\U0010ffff"])
    | st.sampled_from(["\ud800", "\udfff"])
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: past 64 bits orjson refuses and the reference takes over
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()  # NaN, infinities, -0.0, subnormals: json.dumps spells them its own way
    | _text
)
_json_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_text, children, max_size=5),
    max_leaves=40,
)


def _outcome(encode: Any, value: Any) -> tuple[str, Any]:
    try:
        return "bytes", encode(value)
    except Exception as exc:  # the same error type, too: a caller may catch it
        return "error", type(exc)


@given(_json_values)
@settings(max_examples=1500)
def test_the_fast_encoder_gives_the_reference_bytes_or_the_reference_error(value: Any) -> None:
    assert _outcome(canonical_json, value) == _outcome(canonical_json_reference, value)


# The fast path's own domain: no float, 64-bit ints, UTF-8 text. Compared with orjson directly, so a
# pass here is not the fallback hiding a difference.
_utf8_text = st.text(st.characters(exclude_categories=["Cs"]) | st.sampled_from(['"', "\\", "\x00", "\x7f"]))
_plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | _utf8_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_utf8_text, children, max_size=5),
    max_leaves=40,
)


@given(_plain_values)
@settings(max_examples=1500)
def test_orjson_itself_gives_the_reference_bytes_for_plain_json(value: Any) -> None:
    assert orjson.dumps(value, option=orjson.OPT_SORT_KEYS) == canonical_json_reference(value)
    assert canonical_json(value) == canonical_json_reference(value)


class _Str(str):
    pass


@dataclass
class _Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [
        {"a": _Str("x")},  # subclasses: json.dumps takes the str, orjson would too, but not always
        {"a": (1, 2)},  # tuples are arrays for json.dumps
        {1: "one", "b": 2},  # keys json.dumps converts, and then cannot sort
        {"a": _Point(1)},  # orjson would serialize a dataclass, json.dumps refuses
        {"a": {1, 2}},
        float("nan"),
        "\ud800",
        2**64,
        -(2**63) - 1,
        [[[[[[]]]]]],
    ],
)
def test_values_outside_plain_json_behave_as_before(value: Any) -> None:
    assert _outcome(canonical_json, value) == _outcome(canonical_json_reference, value)


def _synthetic(rng: random.Random, depth: int = 0) -> Any:
    """Nested values over the characters and numbers where encoders tend to differ."""
    chars = "aZ09 \"\\/\n\r\t\b\f\x00\x01\x1f\x7f\x80é中\u2028\u2029\ufeff\U0001f600\U0010ffff<>&'"
    numbers: list[Any] = [0, -1, 2**31, -(2**63), 2**64 - 1, 2**64, 10**30, 0.0, -0.0, 0.1, 1.5]
    numbers += [1e16, 1e-7, 123456789.125, 5e-324, 1.7976931348623157e308, 1e22, 1e-5]
    roll = rng.random()
    if depth > 5 or roll < 0.45:
        if rng.random() < 0.5:
            return "".join(rng.choice(chars) for _ in range(rng.randint(0, 12)))
        return rng.choice([None, True, False, *numbers])
    if roll < 0.7:
        return [_synthetic(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    return {
        "".join(rng.choice(chars) for _ in range(rng.randint(0, 6))): _synthetic(rng, depth + 1)
        for _ in range(rng.randint(0, 6))
    }


SYNTHETIC = {f"k{i}": _synthetic(random.Random(i)) for i in range(40)}

# Digests taken with the json.dumps encoder, before orjson: they must never change.
GOLDEN = {
    "synthetic": "sha256:dd9439ac61da5ffca9dc0b8a6aa81591bd50bdf85c107daa7507725afa443acc",
    "cosmo-minimal.json": "sha256:9621c63df20a4aed00a9f9d5a4136ec8bbd6bd0eb69b30a697adacdebab0f8d4",
    "cosmo-minimal.json+synthetic": "sha256:3811ef12d7631e991724534aafd8a23dcd3dce6fdc8844e1e4bf82c16554d921",
    "cosmo-golden.json": "sha256:262cf6001f4f8922bcbb0beb3b62bd4ac2b806a7ccf841d779c1eb1c317e4d24",
    "cosmo-golden.json+synthetic": "sha256:4c4037b73f6a6e58daee7076d14d10790e51eb6939db1830c27c310ec9e5f0a6",
}


def _cosmo(name: str, extra: bool) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / name).read_text())
    if extra:  # free-form objects the router reads, where any JSON value may sit
        doc = copy.deepcopy(doc)
        doc["engineConfig"]["datasourceConfigurations"][0]["customGraphql"]["extra"] = SYNTHETIC
    return doc


def test_digests_of_known_configs_do_not_change() -> None:
    assert make_revision(ConfigFormat.JSON, SYNTHETIC).digest == GOLDEN["synthetic"]
    for name in ("cosmo-minimal.json", "cosmo-golden.json"):  # cosmo-golden: 76 KB, shaped like wgc's
        assert make_revision(ConfigFormat.COSMO, _cosmo(name, False)).digest == GOLDEN[name]
        assert make_revision(ConfigFormat.COSMO, _cosmo(name, True)).digest == GOLDEN[f"{name}+synthetic"]
