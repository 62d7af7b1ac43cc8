"""`edgeroll cache`: serve one RouterConfig's verified revision at the edge.

Configuration comes from the environment the operator writes (hack/CONTRACTS.md);
the flags here are operational knobs with safe defaults.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace

from edgeroll.cache.fetcher import Backoff
from edgeroll.cache.runner import RunOptions, serve_single
from edgeroll.cache.settings import CacheSettings, SettingsError, settings_from_env
from edgeroll.cache.workers import run_supervisor

log = logging.getLogger("edgeroll.cache")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default=None,
        help="listen address (default: EDGEROLL_CACHE_HOST, else 0.0.0.0); the port is EDGEROLL_CACHE_PORT",
    )
    parser.add_argument(
        "--retry-initial",
        type=float,
        default=Backoff.initial,
        metavar="SECONDS",
        help="first retry delay after a failed fetch from S3 (doubles each time, with jitter)",
    )
    parser.add_argument(
        "--retry-max",
        type=float,
        default=Backoff.maximum,
        metavar="SECONDS",
        help="longest delay between fetch attempts",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM, how long to let in-flight requests finish",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # botocore logs request details at DEBUG; keep it quiet whatever our level.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    try:
        settings = settings_from_env()
    except SettingsError as exc:
        log.error("configuration error: %s", exc)
        return 2
    if args.retry_initial <= 0 or args.retry_max < args.retry_initial:
        log.error("--retry-initial must be > 0 and <= --retry-max")
        return 2
    if args.host:
        settings = replace(settings, host=args.host)
    options = RunOptions(
        backoff=Backoff(initial=args.retry_initial, maximum=args.retry_max),
        drain_seconds=args.drain_seconds,
    )
    return run_process(settings, options)


def run_process(settings: CacheSettings, options: RunOptions) -> int:
    """One serving process, or a supervisor of several sharing the port (here, so that runner and
    workers, which builds on runner, do not import each other)."""
    if settings.workers > 1:
        return run_supervisor(settings, options)
    import uvloop

    return int(uvloop.run(serve_single(settings, options)))
