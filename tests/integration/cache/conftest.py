"""Fixtures of the edge cache's integration tests (helpers live in cache_itkit.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cache_itkit import unique


@pytest.fixture
def s3_prefix(lab: Any) -> Iterator[str]:
    """A key prefix of this test's own in the shared bucket; its objects are deleted afterwards."""
    prefix = unique("cache-it")
    yield prefix
    client = lab.s3_client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=lab.s3_bucket, Prefix=f"{prefix}/"):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=lab.s3_bucket, Key=obj["Key"])
