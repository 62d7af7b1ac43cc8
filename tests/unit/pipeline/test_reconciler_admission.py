"""spec.admission.webhook in the reconciler: nothing is published that the webhook has not admitted, a
refusal stalls with its reason and keeps the edges as they are, no answer is retried with backoff, an
admitted digest is not asked again, and the URL policy refuses before anything is read."""

from __future__ import annotations

import copy
import dataclasses

import pytest
from pipeline_fakes import COSMO, KEY, FakeWebhook, World, secret

from edgeroll.admission.policy import parse_prefix
from edgeroll.api.routerconfig import RouterConfigStatus
from edgeroll.operator_metrics import ADMISSION_RESULTS as RESULTS

pytestmark = pytest.mark.unit

HOOK_KEY = b"hook-key-abcdef0123456789"
URL = "https://admission.example.com/edgeroll/validate"


def _world(prefixes: tuple[str, ...] = ("https://admission.example.com/edgeroll/",)) -> World:
    w = World()
    w.hub.put(secret("prod", "hook", {"key": HOOK_KEY}))
    w.spec["admission"] = {"webhook": {"url": URL, "secretRef": {"name": "hook", "key": "key"}}}
    w.settings = dataclasses.replace(
        w.settings, admission_url_prefixes=tuple(parse_prefix(p) for p in prefixes)
    )
    w.webhook = FakeWebhook(HOOK_KEY)
    w.restart()
    return w


def _condition(status: RouterConfigStatus, type_: str) -> tuple[str, str, str]:
    cond = next(c for c in status.conditions if c.type == type_)
    return cond.status, cond.reason, cond.message


def _changed_config() -> dict[str, object]:
    config = copy.deepcopy(COSMO)
    config["subgraphs"][0]["name"] = "refused-one"
    return config


def _no_secret_in(w: World, status: RouterConfigStatus) -> None:
    text = status.model_dump_json() + "".join(e.message for e in w.events)
    for value in (HOOK_KEY, KEY):
        assert value.decode() not in text and value.hex() not in text


async def test_an_admitted_revision_is_published_and_rolled_out() -> None:
    w = _world()
    status = await w.converge()
    assert w.webhook is not None and status.phase == "Ready" and status.revision is not None
    assert w.webhook.digests() == [status.revision.digest]
    assert w.webhook.asked[0]["routerConfig"]["name"] == "graph"
    assert sorted(w.webhook.asked[0]["clusters"]) == ["edge-ap", "edge-eu", "edge-us"]
    assert w.reasons()["Admitted"] == 1 and w.store.counters["put"] > 0
    await w.reconcile(full=True)  # a resync: admitted digests are not asked again
    assert len(w.webhook.asked) == 1
    _no_secret_in(w, status)


async def test_a_refusal_stalls_with_the_reason_and_the_edges_keep_serving() -> None:
    w = _world()
    good = (await w.converge()).revision
    assert good is not None and w.webhook is not None
    puts, writes = w.store.counters["put"], w.edge_writes()
    # The webhook refuses what is new, and echoes its key in the reason (it must not reach the status).
    w.webhook.answer = (
        400,
        b'{"error": "subgraph url http://evil.example not allowed; key ' + HOOK_KEY + b'"}',
    )
    w.update(config=_changed_config())
    status = await w.reconcile()
    assert status.phase == "Stalled"
    stalled, reason, message = _condition(status, "Stalled")
    assert (stalled, reason) == ("True", "AdmissionRefused")
    assert message.startswith("spec.admission.webhook refused ") and "(HTTP 400)" in message
    assert "subgraph url http://evil.example not allowed" in message and "[redacted]" in message
    assert w.store.counters["put"] == puts and w.edge_writes() == writes
    assert all(w.template_digest(e) == good.digest for e in w.edges)
    assert status.revision == good  # the published revision is still the old one
    assert w.reasons()["AdmissionRefused"] == 1
    _no_secret_in(w, status)


async def test_an_unreachable_webhook_is_retried_and_never_published_around() -> None:
    w = _world()
    assert w.webhook is not None
    w.webhook.down = ConnectionRefusedError("connection refused")
    result = await w.controller.reconcile(w.obj(), w.clusters, w.events.append, full=True)
    assert result is not None and result.transient
    status = result.status
    assert status.phase == "Progressing" and not any(c.type == "Stalled" for c in status.conditions)
    assert _condition(status, "Published")[:2] == ("False", "AdmissionUnavailable")
    assert "no answer: ConnectionRefusedError" in _condition(status, "Published")[2]
    assert _condition(status, "Ready")[1] == "AdmissionUnavailable"
    assert w.store.counters["put"] == 0 and w.edge_writes() == 0
    w.webhook.down = None  # it comes back: the next attempt publishes
    status = await w.converge()
    assert status.phase == "Ready" and _condition(status, "Published")[0] == "True"


@pytest.mark.parametrize("answer", [(503, b"maintenance"), (429, b""), (302, b"")])
async def test_5xx_429_and_redirects_are_retried(answer: tuple[int, bytes]) -> None:
    w = _world()
    assert w.webhook is not None
    w.webhook.answer = answer
    status = await w.reconcile()
    assert _condition(status, "Published")[:2] == ("False", "AdmissionUnavailable")
    assert status.phase != "Stalled" and w.store.counters["put"] == 0


async def test_every_distinct_revision_is_asked_about_overlays_included() -> None:
    w = _world()
    w.spec["overlays"] = [
        {
            "clusterSelector": {"matchLabels": {"region": "eu"}},
            "patch": {"subgraphs": [{"id": "0", "name": "products-${cluster.name}"}]},
        }
    ]
    status = await w.converge()
    assert w.webhook is not None and status.phase == "Ready"
    eu = next(c for c in status.clusters if c.name == "edge-eu")
    asked = {d["digest"]: d["clusters"] for d in w.webhook.asked}
    assert asked[eu.desired_digest or ""] == ["edge-eu"]
    assert len(asked) == 2  # the base (edge-ap, edge-us) and edge-eu's own


async def test_a_restart_asks_again_once() -> None:
    w = _world()
    await w.converge()
    w.restart()  # memory is empty: the current digest is asked once more, then remembered
    await w.reconcile(full=True)
    await w.reconcile(full=True)
    assert w.webhook is not None and len(w.webhook.asked) == 2


def _requests(w: World) -> dict[str, float | None]:
    registry = w.reconciler.metrics.registry
    counts = {
        r: registry.get_sample_value("edgeroll_admission_requests_total", {"result": r}) for r in RESULTS
    }
    counts["seconds"] = registry.get_sample_value("edgeroll_admission_duration_seconds_sum")
    return counts


async def test_each_request_counts_by_its_verdict_and_is_timed() -> None:
    w = _world()
    assert w.webhook is not None
    ticks = iter(range(100))
    w.reconciler.admission.clock = lambda: 0.25 * next(ticks)  # each request takes 0.25 s
    assert _requests(w) == {"admitted": 0.0, "refused": 0.0, "unavailable": 0.0, "seconds": 0.0}
    await w.converge()
    assert _requests(w) == {"admitted": 1.0, "refused": 0.0, "unavailable": 0.0, "seconds": 0.25}

    w.webhook.answer = (400, b'{"error": "no"}')
    w.update(config=_changed_config())
    assert (await w.reconcile()).phase == "Stalled"
    assert _requests(w) == {"admitted": 1.0, "refused": 1.0, "unavailable": 0.0, "seconds": 0.5}

    w.webhook.answer = (503, b"")
    await w.reconcile()
    w.webhook.down = ConnectionRefusedError("connection refused")
    await w.reconcile()
    assert _requests(w) == {"admitted": 1.0, "refused": 1.0, "unavailable": 2.0, "seconds": 1.0}
    registry = w.reconciler.metrics.registry
    assert registry.get_sample_value("edgeroll_admission_duration_seconds_count") == 4.0
    text = w.reconciler.metrics.exposition().decode()
    admission = [line for line in text.splitlines() if line.startswith("edgeroll_admission_")]
    assert admission and not any(URL in line or "graph" in line or "prod" in line for line in admission)


async def test_no_prefix_refuses_the_webhook_before_anything_is_read() -> None:
    w = _world(prefixes=())
    status = await w.reconcile()
    stalled, reason, message = _condition(status, "Stalled")
    assert (stalled, reason) == ("True", "AdmissionWebhookNotAllowed")
    assert message.startswith(f"spec.admission.webhook.url: {URL!r} is not under an allowed admission URL")
    assert "--admission-url-prefix" in message
    assert w.webhook is not None and w.webhook.asked == [] and w.store.counters["put"] == 0
    assert w.hub.calls["get"] == 0  # not even the Secret


async def test_the_secret_is_read_from_the_routerconfigs_namespace_only() -> None:
    w = _world()
    del w.hub.objects[("Secret", "prod", "hook")]
    w.hub.put(secret("other", "hook", {"key": HOOK_KEY}))
    status = await w.reconcile()
    assert _condition(status, "Stalled")[:2] == ("True", "AdmissionSecretNotFound")
    assert "Secret prod/hook not found (spec.admission.webhook.secretRef)" in _condition(status, "Stalled")[2]
    assert w.webhook is not None and w.webhook.asked == []


async def test_a_missing_secret_is_read_again_at_the_next_resync_and_only_in_its_namespace() -> None:
    """The operator never lists or watches Secrets (docs/security.md): a Secret created after the
    RouterConfig stalled is found by the next full reconcile, which the controller schedules at
    resync_seconds (not with backoff: a Stalled object waits for a change)."""
    w = _world()
    del w.hub.objects[("Secret", "prod", "hook")]
    result = await w.controller.reconcile(w.obj(), w.clusters, w.events.append, full=True)
    assert result is not None and not result.transient
    assert result.requeue_after == w.settings.resync_seconds
    assert _condition(result.status, "Stalled")[:2] == ("True", "AdmissionSecretNotFound")

    w.hub.put(secret("other", "hook", {"key": HOOK_KEY}))  # another namespace's never counts
    assert _condition(await w.reconcile(full=True), "Stalled")[:2] == ("True", "AdmissionSecretNotFound")
    assert w.webhook is not None and w.webhook.asked == [] and w.store.counters["put"] == 0

    w.hub.put(secret("prod", "hook", {"key": HOOK_KEY}))
    status = await w.converge()
    assert status.phase == "Ready" and len(w.webhook.asked) == 1 and w.store.counters["put"] > 0
