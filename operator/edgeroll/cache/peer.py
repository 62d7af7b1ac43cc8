"""Peer fill: the wanted revision from a sibling pod of the same Deployment, when S3 cannot give it.

The peer URL (EDGEROLL_CACHE_PEER_URL) is the edge cache's own Service. A pod is in
its Service's endpoints only while ready, that is while it serves the wanted digest
verified, so an unready pod never asks itself. Nothing a peer says is trusted: the
fetch loop passes its answer to `verify_revision` with the wanted digest and the
signing key, exactly like an S3 object. This module only fetches, blocking (the
caller runs it in a thread): one GET, a short timeout, a size bound, no redirects,
no content coding. It sends the read token (render.signing.read_token), the
credential a sibling's GET /configs asks for unless it serves publicly.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from edgeroll.cache.origin import MAX_OBJECT_BYTES, OriginError, OriginObject
from edgeroll.render.signing import SIGNATURE_HEADER

# A sibling in the same cluster answers in milliseconds; these only bound a stuck one.
PEER_TIMEOUT = 2.0  # connect, and each read
PEER_DEADLINE = 10.0  # the whole answer
READ_CHUNK = 256 * 1024
DIGEST_HEADER = "X-Config-Digest"
# identity: the signature covers the uncompressed body, and we hash what we receive.
REQUEST_HEADERS = {
    "Accept-Encoding": "identity",
    "Connection": "close",  # a new connection per attempt may reach another endpoint
    "User-Agent": "edgeroll-cache-peer-fill",
}
# (host, port, timeout) -> connection; a seam so the unit tests need no socket.
Connect = Callable[[str, int, float], http.client.HTTPConnection]


def parse_peer_url(url: str) -> tuple[str, int]:
    """(host, port) of `http://host[:port]`; ValueError otherwise.

    Plain HTTP only: a Service speaks it, and integrity comes from the digest and HMAC.
    """
    parts = urlsplit(url)
    if "@" in parts.netloc:  # user info: refuse without echoing what may be a password
        raise ValueError("must not carry user info")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"must look like http://host[:port], got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"must have no path, query or fragment, got {url!r}")
    try:
        port = parts.port or 80
    except ValueError:
        raise ValueError(f"has an invalid port, got {url!r}") from None
    return parts.hostname, port


class PeerOrigin:
    """`GET <peer url><config path>`, returned unverified; OriginError when the peer has nothing usable."""

    def __init__(
        self,
        url: str,
        config_path: str,
        *,
        timeout: float = PEER_TIMEOUT,
        deadline: float = PEER_DEADLINE,
        max_bytes: int = MAX_OBJECT_BYTES,
        connect: Connect = http.client.HTTPConnection,
        read_token: str | None = None,
    ) -> None:
        self.host, self.port = parse_peer_url(url)
        self.headers = dict(REQUEST_HEADERS)
        if read_token is not None:
            self.headers["Authorization"] = f"Bearer {read_token}"
        self.where = f"{url.rstrip('/')}{config_path}"
        self.path = config_path
        self.timeout = timeout
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.connect = connect

    def get(self, digest: str) -> OriginObject:
        deadline = time.monotonic() + self.deadline
        conn = self.connect(self.host, self.port, self.timeout)  # no I/O until the request
        try:
            conn.request("GET", self.path, headers=self.headers)
            response = conn.getresponse()
            self._check(response, digest)
            body = self._read(response, deadline)
            signature = response.getheader(SIGNATURE_HEADER)
        except OSError as exc:  # refused, timed out, no such host: the class name says which
            raise OriginError(
                "unreachable", f"{self.where}: peer unreachable ({type(exc).__name__})"
            ) from None
        except http.client.HTTPException as exc:
            raise OriginError("error", f"{self.where}: malformed answer ({type(exc).__name__})") from None
        finally:
            conn.close()
        return OriginObject(body=body, signature=signature, last_modified=None)

    def _check(self, response: http.client.HTTPResponse, digest: str) -> None:
        """Refuse, before reading the body, what cannot be the wanted revision."""
        status = response.status
        if 300 <= status < 400:
            raise OriginError("error", f"{self.where}: answered {status}; redirects are never followed")
        if status in (401, 403):
            raise OriginError("denied", f"{self.where}: answered {status}")
        if status in (404, 503):  # 503: the peer has nothing verified loaded (or is draining)
            raise OriginError("not_found", f"{self.where}: answered {status}")
        if status != 200:
            raise OriginError("error", f"{self.where}: answered {status}")
        served = (response.getheader(DIGEST_HEADER) or "").strip()
        if served and served != digest:
            # A peer still on another revision (a rolling update): not ours, not tampering.
            raise OriginError("not_found", f"{self.where} serves {served[:80]!r}, not the wanted {digest}")
        coding = (response.getheader("Content-Encoding") or "identity").strip().lower()
        if coding != "identity":
            raise OriginError("error", f"{self.where}: Content-Encoding {coding[:40]!r}, asked for identity")
        length = (response.getheader("Content-Length") or "").strip()
        if length.isdigit() and int(length) > self.max_bytes:
            raise OriginError("too_large", f"{self.where}: {length} bytes, over {self.max_bytes}")

    def _read(self, response: http.client.HTTPResponse, deadline: float) -> bytes:
        """At most `max_bytes`, within the deadline (the socket timeout bounds each read only)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise OriginError("unreachable", f"{self.where}: no complete answer in {self.deadline}s")
            chunk = response.read(min(READ_CHUNK, self.max_bytes + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_bytes:
                raise OriginError("too_large", f"{self.where}: over {self.max_bytes} bytes")
