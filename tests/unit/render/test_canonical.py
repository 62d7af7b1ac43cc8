"""Canonical rendering: order-independent, round-trips, digest over the exact bytes."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.render.canonical import canonical_json, canonical_object, content_digest, digest_hex
from edgeroll.render.revision import make_revision

pytestmark = pytest.mark.unit

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=20,
)
objects = st.dictionaries(st.text(max_size=6), json_values, max_size=6)


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


@given(objects, st.integers())
@settings(max_examples=300)
def test_key_order_does_not_change_the_bytes(doc: dict[str, Any], seed: int) -> None:
    assert canonical_json(_shuffled(doc, random.Random(seed))) == canonical_json(doc)


@given(objects)
@settings(max_examples=300)
def test_canonical_bytes_round_trip(doc: dict[str, Any]) -> None:
    body = canonical_json(doc)
    assert json.loads(body) == doc
    assert canonical_json(json.loads(body)) == body  # a fixed point


@given(objects)
def test_json_revision_digest_is_sha256_of_the_served_bytes(doc: dict[str, Any]) -> None:
    rev = make_revision(ConfigFormat.JSON, doc)
    assert rev.body == canonical_json(doc)
    assert rev.digest == "sha256:" + hashlib.sha256(rev.body).hexdigest()
    assert digest_hex(rev.digest) == rev.hex
    assert rev.size == len(rev.body)


def test_canonical_form_is_compact_sorted_utf8() -> None:
    assert (
        canonical_json({"b": 1, "a": [1, {"d": "é", "c": None}]})
        == '{"a":[1,{"c":null,"d":"é"}],"b":1}'.encode()
    )
    assert content_digest(b"") == "sha256:" + hashlib.sha256(b"").hexdigest()


@given(objects)
@settings(max_examples=300)
def test_an_object_assembled_from_canonical_members_is_canonical(doc: dict[str, Any]) -> None:
    members = {k: canonical_json(v) for k, v in doc.items()}
    assert canonical_object(members) == canonical_json(doc)
