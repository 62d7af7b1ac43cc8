"""HTTP probes against lab components: apiserver /readyz and reads, S3 /healthz."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from edgeroll.lab.kwok_config import ApiEndpoint


def _tls_context(endpoint: ApiEndpoint) -> ssl.SSLContext:
    # Not cached: a recreated cluster has a new CA under the same path.
    context = ssl.create_default_context(cafile=str(endpoint.ca_file))
    context.load_cert_chain(str(endpoint.cert_file), str(endpoint.key_file))
    return context


def api_get(endpoint: ApiEndpoint, path: str, timeout: float = 3.0) -> tuple[int, bytes]:
    """GET `path` from an apiserver as the lab admin; (status, body), status 0 if unreachable."""
    if not endpoint.server.startswith("https://"):
        raise ValueError(f"apiserver URL {endpoint.server!r} is not https")
    request = urllib.request.Request(endpoint.server + path, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_tls_context(endpoint)) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, ssl.SSLError):
        return 0, b""


def api_get_json(endpoint: ApiEndpoint, path: str, timeout: float = 3.0) -> Any:
    status, body = api_get(endpoint, path, timeout)
    return json.loads(body) if status == 200 else None


def apiserver_ready(endpoint: ApiEndpoint, timeout: float = 3.0) -> tuple[bool, str]:
    """(ready, detail) from /readyz; detail names the failing checks."""
    status, body = api_get(endpoint, "/readyz", timeout)
    if status == 200:
        return True, "readyz ok"
    if status == 0:
        return False, f"{endpoint.server} unreachable"
    lines = body.decode(errors="replace").splitlines()
    failed = [line[3:].split(" ")[0] for line in lines if line.startswith("[-]")]
    return False, f"readyz {status}" + (f": {', '.join(failed)} failing" if failed else "")


def ready_node_count(endpoint: ApiEndpoint) -> int:
    nodes = api_get_json(endpoint, "/api/v1/nodes")
    if not nodes:
        return 0
    count = 0
    for node in nodes.get("items", []):
        conditions = node.get("status", {}).get("conditions", [])
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            count += 1
    return count


def default_service_account_exists(endpoint: ApiEndpoint) -> bool:
    """Pods are rejected until the controller-manager has created `default/default`."""
    status, _ = api_get(endpoint, "/api/v1/namespaces/default/serviceaccounts/default")
    return status == 200


def http_status(url: str, timeout: float = 2.0) -> int:
    """Status of a plain-HTTP GET, 0 if unreachable."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (lab URLs are http://127.0.0.1)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0
