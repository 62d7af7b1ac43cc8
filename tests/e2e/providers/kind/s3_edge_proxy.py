"""The S3 endpoint the kind edges read through: SeaweedFS, passed through, or altered on request.

Runs with the standard library only, as `python3 s3_edge_proxy.py` in a container on the kind
network (kind_provider.EdgeS3Proxy). The operator writes and checks S3 directly, so it repairs
any object tampered *in* S3 before its edges move; bytes altered *between* S3 and an edge (a
compromised mirror or proxy) it never sees. That is the fault this models: the edge caches must
refuse such a revision by themselves.

- Data port (8333): every request is forwarded to UPSTREAM unchanged (method, path, headers with
  the original Host, so SigV4 still verifies, body), and the answer is returned unchanged, except
  that a GET of a tampered key gets its body with one byte changed (same length, same headers).
- Control port (9000): `PUT /tamper/<bucket>/<key>` and `DELETE /tamper/<bucket>/<key>`;
  `GET /tampered` answers {"keys": [...], "served": <tampered bodies sent>}.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

UPSTREAM = os.environ.get("UPSTREAM", "127.0.0.1:8333")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
tampered: set[str] = set()
served = 0
lock = threading.Lock()


def altered(body: bytes) -> bytes:
    """The same length with one byte changed: only the digest can tell."""
    if not body:
        return body
    middle = len(body) // 2
    return body[:middle] + bytes([body[middle] ^ 0x01]) + body[middle + 1 :]


class Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        global served
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection(UPSTREAM, timeout=30)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            resp = upstream.getresponse()
            data = resp.read()
            key = unquote(urlsplit(self.path).path).lstrip("/")
            with lock:
                if self.command == "GET" and resp.status == 200 and key in tampered:
                    data = altered(data)
                    served += 1
            self.send_response(resp.status)
            for name, value in resp.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            # A HEAD answers with the length the GET would have.
            size = resp.getheader("Content-Length") or "0" if self.command == "HEAD" else str(len(data))
            self.send_header("Content-Length", size)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            upstream.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

    def log_message(self, format: str, *args: object) -> None:  # quiet: one line per request is noise
        pass


class Control(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _key(self) -> str | None:
        path = unquote(urlsplit(self.path).path)
        return path.removeprefix("/tamper/") if path.startswith("/tamper/") else None

    def do_PUT(self) -> None:
        key = self._key()
        if key is None:
            return self._answer(404, {"error": "PUT /tamper/<bucket>/<key>"})
        with lock:
            tampered.add(key)
        self._answer(200, {"tampered": key})

    def do_DELETE(self) -> None:
        key = self._key()
        with lock:
            tampered.discard(key or "")
        self._answer(200, {"restored": key})

    def do_GET(self) -> None:
        with lock:
            self._answer(200, {"keys": sorted(tampered), "served": served})

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    control = ThreadingHTTPServer(("0.0.0.0", 9000), Control)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    ThreadingHTTPServer(("0.0.0.0", 8333), Forward).serve_forever()


if __name__ == "__main__":
    main()
