"""The S3 origin: one blocking `get` behind a seam, so the fetch loop can be tested without S3.

boto3 is blocking; callers run `S3Origin.get` in a thread. Errors are sorted
into a few reasons that become metric labels and actionable log lines. Neither
the credentials nor the signing key ever appear in an error message.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from edgeroll.render.signing import SIGNATURE_METADATA_KEY

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FetchReason = Literal["unreachable", "not_found", "denied", "too_large", "error"]
# A router config is a few MB at most; refuse to buffer anything absurd.
MAX_OBJECT_BYTES = 64 * 1024 * 1024


class OriginError(Exception):
    def __init__(self, reason: FetchReason, message: str) -> None:
        super().__init__(message)
        self.reason: FetchReason = reason


@dataclass(frozen=True)
class OriginObject:
    body: bytes = field(repr=False)
    signature: str | None
    # When S3 says the object was written (unix seconds); None when the source cannot say (a peer).
    last_modified: float | None


class Origin(Protocol):
    def get(self, key: str) -> OriginObject: ...


class S3Origin:
    def __init__(self, *, bucket: str, endpoint: str | None, region: str | None) -> None:
        self.bucket = bucket
        self.endpoint = endpoint
        self.region = region
        self._client: S3Client | None = None
        # The start-up fetch and an in-place switch may both get here first, each in its own thread;
        # boto3 does not promise that creating clients concurrently is safe. Made once, then reused.
        self._client_lock = threading.Lock()

    def _s3(self) -> S3Client:
        with self._client_lock:
            return self._client_once()

    def _client_once(self) -> S3Client:
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                connect_timeout=3,
                read_timeout=10,
                # The fetch loop owns retries (with backoff and jitter); one attempt here.
                retries={"max_attempts": 1, "mode": "standard"},
                # S3-compatible servers on an endpoint URL (SeaweedFS, MinIO) want path style.
                s3={"addressing_style": "path"} if self.endpoint else {},
            )
            self._client = boto3.client(
                "s3", endpoint_url=self.endpoint, region_name=self.region, config=config
            )
        return self._client

    def get(self, key: str) -> OriginObject:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        where = f"s3://{self.bucket}/{key}"
        try:
            response = self._s3().get_object(Bucket=self.bucket, Key=key)
            length = int(response.get("ContentLength") or 0)
            if length > MAX_OBJECT_BYTES:
                response["Body"].close()
                raise OriginError("too_large", f"{where} is {length} bytes, over {MAX_OBJECT_BYTES}")
            body = response["Body"].read(MAX_OBJECT_BYTES + 1)
        except ClientError as exc:
            error: dict[str, Any] = dict(exc.response.get("Error") or {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in ("NoSuchKey", "NoSuchBucket", "404") or status == 404:
                raise OriginError("not_found", f"{where} does not exist ({code or status})") from None
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403") or status in (
                401,
                403,
            ):
                raise OriginError("denied", f"{where}: access denied ({code or status})") from None
            raise OriginError("error", f"{where}: S3 error {code or status}") from None
        except NoCredentialsError:
            # No static key and no workload identity: boto3's default chain found nothing to sign with.
            raise OriginError(
                "denied", f"{where}: no S3 credentials (no AWS_* key, workload identity or instance role)"
            ) from None
        except BotoCoreError as exc:
            # Connection refused, timeouts, DNS: the class name is enough and carries no secrets.
            raise OriginError("unreachable", f"{where}: origin unreachable ({type(exc).__name__})") from None
        if len(body) > MAX_OBJECT_BYTES:
            raise OriginError("too_large", f"{where} is over {MAX_OBJECT_BYTES} bytes")
        metadata = response.get("Metadata") or {}
        modified = response.get("LastModified")
        return OriginObject(
            body=body,
            signature=metadata.get(SIGNATURE_METADATA_KEY),
            # S3 always sends Last-Modified; should one not, the fetch time bounds it from above.
            last_modified=modified.timestamp() if modified is not None else time.time(),
        )
