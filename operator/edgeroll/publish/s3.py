"""S3 behind the RevisionStore seam; boto3 calls run in a thread pool, never on the event loop."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from edgeroll.operator_metrics import OperatorMetrics
from edgeroll.publish.history import Manifest
from edgeroll.publish.store import ListedObject, PublishError, StoredObject
from edgeroll.render.signing import SIGNATURE_METADATA_KEY
from edgeroll.settings import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")


def boto_config(max_pool: int = 16) -> Config:
    # boto3 >= 1.36 sends CRC trailers that some S3 servers store inside the object
    # (seaweedfs #6548, boto3 #4435): only checksum when the API requires it.
    return Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        connect_timeout=5,
        read_timeout=30,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=max_pool,
        s3={"addressing_style": "path"},
    )


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _status(err: ClientError) -> int:
    return int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _response_status(resp: object) -> int | str:
    meta = resp.get("ResponseMetadata", {}) if isinstance(resp, dict) else {}
    return int(meta.get("HTTPStatusCode", 0)) or "ok"


class S3RevisionStore:
    def __init__(
        self,
        settings: S3Settings,
        client: S3Client | None = None,
        workers: int = 16,
        metrics: OperatorMetrics | None = None,
    ) -> None:
        self.conditional_manifest = settings.manifest_if_match
        self.bucket = settings.bucket
        self.counters: Counter[str] = Counter()
        self.metrics = metrics if metrics is not None else OperatorMetrics()
        self._client: S3Client = client or boto3.session.Session().client(
            "s3", endpoint_url=settings.endpoint, region_name=settings.region, config=boto_config(workers)
        )
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edgeroll-s3")
        self._manifests: dict[str, tuple[str, Manifest]] = {}  # key -> (etag, manifest)
        # key -> the ETag of our last write of that manifest, until a read or a write says otherwise
        self._written: dict[str, str] = {}

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _call(self, op: str, key: str, fn: Callable[..., T], **kwargs: Any) -> T:
        self.counters[op] += 1
        loop = asyncio.get_running_loop()
        try:
            resp = await loop.run_in_executor(
                self._pool, functools.partial(fn, Bucket=self.bucket, Key=key, **kwargs)
            )
        except ClientError as err:
            self.metrics.s3_request(op, _status(err) or _code(err) or "ClientError")
            raise
        except BotoCoreError as exc:
            # No HTTP status: the error class (EndpointConnectionError, ReadTimeoutError…) says what failed.
            self.metrics.s3_request(op, type(exc).__name__)
            raise PublishError("S3Unavailable", f"s3://{self.bucket}/{key}: {exc}") from exc
        self.metrics.s3_request(op, _response_status(resp))
        return resp

    @staticmethod
    def _error(err: ClientError, bucket: str, key: str) -> PublishError:
        code = _code(err)
        reason = (
            "S3AccessDenied"
            if code in ("AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId")
            else "S3Error"
        )
        return PublishError(reason, f"s3://{bucket}/{key}: {code or _status(err)}: {err}")

    async def head(self, key: str) -> StoredObject | None:
        try:
            resp = await self._call("head", key, self._client.head_object)
        except ClientError as err:
            if _status(err) == 404 or _code(err) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error(err, self.bucket, key) from err
        return StoredObject(
            size=int(resp["ContentLength"]),
            signature=resp.get("Metadata", {}).get(SIGNATURE_METADATA_KEY),
            etag=str(resp.get("ETag", "")).strip('"') or None,
        )

    async def put_if_absent(self, key: str, body: bytes, signature: str) -> bool:
        try:
            await self._call(
                "put",
                key,
                self._client.put_object,
                Body=body,
                ContentType="application/json",
                Metadata={SIGNATURE_METADATA_KEY: signature},
                IfNoneMatch="*",
            )
        except ClientError as err:
            if _status(err) == 412 or _code(err) == "PreconditionFailed":
                return False
            if _status(err) == 409:  # a concurrent conditional write is in flight: the caller verifies
                return False
            raise self._error(err, self.bucket, key) from err
        return True

    async def put(self, key: str, body: bytes, signature: str) -> None:
        try:
            await self._call(
                "put",
                key,
                self._client.put_object,
                Body=body,
                ContentType="application/json",
                Metadata={SIGNATURE_METADATA_KEY: signature},
            )
        except ClientError as err:
            raise self._error(err, self.bucket, key) from err

    async def get(self, key: str) -> tuple[bytes, str | None] | None:
        try:
            resp = await self._call("get", key, self._client.get_object)
            body = await asyncio.get_running_loop().run_in_executor(self._pool, resp["Body"].read)
        except ClientError as err:
            if _status(err) == 404 or _code(err) in ("NoSuchKey", "404"):
                return None
            raise self._error(err, self.bucket, key) from err
        return body, resp.get("Metadata", {}).get(SIGNATURE_METADATA_KEY)

    async def read_manifest(self, key: str) -> Manifest | None:
        cached = self._manifests.get(key)
        extra = {"IfNoneMatch": cached[0]} if cached else {}
        try:
            resp = await self._call("get", key, self._client.get_object, **extra)
            body = await asyncio.get_running_loop().run_in_executor(self._pool, resp["Body"].read)
        except ClientError as err:
            if cached and (_status(err) == 304 or _code(err) in ("304", "NotModified")):
                return cached[1]
            if _status(err) == 404 or _code(err) in ("NoSuchKey", "404"):
                self._manifests.pop(key, None)
                self._written.pop(key, None)
                return None
            raise self._error(err, self.bucket, key) from err
        etag = str(resp.get("ETag", ""))
        if self._written.get(key) != etag:  # someone else wrote it since (same ETag: same bytes)
            self._written.pop(key, None)
        try:
            manifest = Manifest.model_validate_json(body)
        except ValidationError as exc:
            # The publisher rebuilds a damaged manifest from the listing of its prefix.
            raise PublishError(
                "ManifestInvalid", f"s3://{self.bucket}/{key}: {exc.errors()[0]['msg']}"
            ) from exc
        self._manifests[key] = (etag, manifest)
        return manifest

    def written_manifest(self, key: str) -> tuple[str, Manifest] | None:
        if not self.conditional_manifest or key not in self._written:
            return None
        etag, manifest = self._manifests[key]
        return (etag, manifest) if etag == self._written[key] else None

    async def write_manifest(self, key: str, manifest: Manifest, if_match: str | None = None) -> None:
        body = manifest.model_dump_json(by_alias=True, exclude_none=True).encode()
        extra = {"IfMatch": if_match} if if_match is not None else {}
        self._written.pop(key, None)  # unknown until it answers: a timed-out PUT may still land
        try:
            resp = await self._call(
                "put", key, self._client.put_object, Body=body, ContentType="application/json", **extra
            )
        except ClientError as err:
            # 412: another ETag now; 404: gone (some servers answer If-Match on a missing key so).
            if if_match is not None and (_status(err) in (404, 412) or _code(err) == "PreconditionFailed"):
                self._manifests.pop(key, None)
                raise PublishError(
                    "ManifestChanged", f"s3://{self.bucket}/{key}: written by another since {if_match}"
                ) from err
            raise self._error(err, self.bucket, key) from err
        etag = str(resp.get("ETag", ""))
        self._manifests[key] = (etag, manifest)
        if etag:
            self._written[key] = etag

    async def delete(self, key: str) -> None:
        try:
            await self._call("delete", key, self._client.delete_object)
        except ClientError as err:
            if _status(err) == 404:
                return
            raise self._error(err, self.bucket, key) from err

    async def list_objects(self, prefix: str) -> list[ListedObject]:
        def pages() -> list[ListedObject]:
            out: list[ListedObject] = []
            for page in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                for item in page.get("Contents", []):
                    modified = item["LastModified"]
                    if modified.tzinfo is None:
                        modified = modified.replace(tzinfo=UTC)
                    out.append(ListedObject(item["Key"], int(item["Size"]), modified))
            return out

        self.counters["list"] += 1
        try:
            listed = await asyncio.get_running_loop().run_in_executor(self._pool, pages)
        except ClientError as err:
            self.metrics.s3_request("list", _status(err) or _code(err) or "ClientError")
            raise self._error(err, self.bucket, prefix) from err
        except BotoCoreError as exc:
            self.metrics.s3_request("list", type(exc).__name__)
            raise PublishError("S3Unavailable", f"s3://{self.bucket}/{prefix}: {exc}") from exc
        self.metrics.s3_request("list", 200)  # every page answered (one count per listing, not per page)
        return listed
