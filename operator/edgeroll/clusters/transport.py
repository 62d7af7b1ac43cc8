"""HTTPS to one apiserver: a TLS context built from memory, a small connection pool, a bearer token.

The operator talks raw JSON to every cluster, so a generated client library is not needed; its
import alone (`kubernetes_asyncio.client`, which kopf also imports when it is installed) cost ~37 MiB
of RSS and 0.4 s of start (docs/benchmarks.md, fan-out). This module is the transport only: what a
status code means is `kube.py`'s business.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterator
from typing import Protocol

import aiohttp

from edgeroll.clusters.kubeconfig import EdgeCredentials


class TlsRefused(Exception):
    """The credentials' certificates or key do not load; the message names the kind, never the bytes."""


class TokenSource(Protocol):
    """Where a bearer token comes from when it can change (a service account file, an exec plugin)."""

    async def token(self) -> str | None: ...

    def expire(self) -> bool:
        """The apiserver refused the token: the next `token()` fetches a new one; whether one can come."""


class StaticToken:
    def __init__(self, token: str | None) -> None:
        self._token = token

    async def token(self) -> str | None:
        return self._token

    def expire(self) -> bool:
        return False


@contextlib.contextmanager
def _memory_files(*blobs: bytes | None) -> Iterator[list[str | None]]:
    """Paths to anonymous in-memory files (memfd) holding `blobs`, closed on exit.

    `ssl` loads a client certificate only from a path. A memfd is a path that is
    never on a disk and vanishes with its last descriptor, so no key material is
    left behind even by a kill -9 (a temp file would be).
    """
    fds: list[int] = []
    try:
        paths: list[str | None] = []
        for blob in blobs:
            if blob is None:
                paths.append(None)
                continue
            if not hasattr(os, "memfd_create"):  # Linux only; a temp file is what this avoids
                raise TlsRefused("inline certificates need Linux (memfd_create)")
            fd = os.memfd_create("edgeroll-tls", os.MFD_CLOEXEC)
            fds.append(fd)
            os.write(fd, blob)
            paths.append(f"/proc/self/fd/{fd}")
        yield paths
    finally:
        for fd in fds:
            os.close(fd)


def tls_context(creds: EdgeCredentials) -> ssl.SSLContext:
    """The client TLS context of `creds`: its CA (else the system's), its client certificate, from memory."""
    try:
        if creds.ca_pem is not None:
            ctx = ssl.create_default_context(cadata=creds.ca_pem.decode("ascii", "replace"))
        else:
            ctx = ssl.create_default_context()
        if not creds.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if creds.cert_pem is not None and creds.key_pem is not None:
            with _memory_files(creds.cert_pem, creds.key_pem) as (cert, key):
                assert cert is not None and key is not None
                ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError, OSError) as exc:
        raise TlsRefused(f"its certificates do not load ({type(exc).__name__})") from None
    return ctx


class Transport:
    """One apiserver: `request` sends a body and returns the status and the raw answer."""

    def __init__(self, creds: EdgeCredentials, connections: int, tokens: TokenSource | None = None) -> None:
        self.server = creds.server
        self.tokens: TokenSource = tokens if tokens is not None else StaticToken(creds.token)
        secure = creds.server.startswith("https://")
        # Built before the session, so a refused key fails here and nothing is left open.
        self._ssl: ssl.SSLContext | bool = tls_context(creds) if secure else False
        self._server_hostname = creds.tls_server_name if secure else None
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use, inside the event loop that will run it.
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=self._connections, limit_per_host=0)
            self._session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": "edgeroll"})
        return self._session

    def url(self, path: str) -> str:
        return f"{self.server}{path}"

    async def headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        token = await self.tokens.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def open_request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None,
        data: bytes | None,
        content_type: str | None,
        timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        """The response once its headers are in; the caller reads and releases it."""
        return await self._open().request(
            method,
            self.url(path),
            params=params or None,
            data=data,
            headers=await self.headers(content_type),
            timeout=timeout,
            server_hostname=self._server_hostname,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
