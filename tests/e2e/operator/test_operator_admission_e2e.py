"""Pre-publish admission on the lab (issue 15, item 5): a real HTTP webhook on 127.0.0.1, started by this
module, checks every request's X-Cosmo-Signature-256 itself, admits one revision and refuses another
(a subgraph on evil.example). The refused revision never reaches S3 and the edges keep serving the
admitted one. With the webhook down the RouterConfig says so and waits; nothing is published around
it, and once the webhook is back the revision is admitted, published and rolled out.

Its own operator (not the suite's `ops`): it passes --admission-url-prefix for the loopback webhook.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from operator_e2e_kit import OperatorE2E, cosmo_config, running_operator
from tests.polling import wait_until

from edgeroll.lab import Lab

pytestmark = pytest.mark.e2e

HOOK_KEY = b"e2e-admission-webhook-key"


class Webhook:
    """A loopback admission webhook: verifies the signature, refuses a revision naming evil.example."""

    def __init__(self) -> None:
        self.asked: list[str] = []  # digests, in order
        self.bad_signatures = 0
        self.lock = threading.Lock()
        self.port = 0
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                want = hmac.new(HOOK_KEY, body, hashlib.sha256).hexdigest()
                got = self.headers.get("X-Cosmo-Signature-256", "")
                if not hmac.compare_digest(want, got):
                    with hook.lock:
                        hook.bad_signatures += 1
                    self._answer(401, {"error": "bad signature"})
                    return
                doc = json.loads(body)
                with hook.lock:
                    hook.asked.append(doc["digest"])
                if "evil.example" in json.dumps(doc["revision"]):
                    self._answer(400, {"error": "subgraph url http://evil.example/graphql is not ours"})
                else:
                    self._answer(200, {})

            def _answer(self, status: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True  # back on the same port after `stop`
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.server = None


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    hook.start()
    yield hook
    if hook.server is not None:
        hook.stop()


@pytest.fixture(scope="module")
def admitting(lab: Lab, webhook: Webhook, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorE2E]:
    extra = [
        "--admission-url-prefix",
        f"http://127.0.0.1:{webhook.port}/",
        "--admission-timeout-seconds",
        "2",
    ]
    with running_operator(lab, tmp_path_factory.mktemp("admission"), "adm", extra_args=extra) as e2e:
        e2e.hub(
            "-n", e2e.ns, "create", "secret", "generic", "hook", f"--from-literal=key={HOOK_KEY.decode()}"
        )
        yield e2e


def _config(subgraph_url: str) -> dict[str, Any]:
    text = json.dumps(cosmo_config()).replace("http://products:4001/graphql", subgraph_url)
    return dict(json.loads(text))


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def _served(ops: OperatorE2E, name: str) -> set[str | None]:
    return {ops.edge_digest(edge, name) for edge in ops.lab.edge_kubeconfigs}


def test_admission_admits_refuses_and_waits_for_a_webhook_that_is_down(
    admitting: OperatorE2E, webhook: Webhook
) -> None:
    ops, name = admitting, "admitted"
    spec = {
        "webhook": {
            "url": f"http://127.0.0.1:{webhook.port}/admit",
            "secretRef": {"name": "hook", "key": "key"},
        }
    }

    # 1. Admitted: published and rolled out.
    ops.apply(ops.routerconfig(name, _config("http://products:4001/graphql"), admission=spec))
    good = ops.wait_ready(name)["revision"]["digest"]
    assert webhook.asked == [good] and webhook.bad_signatures == 0
    assert _served(ops, name) == {good}
    assert ops.s3_key(name, good) in ops.s3_keys(name)

    # 2. Refused: Stalled with the webhook's reason; not in S3; the edges keep the admitted revision.
    ops.apply(ops.routerconfig(name, _config("http://evil.example/graphql"), admission=spec))
    status = ops.wait_status(
        name, lambda s: _condition(s, "Stalled").get("reason") == "AdmissionRefused", what="AdmissionRefused"
    )
    assert "subgraph url http://evil.example/graphql is not ours" in _condition(status, "Stalled")["message"]
    refused = webhook.asked[-1]
    assert refused != good and ops.s3_key(name, refused) not in ops.s3_keys(name)
    assert _served(ops, name) == {good} and status["revision"]["digest"] == good

    # 3. Down: reported, retried, nothing published; back: admitted, published, rolled out.
    webhook.stop()
    ops.apply(ops.routerconfig(name, _config("http://products.internal:4001/graphql"), admission=spec))
    status = ops.wait_status(
        name,
        lambda s: _condition(s, "Published").get("reason") == "AdmissionUnavailable",
        what="AdmissionUnavailable",
    )
    assert _condition(status, "Stalled").get("status") != "True"
    assert "retrying with backoff" in _condition(status, "Published")["message"]
    keys = set(ops.s3_keys(name))
    asked = len(webhook.asked)
    assert _served(ops, name) == {good}
    webhook.start()
    fresh = wait_until(
        lambda: (d := ops.status(name).get("revision", {}).get("digest")) not in (None, good) and d,
        timeout=90,
        message=lambda: f"a new revision published after the webhook came back\n{ops.operator.tail()}",
    )
    assert webhook.asked[asked:] == [fresh] and webhook.bad_signatures == 0
    assert ops.s3_key(name, fresh) in set(ops.s3_keys(name)) - keys
    ops.wait_ready(name)
    assert _served(ops, name) == {fresh}
    assert HOOK_KEY.decode() not in json.dumps(ops.get(name)) + json.dumps(ops.events(name))
    assert HOOK_KEY.decode() not in ops.operator.log()
