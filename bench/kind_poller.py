"""A router's view of an edge cache's Service, polled every 50 ms (bench/propagation.py --provider kind).

Standard library only: it runs as `python3 poller.py` in the edgeroll image, in a pod of an edge
cluster, mounted from a ConfigMap. Every INTERVAL seconds it opens a new TCP connection to the
Service (so each request is routed afresh by kube-proxy, as a router's next poll after an idle
connection would be), sends `GET CONFIG_PATH` with `If-None-Match` of the last verified digest,
and reads the answer:

- 200: the body's sha256 must equal X-Config-Digest and X-Signature-SHA256 must be the
  HMAC-SHA256 of the body under SIGNING_KEY, else the answer counts as `unverified:<digest>`;
- 304: the digest in X-Config-Digest (the cache sends it with a 304);
- anything else: `http-<code>`, or `error:<exception>` when no answer came.

Each request carries the read token GET /configs needs, derived from SIGNING_KEY.

It prints one JSON line whenever that state changes, `{"t": <wall time of the answer>, "n":
<requests so far, this one included>, "state": ...}`, and a heartbeat `{"t": ..., "hb": <requests so
far>, "state": ...}` every second, so the reader knows how far the log is complete (and, from the
counts, how many answers in a row a state has had). Pods share the host's kernel clock, so `t` compares with
the benchmark's own `time.time()`.

Environment: SERVICE_HOST (the Service's DNS name), SERVICE_PORT, CONFIG_PATH, SIGNING_KEY,
INTERVAL (default 0.05).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import socket
import time

RESOLVE_EVERY_S = 5.0  # the ClusterIP does not change; resolving per request would load CoreDNS


def read_token(key: bytes, config_path: str) -> str:
    """edgeroll.render.signing.read_token of /configs/<ns>/<name>, restated: standard library only."""
    _, _, namespace, name = config_path.split("/", 3)
    mac = hmac.new(key, f"edgeroll-read:{namespace}/{name}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def answer(ip: str, host: str, port: int, path: str, etag: str | None, key: bytes) -> tuple[str, bool]:
    """(state, verified 200) of one request on a new connection."""
    conn = http.client.HTTPConnection(ip, port, timeout=2)
    try:
        headers = {
            "Host": f"{host}:{port}",
            "Connection": "close",
            "Authorization": f"Bearer {read_token(key, path)}",
        }
        if etag:
            headers["If-None-Match"] = etag
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        digest = resp.getheader("X-Config-Digest") or ""
        if resp.status == 304:
            return digest, False
        if resp.status != 200:
            return f"http-{resp.status}", False
        signature = resp.getheader("X-Signature-SHA256") or ""
        expected = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
        ok = "sha256:" + hashlib.sha256(body).hexdigest() == digest and hmac.compare_digest(
            expected, signature
        )
        return (digest, True) if ok else (f"unverified:{digest}", False)
    finally:
        conn.close()


def main() -> None:
    host, port = os.environ["SERVICE_HOST"], int(os.environ["SERVICE_PORT"])
    path, key = os.environ["CONFIG_PATH"], os.environ["SIGNING_KEY"].encode()
    interval = float(os.environ.get("INTERVAL", "0.05"))
    ip, resolved_at = "", 0.0
    state, etag, requests, heartbeat_at = "", None, 0, 0.0
    while True:
        started = time.time()
        if not ip or started - resolved_at > RESOLVE_EVERY_S:
            try:
                ip, resolved_at = socket.gethostbyname(host), started
            except OSError:
                ip = ""
        try:
            if not ip:
                raise OSError("name not resolved")
            new, verified = answer(ip, host, port, path, etag, key)
            if verified:
                etag = f'"{new}"'
        except (OSError, http.client.HTTPException) as exc:
            new = f"error:{type(exc).__name__}"
        now = time.time()
        requests += 1
        if new != state:
            state = new
            print(json.dumps({"t": now, "n": requests, "state": state}), flush=True)
        if now >= heartbeat_at:
            print(json.dumps({"t": now, "hb": requests, "state": state}), flush=True)
            heartbeat_at = now + 1.0
        time.sleep(max(0.0, interval - (time.time() - started)))


if __name__ == "__main__":
    main()
