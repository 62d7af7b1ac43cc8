"""Publish: render + sign + upload of a 2 MB config through edgeroll's publish path vs a bare put_object.

Both against the lab's S3 (SeaweedFS, started or reused with `edgeroll.lab.up()`), in the same run,
rounds alternating which goes first:

- edgeroll: `render_set` (cosmo validation, content version, canonical bytes, digest) for three
  target clusters without overlays, then `RevisionPublisher.publish` over the operator's own
  `S3RevisionStore` (HMAC-SHA256 signature, manifest read, HEAD, `PUT If-None-Match: *`, manifest
  write), exactly what a reconcile runs. Every round renders a config with a new digest, so the
  timed path uploads a new object (two PUTs per round: the object, then the manifest).
- baseline: a bare boto3 `put_object` of the same bytes to a fresh key.
- re-publish (reported apart, not in the ratio): `publish` of a digest that is already in S3,
  which the store answers with a HEAD and a manifest read (304), no PUT.

The config is the parsed dict the operator holds after reading the spec, so decoding the
ConfigMap is not timed. Reported: medians of each path, `overhead_ratio` (median edgeroll /
median baseline, goal <= 1.3), the median of per-round paired ratios, and a breakdown.

Usage: .venv/bin/python bench/publish.py [--rounds 25] [--config-bytes 2000000]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    REPO,
    bench_line,
    delete_s3_prefix,
    loadavg,
    machine_info,
    median,
    new_run_id,
    ratio,
    realistic_router_config,
    write_result,
)
from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.lab import Lab, up
from edgeroll.publish.publisher import RevisionPublisher
from edgeroll.publish.s3 import S3RevisionStore
from edgeroll.render.overlays import ClusterFacts
from edgeroll.render.revision import RenderSet, render_set
from edgeroll.render.signing import sign
from edgeroll.settings import S3Settings

NAME = "publish"
SIGNING_KEY = b"bench-signing-key-0123456789abcd"
CLUSTERS = [ClusterFacts(f"edge-{r}", {"region": r}) for r in ("eu", "us", "ap")]
NAMESPACE, CONFIG_NAME = "bench", "router"


def variant(base: dict[str, Any], tag: str) -> dict[str, Any]:
    config = copy.copy(base)
    config["engineConfig"] = dict(
        base["engineConfig"], graphqlSchema=base["engineConfig"]["graphqlSchema"] + tag
    )
    return config


async def edgeroll_publish(
    publisher: RevisionPublisher, config: dict[str, Any]
) -> tuple[float, float, RenderSet]:
    """(render seconds, total seconds, the render) for render + sign + upload."""
    started = time.perf_counter()
    rendered = render_set(ConfigFormat.COSMO, config, [], CLUSTERS)
    rendered_at = time.perf_counter()
    outcome = await publisher.publish(
        NAMESPACE, CONFIG_NAME, list(rendered.revisions().values()), SIGNING_KEY, "2026-01-01T00:00:00Z"
    )
    total = time.perf_counter() - started
    if outcome.written != [rendered.base.digest]:
        raise RuntimeError(f"expected one new object, wrote {outcome.written}")
    return rendered_at - started, total, rendered


async def republish(publisher: RevisionPublisher, rendered: RenderSet) -> float:
    started = time.perf_counter()
    outcome = await publisher.publish(
        NAMESPACE, CONFIG_NAME, list(rendered.revisions().values()), SIGNING_KEY, "2026-01-01T00:00:00Z"
    )
    if outcome.written:
        raise RuntimeError("a re-publish of an existing digest wrote an object")
    return time.perf_counter() - started


def bare_put(s3: Any, bucket: str, key: str, body: bytes) -> float:
    started = time.perf_counter()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return time.perf_counter() - started


async def measure(args: argparse.Namespace, lab: Lab) -> dict[str, Any]:
    run = new_run_id()
    prefix = f"bench-publish-{run}"
    os.environ.update({k: v for k, v in lab.env().items() if k.startswith("AWS_")})
    store = S3RevisionStore(
        S3Settings(bucket=lab.s3_bucket, endpoint=lab.s3_endpoint, prefix=prefix, region=lab.region)
    )
    publisher = RevisionPublisher(store, prefix)
    s3 = lab.s3_client()
    base = realistic_router_config(args.config_bytes, seed=11)
    rounds: list[dict[str, Any]] = []
    print(f"run {run}: S3 prefix {prefix}", flush=True)
    try:
        for i in range(-args.warmup, args.rounds):
            config = variant(base, f"\n# round {i}")
            edgeroll_first = i % 2 == 0
            figures: dict[str, Any] = {"round": i}
            for step in ("edgeroll", "baseline") if edgeroll_first else ("baseline", "edgeroll"):
                if step == "edgeroll":
                    puts = store.counters["put"]
                    render_s, total_s, rendered = await edgeroll_publish(publisher, config)
                    figures.update(
                        edgeroll_s=total_s,
                        render_s=render_s,
                        upload_s=total_s - render_s,
                        puts=store.counters["put"] - puts,
                    )
                else:
                    # The same bytes the edgeroll path uploads (rendered here, outside the timing, when the
                    # baseline goes first).
                    body = render_set(ConfigFormat.COSMO, config, [], CLUSTERS).base.body
                    figures["baseline_s"] = bare_put(s3, lab.s3_bucket, f"{prefix}/baseline/{i}.json", body)
            heads = store.counters["head"]
            figures["republish_s"] = await republish(publisher, rendered)
            figures["republish_heads"] = store.counters["head"] - heads
            figures["sign_s"] = _time(lambda body=rendered.base.body: sign(SIGNING_KEY, body))
            figures["bytes"] = rendered.base.size
            figures["load1"] = loadavg()[0]
            if i < 0:
                continue
            rounds.append(figures)
            print(
                f"round {i:2d}: edgeroll {figures['edgeroll_s'] * 1000:7.1f} ms (render "
                f"{figures['render_s'] * 1000:6.1f}) | put_object {figures['baseline_s'] * 1000:6.1f} ms | "
                f"re-publish {figures['republish_s'] * 1000:5.1f} ms | load1 {figures['load1']}",
                flush=True,
            )
    finally:
        await store.close()
        delete_s3_prefix(lab, prefix)

    def med(key: str) -> float:
        return median(r[key] for r in rounds)

    return {
        "overhead_ratio": ratio(med("edgeroll_s"), med("baseline_s")),
        "overhead_ratio_paired_median": round(median(r["edgeroll_s"] / r["baseline_s"] for r in rounds), 3),
        "republish_ratio": ratio(med("republish_s"), med("baseline_s")),
        "goal_overhead_ratio": 1.3,
        "edgeroll_ms": round(med("edgeroll_s") * 1000, 2),
        "baseline_put_ms": round(med("baseline_s") * 1000, 2),
        "republish_ms": round(med("republish_s") * 1000, 2),
        "breakdown_ms": {
            "render": round(med("render_s") * 1000, 2),
            "sign": round(med("sign_s") * 1000, 2),
            "s3_path": round(med("upload_s") * 1000, 2),
        },
        "config_bytes": rounds[0]["bytes"],
        "rounds": rounds,
        "settings": {"rounds": args.rounds, "warmup": args.warmup, "clusters": len(CLUSTERS)},
        "s3_ops_per_publish": {
            "new_digest": "manifest GET (304 after the first), HEAD (404), PUT If-None-Match:*, manifest PUT",
            "existing_digest": "manifest GET (304), HEAD (200, same size and signature): no PUT",
        },
    }


def _time(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--config-bytes", type=int, default=2_000_000)
    args = parser.parse_args()
    machine = machine_info()
    lab = up().lab
    data = asyncio.run(measure(args, lab))
    data["machine"] = machine
    data["loadavg_at_end"] = loadavg()
    path = write_result(NAME, data)
    print(f"wrote {path.relative_to(REPO)}")
    print(
        f"edgeroll {data['edgeroll_ms']} ms (render {data['breakdown_ms']['render']} ms) vs put_object "
        f"{data['baseline_put_ms']} ms: ratio {data['overhead_ratio']} "
        f"(paired {data['overhead_ratio_paired_median']}); "
        f"re-publish {data['republish_ms']} ms | goal <= 1.3"
    )
    print(
        bench_line(
            NAME,
            {
                "overhead_ratio": data["overhead_ratio"],
                "paired_ratio": data["overhead_ratio_paired_median"],
                "edgeroll_ms": data["edgeroll_ms"],
                "put_ms": data["baseline_put_ms"],
                "republish_ms": data["republish_ms"],
            },
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
