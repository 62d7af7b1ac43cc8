"""EdgeCluster kubeconfigs: what is allowed in one, and the credentials it resolves to (pure).

A kubeconfig Secret is written by whoever may edit Secrets in a `secretNamespaces`
namespace, who is not necessarily the operator's admin. Handed to a client library
as is, `exec` and `auth-provider` run commands in the operator's pod (with its S3
write key and ServiceAccount), and file paths read the operator's own files. So
only self-contained fields are accepted: a server, inline certificates, a token.
Every other field is refused by its path (`users[0].user.exec`) before any client
is built, and the client is then built from `EdgeCredentials`, not by the library's
kubeconfig loader, so nothing it does not know can run.

`proxy-url` is refused too: it would send the operator's requests, bearer token
included, wherever the Secret's author says.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Fields that run code, read a file, or reroute traffic, and why each is refused.
REFUSED_USER = {
    "exec": "runs a command in the operator",
    "auth-provider": "runs a credential plugin in the operator",
    "tokenFile": "reads a file of the operator",
    "client-certificate": "reads a file of the operator (inline it as client-certificate-data)",
    "client-key": "reads a file of the operator (inline it as client-key-data)",
}
REFUSED_CLUSTER = {
    "certificate-authority": "reads a file of the operator (inline it as certificate-authority-data)",
    "proxy-url": "routes the operator's requests and credentials through a proxy",
}
ALLOWED_USER = frozenset({"token", "client-certificate-data", "client-key-data", "extensions"})
ALLOWED_CLUSTER = frozenset(
    {
        "server",
        "certificate-authority-data",
        "insecure-skip-tls-verify",
        "tls-server-name",
        "disable-compression",
        "extensions",
    }
)
FLATTEN_HINT = "use a self-contained kubeconfig (kubectl config view --raw --flatten --minify)"


Entry = tuple[str, Mapping[str, Any]]  # (path, body), e.g. ("users[0].user", {...})


class KubeconfigRefused(ValueError):
    """The kubeconfig holds a field edgeroll does not accept; the message starts with its path."""


@dataclass(frozen=True)
class EdgeCredentials:
    """What the current context resolves to. Key and token stay out of repr, hence out of logs."""

    server: str
    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    verify: bool = True
    tls_server_name: str | None = None


def _entries(kubeconfig: Mapping[str, Any], section: str, body: str) -> list[Entry]:
    """(path, body) of every entry of a section."""
    items = kubeconfig.get(section) or []
    if not isinstance(items, list):
        raise KubeconfigRefused(f"{section}: not a list")
    found = []
    for i, item in enumerate(items):
        value = item.get(body) if isinstance(item, Mapping) else None
        if not isinstance(value, Mapping):
            raise KubeconfigRefused(f"{section}[{i}].{body}: missing or not a mapping")
        found.append((f"{section}[{i}].{body}", value))
    return found


def _field_problem(path: str, key: str, refused: Mapping[str, str], allowed: frozenset[str]) -> str | None:
    if key in refused:
        return f"{path}.{key} {refused[key]}; not allowed"
    if key not in allowed:
        return f"{path}.{key} is not supported"
    return None


def kubeconfig_problems(kubeconfig: Mapping[str, Any]) -> list[str]:
    """Every refused or unsupported field, by path, in document order; empty when the kubeconfig is safe.

    All users and clusters are checked, not only the current context's: a Secret
    that holds an `exec` anywhere is refused as a whole, so switching its
    current-context can never turn one on.
    """
    problems = []
    for section, body, refused, allowed in (
        ("users", "user", REFUSED_USER, ALLOWED_USER),
        ("clusters", "cluster", REFUSED_CLUSTER, ALLOWED_CLUSTER),
    ):
        for path, value in _entries(kubeconfig, section, body):
            for key in value:
                problem = _field_problem(path, str(key), refused, allowed)
                if problem is not None:
                    problems.append(problem)
    return problems


def check_kubeconfig(kubeconfig: Mapping[str, Any]) -> None:
    """Raise KubeconfigRefused naming the first refused field (and how many more there are)."""
    problems = kubeconfig_problems(kubeconfig)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise KubeconfigRefused(f"{problems[0]}{more}; {FLATTEN_HINT}")


def _named(kubeconfig: Mapping[str, Any], section: str, body: str, name: str) -> Entry:
    for i, item in enumerate(kubeconfig.get(section) or []):
        if isinstance(item, Mapping) and item.get("name") == name and isinstance(item.get(body), Mapping):
            return f"{section}[{i}].{body}", item[body]
    raise KubeconfigRefused(f"{section}: no entry named {name!r}")


def _pem(entry: Mapping[str, Any], path: str, key: str) -> bytes | None:
    value = entry.get(key)
    if value is None:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise KubeconfigRefused(f"{path}.{key}: not base64") from None


def _current_context(kubeconfig: Mapping[str, Any]) -> Entry:
    contexts = _entries(kubeconfig, "contexts", "context")
    current = kubeconfig.get("current-context")
    if not current and len(contexts) == 1:
        return contexts[0]
    if not current:
        raise KubeconfigRefused("current-context: missing, and there is not exactly one context")
    return _named(kubeconfig, "contexts", "context", str(current))


def edge_credentials(kubeconfig: Mapping[str, Any]) -> EdgeCredentials:
    """Check the whole kubeconfig, then resolve its current context to a server and credentials."""
    check_kubeconfig(kubeconfig)
    _, context = _current_context(kubeconfig)
    cluster_path, cluster = _named(kubeconfig, "clusters", "cluster", str(context.get("cluster")))
    user_path, user = (
        _named(kubeconfig, "users", "user", str(context["user"])) if context.get("user") else ("", {})
    )
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise KubeconfigRefused(f"{cluster_path}.server: missing or not an http(s) URL")
    cert, key = _pem(user, user_path, "client-certificate-data"), _pem(user, user_path, "client-key-data")
    if (cert is None) != (key is None):
        raise KubeconfigRefused(f"{user_path}: client-certificate-data and client-key-data go together")
    token = user.get("token")
    return EdgeCredentials(
        server=server.rstrip("/"),
        ca_pem=_pem(cluster, cluster_path, "certificate-authority-data"),
        cert_pem=cert,
        key_pem=key,
        token=str(token) if token else None,
        verify=not bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=str(cluster["tls-server-name"]) if cluster.get("tls-server-name") else None,
    )
