"""Edge object names and ownership (issue 11): no two RouterConfigs share an edge object, and the
operator never writes over, nor deletes, one that another owns. Names first (hypothesis), then two
tenants of one install on in-memory fakes, then the migration off the 0.1 names."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipeline_fakes import World, foreign_deployment

from edgeroll.api.edgecluster import DEFAULT_NAMESPACE as EDGE_NS
from edgeroll.api.routerconfig import ClusterPhase
from edgeroll.rollout.ownership import CONFLICT_REASON
from edgeroll.rollout.resources import (
    ANNOTATION_ALIAS_OF,
    ANNOTATION_ROUTERCONFIG,
    LABEL_INSTANCE,
    LABEL_RC_UID,
    edge_name,
    legacy_edge_name,
)

pytestmark = pytest.mark.unit

# What the apiserver accepts: a namespace is a DNS-1123 label, a RouterConfig name a subdomain.
_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
_subdomain = st.lists(_label, min_size=1, max_size=4).map(".".join).filter(lambda s: len(s) <= 253)
_short = st.from_regex(r"[a-z0-9](-?[a-z0-9]){0,4}", fullmatch=True)  # dashes where collisions live
namespaces = st.one_of(_label, _short)
names = st.one_of(_subdomain, _short, _short.map(lambda s: s + ".x"))
DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def test_the_pair_from_the_report_gets_two_names() -> None:
    assert legacy_edge_name("team-a", "web") == legacy_edge_name("team", "a-web")  # the 0.1 bug
    assert edge_name("team-a", "web") != edge_name("team", "a-web")


def test_names_without_dashes_or_dots_keep_their_readable_form() -> None:
    assert edge_name("storefront", "storefront") == "edgeroll-storefront-storefront"
    assert edge_name("team-a", "web").startswith("edgeroll-team-a-web--")


@given(namespaces, names)
def test_every_name_is_a_service_name(namespace: str, name: str) -> None:
    got = edge_name(namespace, name)
    assert len(got) <= 63 and DNS_1035.fullmatch(got), got


@given(st.tuples(namespaces, names), st.tuples(namespaces, names))
def test_no_two_pairs_share_a_name(a: tuple[str, str], b: tuple[str, str]) -> None:
    if a != b:
        assert edge_name(*a) != edge_name(*b), (a, b)


@given(st.tuples(_short, _short), st.tuples(_short, _short))
def test_no_two_pairs_share_a_name_even_when_they_spell_the_same(
    a: tuple[str, str], b: tuple[str, str]
) -> None:
    # Hypothesis rarely draws two pairs whose dashed spellings meet by chance: build them instead.
    joined = f"{a[0]}-{a[1]}"
    if "-" in joined[1:-1]:
        cut = joined.index("-", 1)
        other = (joined[:cut], joined[cut + 1 :])
        if other != a and other[0] and other[1]:
            assert edge_name(*a) != edge_name(*other), (a, other)


# ---- two tenants of one install ---------------------------------------------------------------------


def _tenants() -> tuple[World, World]:
    a = World(namespace="team-a", name="web")
    b = World(namespace="team", name="a-web", share=a)
    return a, b


def _deployment(w: World, edge: str, name: str) -> dict[str, Any] | None:
    return w.edges[edge].obj("Deployment", EDGE_NS, name)


async def test_two_tenants_whose_names_met_in_0_1_each_get_their_own_cache() -> None:
    a, b = _tenants()
    sa, sb = await a.converge(), await b.converge()
    assert sa.phase == "Ready" and sb.phase == "Ready", (sa.conditions, sb.conditions)
    for w in (a, b):
        for edge in w.edges:
            dep = _deployment(w, edge, edge_name(w.namespace, w.name))
            assert dep is not None
            assert dep["metadata"]["annotations"][ANNOTATION_ROUTERCONFIG] == f"{w.namespace}/{w.name}"
            assert dep["metadata"]["labels"][LABEL_RC_UID] == w.uid
    # A resync of either writes nothing over the other's objects.
    writes = a.edge_writes()
    await a.reconcile()
    await b.reconcile()
    assert a.edge_writes() == writes


async def test_deleting_one_tenant_leaves_the_other_serving() -> None:
    a, b = _tenants()
    await a.converge()
    await b.converge()
    done = await a.controller.finalize(a.obj(), a.clusters, a.events.append)
    assert done is not None and done.done
    for edge in a.edges:
        assert _deployment(a, edge, edge_name("team-a", "web")) is None
        assert _deployment(b, edge, edge_name("team", "a-web")) is not None


async def test_an_object_in_the_way_stalls_the_routerconfig_naming_its_owner_and_is_left_alone() -> None:
    w = World()
    name = edge_name("prod", "graph")
    foreign = foreign_deployment()
    w.edges["edge-eu"].namespaces.add(EDGE_NS)
    w.edges["edge-eu"].put(foreign)
    status = await w.converge()
    stalled = next(c for c in status.conditions if c.type == "Stalled")
    assert stalled.status == "True" and stalled.reason == CONFLICT_REASON
    assert "edge-eu" in stalled.message and "belongs to RouterConfig other/graph" in stalled.message
    eu = next(c for c in status.clusters if c.name == "edge-eu")
    assert eu.phase is ClusterPhase.FAILED and "other/graph" in (eu.message or "")
    left = _deployment(w, "edge-eu", name)
    assert left is not None and left["spec"] == {"replicas": 7}  # not written over
    assert [k for k, _, n in w.edges["edge-eu"].objects if n == name] == ["Deployment"]  # nothing else

    await w.controller.finalize(w.obj(), w.clusters, w.events.append)
    assert _deployment(w, "edge-eu", name) is not None  # nor deleted
    assert any(e.reason == "NotRemoved" and "other/graph" in e.message for e in w.events)


async def test_an_object_edgeroll_did_not_make_is_refused_too() -> None:
    w = World()
    name = edge_name("prod", "graph")
    w.edges["edge-us"].namespaces.add(EDGE_NS)
    w.edges["edge-us"].put(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": EDGE_NS}}
    )
    status = await w.converge()
    stalled = next(c for c in status.conditions if c.type == "Stalled")
    assert "edge-us" in stalled.message and "not made by edgeroll" in stalled.message
    assert w.edges["edge-us"].obj("Deployment", EDGE_NS, name) is None  # nothing applied after it
    assert w.edges["edge-us"].obj("Secret", EDGE_NS, name) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": EDGE_NS, "resourceVersion": "1", "uid": "uid-edge-us-1"},
    }


# ---- migration off the 0.1 names -----------------------------------------------------------------


def _rename_to_legacy(w: World, edge: str) -> None:
    """What an 0.1 install left: the same objects under the old name, without the uid label."""
    fake, new, old = w.edges[edge], edge_name(w.namespace, w.name), legacy_edge_name(w.namespace, w.name)
    for kind in ("Deployment", "Service", "Secret", "ServiceAccount"):
        obj = fake.objects.pop((kind, EDGE_NS, new))
        obj["metadata"]["name"] = old
        obj["metadata"]["labels"].pop(LABEL_RC_UID)
        fake.put(obj)


async def test_an_0_1_install_moves_to_the_new_name_and_keeps_its_service_for_routers() -> None:
    a, b = _tenants()
    await a.converge()
    for edge in a.edges:
        _rename_to_legacy(a, edge)
    old, new = legacy_edge_name("team-a", "web"), edge_name("team-a", "web")
    await a.reconcile()  # the new objects come up beside the old, which keep serving
    for edge in a.edges:
        assert _deployment(a, edge, old) is not None and _deployment(a, edge, new) is not None
    await a.converge()  # the new pods serve: the old Deployment goes, its Service stays as an alias
    await a.reconcile()
    for edge, fake in a.edges.items():
        assert _deployment(a, edge, old) is None
        assert fake.obj("Secret", EDGE_NS, old) is None and fake.obj("ServiceAccount", EDGE_NS, old) is None
        alias = fake.obj("Service", EDGE_NS, old)
        assert alias is not None and alias["spec"]["selector"][LABEL_INSTANCE] == new
        assert alias["metadata"]["annotations"][ANNOTATION_ALIAS_OF] == new
    # The other tenant, whose 0.1 name was the same, never touches that alias, and goes Ready beside it.
    assert (await b.converge()).phase == "Ready"
    await b.reconcile()
    assert all(f.obj("Service", EDGE_NS, old) is not None for f in a.edges.values())
    # The alias goes with its RouterConfig.
    await a.controller.finalize(a.obj(), a.clusters, a.events.append)
    assert all(f.obj("Service", EDGE_NS, old) is None for f in a.edges.values())


async def test_a_routerconfig_never_on_0_1_names_stops_looking_for_them_after_one_resync() -> None:
    w = World(namespace="team-a", name="web")  # a dashed pair: its 0.1 name differs from its name
    await w.converge()

    def gets() -> int:
        return sum(edge.calls["get"] for edge in w.edges.values())

    before = gets()
    await w.reconcile()  # ready everywhere: looks under the 0.1 name once, finds nothing
    looked = gets() - before
    before = gets()
    await w.reconcile()
    assert gets() - before == looked - 4 * len(w.edges)  # the alias Service and the three 0.1 objects
