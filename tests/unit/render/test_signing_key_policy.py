"""What a signing key must be for a Cosmo router (graph.sign_key) and for the edge cache's env."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeroll.render.signing import SIGNING_KEY_BYTES, signing_key_problem

pytestmark = pytest.mark.unit

GOOD = b"e2e-signing-key-of-32-bytes-long"


def test_thirty_two_ascii_bytes_are_a_key() -> None:
    assert len(GOOD) == SIGNING_KEY_BYTES == 32
    assert signing_key_problem(GOOD) is None


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (b"\xff" + b"k" * 31, "is not valid UTF-8 text (byte 0 of 32)"),
        (b"k" * 30 + b"\xc3", "is not valid UTF-8 text (byte 30 of 31)"),
        (b"k" * 31, "is 31 bytes; a Cosmo router's graph.sign_key must be exactly 32"),
        (b"k" * 33, "is 33 bytes"),
        (b"k" * 32 + b"\n", "is 33 bytes"),  # `echo key > file`: the newline counts
        ("é".encode() + b"k" * 30, "is 31 characters in 32 bytes"),
        (b"k" * 31 + b"\x00", "contains a NUL byte"),
    ],
)
def test_bad_keys_say_what_is_wrong(key: bytes, says: str) -> None:
    problem = signing_key_problem(key)
    assert problem is not None and says in problem


@given(st.binary(min_size=1, max_size=64))
def test_a_key_passes_exactly_when_it_is_32_ascii_characters_without_nul(key: bytes) -> None:
    ok = len(key) == 32 and all(0 < b < 0x80 for b in key)
    assert (signing_key_problem(key) is None) == ok


@given(st.binary(min_size=7, max_size=64).map(lambda b: b"\x01" + b))
def test_the_message_never_quotes_the_key(key: bytes) -> None:
    problem = signing_key_problem(key) or ""
    assert "\x01" not in problem and "\\x01" not in problem  # neither the key nor its repr
