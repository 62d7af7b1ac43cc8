"""In-place switching's decisions: which pods are told, and what their answers add up to."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgeroll.rollout.health import phase_for, read_health
from edgeroll.rollout.inplace import PodAnswer, pods_to_notify, read_answer, verdict
from edgeroll.rollout.resources import EdgeCacheParams, EdgeS3, deployment, secret

pytestmark = pytest.mark.unit

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def pod(
    name: str, phase: str | None = "Running", ip: str | None = "10.0.0.1", leaving: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if leaving:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {}
    if phase:
        status["phase"] = phase
    if ip:
        status["podIP"] = ip
    return {"metadata": meta, "status": status}


def ok(name: str, digest: str = D2) -> PodAnswer:
    return read_answer(
        name, 200, json.dumps({"outcome": "switched", "serving": digest, "wanted": digest}).encode()
    )


def test_running_pods_are_told_leaving_ones_are_not_and_starting_ones_are_waited_for() -> None:
    notify, waiting = pods_to_notify(
        [
            pod("b"),
            pod("a"),
            pod("old", leaving=True),
            pod("done", phase="Succeeded"),
            pod("new", phase="Pending", ip=None),
            pod("unscheduled", phase=None, ip=None),
        ]
    )
    assert notify == ["a", "b"]
    assert waiting == ["pod new is Pending", "pod unscheduled is not scheduled"]


def test_every_pod_serving_the_digest_is_done_and_anything_less_is_not() -> None:
    assert verdict(D2, 2, [], [ok("a"), ok("b")]).done
    assert not verdict(D2, 3, ["pod c is Pending"], [ok("a"), ok("b")]).done
    behind = verdict(D2, 2, [], [ok("a"), ok("b", D1)])
    assert not behind.done and behind.refused is None and "1/2 pods serve" in behind.message
    assert verdict(D2, 0, [], []).done  # replicas: 0 serves nothing, and nothing is left to tell


def test_a_refusal_names_the_pod_and_why_and_beats_every_other_answer() -> None:
    body = {"outcome": "refused", "reason": "signature", "message": "HMAC does not verify", "serving": D1}
    refused = read_answer("b", 422, json.dumps(body).encode())
    v = verdict(D2, 3, ["pod c is Pending"], [ok("a"), refused])
    assert not v.done and v.refused == f"{D2} pod b: HMAC does not verify"


def test_an_apiserver_error_is_a_wait_not_a_verdict_and_says_what_it_said() -> None:
    status = {"kind": "Status", "message": 'pods "a" is forbidden: cannot create resource "pods/proxy"'}
    forbidden = read_answer("a", 403, json.dumps(status).encode())
    assert forbidden.outcome is None and "pods/proxy" in forbidden.reason
    gateway = read_answer("b", 502, b"<html>bad gateway</html>")
    v = verdict(D2, 2, [], [forbidden, gateway])
    assert not v.done and v.refused is None and "pods/proxy" in v.message and "502" in v.message


def params(**extra: Any) -> EdgeCacheParams:
    base: dict[str, Any] = {
        "rc_namespace": "prod",
        "rc_name": "graph",
        "cluster": "edge-eu",
        "namespace": "edgeroll-system",
        "digest": D2,
        "key": "edgeroll/prod/graph/2.json",
        "signature": "c2ln",
        "signing_key": b"k" * 32,
        "s3": EdgeS3("bucket", None, None),
        "image": "localhost:5000/edgeroll:dev",
        "replicas": 2,
        "port": 8080,
    }
    return EdgeCacheParams(**{**base, **extra})


def test_an_inplace_template_does_not_change_with_the_revision_but_does_with_the_signing_key() -> None:
    one = deployment(params(in_place=True, pointer_key="p", served_digest=D1))
    two = deployment(params(in_place=True, pointer_key="p", served_digest=D1, digest=D1, key="k1"))
    assert one["spec"] == two["spec"]
    rotated = deployment(params(in_place=True, pointer_key="p", signing_key=b"r" * 32))
    assert rotated["spec"]["template"] != one["spec"]["template"]
    restart = deployment(params())
    assert restart["spec"]["template"]["metadata"]["annotations"]["edgeroll.io/digest"] == D2
    assert "edgeroll.io/digest" not in one["spec"]["template"]["metadata"]["annotations"]
    assert set(secret(params(in_place=True))["data"]) >= {"config-digest", "config-key"}
    assert "config-digest" not in secret(params())["data"]


def test_inplace_health_is_what_the_pods_said_and_a_refusal_fails_only_its_digest() -> None:
    live = deployment(params(in_place=True, pointer_key="p", served_digest=D1, refused=f"{D2} pod a: bad"))
    live["metadata"]["generation"] = 1
    live["status"] = {
        "observedGeneration": 1,
        "replicas": 2,
        "updatedReplicas": 2,
        "availableReplicas": 2,
        "readyReplicas": 2,
        "conditions": [{"type": "Available", "status": "True"}],
    }
    health = read_health(live)
    assert health.digest == D1
    assert phase_for(health, D1)[0] == "Ready"
    phase, message = phase_for(health, D2)
    assert phase == "Failed" and "pod a: bad" in message
