"""Graph tokens verified end to end (issue 12): a RouterConfig that names the secret its graph tokens
are signed with (`spec.cosmo.graphTokenSecretRef`) gets caches that answer a router holding a genuine
token and refuse a forged, unsigned or foreign one; the plain route wants a credential too.

Runs on both providers: on the lab the cache is a local process built from what the operator wrote in
the edge cluster, on kind it is the real pod behind a port-forward.
"""

from __future__ import annotations

import json
import tempfile
import urllib.request
from pathlib import Path

import pytest
from scenario_kit import ComposedGraph, Fleet, condition, cosmo_variant, http_answer, signed_graph_token

from edgeroll.lab.pod_runner import CacheEndpoint
from edgeroll.render.signing import read_token
from edgeroll.rollout.resources import edge_name

pytestmark = pytest.mark.e2e

ORG, GRAPH = "acme", "storefront-tokens"
TOKEN_SECRET = "graph-token-secret-of-the-control-plane"


def graph_token(secret: str | None, org: str = ORG, graph: str = GRAPH, alg: str = "HS256") -> str:
    return signed_graph_token(secret, org, graph, alg)


def _status(request: urllib.request.Request) -> int:
    return http_answer(request)[0]


def cosmo_fetch(cache: CacheEndpoint, token: str) -> int:
    return _status(
        urllib.request.Request(  # noqa: S310 - loopback
            f"{cache.url}/{ORG}/{GRAPH}/routerconfigs/latest.json",
            data=b'{"version": ""}',
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
    )


def plain_fetch(cache: CacheEndpoint, ns: str, name: str, bearer: str | None) -> int:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    return _status(urllib.request.Request(f"{cache.url}/configs/{ns}/{name}", headers=headers))  # noqa: S310


def test_a_cache_with_the_token_secret_serves_genuine_tokens_and_refuses_the_rest(
    fleet: Fleet, composed_graph: ComposedGraph
) -> None:
    e2e, ns = fleet.e2e, fleet.scope.ns
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "cosmo-graph-tokens", "namespace": ns},
        "stringData": {"secret": TOKEN_SECRET},
    }
    e2e.hub("apply", "-f", "-", input=json.dumps(secret))
    cosmo = {
        "organizationId": ORG,
        "federatedGraphId": GRAPH,
        "graphTokenSecretRef": {"name": "cosmo-graph-tokens", "key": "secret"},
    }
    e2e.apply(e2e.routerconfig("tokens", cosmo_variant(composed_graph.config, "tokens"), cosmo=cosmo))
    status = e2e.wait_ready("tokens", timeout=240)
    assert condition(status, "TokensVerified")["status"] == "True"

    edge = sorted(e2e.edges)[0]
    work = Path(tempfile.mkdtemp(prefix=f"{edge}-tokens-", dir=fleet.work))
    with fleet.provider.edge_cache(edge, ns, edge_name(ns, "tokens"), work) as cache:
        assert cosmo_fetch(cache, graph_token(TOKEN_SECRET)) == 200
        assert cosmo_fetch(cache, graph_token("a-forged-secret")) == 401
        assert cosmo_fetch(cache, graph_token(None, alg="none")) == 401
        assert cosmo_fetch(cache, graph_token(TOKEN_SECRET, graph="another-graph")) == 400  # as the CDN

        assert plain_fetch(cache, ns, "tokens", None) == 401
        assert plain_fetch(cache, ns, "tokens", graph_token("a-forged-secret")) == 401
        assert plain_fetch(cache, ns, "tokens", graph_token(TOKEN_SECRET)) == 200
        assert plain_fetch(cache, ns, "tokens", read_token(cache.signing_key, ns, "tokens")) == 200
        assert plain_fetch(cache, ns, "tokens", read_token(cache.signing_key, ns, "other")) == 401
