"""Builders for the edge cache's unit tests: signed revisions, a fake transport, a response reader.

A plain module with a unique name (tests have no __init__.py, so basenames must be unique).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from edgeroll.cache import cosmo
from edgeroll.cache.metrics import Metrics, ServingStatus
from edgeroll.cache.origin import OriginError, OriginObject
from edgeroll.cache.responses import prepare
from edgeroll.cache.revision import Revision, verify_revision
from edgeroll.cache.server import CosmoRoute, HttpConnection, Limits, ServerState
from edgeroll.render.canonical import canonical_json, content_digest
from edgeroll.render.signing import read_token, sign

SIGNING_KEY = b"unit-test-signing-key-32-bytes!!"
READ_TOKEN = read_token(SIGNING_KEY, "ns", "router")  # the harness serves /configs/ns/router


def config_body(version: str = "v1", size: int = 4000) -> bytes:
    """A small Cosmo-like config; `size` pads the schema so gzip pays."""
    return canonical_json(
        {
            "version": version,
            "compatibilityVersion": "1:0.1.0",
            "engineConfig": {"graphqlSchema": "type Query { hello: String }\n" * (size // 30)},
            "subgraphs": [],
        }
    )


class ScriptedOrigin:
    """An origin that answers each `get` with the next scripted object, or raises the scripted error."""

    def __init__(self, answers: list[OriginObject | OriginError]) -> None:
        self.answers: Iterator[OriginObject | OriginError] = iter(answers)
        self.calls = 0

    def get(self, key: str) -> OriginObject:
        self.calls += 1
        answer = next(self.answers)
        if isinstance(answer, OriginError):
            raise answer
        return answer


def signed_revision(body: bytes, key: bytes = SIGNING_KEY) -> Revision:
    return verify_revision(
        body, expected_digest=content_digest(body), signature=sign(key, body), signing_key=key
    )


class FakeTransport:
    def __init__(self) -> None:
        self.out = bytearray()
        self.closed = False
        self.aborted = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.out += data

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def read_answers(data: bytes, head_only: tuple[bool, ...] = ()) -> list[HttpAnswer]:
    """Split a byte stream of HTTP/1.1 responses; `head_only[i]` marks answers to HEAD."""
    answers: list[HttpAnswer] = []
    rest = bytes(data)
    while rest:
        head, sep, rest = rest.partition(b"\r\n\r\n")
        assert sep, f"incomplete header block: {head!r}"
        lines = head.decode("latin-1").split("\r\n")
        version, code, _ = lines[0].split(" ", 2)
        assert version == "HTTP/1.1"
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            assert name.lower() not in headers, f"duplicate header {name}"
            headers[name.lower()] = value.strip()
        status = int(code)
        is_head = head_only[len(answers)] if len(answers) < len(head_only) else False
        length = 0 if (status == 304 or is_head) else int(headers["content-length"])
        answers.append(HttpAnswer(status, headers, rest[:length]))
        rest = rest[length:]
    return answers


@dataclass
class Harness:
    state: ServerState
    metrics: Metrics

    def connect(self) -> tuple[HttpConnection, FakeTransport]:
        conn = HttpConnection(self.state)
        transport = FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        return conn, transport

    def exchange(self, raw: bytes, head_only: tuple[bool, ...] = ()) -> list[HttpAnswer]:
        conn, transport = self.connect()
        conn.data_received(raw)
        return read_answers(bytes(transport.out), head_only)

    def one(self, raw: bytes, head: bool = False) -> HttpAnswer:
        answers = self.exchange(raw, (head,))
        assert len(answers) == 1, answers
        return answers[0]

    def load(self, revision: Revision) -> None:
        manifest_key = SIGNING_KEY if self.state.cosmo_route is not None else None  # as the runner does
        self.state.install(prepare(revision, manifest_key), published_at=revision.published_at)


ORG, GRAPH = "org-1", "graph-1"


def make_harness(
    *,
    wanted: Revision | None = None,
    loaded: Revision | None = None,
    cosmo_secret: bytes | None = None,
    limits: Limits | None = None,
    with_cosmo: bool = True,
    public_read: bool = False,
) -> Harness:
    metrics = Metrics()
    wanted_digest = wanted.digest if wanted else (loaded.digest if loaded else "sha256:" + "0" * 64)
    state = ServerState(
        configs_path=b"/configs/ns/router",
        status=ServingStatus("ns", "router", wanted_digest),
        metrics=metrics,
        configs_read_token=None if public_read else READ_TOKEN.encode("ascii"),
        cosmo_route=CosmoRoute(ORG, GRAPH, cosmo.TokenCache(cosmo_secret)) if with_cosmo else None,
        limits=limits or Limits(),
    )
    harness = Harness(state, metrics)
    if loaded is not None:
        harness.load(loaded)
    return harness


def jwt(claims: dict[str, Any], secret: bytes | None = None, alg: str = "HS256") -> str:
    import base64
    import hashlib
    import hmac

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(secret or b"not-the-secret", signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"
