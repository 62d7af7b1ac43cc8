"""An object in S3 overwritten with different bytes: no edge serves it, and it is seen and repaired.

Two tamperings of the served revision's object:

1. While the operator is stopped: same length, and the `signature-sha256` metadata copied from the
   original, so size and signature (all a HEAD shows) still look right. A new edge pod started
   from the Deployment's pod template must refuse it (digest mismatch, counted in its /metrics),
   stay unready and serve nothing; the running pods keep serving what they verified before. The
   operator, once started, must notice, put the right bytes back and say so in an event; the new
   pod then gets ready on the right digest.
2. While the operator runs: different bytes of another length and no signature, as a careless
   overwrite would leave them. The operator's periodic full reconcile must repair it.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime
from typing import Any

import pytest
from reliability_kit import (
    EdgeFleet,
    Reliability,
    cache_metric,
    digest_of,
    figure,
    http_get,
    read_headers,
    variant,
)
from tests.polling import wait_until

from edgeroll.render.signing import SIGNATURE_METADATA_KEY

pytestmark = pytest.mark.reliability

REPAIR_WITHIN_S = 30.0  # the test operator's full resync is 5 s


def _sha(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def test_tampered_object_is_never_served_and_is_repaired(rel: Reliability) -> None:
    rc = "tamper"
    config = variant("tamper-original")
    digest = digest_of(config)
    rel.apply(rel.routerconfig(rc, config))
    status = rel.wait_ready(rc)
    key = status["revision"]["key"]
    s3 = rel.lab.s3_client()
    bucket = rel.lab.s3_bucket

    def stored() -> tuple[bytes, dict[str, str]]:
        obj = s3.get_object(Bucket=bucket, Key=key)
        return obj["Body"].read(), dict(obj.get("Metadata", {}))

    original, metadata = stored()
    assert _sha(original) == digest
    forged = original.replace(b"tamper-original", b"TAMPER-ORIGINAL")
    assert len(forged) == len(original) and forged != original

    def events_naming_key(since: float) -> list[dict[str, Any]]:
        got = []
        for e in rel.events(rc):
            stamp = e.get("lastTimestamp") or e.get("eventTime") or ""
            if key in e.get("message", "") and _epoch(stamp) >= since - 1:
                got.append(e)
        return got

    with EdgeFleet(rel, rc, rel.work / rc) as fleet:
        fleet.wait_serving(digest)
        fleet.allowed = {digest}
        edge = "edge-eu"
        dep = fleet.templates[edge]

        # 1. Same length, signature copied, operator stopped.
        rel.operator.stop()
        try:
            tampered_at = time.time()
            s3.put_object(
                Bucket=bucket, Key=key, Body=forged, ContentType="application/json", Metadata=metadata
            )
            pod = fleet.start_pod(edge, dep)  # a new pod of the same Deployment, empty state dir
        except BaseException:
            rel.operator.start()
            raise
        try:
            try:
                wait_until(
                    lambda: (
                        cache_metric(
                            pod.cache,
                            "edgeroll_cache_verify_failures_total",
                            source="origin",
                            reason="digest_mismatch",
                        )
                        >= 1
                    ),
                    timeout=30,
                    message=lambda: f"the new pod refusing the forged object; log {pod.cache.log_path}",
                )
                assert http_get(pod.cache.port, "/readyz")[0] == 503
                path = f"/configs/{rel.ns}/{rc}"
                assert http_get(pod.cache.port, path, read_headers(pod.cache))[0] == 503, (
                    "nothing verified: nothing served"
                )
                assert cache_metric(pod.cache, "edgeroll_cache_ready") == 0
                assert all(d == digest for d in fleet.serving().values())
            finally:
                rel.operator.start()
            restarted = time.monotonic()
            wait_until(
                lambda: _sha(stored()[0]) == digest,
                timeout=REPAIR_WITHIN_S,
                message="the operator putting the right bytes back after a same-size forgery",
            )
            repaired_after = time.monotonic() - restarted
            wait_until(lambda: events_naming_key(tampered_at), timeout=30, message=f"an event naming {key}")
            assert stored()[1].get(SIGNATURE_METADATA_KEY) == metadata[SIGNATURE_METADATA_KEY]
            wait_until(
                lambda: http_get(pod.cache.port, "/readyz")[0] == 200, timeout=60, message="the new pod ready"
            )
            pod_ready_after = time.monotonic() - restarted
            _, head, body = http_get(pod.cache.port, path, read_headers(pod.cache))
            assert head["x-config-digest"] == digest and _sha(body) == digest
            refused = cache_metric(pod.cache, "edgeroll_cache_verify_failures_total", source="origin")
        finally:
            pod.cache.stop()

        # 2. Another length, no signature, operator running.
        careless = original + b" "
        tampered_at = time.time()
        t0 = time.monotonic()
        s3.put_object(Bucket=bucket, Key=key, Body=careless, ContentType="application/json")
        wait_until(
            lambda: _sha(stored()[0]) == digest,
            timeout=REPAIR_WITHIN_S,
            message="the running operator repairing an overwritten object",
        )
        repaired_running_after = time.monotonic() - t0
        wait_until(lambda: events_naming_key(tampered_at), timeout=30, message=f"an event naming {key}")

    reasons = sorted({e["reason"] for e in events_naming_key(0)})
    figure(
        "tampering",
        verify_failures=int(refused),
        repaired_after_restart_s=round(repaired_after, 1),
        new_pod_ready_after_restart_s=round(pod_ready_after, 1),
        repaired_while_running_s=round(repaired_running_after, 1),
        event_reasons="/".join(reasons),
        failed_polls=len(fleet.failed_polls()),
    )
    assert refused >= 1
    assert fleet.violations == [], fleet.violations[:20]
    assert fleet.failed_polls() == []
    rel.delete_routerconfig(rc)


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else 0.0
