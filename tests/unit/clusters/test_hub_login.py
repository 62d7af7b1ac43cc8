"""The hub's credentials are read as kubectl reads them: files relative to their kubeconfig, exec
plugins, the pod's ServiceAccount; a rotated token is fetched again on a 401."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from edgeroll.clusters import hub_login as hub_login_module
from edgeroll.clusters.hub_login import HubLoginFailed, hub_login
from edgeroll.clusters.kube import CredentialsRefused, KubeClient

pytestmark = pytest.mark.unit

PEM = b"-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n"


def write_kubeconfig(
    path: Path, user: dict[str, Any], server: str = "https://hub.example:6443", **cluster: Any
) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "hub", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "admin", "user": user}],
        "contexts": [
            {"name": "hub", "context": {"cluster": "hub", "user": "admin", "namespace": "platform"}}
        ],
        "current-context": "hub",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def plugin_script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "bin" / "cred-plugin"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(f"#!{sys.executable}\nimport json, os, sys\n{body}\n")
    script.chmod(0o755)
    return script


async def test_files_are_read_relative_to_the_kubeconfig_that_names_them(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "ca.crt").write_bytes(PEM)
    (conf / "token").write_text("file-token\n")
    path = write_kubeconfig(conf / "config", {"tokenFile": "token"}, **{"certificate-authority": "ca.crt"})
    login = await hub_login(str(path))
    assert login.credentials.server == "https://hub.example:6443"
    assert login.credentials.ca_pem == PEM
    assert await login.tokens.token() == "file-token"
    assert login.namespace == "platform"


async def test_a_kubeconfig_list_merges_with_the_first_file_winning(tmp_path: Path) -> None:
    first = write_kubeconfig(tmp_path / "a", {"token": "from-a"})
    second = write_kubeconfig(tmp_path / "b", {"token": "from-b"}, server="https://other:6443")
    login = await hub_login(f"{first}:{second}")
    assert login.credentials.server == "https://hub.example:6443"
    assert await login.tokens.token() == "from-a"


async def test_an_exec_plugin_gets_the_token_with_its_env_and_runs_again_when_refused(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    plugin = plugin_script(
        tmp_path,
        f"""
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
assert info["spec"]["interactive"] is False and info["spec"]["cluster"]["server"].startswith("https://")
with open({str(runs)!r}, "a") as f:
    f.write("x")
n = len(open({str(runs)!r}).read())
status = {{"token": os.environ["TOKEN_PREFIX"] + str(n), "expirationTimestamp": "2999-01-01T00:00:00Z"}}
print(json.dumps({{"apiVersion": info["apiVersion"], "kind": "ExecCredential", "status": status}}))
""",
    )
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": f"../bin/{plugin.name}",  # a path: relative to the kubeconfig, as client-go does
            "env": [{"name": "TOKEN_PREFIX", "value": "exec-"}],
            "provideClusterInfo": True,
            "interactiveMode": "Never",
        }
    }
    login = await hub_login(str(write_kubeconfig(tmp_path / "conf" / "config", user)))
    assert await login.tokens.token() == "exec-1"
    assert await login.tokens.token() == "exec-1"  # cached until it expires
    assert login.tokens.expire()
    assert await login.tokens.token() == "exec-2"


async def test_an_expired_exec_token_is_fetched_again(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    plugin = plugin_script(
        tmp_path,
        f"""
with open({str(runs)!r}, "a") as f:
    f.write("x")
print(json.dumps({{"status": {{"token": "t", "expirationTimestamp": "2000-01-01T00:00:00Z"}}}}))
""",
    )
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(plugin)}}
    login = await hub_login(str(write_kubeconfig(tmp_path / "config", user)))
    await login.tokens.token()
    assert runs.read_text() == "xx"  # at login, and again since that token had expired


@pytest.mark.parametrize(
    ("user", "problem"),
    [
        ({"auth-provider": {"name": "gcp"}}, "auth-provider plugins were removed"),
        ({"username": "u", "password": "p"}, "basic auth"),
        ({"exec": {"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}}, "apiVersion"),
        (
            {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "/nonexistent/x"}},
            "not installed",
        ),
    ],
)
async def test_what_kubectl_no_longer_supports_is_refused_by_name(
    tmp_path: Path, user: dict[str, Any], problem: str
) -> None:
    with pytest.raises(HubLoginFailed, match=problem):
        await hub_login(str(write_kubeconfig(tmp_path / "config", user)))


async def test_a_failing_plugin_is_reported_without_its_output(tmp_path: Path) -> None:
    plugin = plugin_script(tmp_path, 'print("secret-output"); sys.exit(3)')
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin)}}
    with pytest.raises(HubLoginFailed, match="exit 3") as failed:
        await hub_login(str(write_kubeconfig(tmp_path / "config", user)))
    assert "secret-output" not in str(failed.value)


async def test_in_a_pod_the_service_account_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_bytes(PEM)
    (tmp_path / "namespace").write_text("edgeroll-system")
    monkeypatch.setattr(hub_login_module, "SERVICE_ACCOUNT", tmp_path)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    login = await hub_login(None)
    assert login.credentials.server == "https://[fd00::1]:443"
    assert login.credentials.ca_pem == PEM and login.namespace == "edgeroll-system"
    assert await login.tokens.token() == "sa-token"


@pytest.fixture
async def token_checking_apiserver() -> AsyncIterator[tuple[str, list[str]]]:
    """Plain HTTP: /version answers only to `Bearer good`; records every Authorization header."""
    seen: list[str] = []

    async def version(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if seen[-1] != "Bearer good":
            return web.json_response({"kind": "Status", "reason": "Unauthorized"}, status=401)
        return web.json_response({"gitVersion": "v1.34.4"})

    app = web.Application()
    app.router.add_get("/version", version)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_a_rotated_token_file_is_read_again_after_a_401(
    tmp_path: Path, token_checking_apiserver: tuple[str, list[str]]
) -> None:
    server, seen = token_checking_apiserver
    (tmp_path / "token").write_text("old")
    path = write_kubeconfig(tmp_path / "config", {"tokenFile": "token"}, server=server)
    client = await KubeClient.from_environment(str(path), timeout=5.0)
    try:
        with pytest.raises(CredentialsRefused):
            await client.version()
        assert seen == ["Bearer old", "Bearer old"]  # refused, read again, still refused: no loop
        (tmp_path / "token").write_text("good")  # the kubelet rotated the projected token
        assert await client.version() == "v1.34.4"
        assert seen[2:] == ["Bearer old", "Bearer good"]  # cached, refused, read again, accepted
    finally:
        await client.close()


async def test_a_static_token_refused_is_not_retried(
    tmp_path: Path, token_checking_apiserver: tuple[str, list[str]]
) -> None:
    server, seen = token_checking_apiserver
    client = await KubeClient.from_environment(
        str(write_kubeconfig(tmp_path / "config", {"token": "bad"}, server=server)), timeout=5.0
    )
    try:
        with pytest.raises(CredentialsRefused):
            await client.version()
        assert seen == ["Bearer bad"]
    finally:
        await client.close()
