"""edgeroll_s3_requests_total: every boto3 call of the S3 store counted by operation and HTTP status, or by
the error class when no response came (a fake boto3 client; the real one is in tests/integration)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from edgeroll.operator_metrics import OperatorMetrics
from edgeroll.publish.s3 import S3RevisionStore
from edgeroll.publish.store import PublishError
from edgeroll.settings import S3Settings

pytestmark = pytest.mark.unit


def client_error(status: int, code: str, op: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, op
    )


class FakeBoto:
    """head_object: 404 then 403; put_object: no connection; get_object: 200."""

    def __init__(self) -> None:
        self.heads = 0

    def head_object(self, **_: Any) -> dict[str, Any]:
        self.heads += 1
        if self.heads == 1:
            raise client_error(404, "404", "HeadObject")
        raise client_error(403, "AccessDenied", "HeadObject")

    def put_object(self, **_: Any) -> dict[str, Any]:
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9/bucket/k")

    def get_object(self, **_: Any) -> dict[str, Any]:
        return {"Body": io.BytesIO(b"{}"), "Metadata": {}, "ResponseMetadata": {"HTTPStatusCode": 200}}


def requests(m: OperatorMetrics, op: str, code: str) -> float | None:
    return m.registry.get_sample_value("edgeroll_s3_requests_total", {"op": op, "code": code})


async def test_each_call_is_counted_by_operation_and_status_or_error_class() -> None:
    metrics = OperatorMetrics()
    store = S3RevisionStore(S3Settings("tenant-configs"), client=FakeBoto(), workers=1, metrics=metrics)  # type: ignore[arg-type]
    try:
        assert await store.head("k") is None  # a 404 is an answer: counted, not an error
        with pytest.raises(PublishError) as denied:
            await store.head("k")
        assert denied.value.reason == "S3AccessDenied"
        with pytest.raises(PublishError) as down:
            await store.put_if_absent("k", b"{}", "sig")
        assert down.value.reason == "S3Unavailable"
        assert await store.get("k") == (b"{}", None)
    finally:
        await store.close()
    assert requests(metrics, "head", "404") == 1.0
    assert requests(metrics, "head", "403") == 1.0
    assert requests(metrics, "put", "EndpointConnectionError") == 1.0
    assert requests(metrics, "get", "200") == 1.0
    text = metrics.exposition().decode()
    assert "127.0.0.1" not in text and "tenant-configs" not in text  # no addresses nor buckets
