"""Fixtures of the edge cache's integration tests (helpers live in cache_itkit.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cache_itkit import CacheProcess, unique


@pytest.fixture
def s3_prefix(lab: Any) -> Iterator[str]:
    """A key prefix of this test's own in the shared bucket; its objects are deleted afterwards."""
    prefix = unique("cache-it")
    yield prefix
    client = lab.s3_client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=lab.s3_bucket, Prefix=f"{prefix}/"):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=lab.s3_bucket, Key=obj["Key"])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """HOME, TMPDIR and cwd of the caches: they must leave them empty (read-only root filesystem)."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def caches(lab: Any, home: Path) -> Iterator[list[CacheProcess]]:
    """The caches a test starts; each must exit 0 after draining on SIGTERM and write nothing in `home`."""
    started: list[CacheProcess] = []
    yield started
    codes = [cache.stop() for cache in started]
    assert codes == [0] * len(started), "the cache must exit 0 after draining on SIGTERM"
    assert list(home.iterdir()) == [], "the cache wrote outside its state dir"
