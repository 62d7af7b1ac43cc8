"""The analysis's Prometheus client: what an instant query's answer comes to, and bounded waits.
The HTTP answers are faked here (a local aiohttp server); the lab's tests query a real Prometheus."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from edgeroll.pipeline.prometheus import PrometheusClient, parse_answer

pytestmark = pytest.mark.unit


def vector(*values: str) -> bytes:
    result = [{"metric": {"cluster": f"c{i}"}, "value": [1.0, v]} for i, v in enumerate(values)]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        (vector("0.25"), (0.25, None)),
        (vector("NaN"), (float("nan"), None)),
        (vector(), (None, "empty result")),
        (vector("1", "2"), (None, "2 series; the query must give one number (sum or filter it)")),
        (
            json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [1, "3"]}}).encode(),
            (3.0, None),
        ),
        (b"<html>bad gateway</html>", (None, "HTTP 200, not a Prometheus answer")),
    ],
)
def test_answers(body: bytes, answer: tuple[float | None, str | None]) -> None:
    value, why = parse_answer(200, body)
    if answer[0] is not None and answer[0] != answer[0]:  # NaN: passed on, the analysis calls it inconclusive
        assert value is not None and value != value and why is None
    else:
        assert (value, why) == answer


def test_an_error_answer_says_what_prometheus_said() -> None:
    body = json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error at char 4"}).encode()
    value, why = parse_answer(400, body)
    assert value is None and why == "Prometheus refused the query (bad_data): parse error at char 4"


@pytest.fixture
async def prometheus() -> AsyncIterator[tuple[str, list[str]]]:
    seen: list[str] = []
    released = asyncio.Event()  # a "slow" query is answered only when the test is over

    async def query(request: web.Request) -> web.Response:
        seen.append(request.query["query"])
        if request.query["query"] == "slow":
            await released.wait()
        return web.Response(body=vector("0.5"), content_type="application/json")

    app = web.Application()
    app.router.add_get("/prom/api/v1/query", query)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/prom/", seen
    released.set()
    await runner.cleanup()


async def test_a_query_is_sent_under_the_base_path(prometheus: tuple[str, list[str]]) -> None:
    address, seen = prometheus
    client = PrometheusClient(timeout=2)
    try:
        assert await client.query(address, 'sum(x{c="a"})') == (0.5, None)
    finally:
        await client.close()
    assert seen == ['sum(x{c="a"})']


async def test_a_slow_or_absent_prometheus_is_an_answer_within_the_timeout(prometheus: Any) -> None:
    address, _ = prometheus
    client = PrometheusClient(timeout=0.2)
    try:
        value, why = await asyncio.wait_for(client.query(address, "slow"), timeout=2)
        assert value is None and why == f"Prometheus at {address} unreachable: timed out after 0.2s"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
        value, why = await client.query(f"http://127.0.0.1:{closed}", "up")
        assert value is None and why is not None and "unreachable" in why
    finally:
        await client.close()
