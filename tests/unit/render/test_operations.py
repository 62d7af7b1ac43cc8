"""Persisted operations: validated from a ConfigMap, versioned with the config in one bundle, and the
files a Cosmo router reads derived from it (render.operations)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.render.errors import RenderError
from edgeroll.render.formats import served_bytes
from edgeroll.render.operations import (
    PersistedOperations,
    bundle_body,
    operation_file,
    parse_operations,
    pql_manifest,
    unbundle,
    warmup_file,
)
from edgeroll.render.overlays import ClusterFacts
from edgeroll.render.revision import decode_operations, make_revision, render_set

pytestmark = pytest.mark.unit

HELLO = "query Hello { hello }"
PRICES = "query Prices($id: ID!) { product(id: $id) { price } }"
COSMO: dict[str, Any] = {
    "engineConfig": {"graphqlSchema": "type Query { hello: String }"},
    "subgraphs": [],
}


def sha(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def test_documents_are_filed_by_client_and_hash_and_the_manifest_by_hash() -> None:
    manifest = json.dumps({"version": 1, "revision": "x", "operations": {sha(PRICES): PRICES}})
    ops = parse_operations(
        {f"web.{sha(HELLO)}.graphql": HELLO, f"{sha(HELLO)}.graphql": HELLO, "manifest.json": manifest},
        "ConfigMap ns/ops",
        cache_warmup=False,
    )
    assert ops.by_client == {"web": {sha(HELLO): HELLO}}
    assert ops.shared == {sha(HELLO): HELLO, sha(PRICES): PRICES}
    assert ops.all() == {sha(HELLO): HELLO, sha(PRICES): PRICES}


def test_a_client_name_may_contain_dots() -> None:
    ops = parse_operations({f"shop.web.v2.{sha(HELLO)}.graphql": HELLO}, "cm", cache_warmup=False)
    assert ops.by_client == {"shop.web.v2": {sha(HELLO): HELLO}}


@pytest.mark.parametrize(
    ("entries", "named"),
    [
        ({f"web.{sha(PRICES)}.graphql": HELLO}, f"key 'web.{sha(PRICES)}.graphql'"),
        ({"web.abc.graphql": HELLO}, "is not a sha256"),
        ({f"web.{sha(HELLO).upper()}.graphql": HELLO}, "is not a sha256"),
        ({f"web.{sha('')}.graphql": ""}, "non-empty"),
        ({"notes.txt": HELLO}, "key 'notes.txt'"),
        ({"manifest.json": "{"}, "not valid JSON"),
        ({"manifest.json": json.dumps({"operations": {sha(HELLO): PRICES}})}, "operations["),
        ({"manifest.json": json.dumps({"version": 2, "operations": {}})}, "unsupported manifest version"),
        ({"manifest.json": json.dumps({"version": 1})}, '"operations"'),
    ],
)
def test_bad_operations_are_refused_naming_the_key(entries: dict[str, str], named: str) -> None:
    with pytest.raises(RenderError) as caught:
        parse_operations(entries, "ConfigMap ns/ops", cache_warmup=False)
    assert caught.value.reason == "InvalidPersistedOperations"
    assert "ConfigMap ns/ops" in caught.value.message
    assert named in caught.value.message


def test_a_gzipped_binary_entry_is_read() -> None:
    cm = {
        "binaryData": {f"web.{sha(HELLO)}.graphql": base64.b64encode(gzip.compress(HELLO.encode())).decode()}
    }
    assert decode_operations(cm, "cm", cache_warmup=True).by_client == {"web": {sha(HELLO): HELLO}}


def test_a_binary_entry_that_is_not_text_is_refused() -> None:
    cm = {"binaryData": {f"web.{sha(HELLO)}.graphql": base64.b64encode(b"\xff\xfe").decode()}}
    with pytest.raises(RenderError, match="not UTF-8"):
        decode_operations(cm, "ConfigMap ns/ops", cache_warmup=False)


OPS = PersistedOperations({"web": {sha(HELLO): HELLO}}, {sha(PRICES): PRICES}, cache_warmup=True)


def test_a_bundle_gives_back_the_exact_config_bytes_and_the_operations() -> None:
    config = served_bytes(ConfigFormat.COSMO, COSMO)
    bundle = bundle_body(config, OPS)
    got_config, got_ops = unbundle(bundle)
    assert got_config == config
    assert got_ops == OPS


def test_a_revision_without_operations_is_unchanged_and_one_with_them_has_its_own_digest() -> None:
    plain = make_revision(ConfigFormat.COSMO, COSMO)
    assert plain.body == served_bytes(ConfigFormat.COSMO, COSMO)
    assert unbundle(plain.body) == (plain.body, None)
    with_ops = make_revision(ConfigFormat.COSMO, COSMO, OPS)
    other_ops = make_revision(ConfigFormat.COSMO, COSMO, PersistedOperations({"web": {sha(HELLO): HELLO}}))
    assert len({plain.digest, with_ops.digest, other_ops.digest}) == 3


def test_every_cluster_render_carries_the_operations() -> None:
    clusters = [ClusterFacts("edge-eu", {"region": "eu"}), ClusterFacts("edge-us", {"region": "us"})]
    rendered = render_set(ConfigFormat.COSMO, COSMO, [], clusters, operations=OPS)
    for revision in rendered.clusters.values():
        assert unbundle(revision.body)[1] == OPS


json_text = st.text(st.characters(codec="utf-8"), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | json_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_text, inner, max_size=4),
    max_leaves=20,
)


@given(
    config=st.dictionaries(json_text, json_values, max_size=6), document=st.text(min_size=1).filter(str.strip)
)
def test_any_json_config_round_trips_through_a_bundle(config: dict[str, Any], document: str) -> None:
    body = served_bytes(ConfigFormat.JSON, config)
    ops = PersistedOperations({"c": {sha(document): document}})
    assert unbundle(bundle_body(body, ops)) == (body, ops)


def test_the_pql_manifest_is_what_a_router_validates_and_its_revision_follows_the_operations() -> None:
    body, revision = pql_manifest(OPS)
    manifest = json.loads(body)
    assert manifest == {"version": 1, "revision": revision, "operations": OPS.all()}
    assert (
        pql_manifest(PersistedOperations({"other": {sha(HELLO): HELLO}}, {sha(PRICES): PRICES}))[1]
        == revision
    )
    assert pql_manifest(PersistedOperations({"web": {sha(HELLO): HELLO}}))[1] != revision


def test_one_operation_is_stored_as_cosmos_control_plane_stores_it() -> None:
    assert (
        operation_file('query { hello(name: "é") }')
        == '{"version":1,"body":"query { hello(name: \\"é\\") }"}'.encode()
    )


def test_warmup_lists_every_operation_as_a_persisted_query_and_only_when_asked() -> None:
    items = json.loads(warmup_file(OPS) or b"")["operations"]
    assert {
        "request": {
            "query": PRICES,
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha(PRICES)}},
        }
    } in items
    assert {
        "request": {
            "query": HELLO,
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha(HELLO)}},
        },
        "client": {"name": "web"},
    } in items
    assert len(items) == 2
    assert warmup_file(PersistedOperations(OPS.by_client, OPS.shared, cache_warmup=False)) is None
    assert warmup_file(PersistedOperations(cache_warmup=True)) is None
