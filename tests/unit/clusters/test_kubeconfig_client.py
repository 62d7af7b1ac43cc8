"""Edge clients from kubeconfig Secrets: refused before anything is built, and TLS keys kept in memory."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from edgeroll.api.edgecluster import EdgeClusterSpec
from edgeroll.clusters.kube import ClusterUnreachable, KubeClient
from edgeroll.clusters.objects import ObjectRef
from edgeroll.clusters.registry import ClusterRegistry, EdgeClusterInfo

pytestmark = pytest.mark.unit

# A self-signed P-256 certificate for 127.0.0.1, valid until 2126, used here as the CA, the
# apiserver's certificate and the client's certificate alike. Test material only.
CERT = b"""-----BEGIN CERTIFICATE-----
MIIBxjCCAWygAwIBAgIUAaP29mZJIvxkvYh0B8ASy7EGYyMwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNZWRnZXJvbGwtdGVzdDAgFw0yNjEyMDIxNjUyMjBaGA8yMTI2
MTEwODE2NTIyMFowGDEWMBQGA1UEAwwNZWRnZXJvbGwtdGVzdDBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABL/hVVmZM0L/7JO2HPTGDkaQ2GVqnNQIpppyl2g2DHsO
ko+gdW+DxQJz7zf8BVjZjJqX8AjN40DyWPUrk61TG2WjgZEwgY4wHQYDVR0OBBYE
FDVMqhDk8PrKXI8I8Te360OjmezeMB8GA1UdIwQYMBaAFDVMqhDk8PrKXI8I8Te3
60OjmezeMA8GA1UdEQQIMAaHBH8AAAEwDwYDVR0TAQH/BAUwAwEB/zALBgNVHQ8E
BAMCAoQwHQYDVR0lBBYwFAYIKwYBBQUHAwEGCCsGAQUFBwMCMAoGCCqGSM49BAMC
A0gAMEUCIQDBmenahF4fI4O74ozKYM9T2dVt2jE0WIH8JVSyqN7+4wIgf/OT3j6z
KDpuOXcAbwRtveFppWKekNTCbceTYZ1x6Bg=
-----END CERTIFICATE-----
"""
KEY = b"""-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgEuY4U7k4dzrwClWx
ntdoR2HA4z5j+vPXTu6ZrOEhw2uhRANCAAS/4VVZmTNC/+yTthz0xg5GkNhlapzU
CKaacpdoNgx7DpKPoHVvg8UCc+83/AVY2Yyal/AIzeNA8lj1K5OtUxtl
-----END PRIVATE KEY-----
"""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(port: int, user: dict[str, Any]) -> dict[str, Any]:
    return {
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": f"https://127.0.0.1:{port}", "certificate-authority-data": b64(CERT)},
            }
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }


MTLS_USER = {"client-certificate-data": b64(CERT), "client-key-data": b64(KEY)}


@pytest.fixture
async def mtls_apiserver(tmp_path: Path) -> AsyncIterator[tuple[int, list[str]]]:
    """An HTTPS /version that requires a client certificate signed by CERT; records the clients' CNs."""
    (tmp_path / "c.pem").write_bytes(CERT)
    (tmp_path / "k.pem").write_bytes(KEY)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tmp_path / "c.pem"))
    tls.load_cert_chain(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))
    tls.verify_mode = ssl.CERT_REQUIRED
    seen: list[str] = []

    async def version(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        seen.append(dict(x[0] for x in (peer or {}).get("subject", ()))["commonName"])
        return web.json_response({"gitVersion": "v1.34.4"})

    app = web.Application()
    app.router.add_get("/version", version)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    yield site._server.sockets[0].getsockname()[1], seen  # type: ignore[union-attr]
    await runner.cleanup()


async def test_client_certificates_work_from_memory_and_touch_no_file(
    mtls_apiserver: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    port, seen = mtls_apiserver
    private_tmp = tmp_path / "tmp"  # where the library's loader would have written the key
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    client = await KubeClient.from_kubeconfig_dict(kubeconfig(port, MTLS_USER), 5.0, "edge")
    try:
        assert await client.version() == "v1.34.4"
        assert seen == ["edgeroll-test"]  # the apiserver verified our client certificate
        assert os.listdir(private_tmp) == []
    finally:
        await client.close()


async def test_without_the_client_certificate_the_handshake_fails(
    mtls_apiserver: tuple[int, list[str]],
) -> None:
    port, seen = mtls_apiserver
    client = await KubeClient.from_kubeconfig_dict(kubeconfig(port, {"token": "t"}), 5.0, "edge")
    try:
        with pytest.raises(ClusterUnreachable, match="unreachable"):
            await client.version()
        assert seen == []
    finally:
        await client.close()


async def test_a_key_that_is_not_a_key_is_refused_without_showing_it() -> None:
    user = {"client-certificate-data": b64(CERT), "client-key-data": b64(b"not-a-key-but-secret")}
    with pytest.raises(ClusterUnreachable, match="certificates do not load") as refused:
        await KubeClient.from_kubeconfig_dict(kubeconfig(1, user), 5.0, "edge")
    assert "secret" not in str(refused.value)


async def test_from_kubeconfig_dict_refuses_exec_itself() -> None:
    user = {"exec": {"command": "touch", "args": ["/tmp/x"], "apiVersion": "client.authentication.k8s.io/v1"}}
    with pytest.raises(ClusterUnreachable, match=r"users\[0\]\.user\.exec"):
        await KubeClient.from_kubeconfig_dict(kubeconfig(1, user), 5.0, "edge")


class Hub:
    def __init__(self, text: str) -> None:
        self.secret = {
            "metadata": {"resourceVersion": "1"},
            "data": {"kubeconfig": base64.b64encode(text.encode()).decode()},
        }

    async def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        return self.secret


async def test_the_registry_refuses_exec_before_any_client_is_built(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    user = {
        "exec": {"command": "touch", "args": [str(marker)], "apiVersion": "client.authentication.k8s.io/v1"}
    }
    built: list[Mapping[str, Any]] = []

    async def factory(cfg: Mapping[str, Any], timeout: float, name: str) -> Any:
        built.append(cfg)
        raise AssertionError("no client may be built from a refused kubeconfig")

    registry = ClusterRegistry(Hub(yaml.safe_dump(kubeconfig(1, user))), 1.0, factory=factory)  # type: ignore[arg-type]
    spec = EdgeClusterSpec.model_validate(
        {"kubeconfigSecretRef": {"namespace": "ns", "name": "s", "key": "kubeconfig"}}
    )
    result = await registry.probe(EdgeClusterInfo("edge-1", {}, spec))
    assert not result.reachable and built == [] and not marker.exists()
    assert "Secret ns/s" in result.message and "users[0].user.exec runs a command" in result.message
    assert "touch" not in result.message  # the kubeconfig's content is never echoed
