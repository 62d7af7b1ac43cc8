"""Counters: one row per process, summed for /metrics."""

from __future__ import annotations

import mmap

import pytest

from edgeroll.cache.metrics import Metrics, ServingStatus, shared_size

pytestmark = pytest.mark.unit


def test_rows_of_several_processes_are_summed() -> None:
    buffer = mmap.mmap(-1, shared_size(3))
    supervisor = Metrics(buffer, rows=3, row=0)
    worker1 = Metrics(buffer, rows=3, row=1)
    worker2 = Metrics(buffer, rows=3, row=2)
    worker1.count_response("configs", 200, 1000)
    worker2.count_response("configs", 200, 500)
    worker2.count_response("cosmo", 304, 10)
    supervisor.count_fetch_failure("origin", "unreachable")
    worker1.count_fetch_failure("peer", "not_found")
    text = worker1.render(ServingStatus("ns", "router", "sha256:" + "a" * 64)).decode()
    assert 'edgeroll_cache_requests_total{route="configs",code="200"} 2' in text
    assert 'edgeroll_cache_requests_total{route="cosmo",code="304"} 1' in text
    assert 'edgeroll_cache_response_bytes_total{route="configs"} 1500' in text
    assert 'edgeroll_cache_fetch_failures_total{source="origin",reason="unreachable"} 1' in text
    assert 'edgeroll_cache_fetch_failures_total{source="peer",reason="not_found"} 1' in text
    assert 'edgeroll_cache_fetch_failures_total{source="peer",reason="unreachable"} 0' in text
    assert worker2.fetch_failures("origin", "unreachable") == 1


def test_unknown_status_codes_count_as_500_rather_than_crash() -> None:
    metrics = Metrics()
    metrics.count_response("other", 418, 1)
    assert 'route="other",code="500"} 1' in metrics.render(ServingStatus("ns", "r", "sha256:x")).decode()


def test_render_before_anything_is_served() -> None:
    text = Metrics().render(ServingStatus("ns", 'r"x', "sha256:" + "b" * 64)).decode()
    assert "edgeroll_cache_ready 0" in text
    assert 'name="r\\"x"' in text
    assert "\nedgeroll_cache_served_config_age_seconds " not in text
    for line in text.splitlines():
        assert line.startswith("#") or " " in line


def test_age_uses_the_publish_time() -> None:
    status = ServingStatus("ns", "r", "sha256:x", served_digest="sha256:x", served_published_at=100.0)
    text = Metrics().render(status, now=130.5).decode()
    assert "edgeroll_cache_served_config_age_seconds 30.5" in text


def test_fetches_and_refusals_are_labelled_by_source() -> None:
    metrics = Metrics()
    metrics.count_fetch_success("peer")
    metrics.count_verify_failure("peer", "bad_signature")
    text = metrics.render(ServingStatus("ns", "r", "sha256:x")).decode()
    assert 'edgeroll_cache_fetches_total{source="origin"} 0' in text
    assert 'edgeroll_cache_fetches_total{source="peer"} 1' in text
    assert 'edgeroll_cache_verify_failures_total{source="peer",reason="bad_signature"} 1' in text
    assert 'edgeroll_cache_verify_failures_total{source="state",reason="bad_signature"} 0' in text
