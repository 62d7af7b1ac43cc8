"""The revision pointer: only the key's holder can make one, only for its own config."""

from __future__ import annotations

import json

import pytest

from edgeroll.render.canonical import canonical_json
from edgeroll.render.pointer import PointerError, RevisionPointer, encode_pointer, read_pointer, sign_pointer
from edgeroll.render.signing import sign

pytestmark = pytest.mark.unit

KEY = b"k" * 32
P = RevisionPointer(
    "prod", "graph", "edge-eu", "sha256:" + "a" * 64, "edgeroll/prod/graph/" + "a" * 64 + ".json"
)


def test_a_signed_pointer_reads_back() -> None:
    body = encode_pointer(P)
    assert read_pointer(body, sign_pointer(KEY, body), KEY, namespace="prod", name="graph") == P


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda body, sig: (body.replace(b"edge-eu", b"edge-us"), sig), "signature"),
        (lambda body, sig: (body, sign_pointer(b"x" * 32, body)), "signature"),
        (lambda body, sig: (body, None), "signature"),
        (lambda body, sig: (body, sign(KEY, body)), "signature"),  # a config signature is not a pointer's
    ],
)
def test_a_tampered_or_foreign_pointer_is_refused(change, reason) -> None:  # type: ignore[no-untyped-def]
    body = encode_pointer(P)
    bad_body, bad_sig = change(body, sign_pointer(KEY, body))
    with pytest.raises(PointerError) as err:
        read_pointer(bad_body, bad_sig, KEY, namespace="prod", name="graph")
    assert err.value.reason == reason


def test_a_pointer_for_another_config_is_refused_even_when_signed() -> None:
    body = encode_pointer(P)
    with pytest.raises(PointerError) as err:
        read_pointer(body, sign_pointer(KEY, body), KEY, namespace="prod", name="other")
    assert err.value.reason == "config"


def test_a_config_body_signed_as_a_config_never_reads_as_a_pointer() -> None:
    """A RouterConfig author chooses config bytes the operator signs (format: json); shaped like a
    pointer they still fail, because pointers are signed under a label of their own."""
    forged = canonical_json(json.loads(encode_pointer(P)))
    with pytest.raises(PointerError):
        read_pointer(forged, sign(KEY, forged), KEY, namespace="prod", name="graph")
