"""Complete HTTP responses built once per revision, so serving is a lookup and a write.

A `Prepared` holds, for the one config this cache serves, the status line and
headers (everything but `Date` and the final CRLF) and the body of each answer
it can give: 200 identity, 200 gzip, 304, for both `GET /configs/<ns>/<name>`
and the Cosmo route. gzip is computed here, once, at level 9.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus

from edgeroll.cache.metrics import bytes_slot, request_slot
from edgeroll.cache.revision import Revision
from edgeroll.render.cosmo_split import CosmoSplit, SplitFile, split_config
from edgeroll.render.operations import PersistedOperations, operation_file, pql_manifest, warmup_file
from edgeroll.render.signing import SIGNATURE_HEADER, sign

CONFIG_CACHE_CONTROL = "no-cache"  # may be stored, but revalidate (cheap: 304) before reuse


@dataclass(frozen=True, slots=True)
class Response:
    head: bytes  # status line and headers, each ending in CRLF, without Date or the blank line
    body: bytes = field(repr=False)
    route: str
    code: int
    slot: int  # metrics slot for (route, code)
    bytes_slot: int


def status_line(code: int) -> bytes:
    return f"HTTP/1.1 {code} {HTTPStatus(code).phrase}\r\n".encode("ascii")


def make_response(
    route: str,
    code: int,
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    *,
    content_length: int | None = None,
) -> Response:
    lines = [status_line(code)]
    for name, value in headers or []:
        lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    if code != 304:
        lines.append(b"Content-Length: %d\r\n" % (len(body) if content_length is None else content_length))
    return Response(
        head=b"".join(lines),
        body=body,
        route=route,
        code=code,
        slot=request_slot(route, code),
        bytes_slot=bytes_slot(route),
    )


def text_response(route: str, code: int, text: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return make_response(
        route,
        code,
        text.encode("utf-8") + b"\n",
        [("Content-Type", "text/plain; charset=utf-8"), *(headers or [])],
    )


def cdn_text(route: str, code: int, text: str) -> Response:
    """A text answer byte for byte as Cosmo's CDN (Hono's `c.text`) gives it: no trailing newline."""
    return make_response(route, code, text.encode("utf-8"), [("Content-Type", "text/plain; charset=UTF-8")])


def compress_body(body: bytes) -> bytes:
    """Deterministic gzip (mtime 0) so the bench can hand nginx exactly the same bytes."""
    return gzip.compress(body, compresslevel=9, mtime=0)


def date_tails(now: float) -> tuple[bytes, bytes]:
    """The end of every header block: `Date` and the blank line, for keep-alive and for close."""
    date = formatdate(now, usegmt=True).encode("ascii")
    return b"Date: " + date + b"\r\n\r\n", b"Date: " + date + b"\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True, slots=True)
class PreparedFile:
    """One file of split config loading (`manifest/...`): its answers and the version that gets 304."""

    version: str
    identity: Response
    gzip: Response
    not_modified: Response


@dataclass(frozen=True, slots=True)
class Prepared:
    digest: str
    etag: bytes
    version: str | None
    configs_identity: Response
    configs_gzip: Response
    configs_not_modified: Response
    cosmo_identity: Response
    cosmo_gzip: Response
    cosmo_not_modified: Response
    # "mapper.json", "latest.json", "feature-flags/<name>.json"; empty unless the revision is a Cosmo
    # config and the cache serves the Cosmo routes.
    manifest: Mapping[str, PreparedFile] = field(default_factory=dict)
    # Persisted operations (a bundle's), for the Cosmo routes; None when the revision has none.
    operations: PreparedOperations | None = None


@dataclass(frozen=True, slots=True)
class PreparedOperations:
    """The answers of operations/manifest.json, operations/<client>/<sha256>.json and
    cache_warmup/operations.json (render.operations), headers as Cosmo's CDN sends them."""

    revision: str  # the PQL manifest's revision: its ETag, unquoted
    manifest_identity: Response
    manifest_gzip: Response
    manifest_not_modified: Response
    files: Mapping[tuple[str, str], Response]  # (client, "<sha256>.json") -> 200
    warmup: Response | None  # None: 404, which a router takes as nothing to warm


# Byte for byte what Cosmo's CDN (Hono's c.body with this header) sends for manifest files.
MANIFEST_CONTENT_TYPE = "application/json; charset=UTF-8"
WARMUP_CACHE_CONTROL = "no-cache, no-store, must-revalidate"  # Cosmo's CDN, cache_warmup/operations.json


def _prepared_file(file: SplitFile, signing_key: bytes) -> PreparedFile:
    """As the CDN answers a manifest file: the router checks X-Signature-SHA256 on every one (mapper
    included) when it has a sign key, so each is signed, here, with the key that verified the config."""
    body = file.body
    compressed = compress_body(body)
    signed = [("Content-Type", MANIFEST_CONTENT_TYPE), (SIGNATURE_HEADER, sign(signing_key, body))]
    identity = make_response("manifest", 200, body, signed)
    gz = (
        make_response("manifest", 200, compressed, [*signed, ("Content-Encoding", "gzip")])
        if len(compressed) < len(body)
        else identity
    )
    return PreparedFile(file.version, identity, gz, make_response("manifest", 304, b""))


def prepare_manifest(revision: Revision, signing_key: bytes) -> dict[str, PreparedFile]:
    """The split-config files of a Cosmo revision (render.cosmo_split), ready to serve."""
    split: CosmoSplit = split_config(json.loads(revision.config))
    files = {"mapper.json": split.mapper, "latest.json": split.base}
    files |= {f"feature-flags/{name}.json": f for name, f in split.flags.items()}
    return {path: _prepared_file(file, signing_key) for path, file in files.items()}


def prepare_operations(operations: PersistedOperations) -> PreparedOperations:
    manifest, revision = pql_manifest(operations)
    etag = [("ETag", f'"{revision}"')]
    typed = [("Content-Type", MANIFEST_CONTENT_TYPE), *etag]
    identity = make_response("operations", 200, manifest, typed)
    compressed = compress_body(manifest)
    gz = (
        make_response("operations", 200, compressed, [*typed, ("Content-Encoding", "gzip")])
        if len(compressed) < len(manifest)
        else identity
    )
    # The CDN streams the stored object without a Content-Type of its own.
    files = {
        (client, f"{hash_hex}.json"): make_response("operations", 200, operation_file(document))
        for client, documents in operations.by_client.items()
        for hash_hex, document in documents.items()
    }
    warmup_body = warmup_file(operations)
    warmup = None
    if warmup_body is not None:
        no_cache = [("Content-Type", MANIFEST_CONTENT_TYPE), ("Cache-Control", WARMUP_CACHE_CONTROL)]
        warmup = make_response("operations", 200, warmup_body, no_cache)
    not_modified = make_response("operations", 304, b"", etag)
    return PreparedOperations(revision, identity, gz, not_modified, files, warmup)


def prepare(revision: Revision, manifest_key: bytes | None = None) -> Prepared:
    """CPU work (gzip of a few MB): run it off the event loop. With `manifest_key` (the signing key),
    a Cosmo revision's split-config files are prepared too."""
    etag = f'"{revision.digest}"'
    common = [
        ("ETag", etag),
        ("X-Config-Digest", revision.digest),
        ("Cache-Control", CONFIG_CACHE_CONTROL),
        ("Vary", "Accept-Encoding"),
    ]

    def variants(
        route: str, content_type: str, body: bytes, signature: str, compressed: bytes
    ) -> tuple[Response, Response, Response]:
        signed = [(SIGNATURE_HEADER, signature)]
        identity = make_response(route, 200, body, [("Content-Type", content_type), *common, *signed])
        if len(compressed) < len(body):
            gz = make_response(
                route,
                200,
                compressed,
                [("Content-Type", content_type), ("Content-Encoding", "gzip"), *common, *signed],
            )
        else:
            gz = identity
        return identity, gz, make_response(route, 304, b"", common)

    # GET /configs serves the revision as published; the Cosmo routes its config (a bundle's part).
    compressed = compress_body(revision.body)
    configs = variants("configs", "application/json", revision.body, revision.signature, compressed)
    if revision.bundled_config is not None:
        compressed = compress_body(revision.config)
    cosmo = variants(
        "cosmo", "application/json; charset=utf-8", revision.config, revision.config_signature, compressed
    )
    manifest: dict[str, PreparedFile] = {}
    operations = None
    if manifest_key is not None and revision.version:  # a Cosmo config, and the Cosmo routes are on
        manifest = prepare_manifest(revision, manifest_key)
        if revision.operations is not None:
            operations = prepare_operations(revision.operations)
    return Prepared(
        revision.digest, etag.encode("ascii"), revision.version, *configs, *cosmo, manifest, operations
    )


def etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    """RFC 9110 If-None-Match: weak comparison over a list, or `*`."""
    if if_none_match == etag:
        return True
    for candidate in if_none_match.split(b","):
        candidate = candidate.strip()
        if candidate == b"*":
            return True
        if candidate.startswith(b"W/"):
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False


def accepts_gzip(accept_encoding: bytes | None) -> bool:
    """True when gzip is acceptable with q > 0 (also through `*`)."""
    if not accept_encoding:
        return False
    if accept_encoding == b"gzip":
        return True
    if b";" not in accept_encoding:  # the common case: "gzip, deflate, br"
        return any(c.strip().lower() in (b"gzip", b"x-gzip", b"*") for c in accept_encoding.split(b","))
    star: bool | None = None
    for item in accept_encoding.split(b","):
        coding, _, params = item.partition(b";")
        coding = coding.strip().lower()
        q = 1.0
        for param in params.split(b";"):
            key, _, value = param.partition(b"=")
            if key.strip().lower() == b"q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if coding in (b"gzip", b"x-gzip"):
            return q > 0
        if coding == b"*":
            star = q > 0
    return bool(star)
