"""The admission request and the meaning of its answer (pure: bytes in, a verdict out).

Follows Cosmo's admission webhook (controlplane AdmissionWebhookController.validateConfig): a JSON
POST whose raw body is signed with HMAC-SHA256 under the webhook's secret, hex-encoded in the
`X-Cosmo-Signature-256` header, so a handler written for Cosmo verifies it unchanged; a refusal is a
4xx whose JSON body says why in `error`. Where edgeroll differs (docs/rollout.md, Admission):
the rendered revision travels in the body (Cosmo sends a short-lived URL to it: edgeroll has not
published it yet, and will not until it is admitted); the URL is called as given (Cosmo appends
`/validate-config`); any 2xx admits (Cosmo needs the handler to sign the config in `signatureSha256`:
here the operator signs it with spec.signing).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SIGNATURE_HEADER = "X-Cosmo-Signature-256"  # Cosmo's name and format: hex HMAC-SHA256 of the raw body
MAX_REASON = 256  # a webhook's reason as it lands in a condition and an event
_REDACTED = "[redacted]"


@dataclass(frozen=True)
class AdmissionSubject:
    """What is asked about: one rendered revision of one RouterConfig, and the clusters it is for."""

    namespace: str
    name: str
    uid: str
    generation: int
    format: str
    digest: str
    clusters: Sequence[str]
    body: bytes = field(repr=False)  # the canonical revision bytes, exactly as they would be published
    organization_id: str | None = None  # spec.cosmo, as Cosmo names them
    federated_graph_id: str | None = None


@dataclass(frozen=True)
class AdmissionRequest:
    url: str
    body: bytes = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True)
class Admitted:
    status: int


@dataclass(frozen=True)
class Refused:
    """The webhook said no (4xx): the RouterConfig is Stalled until the spec or the webhook changes."""

    status: int
    reason: str


@dataclass(frozen=True)
class Unavailable:
    """No verdict (no answer, a timeout, 5xx, 429, a redirect): retried with backoff, never published."""

    message: str


Verdict = Admitted | Refused | Unavailable


def signature(key: bytes, body: bytes) -> str:
    """Cosmo's X-Cosmo-Signature-256 value: hex HMAC-SHA256 of the raw body."""
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def signature_matches(key: bytes, body: bytes, received: str) -> bool:
    """What a webhook checks, in constant time (compare_digest)."""
    return hmac.compare_digest(signature(key, body).encode(), received.strip().lower().encode())


def build_request(url: str, subject: AdmissionSubject, key: bytes, user_agent: str) -> AdmissionRequest:
    """The signed POST. The revision bytes (canonical JSON: the config, or the bundle of config and
    persisted operations) are spliced in verbatim as `revision`: no re-serialisation of megabytes, and
    `digest` is the sha256 of exactly the bytes that would be published."""
    meta: dict[str, object] = {
        "routerConfig": {
            "namespace": subject.namespace,
            "name": subject.name,
            "uid": subject.uid,
            "generation": subject.generation,
        },
        "format": subject.format,
        "digest": subject.digest,
        "clusters": sorted(subject.clusters),
    }
    if subject.organization_id is not None:
        meta["organizationId"] = subject.organization_id
    if subject.federated_graph_id is not None:
        meta["federatedGraphId"] = subject.federated_graph_id
    head = json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode()
    body = head[:-1] + b',"revision":' + subject.body + b"}"
    headers = {
        "Content-Type": "application/json",
        "User-Agent": user_agent,
        SIGNATURE_HEADER: signature(key, body),
    }
    return AdmissionRequest(url, body, headers)


def safe_reason(raw: bytes, secrets: Sequence[bytes] = ()) -> str:
    """The webhook's reason fit for a condition: the JSON body's `error` (Cosmo's shape), `message` or
    `reason`, else the text; printable characters only, any secret it echoes redacted, cut short."""
    text = raw[: 16 * MAX_REASON].decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, Mapping):
        for key in ("error", "message", "reason"):
            if isinstance(doc.get(key), str) and doc[key].strip():
                text = doc[key]
                break
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    for secret in secrets:
        for form in {secret.decode("utf-8", "replace"), secret.hex()}:
            if len(form) >= 4:  # a short secret would redact ordinary words, and says little anyway
                text = text.replace(form, _REDACTED)
    if len(text) > MAX_REASON:
        text = text[: MAX_REASON - 1] + "…"
    return text or "no reason given"


def interpret(status: int, body: bytes, secrets: Sequence[bytes] = ()) -> Verdict:
    """The verdict an HTTP answer gives. Only 2xx admits; 429 is "later" (as Cosmo retries it); other
    4xx refuse; anything else (5xx, a redirect, which is not followed) gives no verdict."""
    if 200 <= status < 300:
        return Admitted(status)
    if status == 429:
        return Unavailable(f"HTTP 429 (too many requests): {safe_reason(body, secrets)}")
    if 400 <= status < 500:
        return Refused(status, safe_reason(body, secrets))
    if 300 <= status < 400:
        return Unavailable(f"HTTP {status}: redirects are not followed; point the URL at the webhook itself")
    return Unavailable(f"HTTP {status}: {safe_reason(body, secrets)}")
