"""The plan on record before the first write any of its actions makes, and only then.

The planner's actions are level-triggered: every target gets one on every plan (`ApplyRevision`
"runs the new revision" whether or not it already does), and the executor compares before it writes.
So whether a pass writes anything at the edges is known only when an executor is about to: a
wake-up that only observes a Deployment turning Available plans an action per cluster and writes
nothing. The fence puts the planned status on record (the controller's status write, a merge
patch conditioned on the resourceVersion) when the first edge or S3 write of the pass is about to
go out, and every write waits for it; when that write is refused (another replica owns the object
now, the hub is down) no write goes out and the pass is retried. A pass that writes nothing never
calls it: its planned status goes out with the report, in one status write instead of two, still
conditioned on the resourceVersion.

`WriteFence` holds no I/O of its own (the write is the `record` it is given); `FencedApi` is the
edge client the executor is handed, whose writes pass the fence first and whose reads do not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from enum import Enum
from typing import Any

from edgeroll.clusters.kube import KubeApi
from edgeroll.clusters.objects import ObjectRef


class PlanNotRecorded(Exception):
    """The plan could not be put on record: no write of this pass may go out."""


class StatusWrites(Enum):
    """How a pass wrote its status: the plan before its first write and the report after them, or
    the report alone (nothing wrote, so the planned status goes out with it)."""

    PLAN_THEN_REPORT = "plan, then report"
    REPORT_ONLY = "report only"


def status_writes(edge_writes_wanted: bool) -> StatusWrites:
    """Two status writes only when an action wants to write: the plan goes on record before anything
    acts on it; with nothing to act, there is nothing to fence, and one write says it all."""
    return StatusWrites.PLAN_THEN_REPORT if edge_writes_wanted else StatusWrites.REPORT_ONLY


class WriteFence:
    """Calls `record` once, at the first `pass_through` of a pass; every write waits for it."""

    def __init__(self, record: Callable[[], Awaitable[None]] | None) -> None:
        self._record = record  # None: no controller to write status (the plan's events go with the result)
        self._task: asyncio.Task[None] | None = None

    @property
    def writes(self) -> StatusWrites:
        return status_writes(self._task is not None)

    @property
    def refused(self) -> bool:
        """The plan was to go on record and did not: nothing of this pass was written."""
        task = self._task
        return task is not None and task.done() and (task.cancelled() or task.exception() is not None)

    async def pass_through(self) -> None:
        """Return once the plan is on record; raise PlanNotRecorded when it cannot be."""
        if self._record is None:
            return
        if self._task is None:
            self._task = asyncio.ensure_future(self._record())
        try:
            # Shielded: a cluster whose wait is cancelled (its time is up) does not cancel the write
            # the others wait for.
            await asyncio.shield(self._task)
        except asyncio.CancelledError:
            if not self._task.cancelled():
                raise  # this caller was cancelled, not the write
            raise PlanNotRecorded("the status write was cancelled") from None
        except Exception as exc:
            raise PlanNotRecorded(str(exc)) from exc

    async def settled(self) -> None:
        """Wait for a write that is still out (a cluster that waited for it ran out of time)."""
        if self._task is not None:
            await asyncio.wait([self._task])


class FencedApi:
    """An edge client whose writes (apply, delete, a pod proxy POST) wait for `gate` first."""

    def __init__(self, api: KubeApi, gate: Callable[[], Awaitable[None]]) -> None:
        self._api, self._gate = api, gate

    async def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        return await self._api.get(ref)

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        await self._gate()
        return await self._api.apply(manifest)

    async def delete(self, ref: ObjectRef, uid: str | None = None) -> bool:
        await self._gate()
        return await self._api.delete(ref, uid)

    async def version(self) -> str:
        return await self._api.version()

    async def close(self) -> None:
        await self._api.close()

    async def list_objects(self, path: str, query: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], str]:
        return await self._api.list_objects(path, query)

    async def proxy_post(self, path: str, timeout: float) -> tuple[int, bytes]:
        await self._gate()
        return await self._api.proxy_post(path, timeout)
