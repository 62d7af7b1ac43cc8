"""Publish: render + sign + upload of a 2 MB config through edgeroll's publish path vs a bare put_object.

Both against the lab's S3 (SeaweedFS, started or reused with `edgeroll.lab.up()`), in the same run,
rounds alternating which goes first:

- edgeroll: `render_set` (cosmo validation, content version, canonical bytes, digest) for three
  target clusters without overlays, in a thread as the operator runs it, inside
  `manifest_read_ahead`, then `RevisionPublisher.publish` over the operator's own `S3RevisionStore`
  (HMAC-SHA256 signature, `PUT If-None-Match: *`, manifest write; no HEAD for a digest the manifest
  does not list), exactly what a reconcile runs. Every round renders a config with a new digest, so
  the timed path uploads a new object (two PUTs per round: the object, then the manifest). The
  store wrote the manifest in the round before, so no manifest is read: the manifest PUT carries
  `If-Match` on the ETag of that write (the first round, a warm-up, reads it during the render).
- baseline: a bare boto3 `put_object` of the same bytes to a fresh key.
- re-publish (reported apart, not in the ratio): `publish` of a digest that is already in S3,
  which the store answers with a HEAD and a manifest read (304) run concurrently, no PUT.

The config is the parsed dict the operator holds after reading the spec, so decoding the
ConfigMap is not timed. Reported: medians of each path, `overhead_ratio` (median edgeroll /
median baseline, goal <= 1.5, issue 13), the median of per-round paired ratios, a breakdown, and
a cProfile of a few more publishes (CPU time, every thread's work run inline on one thread).

Usage: .venv/bin/python bench/publish.py [--rounds 25] [--config-bytes 2000000] [--profile-rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import copy
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    REPO,
    bench_line,
    delete_s3_prefix,
    exit_on_sigterm,
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
from edgeroll.render.canonical import canonical_json, content_digest
from edgeroll.render.formats import served, served_bytes, validate_cosmo
from edgeroll.render.limits import check_depth
from edgeroll.render.overlays import ClusterFacts
from edgeroll.render.revision import RenderSet, render_set
from edgeroll.render.signing import sign
from edgeroll.settings import S3Settings

NAME = "publish"
SIGNING_KEY = b"bench-signing-key-0123456789abcd"
CLUSTERS = [ClusterFacts(f"edge-{r}", {"region": r}) for r in ("eu", "us", "ap")]
NAMESPACE, CONFIG_NAME = "bench", "router"
GOAL = 1.5  # issue 13: the publish step <= 1.5x a bare put_object of the same bytes


def variant(base: dict[str, Any], tag: str) -> dict[str, Any]:
    config = copy.copy(base)
    config["engineConfig"] = dict(
        base["engineConfig"], graphqlSchema=base["engineConfig"]["graphqlSchema"] + tag
    )
    return config


async def edgeroll_publish(
    publisher: RevisionPublisher, config: dict[str, Any]
) -> tuple[float, float, RenderSet]:
    """(render seconds, total seconds, the render) for render + sign + upload, as
    `Reconciler._desired` runs them: the manifest read starts first and overlaps the render."""
    started = time.perf_counter()
    async with publisher.manifest_read_ahead(NAMESPACE, CONFIG_NAME) as ahead:
        rendered = await asyncio.to_thread(render_set, ConfigFormat.COSMO, config, [], CLUSTERS)
        rendered_at = time.perf_counter()
        outcome = await publisher.publish(
            NAMESPACE,
            CONFIG_NAME,
            list(rendered.revisions().values()),
            SIGNING_KEY,
            "2026-01-01T00:00:00Z",
            ahead=ahead,
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
                    puts, gets = store.counters["put"], store.counters["get"]
                    render_s, total_s, rendered = await edgeroll_publish(publisher, config)
                    figures.update(
                        edgeroll_s=total_s,
                        render_s=render_s,
                        upload_s=total_s - render_s,
                        puts=store.counters["put"] - puts,
                        gets=store.counters["get"] - gets,
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
        profile = await profile_publishes(publisher, base, args.profile_rounds) if args.profile_rounds else {}
    finally:
        await store.close()
        delete_s3_prefix(lab, prefix)

    def med(key: str) -> float:
        return median(r[key] for r in rounds)

    return {
        "overhead_ratio": ratio(med("edgeroll_s"), med("baseline_s")),
        "overhead_ratio_paired_median": round(median(r["edgeroll_s"] / r["baseline_s"] for r in rounds), 3),
        "republish_ratio": ratio(med("republish_s"), med("baseline_s")),
        "goal_overhead_ratio": GOAL,
        "edgeroll_ms": round(med("edgeroll_s") * 1000, 2),
        "baseline_put_ms": round(med("baseline_s") * 1000, 2),
        "republish_ms": round(med("republish_s") * 1000, 2),
        "breakdown_ms": {
            "render": round(med("render_s") * 1000, 2),
            "sign": round(med("sign_s") * 1000, 2),
            "s3_path": round(med("upload_s") * 1000, 2),
        },
        "config_bytes": rounds[0]["bytes"],
        "profile": profile,
        "render_parts_ms": render_parts(base),
        "rounds": rounds,
        "settings": {"rounds": args.rounds, "warmup": args.warmup, "clusters": len(CLUSTERS)},
        "s3_ops_per_publish": {
            "new_digest": "PUT If-None-Match:*, manifest PUT If-Match (no manifest GET: this store wrote "
            "the manifest last; no HEAD: the manifest does not list the digest)",
            "existing_digest": "manifest GET (304) and HEAD (200, same size, signature and ETag) "
            "concurrently: no PUT",
        },
    }


class _Inline(concurrent.futures.ThreadPoolExecutor):
    """Runs what is submitted at once, on the caller's thread: cProfile sees one thread only."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


# Where a publish's CPU goes, by function (file path or built-in name), first match wins.
_BUCKETS = [
    ("render: cosmo validation", ("render/formats.py", "render/cosmo_fields.py")),
    ("render: depth check", ("render/limits.py",)),
    ("render: canonical encoding (orjson + type walk)", ("render/canonical.py", "orjson")),
    ("sha256 / HMAC / MD5", ("_hashlib", "hmac.py", "hashlib", "signing.py")),
    ("boto3/botocore (request build, SigV4, parse)", ("botocore", "boto3", "s3transfer", "dateutil")),
    (
        "HTTP + socket (urllib3, http.client, send/recv)",
        ("urllib3", "http/client", "socket", "ssl", "select"),
    ),
    ("pydantic (manifest)", ("pydantic",)),
    ("edgeroll publish", ("edgeroll/publish",)),
    ("asyncio + executor", ("asyncio", "concurrent", "threading", "selectors", "publish.py")),
]


def _bucket(where: str) -> str:
    return next((name for name, parts in _BUCKETS if any(p in where for p in parts)), "other")


async def profile_publishes(publisher: RevisionPublisher, base: dict[str, Any], n: int) -> dict[str, Any]:
    """cProfile (CPU time) of `n` more new-digest publishes, with every thread's work run inline."""
    store = publisher.store
    pool = store._pool  # type: ignore[attr-defined]
    store._pool = _Inline()  # type: ignore[attr-defined]
    asyncio.get_running_loop().set_default_executor(_Inline())  # asyncio.to_thread, too
    profiler = cProfile.Profile(time.process_time)
    try:
        for i in range(n):
            config = variant(base, f"\n# profile {i}")
            profiler.enable()
            await edgeroll_publish(publisher, config)
            profiler.disable()
    finally:
        store._pool = pool  # type: ignore[attr-defined]
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = sorted(((v[2], v[1], v[3], _where(k)) for k, v in stats.items()), reverse=True)
    areas = _by_area(stats)
    return {
        "publishes": n,
        "note": "cProfile inflates many-call Python code (the walks) most: render_parts_ms has plain timings",
        "cpu_ms_per_publish": round(sum(areas.values()) / n * 1000, 2),
        "by_area_ms_per_publish": {
            k: round(v / n * 1000, 2) for k, v in sorted(areas.items(), key=lambda x: -x[1])
        },
        "top_functions": [
            {
                "tottime_ms": round(t / n * 1000, 2),
                "cumtime_ms": round(c / n * 1000, 2),
                "calls": calls // n,
                "function": w,
            }
            for t, calls, c, w in rows[:15]
        ],
    }


def _where(key: tuple[str, int, str]) -> str:
    file, line, func = key
    return func if file == "~" else f"{file.replace(str(REPO) + '/', '')}:{line}({func})"


def _by_area(stats: dict[Any, Any]) -> dict[str, float]:
    """Seconds by area; a built-in (isinstance, list.append…) counts for the areas of its callers."""
    areas: dict[str, float] = {}
    for key, (_, _, tottime, _, callers) in stats.items():
        area = _bucket(_where(key))
        shares = {_bucket(_where(c)): v[2] for c, v in callers.items()} if area == "other" else {}
        weight = sum(shares.values())
        for caller_area, share in shares.items() if weight else [(area, 1.0)]:
            part = tottime * share / (weight or 1.0)
            areas[caller_area] = areas.get(caller_area, 0.0) + part
    return areas


def render_parts(base: dict[str, Any], n: int = 9) -> dict[str, float]:
    """Plain (unprofiled) medians of the render's parts on one config, in ms."""
    body = served_bytes(ConfigFormat.COSMO, base)
    plain = check_depth(base, "$")
    parts: dict[str, Any] = {
        "render_set (all of it, on this thread)": lambda: render_set(ConfigFormat.COSMO, base, [], CLUSTERS),
        "depth check (and the plain-JSON answer)": lambda: check_depth(base, "$"),
        "cosmo validation": lambda: validate_cosmo(base),
        "served bytes and digest (validation, encoding, one sha256)": lambda: served(
            ConfigFormat.COSMO, base, plain
        ),
        "canonical encoding of the config (orjson, given the answer)": lambda: canonical_json(base, plain),
        "one sha256 of the body (for scale)": lambda: content_digest(body),
        "signature (HMAC-SHA256)": lambda: sign(SIGNING_KEY, body),
    }
    return {name: round(median(_time(fn) for _ in range(n)) * 1000, 2) for name, fn in parts.items()}


def _time(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--config-bytes", type=int, default=2_000_000)
    parser.add_argument(
        "--profile-rounds", type=int, default=5, help="cProfiled publishes after the timed ones"
    )
    args = parser.parse_args()
    exit_on_sigterm()
    machine = machine_info()
    lab = up().lab
    data = asyncio.run(measure(args, lab))
    data["machine"] = machine
    data["loadavg_at_end"] = loadavg()
    for area, ms in data["profile"].get("by_area_ms_per_publish", {}).items():
        print(f"cpu {ms:7.2f} ms/publish  {area}")
    path = write_result(NAME, data)
    print(f"wrote {path.relative_to(REPO)}")
    print(
        f"edgeroll {data['edgeroll_ms']} ms (render {data['breakdown_ms']['render']} ms) vs put_object "
        f"{data['baseline_put_ms']} ms: ratio {data['overhead_ratio']} "
        f"(paired {data['overhead_ratio_paired_median']}); "
        f"re-publish {data['republish_ms']} ms | goal <= {GOAL}"
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
