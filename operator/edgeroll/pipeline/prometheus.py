"""Prometheus for rollout analysis: one instant query (`GET /api/v1/query`) per measurement.

Thin on purpose: which metric to measure where, and what a value means, are decided in
`edgeroll.rollout.analysis`. This only asks, within a bounded time, and turns the answer into a number
or the reason there is none (unreachable, an error answer, an empty result, more than one series),
which the analysis counts as inconclusive.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

import aiohttp

log = logging.getLogger(__name__)

Answer = tuple[float | None, str | None]  # the value, or None and why


class MetricSource(Protocol):
    async def query(self, address: str, promql: str) -> Answer: ...


def parse_answer(status: int, body: bytes) -> Answer:
    """The number an instant query's answer holds: a scalar, or the one sample of a vector."""
    try:
        answer: Any = json.loads(body)
    except ValueError:
        return None, f"HTTP {status}, not a Prometheus answer"
    if not isinstance(answer, dict):
        return None, f"HTTP {status}, not a Prometheus answer"
    if answer.get("status") != "success":
        return (
            None,
            f"Prometheus refused the query ({answer.get('errorType', status)}): {answer.get('error', '')}",
        )
    data = answer.get("data") or {}
    kind, result = data.get("resultType"), data.get("result") or []
    try:
        if kind == "scalar":
            return float(result[1]), None
        if kind == "vector":
            if not result:
                return None, "empty result"
            if len(result) > 1:
                return None, f"{len(result)} series; the query must give one number (sum or filter it)"
            return float(result[0]["value"][1]), None
    except (TypeError, ValueError, IndexError, KeyError):
        return None, f"malformed {kind} in Prometheus's answer"
    return None, f"a {kind} result; the query must give a scalar or a one-sample vector"


class PrometheusClient:
    """aiohttp, one session for every query, each bounded by `timeout` seconds."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def query(self, address: str, promql: str) -> Answer:
        url = address.rstrip("/") + "/api/v1/query"
        try:
            async with self._client().get(url, params={"query": promql}) as response:
                body = await response.read()
                return parse_answer(response.status, body)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            why = f"timed out after {self.timeout:g}s" if isinstance(exc, TimeoutError) else str(exc)
            return None, f"Prometheus at {address} unreachable: {why or type(exc).__name__}"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
