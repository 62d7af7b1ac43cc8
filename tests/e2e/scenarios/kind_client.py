"""A router's view of an edge cache, run as a pod inside an edge cluster (kind only).

Standard library only: it runs as `python3 kind_client.py` in the edgeroll image, mounted from a
ConfigMap, next to the routers' place in the cluster. It reaches the cache by its Service DNS
name, as a Cosmo router's `cdn.url` would, and prints one JSON line:

- a plain `GET /configs/<ns>/<name>` with the read token derived from SIGNING_KEY: status,
  X-Config-Digest, the sha256 of the body, whether X-Signature-SHA256 is the HMAC-SHA256 of the
  body under SIGNING_KEY;
- the Cosmo CDN route `POST /<org>/<graph>/routerconfigs/latest.json` with a graph-token-shaped
  JWT: status, whether it carried the same bytes, and the status of a second POST with the
  version just received (a router revalidating: 304).

Environment: CACHE_URL, CONFIG_NAMESPACE, CONFIG_NAME, SIGNING_KEY, and for Cosmo COSMO_ORG and
COSMO_GRAPH.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import urllib.error
import urllib.request


def graph_token(org: str, graph: str) -> str:
    def b64(obj: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {"organization_id": org, "federated_graph_id": graph}
    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}.c2lnbmF0dXJl"


def read_token(key: bytes, namespace: str, name: str) -> str:
    """edgeroll.render.signing.read_token, restated: this client imports the standard library only."""
    mac = hmac.new(key, f"edgeroll-read:{namespace}/{name}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def cosmo(url: str, org: str, graph: str, version: str) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 - the cache's Service
        f"{url}/{org}/{graph}/routerconfigs/latest.json",
        data=json.dumps({"version": version}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {graph_token(org, graph)}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - the cache's Service
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def main() -> None:
    url, key = os.environ["CACHE_URL"], os.environ["SIGNING_KEY"].encode()
    ns, name = os.environ["CONFIG_NAMESPACE"], os.environ["CONFIG_NAME"]
    request = urllib.request.Request(  # noqa: S310 - the cache's Service
        f"{url}/configs/{ns}/{name}", headers={"Authorization": f"Bearer {read_token(key, ns, name)}"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - the cache's Service
        body, status = resp.read(), int(resp.status)
        digest, signature = (
            resp.headers.get("X-Config-Digest", ""),
            resp.headers.get("X-Signature-SHA256", ""),
        )
    expected = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
    result: dict[str, object] = {
        "status": status,
        "digest": digest,
        "body_digest": "sha256:" + hashlib.sha256(body).hexdigest(),
        "signature_ok": bool(signature) and hmac.compare_digest(expected, signature),
    }
    org, graph = os.environ.get("COSMO_ORG"), os.environ.get("COSMO_GRAPH")
    if org and graph:
        cosmo_status, cosmo_body = cosmo(url, org, graph, "")
        version = json.loads(cosmo_body).get("version", "") if cosmo_status == 200 else ""
        result |= {
            "cosmo_status": cosmo_status,
            "cosmo_same_bytes": cosmo_body == body,
            "cosmo_revalidate_status": cosmo(url, org, graph, version)[0],
        }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
