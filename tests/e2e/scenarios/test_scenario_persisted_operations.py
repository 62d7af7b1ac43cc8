"""Persisted operations end to end (issue 12): a RouterConfig names a ConfigMap of operation
documents (`spec.persistedOperations`); every edge cache then serves them as Cosmo's CDN does
(`operations/manifest.json` with its ETag and 304, `operations/<client>/<sha256>.json`,
`cache_warmup/operations.json`) beside the config, which a router still gets alone and signed. An
edit to the ConfigMap alone is a new revision that rolls out. The CRD refuses operations without a
Cosmo graph.

Runs on both providers: on the lab the cache is a local process built from what the operator wrote in
the edge cluster, on kind it is the real pod behind a port-forward.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from scenario_kit import ComposedGraph, Fleet, cosmo_variant, http_answer, signed_graph_token

from edgeroll.lab.pod_runner import CacheEndpoint
from edgeroll.render.signing import verify
from edgeroll.rollout.resources import edge_name

pytestmark = pytest.mark.e2e

ORG, GRAPH = "acme", "storefront-operations"
TOKEN = signed_graph_token(None, ORG, GRAPH)  # the caches check claims only: no token secret here
HELLO = "query Hello { hello }"
CART = "query Cart($id: ID!) { cart(id: $id) { total } }"
PRICES = "query Prices { prices }"


def sha(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def operations_configmap(ns: str, *client_documents: str) -> dict[str, Any]:
    data = {f"web.{sha(d)}.graphql": d for d in client_documents}
    data["manifest.json"] = json.dumps({"version": 1, "operations": {sha(PRICES): PRICES}})
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ops", "namespace": ns},
        "data": data,
    }


def get(
    cache: CacheEndpoint, path: str, if_none_match: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if if_none_match is not None:
        headers["If-None-Match"] = if_none_match
    return http_answer(urllib.request.Request(f"{cache.url}/{ORG}/{GRAPH}/{path}", headers=headers))  # noqa: S310


def assert_operations_served(cache: CacheEndpoint, documents: list[str]) -> str:
    """Every route a router reads for persisted operations; returns the manifest's ETag."""
    status, headers, body = get(cache, "operations/manifest.json")
    assert status == 200, body[:300]
    assert json.loads(body)["operations"] == {sha(d): d for d in [*documents, PRICES]}
    etag = headers["etag"]
    assert get(cache, "operations/manifest.json", etag)[0] == 304
    for document in documents:
        status, _, body = get(cache, f"operations/web/{sha(document)}.json")
        assert (status, json.loads(body)) == (200, {"version": 1, "body": document})
    assert get(cache, f"operations/web/{sha(PRICES)}.json")[0] == 404  # a manifest entry has no client
    status, headers, body = get(cache, "cache_warmup/operations.json")
    assert status == 200 and headers["cache-control"] == "no-cache, no-store, must-revalidate"
    warmed = {
        op["request"]["extensions"]["persistedQuery"]["sha256Hash"] for op in json.loads(body)["operations"]
    }
    assert warmed == {sha(d) for d in [*documents, PRICES]}
    # The router's own route still gets the config alone, signed with the key the cache verifies with.
    config_request = urllib.request.Request(  # noqa: S310
        f"{cache.url}/{ORG}/{GRAPH}/routerconfigs/latest.json",
        data=b'{"version": ""}',
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    status, headers, body = http_answer(config_request)
    assert status == 200 and "engineConfig" in json.loads(body)
    assert verify(cache.signing_key, body, headers["x-signature-sha256"])
    return etag


def test_persisted_operations_reach_every_edge_and_an_edit_to_them_rolls_out(
    fleet: Fleet, composed_graph: ComposedGraph
) -> None:
    e2e, ns = fleet.e2e, fleet.scope.ns
    e2e.hub("apply", "-f", "-", input=json.dumps(operations_configmap(ns, HELLO)))
    rc = e2e.routerconfig(
        "ops",
        cosmo_variant(composed_graph.config, "ops"),
        cosmo={"organizationId": ORG, "federatedGraphId": GRAPH},
        persistedOperations={"configMapRef": {"name": "ops"}, "cacheWarmup": True},
    )
    e2e.apply(rc)
    first = e2e.wait_ready("ops", timeout=240)["revision"]["digest"]

    work = Path(tempfile.mkdtemp(prefix="operations-", dir=fleet.work))
    etags = set()
    for edge in sorted(e2e.edges):
        with fleet.provider.edge_cache(edge, ns, edge_name(ns, "ops"), work / edge) as cache:
            etags.add(assert_operations_served(cache, [HELLO]))
    assert len(etags) == 1

    e2e.hub("apply", "-f", "-", input=json.dumps(operations_configmap(ns, HELLO, CART)))
    e2e.wait_status(
        "ops",
        lambda st: (
            st.get("revision", {}).get("digest") not in (None, first)
            and all(
                c.get("digest") == st["revision"]["digest"] and c.get("phase") == "Ready"
                for c in st["clusters"]
            )
        ),
        timeout=240,
        what="the revision with the new operation on every edge",
    )
    edge = sorted(e2e.edges)[0]
    with fleet.provider.edge_cache(edge, ns, edge_name(ns, "ops"), work / f"{edge}-2") as cache:
        assert assert_operations_served(cache, [HELLO, CART]) not in etags


def test_operations_without_a_cosmo_graph_are_refused_at_apply(fleet: Fleet) -> None:
    e2e = fleet.e2e
    rc = e2e.routerconfig("ops-json", {"flags": {"x": 1}}, format="json")
    del rc["spec"]["cosmo"]
    rc["spec"]["persistedOperations"] = {"configMapRef": {"name": "ops"}}
    out = e2e.hub("apply", "-f", "-", input=json.dumps(rc), check=False)
    assert out.returncode != 0 and "spec.persistedOperations needs spec.cosmo" in out.stderr
