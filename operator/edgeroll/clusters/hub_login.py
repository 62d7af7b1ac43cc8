"""The hub's credentials: the admin's kubeconfig as kubectl reads it, or the pod's service account.

An EdgeCluster's kubeconfig is written by a tenant, so it may hold only self-contained fields
(clusters/kubeconfig.py). The hub's is the operator's own: the admin's file (`--hub-kubeconfig`,
`KUBECONFIG`, `~/.kube/config`) or the ServiceAccount the chart mounts. So here, as in kubectl, files
are read relative to the kubeconfig that names them and `exec` credential plugins run (EKS, GKE,
AKS and OIDC logins are exec plugins). `auth-provider` and basic auth, which kubectl no longer
supports, are refused by name, as is `proxy-url`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from edgeroll.clusters.kubeconfig import EdgeCredentials
from edgeroll.clusters.transport import StaticToken, TokenSource

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_FILE_TTL = 60.0  # seconds; kubelet rotates projected tokens well before they expire (client-go: 1 min)
EXEC_TIMEOUT = 60.0  # seconds for a credential plugin to answer
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
REFUSED_USER = {
    "auth-provider": "auth-provider plugins were removed from kubectl; use an exec plugin",
    "username": "basic auth is not supported by Kubernetes any more",
    "password": "basic auth is not supported by Kubernetes any more",
}


class HubLoginFailed(Exception):
    """The hub's credentials cannot be loaded; the message names the file and field, never a secret."""


@dataclass(frozen=True)
class HubLogin:
    credentials: EdgeCredentials
    tokens: TokenSource
    namespace: str | None = None


class FileToken:
    """A token file (a projected ServiceAccount token, `tokenFile`), re-read every minute and on a 401."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._token: str | None = None
        self._read_at = -float("inf")

    async def token(self) -> str | None:
        if time.monotonic() - self._read_at > TOKEN_FILE_TTL:
            try:
                self._token = self.path.read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise HubLoginFailed(f"cannot read the token file {self.path}: {exc.strerror}") from None
            self._read_at = time.monotonic()
        return self._token

    def expire(self) -> bool:
        self._read_at = -float("inf")
        return True


class ExecToken:
    """An exec credential plugin's token, run again when it expires or the apiserver refuses it."""

    def __init__(self, plugin: Mapping[str, Any], base: Path, cluster: Mapping[str, Any]) -> None:
        self.plugin, self.base, self.cluster = plugin, base, cluster
        self._token: str | None = None
        self._expires: float | None = None
        self._lock = asyncio.Lock()

    async def run(self) -> dict[str, Any]:
        """Run the plugin now; its status (token, or client certificate and key, and expiry)."""
        status = await run_exec_plugin(self.plugin, self.base, self.cluster)
        self._token = str(status.get("token") or "") or None
        self._expires = _expiry(status.get("expirationTimestamp"))
        return status

    async def token(self) -> str | None:
        async with self._lock:
            if self._token is None or (self._expires is not None and time.time() > self._expires - 10):
                await self.run()
            return self._token

    def expire(self) -> bool:
        self._token = None
        return True

    @property
    def expires_at(self) -> float | None:
        """When the current token expires (epoch seconds), if the plugin said."""
        return self._expires


def _expiry(stamp: Any) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise HubLoginFailed(f"the exec plugin's expirationTimestamp is not RFC 3339: {stamp!r}") from None


def _exec_command(plugin: Mapping[str, Any], base: Path) -> str:
    command = str(plugin.get("command") or "")
    if not command:
        raise HubLoginFailed("users[].user.exec.command is missing")
    # As client-go: a command with a path separator is relative to the kubeconfig, else looked up in PATH.
    if os.sep in command and not os.path.isabs(command):
        return str(base / command)
    return shutil.which(command) or command


async def run_exec_plugin(
    plugin: Mapping[str, Any], base: Path, cluster: Mapping[str, Any]
) -> dict[str, Any]:
    """Run an exec credential plugin (not interactive) and return its ExecCredential status."""
    api_version = str(plugin.get("apiVersion") or "")
    if api_version not in EXEC_API_VERSIONS:
        raise HubLoginFailed(
            f"users[].user.exec.apiVersion {api_version!r} is not one of {EXEC_API_VERSIONS}"
        )
    spec: dict[str, Any] = {"interactive": False}
    if plugin.get("provideClusterInfo"):
        spec["cluster"] = {k: v for k, v in cluster.items() if k != "extensions"}
    env = dict(os.environ)
    env.update(
        {str(e.get("name")): str(e.get("value")) for e in plugin.get("env") or [] if isinstance(e, Mapping)}
    )
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {"apiVersion": api_version, "kind": "ExecCredential", "spec": spec}
    )
    command = _exec_command(plugin, base)
    try:
        proc = await asyncio.create_subprocess_exec(
            command,
            *[str(a) for a in plugin.get("args") or []],
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )  # stderr passes through, as with kubectl: a plugin's own messages say what it needs
        out, _ = await asyncio.wait_for(proc.communicate(), EXEC_TIMEOUT)
    except FileNotFoundError:
        raise HubLoginFailed(f"the exec plugin {command!r} is not installed") from None
    except TimeoutError:
        proc.kill()
        raise HubLoginFailed(f"the exec plugin {command!r} did not answer within {EXEC_TIMEOUT:g}s") from None
    if proc.returncode != 0:
        raise HubLoginFailed(f"the exec plugin {command!r} failed (exit {proc.returncode})")
    try:
        status = json.loads(out).get("status") or {}
    except (ValueError, AttributeError):
        raise HubLoginFailed(f"the exec plugin {command!r} did not print an ExecCredential") from None
    return dict(status)


def _read_kubeconfigs(paths: list[Path]) -> tuple[dict[str, Any], dict[tuple[str, str], Path]]:
    """The files merged as kubectl does (the first file to set a name or current-context wins), and
    the directory each named entry's relative paths are resolved against."""
    merged: dict[str, Any] = {"clusters": [], "users": [], "contexts": []}
    seen: dict[tuple[str, str], Path] = {}
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise HubLoginFailed(f"cannot read the kubeconfig {path}: {type(exc).__name__}") from None
        if not isinstance(doc, Mapping):
            raise HubLoginFailed(f"the kubeconfig {path} is not a mapping")
        if not merged.get("current-context"):
            merged["current-context"] = doc.get("current-context")
        for section in ("clusters", "users", "contexts"):
            for item in doc.get(section) or []:
                name = item.get("name") if isinstance(item, Mapping) else None
                if name is not None and (section, str(name)) not in seen:
                    seen[(section, str(name))] = path.parent
                    merged[section].append(item)
    return merged, seen


def _named(config: Mapping[str, Any], section: str, name: str) -> dict[str, Any]:
    body = section[:-1]
    for item in config.get(section) or []:
        if item.get("name") == name and isinstance(item.get(body), Mapping):
            return dict(item[body])
    raise HubLoginFailed(f"the hub's kubeconfig has no {body} named {name!r}")


def _data_or_file(entry: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    """`<key>-data` (base64) or the file `<key>`, relative to its kubeconfig."""
    if entry.get(f"{key}-data"):
        try:
            return base64.b64decode(str(entry[f"{key}-data"]), validate=True)
        except (binascii.Error, ValueError):
            raise HubLoginFailed(f"{key}-data in the hub's kubeconfig is not base64") from None
    if entry.get(key):
        path = base / os.path.expanduser(str(entry[key]))
        try:
            return path.read_bytes()
        except OSError as exc:
            raise HubLoginFailed(f"cannot read {key} {path}: {exc.strerror}") from None
    return None


async def login_from_kubeconfig(paths: list[Path]) -> HubLogin:
    config, bases = _read_kubeconfigs(paths)
    if not config.get("current-context"):
        raise HubLoginFailed(f"no current-context in {', '.join(map(str, paths))}")
    context = _named(config, "contexts", str(config["current-context"]))
    cluster_name, user_name = str(context.get("cluster")), str(context.get("user") or "")
    cluster = _named(config, "clusters", cluster_name)
    user = _named(config, "users", user_name) if user_name else {}
    cbase, ubase = (
        bases.get(("clusters", cluster_name), paths[0].parent),
        bases.get(("users", user_name), paths[0].parent),
    )
    if cluster.get("proxy-url"):
        raise HubLoginFailed("clusters[].cluster.proxy-url is not supported for the hub")
    for key, why in REFUSED_USER.items():
        if user.get(key):
            raise HubLoginFailed(f"users[].user.{key}: {why}")
    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise HubLoginFailed(f"clusters[{cluster_name!r}].cluster.server is missing or not an http(s) URL")
    creds = EdgeCredentials(
        server=server,
        ca_pem=_data_or_file(cluster, "certificate-authority", cbase),
        cert_pem=_data_or_file(user, "client-certificate", ubase),
        key_pem=_data_or_file(user, "client-key", ubase),
        verify=not bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=str(cluster["tls-server-name"]) if cluster.get("tls-server-name") else None,
    )
    tokens: TokenSource = StaticToken(str(user["token"]) if user.get("token") else None)
    if user.get("tokenFile"):
        tokens = FileToken(ubase / os.path.expanduser(str(user["tokenFile"])))
    if isinstance(user.get("exec"), Mapping):
        plugin = ExecToken(user["exec"], ubase, cluster)
        status = await plugin.run()
        tokens = plugin
        if status.get("clientCertificateData") and status.get("clientKeyData"):
            # PEM, not base64; loaded once: a plugin whose certificates expire needs a restart.
            pem = str(status["clientCertificateData"]).encode(), str(status["clientKeyData"]).encode()
            creds = replace(creds, cert_pem=pem[0], key_pem=pem[1])
    return HubLogin(creds, tokens, context.get("namespace"))


def service_account_login() -> HubLogin:
    """In a pod: the API server's Service address, the mounted CA and the projected token."""
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    host = f"[{host}]" if ":" in host else host
    ca = SERVICE_ACCOUNT / "ca.crt"
    namespace = SERVICE_ACCOUNT / "namespace"
    return HubLogin(
        EdgeCredentials(server=f"https://{host}:{port}", ca_pem=ca.read_bytes() if ca.exists() else None),
        FileToken(SERVICE_ACCOUNT / "token"),
        namespace.read_text(encoding="utf-8").strip() if namespace.exists() else None,
    )


async def hub_login(kubeconfig: str | None) -> HubLogin:
    """`kubeconfig` (a KUBECONFIG-style list) when given, else the pod's ServiceAccount, else
    ~/.kube/config: the order kubectl and client-go use."""
    if kubeconfig:
        paths = [Path(os.path.expanduser(p)) for p in kubeconfig.split(os.pathsep) if p]
        return await login_from_kubeconfig(paths)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and (SERVICE_ACCOUNT / "token").exists():
        return service_account_login()
    return await login_from_kubeconfig([Path.home() / ".kube" / "config"])
