"""`hashed_object` (the served Cosmo object and its digest, hashed in one pass) against its definition."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.render.canonical import canonical_json, canonical_object, content_digest, hashed_object
from edgeroll.render.formats import served
from edgeroll.render.revision import make_revision

pytestmark = pytest.mark.unit

# Keys that sort before, around and after "version" (and unicode ones past the BMP), so the cut
# between the common start and the rest falls everywhere, including before the first member.
_keys = st.sampled_from(
    ["", "a", "engineConfig", "versio", "version0", "versionA", "vérsion", "zz", "\U0001f600"]
)
_members = st.dictionaries(
    _keys | st.text(max_size=4), st.binary(max_size=5).map(lambda b: canonical_json(b.hex()))
)


def _definition(members: dict[str, bytes], key: str) -> tuple[bytes, str]:
    """What `served` did before: join the object without `key`, hash it, join again, hash again."""
    body = canonical_object(
        {**members, key: canonical_json(hashlib.sha256(canonical_object(members)).hexdigest())}
    )
    return body, hashlib.sha256(body).hexdigest()


@given(_members.filter(lambda m: "version" not in m))
@settings(max_examples=1000)
def test_hashed_object_is_the_two_step_definition(members: dict[str, bytes]) -> None:
    assert hashed_object(members, "version") == _definition(members, "version")


@pytest.mark.parametrize("members", [{}, {"a": b"1"}, {"zz": b"1"}, {"a": b"1", "zz": b"[]"}])
def test_hashed_object_at_the_edges(members: dict[str, bytes]) -> None:
    assert hashed_object(members, "version") == _definition(members, "version")


@given(st.dictionaries(_keys, st.integers() | st.text(max_size=3), max_size=6))
@settings(max_examples=300)
def test_served_gives_the_digest_of_its_bytes(extra: dict[str, Any]) -> None:
    for fmt in (ConfigFormat.JSON, ConfigFormat.COSMO):
        document = {**extra, "engineConfig": {"graphqlSchema": "type Query { a: Int }"}}
        body, sha256_hex = served(fmt, document)
        assert sha256_hex == hashlib.sha256(body).hexdigest()
        assert make_revision(fmt, document).digest == content_digest(body)
