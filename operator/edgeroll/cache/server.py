"""The HTTP/1.1 server: an asyncio Protocol on httptools, answering from pre-built bytes.

The hot path is parse -> compare the path -> pick one of the responses that
`responses.prepare` built for the current revision -> `transport.writelines`.
Switching revisions is one attribute assignment, so a request is answered
entirely from the old revision or entirely from the new one.

Everything a client controls is bounded: URL and header bytes, header count,
body bytes, and the time a request may take to arrive. Violations get a 4xx
and the connection is closed; nothing a client sends can raise out of here.

One answer is not immediate: `POST /-/revision` (in-place switching) waits for a
switch. The connection then holds its answer slot: it stops reading, queues the
requests already parsed behind it, and handles them, in order, once the switch's
answer is written.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import hmac
import logging
import time
from dataclasses import dataclass, field
from typing import cast

import httptools

from edgeroll.cache import cosmo, switching
from edgeroll.cache.cosmo import OperationsPath
from edgeroll.cache.metrics import Metrics, ServingStatus
from edgeroll.cache.responses import (
    Prepared,
    Response,
    accepts_gzip,
    cdn_text,
    date_tails,
    etag_matches,
    make_response,
    text_response,
)
from edgeroll.render.cosmo_split import FEATURE as SPLIT_FEATURE

log = logging.getLogger(__name__)

UNAUTHORIZED_CHALLENGE = 'Bearer realm="edgeroll"'


def _claims(route_name: str, route: CosmoRoute, authorization: bytes | None) -> cosmo.GraphClaims | Response:
    """The graph token's claims, or the 401 to answer (Cosmo's CDN checks the token before all else)."""
    try:
        return route.tokens.claims(authorization)
    except cosmo.TokenError as exc:
        return text_response(route_name, 401, str(exc), [("WWW-Authenticate", UNAUTHORIZED_CHALLENGE)])


def _held_version(route_name: str, body: bytes) -> str | Response:
    """The `{"version": ...}` a client sends ("" on a first fetch), or the 400 to answer."""
    try:
        return cosmo.requested_version(body)
    except ValueError as exc:
        return text_response(route_name, 400, str(exc))


@dataclass(frozen=True)
class Limits:
    max_url_bytes: int = 8 * 1024
    max_header_bytes: int = 16 * 1024  # request line + all headers
    max_headers: int = 100
    max_body_bytes: int = 16 * 1024  # a Cosmo request body is `{"version":"<uuid>"}`
    max_switch_body_bytes: int = switching.MAX_SWITCH_BODY_BYTES  # /-/revision reads no body
    request_timeout: float = 10.0  # from the first byte of a request to its end
    keepalive_timeout: float = 75.0  # idle connections
    max_connections: int = 10_000
    # The header bytes httptools buffers before calling back are bounded by this much
    # beyond max_header_bytes (one read's worth), checked between reads.
    read_slack_bytes: int = 64 * 1024


class _Reject(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.code)
        self.response = response


class _Stop(Exception):
    """The connection is closing; ignore pipelined requests after the last answered one."""


@dataclass
class CosmoRoute:
    organization_id: str
    federated_graph_id: str
    tokens: cosmo.TokenCache


@dataclass
class ServerState:
    """Everything the connections of one process share."""

    configs_path: bytes
    status: ServingStatus
    metrics: Metrics
    # The read token GET /configs needs (render.signing.read_token); None: public read.
    configs_read_token: bytes | None
    cosmo_route: CosmoRoute | None = None
    # In-place switching (POST /-/revision); None: disabled (no pointer key, or several workers).
    switcher: switching.Switcher | None = None
    limits: Limits = field(default_factory=Limits)
    prepared: Prepared | None = None
    draining: bool = False
    connections: set[HttpConnection] = field(default_factory=set)
    now: float = field(default_factory=time.monotonic)
    tail_keep: bytes = b""
    tail_close: bytes = b""

    def __post_init__(self) -> None:
        self.tick()
        retry = [("Retry-After", "1"), ("Cache-Control", "no-store")]
        self.r_not_loaded = text_response("configs", 503, "no verified revision loaded yet", retry)
        self.r_cosmo_not_loaded = text_response("cosmo", 503, "no verified revision loaded yet", retry)
        self.r_configs_405 = text_response("configs", 405, "method not allowed", [("Allow", "GET, HEAD")])
        self.r_cosmo_405 = text_response("cosmo", 405, "method not allowed", [("Allow", "POST")])
        self.r_cosmo_404 = text_response("cosmo", 404, "unknown federated graph")
        # Cosmo's CDN answers a token whose claims name another graph than the path with this.
        self.r_cosmo_400 = cdn_text("cosmo", 400, "Bad Request")
        self.r_cosmo_no_v1 = text_response(
            "cosmo", 404, "no config under routerconfigs/1/: compatibility version 1 is stored unversioned"
        )
        self.r_configs_401 = text_response(
            "configs",
            401,
            "send Authorization: Bearer <read token or graph token>",
            [("WWW-Authenticate", UNAUTHORIZED_CHALLENGE)],
        )
        # Split config loading (manifest/...): Cosmo's CDN's own texts.
        self.r_manifest_403 = cdn_text("manifest", 403, "Forbidden - Missing required feature")
        self.r_manifest_400 = cdn_text("manifest", 400, "Bad Request")
        self.r_manifest_404 = cdn_text("manifest", 404, "404 Not Found")
        self.r_manifest_405 = text_response("manifest", 405, "method not allowed", [("Allow", "POST")])
        self.r_manifest_not_loaded = text_response("manifest", 503, "no verified revision loaded yet", retry)
        # Persisted operations: Cosmo's CDN's own texts; any method but GET has no route there (404).
        self.r_operations_400 = cdn_text("operations", 400, "Bad Request")
        self.r_operations_404 = cdn_text("operations", 404, "404 Not Found")
        self.r_operations_not_loaded = text_response(
            "operations", 503, "no verified revision loaded yet", retry
        )
        self.r_healthz = text_response("healthz", 200, "ok", [("Cache-Control", "no-store")])
        self.r_not_found = text_response("other", 404, "not found")

    def install(self, prepared: Prepared, *, published_at: float | None) -> None:
        self.prepared = prepared
        self.status.served_digest = prepared.digest
        self.status.served_published_at = published_at
        self.status.served_loaded_at = time.time()

    def tick(self) -> None:
        """Once a second: refresh the Date header and enforce timeouts."""
        self.now = time.monotonic()
        self.tail_keep, self.tail_close = date_tails(time.time())
        limits = self.limits
        for conn in list(self.connections):
            conn.check_timeouts(self.now, limits)

    def begin_drain(self) -> None:
        """Stop keep-alive: idle connections close now, busy ones after their answer."""
        self.draining = True
        for conn in list(self.connections):
            conn.close_if_idle()

    # -- routes ---------------------------------------------------------------------------

    def configs_authorized(self, authorization: bytes | None) -> bool:
        """The read token, or a verified graph token of our graph; anything without publicRead."""
        expected = self.configs_read_token
        if expected is None:
            return True
        if authorization is None:
            return False
        scheme, _, token = authorization.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        if hmac.compare_digest(token.strip(), expected):
            return True
        route = self.cosmo_route
        if route is None or not route.tokens.verifies:
            return False  # an unverified graph token is no credential
        try:
            claims = route.tokens.claims(authorization)
        except cosmo.TokenError:
            return False
        return (claims.organization_id, claims.federated_graph_id) == (
            route.organization_id,
            route.federated_graph_id,
        )

    def configs(
        self,
        method: bytes,
        if_none_match: bytes | None,
        accept_encoding: bytes | None,
        authorization: bytes | None = None,
    ) -> Response:
        if method != b"GET" and method != b"HEAD":
            return self.r_configs_405
        if not self.configs_authorized(authorization):
            return self.r_configs_401
        prepared = self.prepared
        if prepared is None:
            return self.r_not_loaded
        if if_none_match is not None and etag_matches(if_none_match, prepared.etag):
            return prepared.configs_not_modified
        return prepared.configs_gzip if accepts_gzip(accept_encoding) else prepared.configs_identity

    def cosmo(
        self,
        method: bytes,
        path: bytes,
        authorization: bytes | None,
        body: bytes,
        accept_encoding: bytes | None,
    ) -> Response:
        route = self.cosmo_route
        where = cosmo.config_path(path)
        if route is None or where is None:
            return self.r_not_found if where is None else self.r_cosmo_404
        # The token first, whatever the method: Cosmo's CDN checks it in a middleware of the path.
        claims = _claims("cosmo", route, authorization)
        if isinstance(claims, Response):
            return claims
        if method != b"POST":
            return self.r_cosmo_405
        graph = (where.organization_id, where.federated_graph_id)
        if (claims.organization_id, claims.federated_graph_id) != graph:
            return self.r_cosmo_400
        segment = where.compatibility_segment
        if segment is not None and segment != cosmo.ACCEPTED_COMPATIBILITY_SEGMENT:
            # As Cosmo's CDN: every v<N>, before the body or the stored version (see cosmo.py).
            return cdn_text("cosmo", 400, f'Invalid router compatibility version "{segment}".')
        if graph != (route.organization_id, route.federated_graph_id):
            return self.r_cosmo_404
        if segment is not None:
            return self.r_cosmo_no_v1
        prepared = self.prepared
        if prepared is None:
            # Not 404: the router would swap in its built-in empty config. 503 makes it retry.
            return self.r_cosmo_not_loaded
        version = _held_version("cosmo", body)
        if isinstance(version, Response):
            return version
        if prepared.version is not None and version == prepared.version:
            return prepared.cosmo_not_modified
        return prepared.cosmo_gzip if accepts_gzip(accept_encoding) else prepared.cosmo_identity

    def manifest(
        self,
        method: bytes,
        path: bytes,
        authorization: bytes | None,
        body: bytes,
        accept_encoding: bytes | None,
    ) -> Response:
        """`POST /<org>/<graph>/manifest/<file>`, checked in the order of Cosmo's CDN: token (401), the
        `split-config-loading` feature (403), the ids (400), then 404 / 304 / 200."""
        route = self.cosmo_route
        where = cosmo.manifest_path(path)
        if route is None or where is None:
            return self.r_not_found
        claims = _claims("manifest", route, authorization)
        if isinstance(claims, Response):
            return claims
        if SPLIT_FEATURE not in claims.features:
            return self.r_manifest_403
        if method != b"POST":
            return self.r_manifest_405
        graph = (where.organization_id, where.federated_graph_id)
        if (claims.organization_id, claims.federated_graph_id) != graph:
            return self.r_manifest_400
        if graph != (route.organization_id, route.federated_graph_id):
            return self.r_manifest_404
        prepared = self.prepared
        if prepared is None:
            return self.r_manifest_not_loaded
        version = _held_version("manifest", body)
        if isinstance(version, Response):
            return version
        file = prepared.manifest.get(where.file)
        if file is None:
            return self.r_manifest_404
        if version and version == file.version:
            return file.not_modified
        return file.gzip if accepts_gzip(accept_encoding) else file.identity

    def operations(
        self,
        method: bytes,
        where: OperationsPath,
        authorization: bytes | None,
        if_none_match: bytes | None,
        accept_encoding: bytes | None,
    ) -> Response:
        """`GET /<org>/<graph>/operations/...` and `cache_warmup/operations.json`, checked in the order of
        Cosmo's CDN: token (401), route (404 for other methods), ids (400), then 404 / 304 / 200."""
        route = self.cosmo_route
        if route is None:
            return self.r_not_found
        claims = _claims("operations", route, authorization)
        if isinstance(claims, Response):
            return claims
        if method != b"GET" and method != b"HEAD":
            return self.r_operations_404
        graph = (where.organization_id, where.federated_graph_id)
        if (claims.organization_id, claims.federated_graph_id) != graph:
            return self.r_operations_400
        if graph != (route.organization_id, route.federated_graph_id):
            return self.r_operations_404
        prepared = self.prepared
        if prepared is None:
            return self.r_operations_not_loaded
        operations = prepared.operations
        if operations is None:
            return self.r_operations_404
        if where.kind == "warmup":
            return operations.warmup or self.r_operations_404
        if where.kind == "operation":
            return operations.files.get((where.client, where.file)) or self.r_operations_404
        if cosmo.unquoted_etag(if_none_match) == operations.revision:
            return operations.manifest_not_modified
        return operations.manifest_gzip if accepts_gzip(accept_encoding) else operations.manifest_identity

    def readyz(self, method: bytes) -> Response:
        if method != b"GET" and method != b"HEAD":
            return text_response("readyz", 405, "method not allowed", [("Allow", "GET, HEAD")])
        status = self.status
        nostore = [("Cache-Control", "no-store")]
        if self.draining:
            return text_response("readyz", 503, "not ready: shutting down", nostore)
        if status.ready:
            return text_response("readyz", 200, f"ready {status.served_digest}", nostore)
        return text_response(
            "readyz",
            503,
            f"not ready: serving {status.served_digest or 'nothing'}, want {status.wanted_digest}",
            nostore,
        )

    def revision(self, method: bytes) -> Response:
        """`/-/revision` but a POST that switches (the connection defers that one)."""
        if method == b"GET" or method == b"HEAD":
            return switching.status_response(self.status)
        if method == b"POST":
            return switching.disabled_response(self.status)
        return switching.method_not_allowed()

    def metrics_page(self, method: bytes) -> Response:
        if method != b"GET" and method != b"HEAD":
            return text_response("metrics", 405, "method not allowed", [("Allow", "GET, HEAD")])
        body = self.metrics.render(self.status)
        return make_response(
            "metrics",
            200,
            body,
            [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"), ("Cache-Control", "no-store")],
        )


# A request parsed while an earlier answer on the connection is pending, handled after it:
# (method, path, If-None-Match, Accept-Encoding, Authorization, body, keep-alive); or the final
# answer (None: none) of a connection that failed meanwhile (a malformed request, say), then close.
_Request = tuple[bytes, bytes, bytes | None, bytes | None, bytes | None, bytes, bool]
_Queued = _Request | Response | None


class HttpConnection(asyncio.Protocol):
    __slots__ = (
        "accept",
        "auth",
        "body",
        "busy_since",
        "closing",
        "expect_continue",
        "fed",
        "header_bytes",
        "header_count",
        "headers_done",
        "inm",
        "is_post",
        "last_active",
        "msg_fed_start",
        "parser",
        "queued",
        "reading_paused",
        "st",
        "transport",
        "url",
        "waiting",
    )

    def __init__(self, state: ServerState) -> None:
        self.st = state
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.closing = False
        self.reading_paused = False
        self.busy_since: float | None = None  # set while a request is arriving
        self.last_active = state.now
        self.fed = 0
        self.msg_fed_start = 0
        # The switch whose answer is next on this connection, and the requests parsed behind it.
        self.waiting: asyncio.Future[switching.SwitchResult] | None = None
        self.queued: collections.deque[_Queued] = collections.deque()
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.header_bytes = 0
        self.header_count = 0
        self.headers_done = False
        self.inm: bytes | None = None
        self.accept: bytes | None = None
        self.auth: bytes | None = None
        self.body = b""
        self.is_post = False
        self.expect_continue = False

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport does not subclass asyncio.Transport but implements it.
        self.transport = cast(asyncio.Transport, transport)
        st = self.st
        if len(st.connections) >= st.limits.max_connections or st.draining:
            self.closing = True
            self._write(text_response("other", 503, "too many connections"), head_only=False, keep=False)
            return
        st.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.st.connections.discard(self)

    # Reading is paused while the client does not read its answers (reading_paused) or while an
    # answer waits for a switch (waiting); each resumes it only if the other does not hold it.

    def pause_writing(self) -> None:
        # The client is not reading its answers: stop reading its requests.
        if self.transport is not None and not self.reading_paused:
            self.reading_paused = True
            if self.waiting is None:
                self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self.reading_paused:
            self.reading_paused = False
            if self.waiting is None:
                self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_active = self.st.now
        self.fed += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Reject):
                self._fail(cause.response)
            elif not isinstance(cause, _Stop):
                log.exception("internal error while answering a request")
                self._fail(text_response("other", 500, "internal error"))
            return
        except httptools.HttpParserUpgrade:
            # The request was answered; what follows is not HTTP/1.1 that we speak.
            self._fail(None)
            return
        except httptools.HttpParserError as exc:
            self._reject_malformed(exc)
            return
        if self.busy_since is not None and not self.headers_done:
            # httptools buffers a header until it is complete: bound that too.
            limits = self.st.limits
            if self.fed - self.msg_fed_start > limits.max_header_bytes + limits.read_slack_bytes:
                message = f"request headers too large (limit {limits.max_header_bytes} bytes)"
                self._fail(text_response("other", 431, message))

    def _reject_malformed(self, exc: Exception) -> None:
        # An unknown HTTP version too: it is the client's fault, so 400 rather than 505.
        message = f"malformed request: {str(exc) or type(exc).__name__}"
        self._fail(text_response("other", 400, message))

    def _fail(self, response: Response | None) -> None:
        """Answer `response` (None: nothing) and close; after the pending answers, if any."""
        if self.waiting is None:
            if response is None:
                self._close()
            else:
                self._write(response, head_only=False, keep=False)
            return
        self.closing = True  # parse nothing more; what is queued is still answered, then this
        self.queued.append(response)

    # -- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.closing:
            raise _Stop()
        self._reset()
        self.busy_since = self.st.now
        self.msg_fed_start = self.fed

    def on_url(self, url: bytes) -> None:
        self.url = url if not self.url else self.url + url
        limits = self.st.limits
        if len(self.url) > limits.max_url_bytes:
            raise _Reject(text_response("other", 414, f"URL too long (limit {limits.max_url_bytes} bytes)"))
        self.header_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        self.header_bytes += len(name) + len(value) + 4
        limits = self.st.limits
        if self.header_count > limits.max_headers or self.header_bytes > limits.max_header_bytes:
            raise _Reject(
                text_response(
                    "other",
                    431,
                    f"request headers too large (limits: {limits.max_headers} fields, "
                    f"{limits.max_header_bytes} bytes)",
                )
            )
        n = len(name)
        if n == 13:
            lowered = name.lower()
            if lowered == b"if-none-match":
                self.inm = value if self.inm is None else self.inm + b"," + value
            elif lowered == b"authorization":
                if self.auth is not None:
                    raise _Reject(text_response("other", 400, "more than one Authorization header"))
                self.auth = value
        elif n == 15 and name.lower() == b"accept-encoding":
            self.accept = value if self.accept is None else self.accept + b"," + value
        elif n == 6 and name.lower() == b"expect":
            self.expect_continue = value.strip().lower() == b"100-continue"

    def on_headers_complete(self) -> None:
        self.headers_done = True
        self.is_post = self.parser.get_method() == b"POST"
        if (
            self.expect_continue
            and self.waiting is None  # behind a pending answer a 100 would come out of order
            and self.transport is not None
            and self.parser.get_http_version() == "1.1"
        ):
            # curl and some HTTP clients wait for this before sending a body.
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        limits = self.st.limits
        switch = self.url.startswith(switching.SWITCH_PATH_BYTES)  # reads no body: a small bound
        limit = limits.max_switch_body_bytes if switch else limits.max_body_bytes
        if len(self.body) + len(body) > limit:
            raise _Reject(text_response("other", 413, f"request body too large (limit {limit} bytes)"))
        if self.is_post:
            self.body += body

    def on_message_complete(self) -> None:
        self.busy_since = None
        parser = self.parser
        method = parser.get_method()
        keep = parser.should_keep_alive() and not self.st.draining
        path = self.url
        if b"?" in path:
            path = path.partition(b"?")[0]
        if self.waiting is not None:  # an earlier answer is pending: this one comes after it
            self.queued.append((method, path, self.inm, self.accept, self.auth, self.body, keep))
            return
        self._answer(method, path, self.inm, self.accept, self.auth, self.body, keep)

    def _answer(
        self,
        method: bytes,
        path: bytes,
        inm: bytes | None,
        accept: bytes | None,
        auth: bytes | None,
        body: bytes,
        keep: bool,
    ) -> None:
        st = self.st
        operations = cosmo.operations_path(path) if any(d in path for d in cosmo.OPERATIONS_DIRS) else None
        if path == st.configs_path:
            response = st.configs(method, inm, accept, auth)
        elif operations is not None:  # before the next two: a client may be named "manifest"
            response = st.operations(method, operations, auth, inm, accept)
        elif cosmo.MANIFEST_DIR in path:  # before the next: manifest/latest.json ends like a config
            response = st.manifest(method, path, auth, body, accept)
        elif path.endswith(cosmo.CONFIG_FILE):
            response = st.cosmo(method, path, auth, body, accept)
        elif path == b"/healthz":
            response = st.r_healthz
        elif path == b"/readyz":
            response = st.readyz(method)
        elif path == b"/metrics":
            response = st.metrics_page(method)
        elif path == switching.SWITCH_PATH_BYTES:
            if method == b"POST" and st.switcher is not None:
                self._defer(st.switcher.request(), keep)
                return
            response = st.revision(method)
        else:
            response = st.r_not_found
        self._write(response, method == b"HEAD", keep)

    # -- answers that wait (POST /-/revision) ---------------------------------------------------

    def _defer(self, switch: asyncio.Future[switching.SwitchResult], keep: bool) -> None:
        """Answer when `switch` is done; until then read nothing more and queue what is parsed."""
        self.waiting = switch
        if self.transport is not None and not self.reading_paused:
            self.transport.pause_reading()
        switch.add_done_callback(functools.partial(self._switch_done, keep))

    def _switch_done(self, keep: bool, switch: asyncio.Future[switching.SwitchResult]) -> None:
        self.waiting = None
        result = switching.stopped(self.st.status) if switch.cancelled() else switch.result()
        response = switching.revision_response(result)
        self.last_active = self.st.now
        self._write(response, False, keep and not self.st.draining)
        try:
            self._answer_queued()
        except Exception:
            log.exception("internal error while answering a request")
            self._write(text_response("other", 500, "internal error"), head_only=False, keep=False)
        if self.waiting is not None or self.closing:
            return
        if self.busy_since is not None:  # a request half-arrived behind the switch: its clock starts now
            self.busy_since = self.st.now
        if self.transport is not None and not self.reading_paused:
            self.transport.resume_reading()

    def _answer_queued(self) -> None:
        """The requests parsed behind a switch, in order, until one waits again or the end."""
        transport = self.transport
        while self.queued and self.waiting is None and transport is not None and not transport.is_closing():
            item = self.queued.popleft()
            if isinstance(item, tuple):
                self._answer(*item)
            elif item is None:
                self._close()
            else:
                self._write(item, head_only=False, keep=False)
        if transport is None or transport.is_closing():
            self.queued.clear()

    # -- writing ------------------------------------------------------------------------------

    def _write(self, response: Response, head_only: bool, keep: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            self.closing = True
            return
        st = self.st
        tail = st.tail_keep if keep else st.tail_close
        body = response.body
        if head_only or not body:
            data = response.head + tail
            transport.write(data)
            sent = len(data)
        else:
            transport.writelines((response.head, tail, body))
            sent = len(response.head) + len(tail) + len(body)
        row = st.metrics.row
        row[response.slot] += 1
        row[response.bytes_slot] += sent
        if not keep:
            self._close()

    def _close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()  # flushes what was written first

    def close_if_idle(self) -> None:
        transport = self.transport
        if (
            self.busy_since is None
            and self.waiting is None
            and transport is not None
            and transport.get_write_buffer_size() == 0
        ):
            self._close()

    def check_timeouts(self, now: float, limits: Limits) -> None:
        if self.closing or self.waiting is not None:  # a switch is bounded; its answer comes first
            return
        if self.busy_since is not None and now - self.busy_since > limits.request_timeout:
            self._write(
                text_response("other", 408, f"request not received within {limits.request_timeout:g}s"),
                head_only=False,
                keep=False,
            )
        elif self.busy_since is None and now - self.last_active > limits.keepalive_timeout:
            if self.transport is not None:
                self.transport.abort() if self.reading_paused else self._close()
        elif self.st.draining:
            self.close_if_idle()


async def run_ticker(state: ServerState, stop: asyncio.Event) -> None:
    while not stop.is_set():
        state.tick()
        # Wake just after the next wall-clock second so the Date header is exact.
        delay = 1.0 - (time.time() % 1.0) + 0.001
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
