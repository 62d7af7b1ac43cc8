"""The signed admission request and the verdict of an answer (Cosmo's X-Cosmo-Signature-256)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from edgeroll.admission.client import ask
from edgeroll.admission.review import (
    MAX_REASON,
    SIGNATURE_HEADER,
    AdmissionRequest,
    AdmissionSubject,
    Admitted,
    Refused,
    Unavailable,
    build_request,
    interpret,
    safe_reason,
    signature,
    signature_matches,
)

pytestmark = pytest.mark.unit

KEY = b"webhook-key-0123456789"
REVISION = b'{"engineConfig":{"a":1},"version":"x"}'
SUBJECT = AdmissionSubject(
    "prod", "graph", "uid-1", 3, "cosmo", "sha256:" + "ab" * 32, ["edge-us", "edge-eu"], REVISION, "org", "fg"
)


def test_signature_is_cosmos_hex_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"a":1}'
    assert signature(KEY, body) == hmac.new(KEY, body, hashlib.sha256).hexdigest()
    assert signature_matches(KEY, body, signature(KEY, body).upper())
    assert not signature_matches(KEY, body + b" ", signature(KEY, body))
    assert not signature_matches(b"other", body, signature(KEY, body))


def test_the_request_carries_the_revision_verbatim_and_is_signed() -> None:
    req = build_request("https://adm.example/x", SUBJECT, KEY, "edgeroll/test")
    assert req.url == "https://adm.example/x"
    assert req.headers[SIGNATURE_HEADER] == hmac.new(KEY, req.body, hashlib.sha256).hexdigest()
    assert req.headers["Content-Type"] == "application/json"
    doc = json.loads(req.body)
    assert doc["routerConfig"] == {"namespace": "prod", "name": "graph", "uid": "uid-1", "generation": 3}
    assert doc["digest"] == SUBJECT.digest and doc["format"] == "cosmo"
    assert doc["clusters"] == ["edge-eu", "edge-us"]
    assert doc["organizationId"] == "org" and doc["federatedGraphId"] == "fg"
    assert doc["revision"] == json.loads(REVISION)
    assert REVISION in req.body  # the exact bytes that would be published, not re-serialised
    assert KEY not in req.body and KEY.decode() not in repr(req)


@pytest.mark.parametrize("status", [200, 201, 204])
def test_2xx_admits(status: int) -> None:
    assert interpret(status, b"") == Admitted(status)


def test_4xx_refuses_with_cosmos_error_field() -> None:
    assert interpret(400, b'{"error": "Invalid subgraph url detected"}') == Refused(
        400, "Invalid subgraph url detected"
    )
    assert interpret(403, b"no:\n\tnot today\x00") == Refused(403, "no: not today")


@pytest.mark.parametrize(
    ("status", "says"), [(500, "HTTP 500: boom"), (503, "HTTP 503"), (429, "HTTP 429"), (302, "redirects")]
)
def test_no_verdict_is_unavailable(status: int, says: str) -> None:
    verdict = interpret(status, b"boom")
    assert isinstance(verdict, Unavailable) and says in verdict.message


def test_a_reason_is_cut_and_never_echoes_a_secret() -> None:
    reason = safe_reason(json.dumps({"error": "x" * 5000}).encode())
    assert len(reason) == MAX_REASON and reason.endswith("…")
    echoed = safe_reason(b"bad signature with key " + KEY + b" hex " + KEY.hex().encode(), [KEY])
    assert KEY.decode() not in echoed and KEY.hex() not in echoed
    assert echoed == "bad signature with key [redacted] hex [redacted]"
    assert safe_reason(b"") == "no reason given"


class _Transport:
    def __init__(self, answer: tuple[int, bytes] | BaseException) -> None:
        self.answer = answer

    async def post(self, request: AdmissionRequest, timeout: float) -> tuple[int, bytes]:
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


async def test_no_answer_is_unavailable_naming_the_error_class_only() -> None:
    req = build_request("https://adm.example/x?token=t0ps3cret", SUBJECT, KEY, "edgeroll/test")
    refused = await ask(
        _Transport(ConnectionRefusedError("to https://adm.example/x?token=t0ps3cret")), req, 2, []
    )
    assert refused == Unavailable("no answer: ConnectionRefusedError")
    assert await ask(_Transport(TimeoutError()), req, 2.5, []) == Unavailable("no answer within 2.5s")
    assert await ask(_Transport((204, b"")), req, 2, []) == Admitted(204)
