"""The lab's Prometheus (Debian's `prometheus`) scrapes the edge caches tests start: a cache run by the
pod runner's `LocalEdgeCache` registers itself through file-based service discovery, its /metrics is
scraped within seconds, the failing requests a client drives at it show up in the query answers, and
once it stops it is no longer a target."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from cache_itkit import EDGEROLL, cache_env, config_body, free_port, publish, unique
from tests.polling import wait_until

from edgeroll.lab import Lab
from edgeroll.lab.pod_runner import LocalEdgeCache, ScrapeTarget

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _value(lab: Lab, promql: str) -> float | None:
    result = lab.prometheus_query(promql)
    return float(result[0]["value"][1]) if result else None


def _targets(lab: Lab, cluster: str) -> list[dict[str, Any]]:
    return [t for t in lab.prometheus_targets_up() if t["labels"].get("cluster") == cluster]


def test_prometheus_scrapes_a_started_cache_and_forgets_it_when_it_stops(
    lab: Lab, s3_prefix: str, tmp_path: Path, home: Path
) -> None:
    assert lab.env()["EDGEROLL_PROMETHEUS_URL"] == lab.prometheus_url
    name, cluster = unique("scraped"), unique("ec")
    rev = publish(lab, s3_prefix, name, config_body("v1", size=2_000))
    port = free_port()
    env = cache_env(lab, rev, name, tmp_path / "state", home)
    env |= {"EDGEROLL_CACHE_PORT": str(port), "EDGEROLL_CACHE_HOST": "127.0.0.1"}
    labels = {"cluster": cluster, "edge_cluster": "edge-eu", "edge_namespace": "it", "deployment": name}
    cache = LocalEdgeCache(
        cluster="edge-eu",
        deployment=name,
        port=port,
        state_dir=tmp_path / "state",
        env={**env, "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        argv=[str(EDGEROLL), "cache"],
        log_path=tmp_path / "cache.log",
        scrape=ScrapeTarget(lab.prometheus_targets, labels),
    )
    with cache.start():
        cache.wait_ready()
        wait_until(
            lambda: _value(lab, f'up{{cluster="{cluster}"}}') == 1.0,
            timeout=20,
            message="Prometheus scraping the cache (up == 1)",
        )
        # Failing requests, as a client with a bad token makes them: the cache answers 401 and counts it.
        for _ in range(7):
            request = f"http://127.0.0.1:{port}/configs/team-a/{name}"
            status = _get(request, {"Authorization": "Bearer not-a-token"})
            assert status == 401
        query = f'edgeroll_cache_requests_total{{cluster="{cluster}",route="configs",code="401"}}'
        wait_until(lambda: _value(lab, query) == 7.0, timeout=20, message=f"{query} == 7")
        ready = _value(lab, f'edgeroll_cache_ready{{cluster="{cluster}",edge_namespace="it"}}')
        assert ready == 1.0
    assert not (lab.prometheus_targets / f"edge-eu-{name}-{port}.json").exists()
    wait_until(
        lambda: not _targets(lab, cluster), timeout=20, message="the stopped cache dropped as a target"
    )


def _get(url: str, headers: dict[str, str]) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
