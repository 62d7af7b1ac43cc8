"""Getting the wanted revision: last-known-good first, then the origin, until it verifies.

`load_last_known_good` and `fetch_wanted` do the I/O; `backoff_delay` is the
pure retry policy. Within one attempt S3 comes first; only when it fails is
the peer (a sibling pod, EDGEROLL_CACHE_PEER_URL) asked, and its answer goes
through the same `verify_revision` against the wanted digest. Every refusal is
counted and logged with the source, the reason and the S3 key or peer URL,
never with key material.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar, cast

from edgeroll.cache.metrics import Metrics
from edgeroll.cache.origin import Origin, OriginError, OriginObject
from edgeroll.cache.peer import PeerOrigin
from edgeroll.cache.revision import Revision, VerificationError, verify_revision
from edgeroll.cache.state import StateDir, StateError

log = logging.getLogger(__name__)
T = TypeVar("T")


async def in_daemon_thread(fn: Callable[[], T]) -> T:
    """Run blocking I/O (boto3) off the loop in a daemon thread.

    Unlike `asyncio.to_thread`, a call stuck on an unreachable origin does not
    hold up shutdown: on SIGTERM the awaiting task is cancelled and the process
    exits without joining the thread.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():  # cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(cast(T, result))

    def work() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = fn()
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="edgeroll-origin", daemon=True).start()
    return await future


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0


def backoff_delay(attempt: int, policy: Backoff, rand: Callable[[], float] = random.random) -> float:
    """Exponential with "equal jitter": half the step is fixed, half random, so retries
    from many edges spread out but never collapse to zero."""
    step = min(policy.maximum, policy.initial * policy.multiplier ** min(attempt, 64))
    return step / 2 + rand() * step / 2


def load_last_known_good(state: StateDir, signing_key: bytes, metrics: Metrics) -> Revision | None:
    try:
        revision = state.load(signing_key)
    except VerificationError as exc:
        metrics.count_verify_failure("state", exc.reason)
        log.error("refusing the last-known-good revision in %s: %s", state.root, exc)
        return None
    except (StateError, OSError) as exc:
        metrics.count_verify_failure("state", "malformed")
        log.error("ignoring the state directory %s: %s", state.root, exc)
        return None
    if revision is not None:
        log.info("last-known-good revision %s verified from %s", revision.digest, state.root)
    return revision


@dataclass(frozen=True)
class Source:
    """One place the wanted revision may come from; each attempt tries them in order."""

    name: str  # the metrics label: "origin" (S3) or "peer" (a sibling pod, through the Service)
    what: str  # for logs: "S3 object <key>" or "peer <url>"
    get: Callable[[], OriginObject]  # blocking: runs in a daemon thread
    deadline: float | None = None  # a bound on the whole call; None: the client's own timeouts


def sources(origin: Origin, key: str, peer: PeerOrigin | None, digest: str) -> list[Source]:
    """S3 first, always; the peer only after S3 failed in the same attempt."""
    found = [Source("origin", f"S3 object {key}", lambda: origin.get(key))]
    if peer is not None:
        # Outer bound too: name resolution is not covered by socket timeouts.
        bound = peer.deadline + peer.timeout + 1.0
        found.append(Source("peer", f"peer {peer.where}", lambda: peer.get(digest), bound))
    return found


@dataclass(frozen=True)
class SourceFailure:
    """Why one source gave no revision, already counted and logged. `kind` "fetch": nothing usable
    came (unreachable, not found, ...); "verify": bytes came and were refused. `reason` is the label."""

    source: str  # "origin" or "peer"
    kind: Literal["fetch", "verify"]
    reason: str
    message: str


async def attempt_source(
    source: Source, *, digest: str, signing_key: bytes, metrics: Metrics, attempt: int
) -> Revision | SourceFailure:
    """The verified revision from `source`, or why not (counted and logged)."""
    try:
        obj = await asyncio.wait_for(in_daemon_thread(source.get), timeout=source.deadline)
        # The one verification path for every source: wanted digest, then HMAC.
        return verify_revision(
            obj.body,
            expected_digest=digest,
            signature=obj.signature,
            signing_key=signing_key,
            published_at=obj.last_modified,
        )
    except OriginError as exc:
        metrics.count_fetch_failure(source.name, exc.reason)
        log.warning("fetch of the wanted revision failed (attempt %d): %s", attempt + 1, exc)
        return SourceFailure(source.name, "fetch", exc.reason, str(exc))
    except TimeoutError:
        metrics.count_fetch_failure(source.name, "unreachable")
        log.warning("fetch from %s timed out (attempt %d)", source.what, attempt + 1)
        return SourceFailure(source.name, "fetch", "unreachable", f"{source.what}: timed out")
    except VerificationError as exc:
        metrics.count_verify_failure(source.name, exc.reason)
        log.error("refusing %s (%s): %s; keeping the last-known-good revision", source.what, exc.reason, exc)
        return SourceFailure(source.name, "verify", exc.reason, f"{source.what}: {exc}")
    except Exception as exc:  # a bug or an unexpected library error must not end the loop
        metrics.count_fetch_failure(source.name, "error")
        log.warning("fetch of the wanted revision failed (attempt %d): %r", attempt + 1, type(exc).__name__)
        return SourceFailure(source.name, "fetch", "error", f"{source.what}: {type(exc).__name__}")


async def try_source(
    source: Source, *, digest: str, signing_key: bytes, metrics: Metrics, attempt: int
) -> Revision | None:
    """The verified revision from `source`, or None after counting and logging why not."""
    got = await attempt_source(
        source, digest=digest, signing_key=signing_key, metrics=metrics, attempt=attempt
    )
    return got if isinstance(got, Revision) else None


async def keep(
    revision: Revision, state: StateDir | None, install: Callable[[Revision], Awaitable[None]]
) -> None:
    """Store, then serve: a restart then starts from it, whichever source it came from."""
    if state is not None:
        try:
            await asyncio.to_thread(state.store, revision)
        except OSError as exc:
            # Serving the verified revision matters more than persisting it.
            log.error("could not store revision %s in %s: %s", revision.digest, state.root, exc)
    await install(revision)


async def fetch_wanted(
    *,
    origin: Origin,
    key: str,
    digest: str,
    signing_key: bytes,
    state: StateDir | None,
    metrics: Metrics,
    install: Callable[[Revision], Awaitable[None]],
    backoff: Backoff,
    stop: asyncio.Event,
    peer: PeerOrigin | None = None,
) -> bool:
    """Retry until the wanted revision is fetched, verified, stored and installed (True),
    or `stop` is set (False). Each attempt asks S3, then (if S3 failed) the peer."""
    attempt = 0
    ordered = sources(origin, key, peer, digest)
    while not stop.is_set():
        for source in ordered:
            revision = await try_source(
                source, digest=digest, signing_key=signing_key, metrics=metrics, attempt=attempt
            )
            if revision is not None:
                metrics.count_fetch_success(source.name)
                await keep(revision, state, install)
                log.info("serving the wanted revision %s from %s", revision.digest, source.what)
                return True
        delay = backoff_delay(attempt, backoff)
        attempt += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
    return False
