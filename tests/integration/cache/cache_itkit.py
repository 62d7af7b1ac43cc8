"""Helpers for the edge cache's integration tests: publishing revisions, running `edgeroll cache`.

A plain module with a unique name (tests have no __init__.py, so basenames must be unique).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.polling import wait_until

from edgeroll.render.canonical import canonical_json, content_digest, digest_hex
from edgeroll.render.signing import SIGNATURE_METADATA_KEY, read_token, sign

REPO = Path(__file__).resolve().parents[3]
EDGEROLL = REPO / ".venv" / "bin" / "edgeroll"
SIGNING_KEY = "integration-signing-key-32bytes!"
NAMESPACE = "team-a"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_body(version: str, size: int = 60_000) -> bytes:
    line = f"type Query {{ field_{version.replace('-', '_')}: String }}\n"
    return canonical_json(
        {
            "version": version,
            "compatibilityVersion": "1:0.1.0",
            "engineConfig": {"graphqlSchema": line * (size // len(line))},
            "subgraphs": [{"id": "1", "name": "products", "routingUrl": "http://products:4001/graphql"}],
        }
    )


@dataclass(frozen=True)
class Published:
    key: str
    digest: str
    body: bytes


def revision_key(prefix: str, name: str, digest: str) -> str:
    """The S3 layout of hack/CONTRACTS.md: <prefix>/<namespace>/<name>/<digest-hex>.json."""
    return f"{prefix}/{NAMESPACE}/{name}/{digest_hex(digest)}.json"


def publish(
    lab: Any,
    prefix: str,
    name: str,
    body: bytes,
    *,
    signature: str | None = "sign",
    stored_body: bytes | None = None,
) -> Published:
    """Put a revision the way publish/ does. `stored_body` and `signature` let a test tamper."""
    digest = content_digest(body)
    key = revision_key(prefix, name, digest)
    metadata = {}
    if signature == "sign":
        metadata[SIGNATURE_METADATA_KEY] = sign(SIGNING_KEY.encode(), body)
    elif signature is not None:
        metadata[SIGNATURE_METADATA_KEY] = signature
    lab.s3_client().put_object(
        Bucket=lab.s3_bucket,
        Key=key,
        Body=stored_body if stored_body is not None else body,
        ContentType="application/json",
        Metadata=metadata,
        IfNoneMatch="*",
    )
    return Published(key, digest, body)


def graph_token(claims: dict[str, Any], secret: str) -> str:
    """An HS256 JWT as Cosmo's control plane signs graph tokens."""

    def b64url(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{b64url(json.dumps(claims).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def unique(prefix: str = "it") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class CacheProcess:
    """`.venv/bin/edgeroll cache` as a real subprocess on a free loopback port."""

    env: dict[str, str]
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"cache-{self.port}.log"

    def start(self, *extra_args: str) -> CacheProcess:
        env = {**self.env, "EDGEROLL_CACHE_PORT": str(self.port)}
        cmd = [str(EDGEROLL), "cache", "--host", "127.0.0.1", "--retry-initial", "0.05", "--retry-max", "0.4"]
        cmd += ["--drain-seconds", "3", *extra_args]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.env.get("HOME", self.workdir)
            )
        wait_until(
            self._healthy,
            timeout=30,
            interval=0.05,
            message=lambda: f"/healthz on :{self.port}\n{self.log()}",
        )
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            return False  # exited: the timeout message shows its log
        return self.request("GET", "/healthz").status == 200

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def read_token(self) -> str:
        """The credential GET /configs needs, derived from the signing key the cache holds."""
        env = self.env
        return read_token(
            env["EDGEROLL_SIGNING_KEY"].encode(),
            env["EDGEROLL_CONFIG_NAMESPACE"],
            env["EDGEROLL_CONFIG_NAME"],
        )

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        conn: http.client.HTTPConnection | None = None,
    ) -> Answer:
        """One request; to /configs/ it carries the read token unless `headers` has an Authorization."""
        own = conn is None
        conn = conn or self.connection()
        headers = dict(headers or {})
        if path.startswith("/configs/") and not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = f"Bearer {self.read_token}"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        finally:
            if own:
                conn.close()

    def ready(self) -> bool:
        return self.request("GET", "/readyz").status == 200

    def metrics(self) -> dict[str, float]:
        text = self.request("GET", "/metrics").body.decode()
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def metric(self, name: str, **labels: str) -> float:
        wanted = {f'{k}="{v}"' for k, v in labels.items()}
        total = 0.0
        for sample, value in self.metrics().items():
            base, _, rest = sample.partition("{")
            have = set(re.findall(r'\w+="[^"]*"', rest))
            if base == name and wanted <= have:
                total += value
        return total

    def stop(self) -> int:
        """SIGTERM and wait: the cache must drain and exit 0."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"cache did not exit on SIGTERM:\n{self.log()}") from None
        return int(self.proc.returncode)


def cache_env(
    lab: Any, published: Published, name: str, state_dir: Path, home: Path, **extra: str
) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(home),
        "PYTHONDONTWRITEBYTECODE": "1",
        **lab.env(),
        "EDGEROLL_CONFIG_KEY": published.key,
        "EDGEROLL_CONFIG_DIGEST": published.digest,
        "EDGEROLL_SIGNING_KEY": SIGNING_KEY,
        "EDGEROLL_CONFIG_NAMESPACE": NAMESPACE,
        "EDGEROLL_CONFIG_NAME": name,
        "EDGEROLL_STATE_DIR": str(state_dir),
    }
    env.update(extra)
    return env


@contextlib.contextmanager
def cosmo_cdn(
    lab: Any, tmp: Path, body: bytes, *, organization_id: str, federated_graph_id: str, token_secret: str
) -> Iterator[CacheProcess]:
    """One cache serving `body` (published to the lab's S3) on the Cosmo routes of one graph, tokens
    HS256-verified as Cosmo's CDN always does; ready when yielded, stopped and unpublished after."""
    prefix, name = unique("cache-cdn"), unique("graph")
    rev = publish(lab, prefix, name, body)
    home = tmp / "home"
    home.mkdir()
    env = cache_env(
        lab,
        rev,
        name,
        tmp / "state",
        home,
        EDGEROLL_COSMO_ORGANIZATION_ID=organization_id,
        EDGEROLL_COSMO_FEDERATED_GRAPH_ID=federated_graph_id,
        EDGEROLL_COSMO_TOKEN_SECRET=token_secret,
    )
    cache = CacheProcess(env, workdir=tmp).start()
    try:
        wait_until(cache.ready, timeout=30, interval=0.05, message=lambda: f"cache ready\n{cache.log()}")
        yield cache
    finally:
        assert cache.stop() == 0
        lab.s3_client().delete_object(Bucket=lab.s3_bucket, Key=rev.key)
