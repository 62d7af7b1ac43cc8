"""30 progressive rollouts, each with a SIGKILL of the operator at a random moment and a restart.

Every rollout must converge. At every observation (every version of every edge Deployment, from a
watch, and every answer of every edge's live cache to a polling client) each edge carries the old
or the new digest and nothing else, and never goes back from the new one to the old. No revision
is lost from the S3 history: each of the 31 is in the manifest once, and its object holds its bytes
and signature. Across the kills no gate is skipped: the edges move wave by wave (a 1-cluster
canary, then 1-cluster batches, in EdgeCluster name order), each only after the previous wave has
been healthy for `soakSeconds`.

`STRATEGY` picks the rollout; "AllAtOnce" runs the same test without waves (one kill window of
about one such rollout).
"""

from __future__ import annotations

import hashlib
import itertools
import random
import statistics
import time
from typing import Any

import pytest
from operator_e2e_kit import SIGNING_KEY
from reliability_kit import EdgeFleet, Reliability, digest_of, figure, variant

from edgeroll.render.signing import SIGNATURE_METADATA_KEY, verify

pytestmark = pytest.mark.reliability

STRATEGY = "Progressive"
SOAK_S = 1
ROLLOUT: dict[str, dict[str, Any]] = {
    "AllAtOnce": {"strategy": "AllAtOnce"},
    "Progressive": {"strategy": "Progressive", "canary": 1, "batchSize": 1, "soakSeconds": SOAK_S},
}
# About one rollout's length on the lab, so kills land before, during and after it.
KILL_WINDOW_S = {"AllAtOnce": 1.2, "Progressive": 6.0}
WATCH_SKEW_S = 0.3  # two edges' watches are two kubectl processes: their clocks of arrival differ
ROLLOUTS = 30
SEED = 20251127


def test_operator_sigkill_at_random_moments_every_rollout_converges(rel: Reliability) -> None:
    rng = random.Random(SEED)
    rc = "kills"
    configs = [variant(f"kill-{i}") for i in range(ROLLOUTS + 1)]
    digests = [digest_of(c) for c in configs]
    extra = {"rollout": ROLLOUT[STRATEGY], "revisionHistoryLimit": 100}
    s3, bucket = rel.lab.s3_client(), rel.lab.s3_bucket

    def published(digest: str) -> bool:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=rel.s3_key(rc, digest))
        return bool(listed.get("KeyCount"))

    rel.apply(rel.routerconfig(rc, configs[0], **extra))
    rel.wait_ready(rc)
    rows: list[dict[str, Any]] = []
    with EdgeFleet(rel, rc, rel.work / rc) as fleet:
        fleet.wait_serving(digests[0])
        for i in range(1, ROLLOUTS + 1):
            old, new = digests[i - 1], digests[i]
            fleet.allowed = {old, new}
            applied = time.monotonic()
            rel.apply(rel.routerconfig(rc, configs[i], **extra))
            delay = rng.uniform(0, KILL_WINDOW_S[STRATEGY])
            time.sleep(max(0.0, applied + delay - time.monotonic()))  # the fault's random moment
            moved = sum(fleet.template_digest(e) == new for e in fleet.edges)
            was_published = published(new)
            rel.operator.kill9()
            killed = time.monotonic()
            rel.operator.start()
            restarted = time.monotonic()
            status = rel.wait_status(
                rc,
                lambda s, new=new: (
                    s.get("phase") == "Ready"
                    and (s.get("revision") or {}).get("digest") == new
                    and (s.get("rollout") or {}).get("phase", "Completed") == "Completed"
                    and len(s.get("clusters", [])) == len(fleet.edges)
                    and all(c.get("digest") == new for c in s["clusters"])
                ),
                timeout=120,
                what=f"rollout {i} converged after a kill {delay:.2f}s in",
            )
            converged = time.monotonic()
            assert all(fleet.template_digest(e) == new for e in fleet.edges), status
            served = fleet.wait_serving(new, timeout=60)
            rows.append(
                {
                    "i": i,
                    "kill_after_s": round(killed - applied, 2),
                    "published_at_kill": was_published,
                    "edges_moved_at_kill": moved,
                    "restart_s": round(restarted - killed, 2),
                    "converged_after_restart_s": round(converged - restarted, 2),
                    "apply_to_converged_s": round(converged - applied, 2),
                    "apply_to_served_s": round(served - applied, 2),
                }
            )
            rows[-1]["kill_moment"] = _moment(rows[-1], len(fleet.edges))
            rows[-1]["_window"] = (applied, served, new)

    # S3 history: every revision once, its object intact.
    history = [r["digest"] for r in rel.manifest(rc)["body"]["revisions"]]
    lost = [d for d in digests if d not in history]
    duplicated = sorted({d for d in history if history.count(d) > 1})
    broken = []
    for d in digests:
        obj = s3.get_object(Bucket=bucket, Key=rel.s3_key(rc, d))
        body = obj["Body"].read()
        signature = obj.get("Metadata", {}).get(SIGNATURE_METADATA_KEY)
        if "sha256:" + hashlib.sha256(body).hexdigest() != d or not verify(
            SIGNING_KEY.encode(), body, signature
        ):
            broken.append(d)

    # Never back from the new digest to the old one, on any edge.
    order = {d: n for n, d in enumerate(digests)}
    regressions = []
    for edge in fleet.edges:
        seen = [order[v.digest] for v in fleet.history if v.edge == edge]
        regressions += [f"{edge}: {a} -> {b}" for a, b in itertools.pairwise(seen) if b < a]

    # Waves: in EdgeCluster name order, each moving only after the previous one soaked.
    wave_order = sorted(fleet.edges, key=lambda e: rel.edges[e])
    out_of_order, unsoaked, soak_gaps = [], [], []
    for r in rows:
        start, end, new = r.pop("_window")
        seen = [v for v in fleet.history if start <= v.t <= end and v.digest == new]
        moved = {e: min((v.t for v in seen if v.edge == e), default=end) for e in wave_order}
        healthy = {e: min((v.t for v in seen if v.edge == e and v.healthy), default=end) for e in wave_order}
        if STRATEGY != "Progressive":
            continue
        if [moved[e] for e in wave_order] != sorted(moved.values()):
            out_of_order.append(f"rollout {r['i']}: {[round(moved[e] - start, 2) for e in wave_order]}")
        for before, after in itertools.pairwise(wave_order):
            gap = moved[after] - healthy[before]
            soak_gaps.append(gap)
            if gap < SOAK_S - WATCH_SKEW_S:
                unsoaked.append(f"rollout {r['i']}: {after} moved {gap:.2f}s after {before} was healthy")

    to_converge = sorted(r["apply_to_converged_s"] for r in rows)
    at_kill = [r["kill_moment"] for r in rows]
    figure(
        "operator_kills",
        data={"rollouts": rows, "strategy": STRATEGY},
        strategy=STRATEGY,
        rollouts=len(rows),
        converged=len(rows),
        kills_before_publish=at_kill.count("before-publish"),
        kills_after_publish=at_kill.count("published"),
        kills_mid_edges=at_kill.count("edges-moving"),
        kills_after_edges=at_kill.count("edges-moved"),
        deployment_versions=len(fleet.history),
        polls=len(fleet.polls),
        violations=len(fleet.violations),
        failed_polls=len(fleet.failed_polls()),
        regressions=len(regressions),
        waves_out_of_order=len(out_of_order),
        waves_unsoaked=len(unsoaked),
        min_soak_gap_s=round(min(soak_gaps), 2) if soak_gaps else "-",
        revisions_lost=len(lost),
        converge_p50_s=round(statistics.median(to_converge), 2),
        converge_max_s=round(to_converge[-1], 2),
    )
    assert len(rows) == ROLLOUTS
    assert fleet.violations == [], fleet.violations[:20]
    assert fleet.failed_polls() == []
    assert regressions == [], regressions[:20]
    assert out_of_order == [] and unsoaked == [], (out_of_order[:10], unsoaked[:10])
    assert lost == [] and duplicated == [] and broken == [], (lost, duplicated, broken)
    assert len(fleet.polls) >= ROLLOUTS * len(fleet.edges), "the edges were polled throughout"
    rel.delete_routerconfig(rc)


def _moment(row: dict[str, Any], edges: int) -> str:
    """Where the rollout was when the kill landed."""
    if not row["published_at_kill"]:
        return "before-publish"
    if row["edges_moved_at_kill"] == 0:
        return "published"
    return "edges-moving" if row["edges_moved_at_kill"] < edges else "edges-moved"
