"""In-place switching: `POST /-/revision` re-reads the revision pointer and serves the revision it names.

The contract is hack/CONTRACTS.md "In-place switching" and render/pointer.py. The POST carries
nothing the cache believes: the pointer in S3, signed with the config's key, is the authority.

Pure, at the top: what a pointer may name (`check_cluster`), what a failed fetch comes to
(`settle`), the answers (`SwitchResult`, `revision_response`, `status_response`).

I/O, below:
- `Keeper`: once switching is on, the one way a fetched revision is stored and installed. It
  serializes the start-up fetch's keep and a switch's, and a start-up fetch that a switch has
  overtaken never stores or installs (it is cancelled, and refused should it get there anyway): a
  slow start-up fetch of the env's digest cannot bring back a revision the pointer moved away from.
- `Switcher`: single flight (a POST joins the switch that has not read the pointer yet, so every
  answer comes from a pointer read that began after its POST arrived), a time bound from the first
  POST of a switch, the pointer read with the start-up's S3Origin (warm client), then the revision
  from S3 and, failing that, the peer, through the start-up's `sources`/`attempt_source`/`keep`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Literal

from edgeroll.cache.fetcher import SourceFailure, attempt_source, in_daemon_thread, keep, sources
from edgeroll.cache.metrics import Metrics, ServingStatus
from edgeroll.cache.origin import Origin, OriginError
from edgeroll.cache.peer import PeerOrigin
from edgeroll.cache.responses import Response, make_response
from edgeroll.cache.revision import Revision
from edgeroll.cache.state import StateDir
from edgeroll.render.pointer import SWITCH_PATH, PointerError, RevisionPointer, read_pointer

log = logging.getLogger(__name__)

Outcome = Literal["switched", "unchanged", "refused", "unavailable"]
OUTCOME_CODES: dict[str, int] = {"switched": 200, "unchanged": 200, "refused": 422, "unavailable": 503}
# The operator waits 15 s for an answer; the pointer read and the fetch together get this much.
SWITCH_SECONDS = 10.0
# Between two pointer reads: POST /-/revision is open to whoever reaches the pod, so a flood of them
# costs S3 at most this rate (POSTs meanwhile share the next read).
MIN_GAP_SECONDS = 0.2
# The POST carries nothing the cache reads; a body beyond this is refused (413), as other limits are.
MAX_SWITCH_BODY_BYTES = 1024
SWITCH_PATH_BYTES = SWITCH_PATH.encode("ascii")
_TARGETS = "/targets/"
_JSON_HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]


# -- pure ------------------------------------------------------------------------------------


def expected_cluster(pointer_key: str) -> str | None:
    """The cluster a pointer stored at `pointer_key` must name: `<c>` of `.../targets/<c>.json`
    (render.pointer.pointer_key); None when the key does not have that form."""
    _, sep, file = pointer_key.rpartition(_TARGETS)
    if not sep or "/" in file or not file.endswith(".json") or file == ".json":
        return None
    return file.removesuffix(".json")


def check_cluster(pointer: RevisionPointer, pointer_key: str) -> None:
    """A validly signed pointer of another cluster, copied to this cluster's key, is refused."""
    cluster = expected_cluster(pointer_key)
    if cluster is not None and pointer.cluster != cluster:
        raise PointerError("cluster", f"the pointer at {pointer_key} is for cluster {pointer.cluster!r}")


def settle(failures: list[SourceFailure]) -> tuple[Outcome, str, str]:
    """(outcome, reason, message) when no source gave the revision. Refused only when S3's object
    did not verify: that is S3 holding wrong bytes under the pointer's key. A peer's answer that
    does not match (another digest, other bytes) is unavailable: siblings may not have switched yet."""
    first = failures[0]
    refused = first.source == "origin" and first.kind == "verify"
    return ("refused" if refused else "unavailable"), first.reason, "; ".join(f.message for f in failures)


@dataclass(frozen=True)
class SwitchResult:
    outcome: Outcome
    serving: str | None
    wanted: str
    reason: str | None = None
    message: str | None = None

    @property
    def code(self) -> int:
        return OUTCOME_CODES[self.outcome]

    def payload(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {"outcome": self.outcome}
        if self.reason is not None:
            out["reason"] = self.reason
            out["message"] = self.message
        out["serving"] = self.serving
        out["wanted"] = self.wanted
        return out


def stopped(status: ServingStatus) -> SwitchResult:
    """The answer of a switch cancelled because the process is stopping."""
    message = "the cache is shutting down"
    return SwitchResult("unavailable", status.served_digest, status.wanted_digest, "shutting_down", message)


def json_response(code: int, payload: dict[str, str | None]) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return make_response("revision", code, body, _JSON_HEADERS)


def revision_response(result: SwitchResult) -> Response:
    return json_response(result.code, result.payload())


def status_response(status: ServingStatus) -> Response:
    """`GET /-/revision`: what is served and what is wanted."""
    return json_response(200, {"serving": status.served_digest, "wanted": status.wanted_digest})


def disabled_response(status: ServingStatus) -> Response:
    message = "in-place switching needs EDGEROLL_CONFIG_POINTER_KEY and EDGEROLL_CACHE_WORKERS=1"
    return json_response(
        404,
        {
            "outcome": "disabled",
            "message": message,
            "serving": status.served_digest,
            "wanted": status.wanted_digest,
        },
    )


def method_not_allowed() -> Response:
    return make_response(
        "revision",
        405,
        b'{"message":"method not allowed"}',
        [*_JSON_HEADERS, ("Allow", "GET, HEAD, POST")],
    )


# -- I/O ---------------------------------------------------------------------------------------


class Keeper:
    """Stores and installs revisions for the start-up fetch and for switches, one at a time."""

    def __init__(
        self,
        status: ServingStatus,
        state: StateDir | None,
        install: Callable[[Revision], Awaitable[None]],
    ) -> None:
        self.status = status
        self.state = state
        self.install = install
        self.lock = asyncio.Lock()
        self.switched = False  # a switch has committed: the env's digest is no longer the authority
        self.startup: asyncio.Task[bool] | None = None  # the start-up fetch loop, cancelled by a switch

    async def keep_startup(self, revision: Revision) -> None:
        """The start-up fetch's install (fetch_wanted runs with state=None and this): store and
        install, unless a switch committed meanwhile."""
        async with self.lock:
            if self.switched:
                log.info(
                    "not installing %s from the start-up fetch: switched to %s meanwhile",
                    revision.digest,
                    self.status.wanted_digest,
                )
                return
            await keep(revision, self.state, self.install)

    async def commit_if_served(self, digest: str) -> bool:
        """Want `digest` if it is what is served (True); False: it has to be fetched."""
        async with self.lock:
            if self.status.served_digest != digest:
                return False
            self._want(digest)
            return True

    async def commit(self, revision: Revision) -> None:
        async with self.lock:
            await keep(revision, self.state, self.install)
            self._want(revision.digest)

    def _want(self, digest: str) -> None:
        # Only once installed: a switch never makes a serving pod unready.
        self.status.wanted_digest = digest
        self.switched = True
        startup, self.startup = self.startup, None
        if startup is not None and not startup.done():
            log.info("stopping the start-up fetch: the revision pointer names %s", digest)
            startup.cancel()


class _Flight:
    """One switch; the POSTs that arrive before it reads the pointer share it."""

    __slots__ = ("deadline", "started", "task")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.started = False
        self.task: asyncio.Task[SwitchResult] | None = None


class Switcher:
    def __init__(
        self,
        *,
        pointer_key: str,
        namespace: str,
        name: str,
        signing_key: bytes,
        origin: Origin,
        peer: PeerOrigin | None,
        keeper: Keeper,
        metrics: Metrics,
        seconds: float = SWITCH_SECONDS,
        min_gap: float = MIN_GAP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pointer_key = pointer_key
        self.namespace = namespace
        self.name = name
        self.signing_key = signing_key
        self.origin = origin
        self.peer = peer
        self.keeper = keeper
        self.status = keeper.status
        self.metrics = metrics
        self.seconds = seconds
        self.min_gap = min_gap
        self._last_read = -min_gap
        self.clock = clock
        self._serial = asyncio.Lock()
        self._latest: _Flight | None = None
        self._tasks: set[asyncio.Task[SwitchResult]] = set()

    def request(self) -> asyncio.Task[SwitchResult]:
        """The switch a POST arriving now gets the result of (called on the event loop)."""
        latest = self._latest
        if latest is not None and latest.task is not None and not latest.started and not latest.task.done():
            return latest.task
        flight = _Flight(self.clock() + self.seconds)
        task = asyncio.get_running_loop().create_task(self._run(flight))
        flight.task = task
        self._latest = flight
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def close(self) -> None:
        """On shutdown: stop what is in flight (its POSTs get 503)."""
        for task in list(self._tasks):
            task.cancel()

    async def _run(self, flight: _Flight) -> SwitchResult:
        async with self._serial:  # one switch at a time, in the order their first POSTs came
            gap = self._last_read + self.min_gap - self.clock()
            if gap > 0:  # still joinable meanwhile: the POSTs of a flood share this read
                await asyncio.sleep(gap)
            flight.started = True
            self._last_read = self.clock()
            try:
                result = await self._switch(flight.deadline)
            except Exception as exc:  # a bug must still answer, and must not kill the loop
                log.exception("in-place switch failed")
                result = self._result("unavailable", "error", f"internal error ({type(exc).__name__})")
        self.metrics.count_switch(result.outcome)
        return result

    def _result(
        self, outcome: Outcome, reason: str | None = None, message: str | None = None
    ) -> SwitchResult:
        status = self.status
        return SwitchResult(outcome, status.served_digest, status.wanted_digest, reason, message)

    async def _switch(self, deadline: float) -> SwitchResult:
        try:
            pointer = await self._read_pointer(deadline)
        except PointerError as exc:
            log.error("refusing the revision pointer %s (%s): %s", self.pointer_key, exc.reason, exc)
            return self._result("refused", exc.reason, str(exc))
        except OriginError as exc:
            log.warning("cannot read the revision pointer (%s): %s", exc.reason, exc)
            return self._result("unavailable", exc.reason, str(exc))
        if await self.keeper.commit_if_served(pointer.digest):
            log.info("revision pointer names %s, already served", pointer.digest)
            return self._result("unchanged")
        got = await self._fetch(pointer, deadline)
        if isinstance(got, list):
            outcome, reason, message = settle(got)
            log.warning("not switching to %s (%s, %s): %s", pointer.digest, outcome, reason, message)
            return self._result(outcome, reason, message)
        old = self.status.served_digest
        await self.keeper.commit(got)
        log.info("switched in place from %s to %s (revision %s)", old, got.digest, pointer.key)
        return self._result("switched")

    async def _read_pointer(self, deadline: float) -> RevisionPointer:
        key = self.pointer_key
        remaining = deadline - self.clock()
        try:
            if remaining <= 0:
                raise TimeoutError
            obj = await asyncio.wait_for(in_daemon_thread(lambda: self.origin.get(key)), timeout=remaining)
        except TimeoutError:
            raise OriginError("unreachable", f"revision pointer {key}: no answer in time") from None
        except OriginError:
            raise
        except Exception as exc:
            raise OriginError("error", f"revision pointer {key}: {type(exc).__name__}") from None
        pointer = read_pointer(
            obj.body, obj.signature, self.signing_key, namespace=self.namespace, name=self.name
        )
        check_cluster(pointer, key)
        return pointer

    async def _fetch(self, pointer: RevisionPointer, deadline: float) -> Revision | list[SourceFailure]:
        """S3, then the peer (as at start-up), each bounded by what is left of the switch's time."""
        failures: list[SourceFailure] = []
        for source in sources(self.origin, pointer.key, self.peer, pointer.digest):
            remaining = deadline - self.clock()
            if remaining <= 0:
                message = f"{source.what}: not asked, the switch ran out of its {self.seconds:g}s"
                failures.append(SourceFailure(source.name, "fetch", "unreachable", message))
                continue
            bound = remaining if source.deadline is None else min(source.deadline, remaining)
            got = await attempt_source(
                replace(source, deadline=bound),
                digest=pointer.digest,
                signing_key=self.signing_key,
                metrics=self.metrics,
                attempt=0,
            )
            if isinstance(got, Revision):
                self.metrics.count_fetch_success(source.name)
                return got
            failures.append(got)
        return failures
