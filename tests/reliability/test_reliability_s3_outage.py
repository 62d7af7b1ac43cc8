"""S3 stopped for 60 s in the middle of a rollout.

Timeline: v1 is served everywhere. v2 is applied: it is published and every edge Deployment moves
to it, but before the new pods start, S3 goes away (the fleet holds new pods until then). The new
pods then cannot fetch v2; they stay unready, so the v1 pods keep serving. While S3 is down, v3 is
applied: it cannot be published, so the edges are left alone and the RouterConfig says why. S3
comes back after 60 s and everything converges on v3.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from reliability_kit import EdgeFleet, Reliability, condition, digest_of, figure, variant

pytestmark = pytest.mark.reliability

OUTAGE_SECONDS = 60.0


def test_s3_outage_mid_rollout_edges_keep_serving_and_the_rollout_resumes(rel: Reliability) -> None:
    rc = "s3-outage"
    v1, v2, v3 = variant("s3-v1"), variant("s3-v2"), variant("s3-v3")
    d1, d2, d3 = digest_of(v1), digest_of(v2), digest_of(v3)
    rel.apply(rel.routerconfig(rc, v1))
    rel.wait_ready(rc)
    with EdgeFleet(rel, rc, rel.work / rc) as fleet:
        fleet.wait_serving(d1)
        fleet.allowed = {d1, d2, d3}

        fleet.hold_pods = True
        rel.apply(rel.routerconfig(rc, v2))
        rel.wait_status(
            rc,
            lambda s: len(s.get("clusters", [])) == 3 and all(c.get("digest") == d2 for c in s["clusters"]),
            what="edges on v2",
        )
        down_at = time.monotonic()
        rel.lab.stop_s3()
        stopped_at = time.monotonic()
        timeline: list[tuple[float, str, str]] = []  # t, Published status, reason
        try:
            fleet.hold_pods = False
            rel.apply(rel.routerconfig(rc, v3))
            generation = rel.get(rc)["metadata"]["generation"]

            def published_false(s: dict[str, Any]) -> bool:
                c = condition(s, "Published")
                return bool(c and c["status"] == "False" and s.get("observedGeneration") == generation)

            status = rel.wait_status(rc, published_false, timeout=30, what="Published=False while S3 is down")
            shown_after = time.monotonic() - stopped_at
            published = condition(status, "Published")
            reconciling = condition(status, "Reconciling")
            ready = condition(status, "Ready")
            assert published is not None and reconciling is not None and ready is not None
            assert published["reason"] == "S3Unavailable", published
            assert f"s3://{rel.lab.s3_bucket}/" in published["message"], published
            assert reconciling["status"] == "True" and reconciling["reason"] == "PublishRetrying", reconciling
            assert ready["status"] == "False"

            # Hold the outage, watching the status and the edges.
            while time.monotonic() - down_at < OUTAGE_SECONDS:
                st = rel.status(rc)
                p = condition(st, "Published") or {}
                timeline.append((time.monotonic() - down_at, p.get("status", "?"), p.get("reason", "")))
                assert all(c.get("digest") == d2 for c in st.get("clusters", [])), "edges moved without S3"
                assert all(fleet.template_digest(e) == d2 for e in fleet.edges)
                time.sleep(1.0)  # sampling period, not synchronisation
            during = fleet.polls_between(stopped_at, time.monotonic())
            assert {p.digest for p in during} == {d1}, "the v1 pods keep serving; the v2 pods never got ready"
            assert all(s == "False" for _, s, _ in timeline), timeline
            v2_pods = {e for t, e, d in fleet.started if d == d2 and t >= stopped_at}
            assert v2_pods == set(fleet.edges), "a v2 pod started on every edge during the outage"
            assert not any(d == d2 for _, _, d in fleet.became_ready), "no v2 pod got ready without S3"
        finally:
            rel.lab.start_s3()
        back_at = time.monotonic()
        outage = back_at - down_at

        def converged(s: dict[str, Any]) -> bool:
            return s.get("phase") == "Ready" and (s.get("revision") or {}).get("digest") == d3

        # Nothing tells the operator that S3 is back: it finds out at its next retry, and its retries
        # back off (progress_seconds doubling, up to max_backoff_seconds = 300 s), so after an outage
        # of T the next one can be up to about T away.
        rel.wait_status(rc, converged, timeout=2 * OUTAGE_SECONDS + 30, what="Ready on v3 after S3 is back")
        ready_after = time.monotonic() - back_at
        served_after = fleet.wait_serving(d3, timeout=90) - back_at

    polls = fleet.polls_between(down_at, back_at)
    failed = fleet.failed_polls()
    published_keys = {r["digest"] for r in rel.manifest(rc)["body"]["revisions"]}
    figure(
        "s3_outage",
        data={
            "published_timeline": timeline,
            "marks": {
                "s3_stopped": round(stopped_at - down_at, 2),
                "condition_shown": round(shown_after + stopped_at - down_at, 2),
                "s3_back": round(outage, 2),
                "ready_on_v3": round(outage + ready_after, 2),
                "served_v3": round(outage + served_after, 2),
            },
            **fleet.timeline(down_at, {d1: "v1", d2: "v2", d3: "v3"}),
        },
        outage_s=round(outage, 1),
        polls_during=len(polls),
        failed_polls=len(failed),
        condition_after_s=round(shown_after, 1),
        ready_after_s=round(ready_after, 1),
        served_after_s=round(served_after, 1),
    )
    assert fleet.violations == [], fleet.violations[:20]
    assert failed == [], failed[:10]
    assert len(polls) >= len(fleet.edges) * OUTAGE_SECONDS, "the client kept polling through the outage"
    assert {d1, d2, d3} <= published_keys
    rel.delete_routerconfig(rc)
