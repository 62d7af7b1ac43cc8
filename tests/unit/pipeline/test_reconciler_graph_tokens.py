"""Graph token verification by default (issue 12): `spec.cosmo.graphTokenSecretRef` reaches every edge
cache as it reaches the signing key (edge Secret, env by secretKeyRef, a rotation rolls the pods);
without it the RouterConfig says `TokensVerified=False`; a bad Secret stalls, named, and moves nothing.
`spec.cache.publicRead` is the only way to serve GET /configs without a credential."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pipeline_fakes import World, secret

from edgeroll.api.routerconfig import RouterConfigStatus
from edgeroll.rollout.resources import ANNOTATION_TOKEN_SECRET, SECRET_GRAPH_TOKEN_SECRET, edge_name

pytestmark = pytest.mark.unit

TOKEN_SECRET = "cosmo-graph-token-signing-secret"


def _with_token_secret(w: World, value: str | bytes = TOKEN_SECRET) -> None:
    w.hub.put(secret("prod", "graph-tokens", {"secret": value}))
    w.update(cosmo={**w.spec["cosmo"], "graphTokenSecretRef": {"name": "graph-tokens", "key": "secret"}})


def _edge(w: World) -> tuple[dict[str, str], dict[str, Any], dict[str, str]]:
    """edge-eu's Secret data (decoded), container env by name, and pod template annotations."""
    found = w.edges["edge-eu"].obj("Secret", "edgeroll-system", edge_name("prod", "graph"))
    assert found is not None
    data = {k: base64.b64decode(v).decode() for k, v in found["data"].items()}
    template = w.edges["edge-eu"].deployments()[0]["spec"]["template"]
    env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
    return data, env, template["metadata"]["annotations"]


def _condition(status: RouterConfigStatus, type_: str) -> tuple[str, str, str]:
    cond = next(c for c in status.conditions if c.type == type_)
    return cond.status, cond.reason, cond.message


async def test_the_token_secret_reaches_every_cache_by_reference_and_tokens_are_verified() -> None:
    w = World()
    _with_token_secret(w)
    status = await w.converge()
    assert status.phase == "Ready"
    assert _condition(status, "TokensVerified")[:2] == ("True", "GraphTokenSecret")
    data, env, annotations = _edge(w)
    assert data[SECRET_GRAPH_TOKEN_SECRET] == TOKEN_SECRET
    ref = env["EDGEROLL_COSMO_TOKEN_SECRET"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": edge_name("prod", "graph"), "key": SECRET_GRAPH_TOKEN_SECRET}
    assert "EDGEROLL_CACHE_PUBLIC_READ" not in env
    assert TOKEN_SECRET not in str(annotations) and TOKEN_SECRET not in str(status.to_wire())

    # A rotated secret changes the pod template, so the pods restart with it.
    before = annotations[ANNOTATION_TOKEN_SECRET]
    w.hub.put(secret("prod", "graph-tokens", {"secret": TOKEN_SECRET + "-rotated"}))
    w.update()  # a new generation: the spec's inputs are read again
    await w.converge()
    assert _edge(w)[2][ANNOTATION_TOKEN_SECRET] != before


async def test_without_a_token_secret_the_status_says_tokens_are_not_verified() -> None:
    w = World()
    status = await w.converge()
    state, reason, message = _condition(status, "TokensVerified")
    assert (state, reason) == ("False", "NoGraphTokenSecret")
    assert "spec.cosmo.graphTokenSecretRef" in message
    data, env, _ = _edge(w)
    assert SECRET_GRAPH_TOKEN_SECRET not in data and "EDGEROLL_COSMO_TOKEN_SECRET" not in env


async def test_taking_the_token_secret_out_drops_it_from_the_edges() -> None:
    w = World()
    _with_token_secret(w)
    await w.converge()
    w.update(cosmo={k: v for k, v in w.spec["cosmo"].items() if k != "graphTokenSecretRef"})
    status = await w.converge()
    assert _condition(status, "TokensVerified")[0] == "False"
    data, env, _ = _edge(w)  # (the fake keeps annotations a server-side apply would drop)
    assert SECRET_GRAPH_TOKEN_SECRET not in data and "EDGEROLL_COSMO_TOKEN_SECRET" not in env


async def test_a_routerconfig_without_cosmo_has_no_token_condition() -> None:
    w = World()
    w.spec.pop("cosmo")
    status = await w.converge()
    assert "TokensVerified" not in {c.type for c in status.conditions}


@pytest.mark.parametrize(
    ("value", "reason", "says"),
    [
        (
            None,
            "GraphTokenSecretNotFound",
            "Secret prod/graph-tokens not found (spec.cosmo.graphTokenSecretRef)",
        ),
        ("", "InvalidGraphTokenSecret", "key 'secret' is empty"),
        (b"\xff\xfe-not-text", "InvalidGraphTokenSecret", "key 'secret' is not valid UTF-8 text"),
    ],
)
async def test_a_bad_token_secret_stalls_naming_it_and_nothing_moves(
    value: str | bytes | None, reason: str, says: str
) -> None:
    w = World()
    _with_token_secret(w, value if value is not None else "x")
    if value is None:
        w.hub.objects.pop(("Secret", "prod", "graph-tokens"))
    status = await w.reconcile()
    state, got, message = _condition(status, "Stalled")
    assert (state, got) == ("True", reason) and says in message, message
    assert w.edge_writes() == 0 and w.store.objects == {}


async def test_public_read_is_an_explicit_choice() -> None:
    w = World()
    w.spec["cache"] = {"replicas": 1, "publicRead": True}
    await w.converge()
    assert _edge(w)[1]["EDGEROLL_CACHE_PUBLIC_READ"] == {
        "name": "EDGEROLL_CACHE_PUBLIC_READ",
        "value": "true",
    }
