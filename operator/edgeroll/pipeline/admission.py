"""The admission step: between render and publish, ask spec.admission.webhook about every revision it has
not admitted yet (admission/ holds the pure parts and the transport).

Only a 2xx publishes. A refusal stalls the RouterConfig with the webhook's reason; no answer is
retried with backoff (`Retryable`, as a failed publish is); either way nothing is published and the
edges keep what they serve, because the reconcile stops before them.

Admitted digests are remembered per RouterConfig uid and webhook URL, in memory: a resync does not
ask again. After a restart the memory is empty, so each RouterConfig's current revisions are asked
once more at its first full reconcile; until the webhook answers, that RouterConfig waits (its edges
keep serving) rather than being published around the webhook.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgeroll import __version__
from edgeroll.admission.client import AdmissionTransport, HttpAdmissionTransport, ask
from edgeroll.admission.policy import admission_url_problem
from edgeroll.admission.review import AdmissionSubject, Admitted, Refused, Unavailable, Verdict, build_request
from edgeroll.api.routerconfig import AdmissionWebhook, RouterConfigSpec
from edgeroll.operator_metrics import OperatorMetrics
from edgeroll.pipeline.gather import Retryable, Stalled
from edgeroll.render.canonical import digest_hex
from edgeroll.render.revision import RenderSet
from edgeroll.settings import OperatorSettings

WEBHOOK_FIELD = "spec.admission.webhook"
KEY_REF_FIELD = f"{WEBHOOK_FIELD}.secretRef"  # a field path, not a secret
REMEMBERED_PER_OBJECT = 64  # admitted (url, digest) pairs kept per RouterConfig; the oldest go first


@dataclass(frozen=True)
class Asker:
    """Who asks: the RouterConfig's identity as the request body carries it."""

    namespace: str
    name: str
    uid: str
    generation: int


def webhook_of(spec: RouterConfigSpec) -> AdmissionWebhook | None:
    return spec.admission.webhook if spec.admission is not None else None


def verdict_result(verdict: Verdict) -> str:
    """The `result` label of edgeroll_admission_requests_total for a verdict."""
    if isinstance(verdict, Admitted):
        return "admitted"
    return "refused" if isinstance(verdict, Refused) else "unavailable"


class AdmissionGate:
    def __init__(
        self,
        settings: OperatorSettings,
        transport: AdmissionTransport | None = None,
        metrics: OperatorMetrics | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.settings = settings
        self.transport: AdmissionTransport = transport if transport is not None else HttpAdmissionTransport()
        self.metrics = metrics if metrics is not None else OperatorMetrics()
        self.clock = clock  # times each request (edgeroll_admission_duration_seconds)
        # uid -> admitted (url, digest), oldest first (a dict keeps insertion order).
        self._admitted: dict[str, dict[tuple[str, str], None]] = {}

    def check_url(self, spec: RouterConfigSpec) -> None:
        """Stalled `AdmissionWebhookNotAllowed` naming spec.admission.webhook.url, before anything is read."""
        webhook = webhook_of(spec)
        if webhook is None:
            return
        problem = admission_url_problem(webhook.url, self.settings.admission_url_prefixes)
        if problem is not None:
            raise Stalled("AdmissionWebhookNotAllowed", problem)

    def forget(self, uid: str) -> None:
        self._admitted.pop(uid, None)

    async def admit(
        self, asker: Asker, spec: RouterConfigSpec, rendered: RenderSet, key: bytes, secrets: Sequence[bytes]
    ) -> list[str]:
        """Ask about every revision not admitted yet, base first; the digests admitted now. Raises Stalled
        (`AdmissionRefused`) or Retryable (`AdmissionUnavailable`) at the first one without a yes."""
        webhook = webhook_of(spec)
        if webhook is None:
            return []
        seen = self._admitted.setdefault(asker.uid, {})
        clusters: dict[str, list[str]] = {}
        for name, rev in rendered.clusters.items():
            clusters.setdefault(rev.digest, []).append(name)
        admitted: list[str] = []
        for digest, rev in rendered.revisions().items():
            if (webhook.url, digest) in seen:
                continue
            subject = AdmissionSubject(
                asker.namespace,
                asker.name,
                asker.uid,
                asker.generation,
                spec.format.value,
                digest,
                clusters.get(digest, []),
                rev.body,
                spec.cosmo.organization_id if spec.cosmo is not None else None,
                spec.cosmo.federated_graph_id if spec.cosmo is not None else None,
            )
            request = build_request(webhook.url, subject, key, f"edgeroll/{__version__}")
            timeout = self.settings.admission_timeout_seconds
            started = self.clock()
            verdict = await ask(self.transport, request, timeout, [key, *secrets])
            self.metrics.admission_request(verdict_result(verdict), max(0.0, self.clock() - started))
            short = digest_hex(digest)[:12]
            if isinstance(verdict, Refused):
                raise Stalled(
                    "AdmissionRefused",
                    f"{WEBHOOK_FIELD} refused {short} (HTTP {verdict.status}): {verdict.reason}; "
                    "nothing is published, the clusters keep what they serve",
                )
            if isinstance(verdict, Unavailable):
                raise Retryable(
                    "AdmissionUnavailable",
                    f"{WEBHOOK_FIELD} {webhook.url} gave no verdict on {short}: {verdict.message}; "
                    "retrying with backoff, nothing is published until it admits",
                )
            seen[(webhook.url, digest)] = None
            while len(seen) > REMEMBERED_PER_OBJECT:
                del seen[next(iter(seen))]
            admitted.append(digest)
        return admitted
