"""`edgeroll operator` says why it cannot start: credentials (401), RBAC (403), network, or missing CRDs."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from edgeroll.api.common import GROUP, VERSION
from edgeroll.clusters.hub import CRDS_MISSING, HubNotReady, connect_hub, startup_problem
from edgeroll.clusters.kube import ClusterUnreachable, CredentialsRefused, KubeApiError

pytestmark = pytest.mark.unit

HUB = "https://hub.example:6443"


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (CredentialsRefused("x"), f"the hub refused the operator's credentials (401) at {HUB}"),
        (
            KubeApiError(403, "Forbidden", 'User "op" cannot get path "/apis/edgeroll.io/v1alpha1"'),
            'forbidden: User "op" cannot get path "/apis/edgeroll.io/v1alpha1" (403)',
        ),
        (KubeApiError(403, "Forbidden", ""), "forbidden: Forbidden (403)"),
        (
            ClusterUnreachable("unreachable: ClientConnectorError"),
            f"cannot reach the hub at {HUB}: unreachable",
        ),
        (KubeApiError(404, "NotFound", "the server could not find the requested resource"), CRDS_MISSING),
        (KubeApiError(500, "InternalError", "etcd"), "the hub answered 500 InternalError: etcd"),
        (
            FileNotFoundError(2, "No such file", "/nope"),
            "cannot load the hub's kubeconfig: FileNotFoundError",
        ),
    ],
)
def test_each_cause_has_its_own_words(exc: Exception, message: str) -> None:
    assert startup_problem(exc, HUB).startswith(message)


def test_credentials_refused_is_still_unreachable_for_edge_callers() -> None:
    assert isinstance(CredentialsRefused("x"), ClusterUnreachable)


Route = Callable[[web.Request], web.Response]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Callable[[Route], Awaitable[str]]]:
    """Starts a plain-HTTP hub stand-in answering CRD discovery with `route`; returns its kubeconfig."""
    runners: list[web.AppRunner] = []

    async def start(route: Route) -> str:
        app = web.Application()

        async def handle(request: web.Request) -> web.Response:
            return route(request)

        app.router.add_get(f"/apis/{GROUP}/{VERSION}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return kubeconfig_file(tmp_path, f"http://127.0.0.1:{port}")

    yield start
    for runner in runners:
        await runner.cleanup()


def kubeconfig_file(tmp_path: Path, server: str) -> str:
    path = tmp_path / "hub.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "hub", "cluster": {"server": server}}],
                "users": [{"name": "op", "user": {"token": "garbage"}}],
                "contexts": [{"name": "hub", "context": {"cluster": "hub", "user": "op"}}],
                "current-context": "hub",
            }
        )
    )
    return str(path)


def status(code: int, reason: str, message: str) -> Route:
    body = {"kind": "Status", "status": "Failure", "reason": reason, "message": message, "code": code}
    return lambda _: web.json_response(body, status=code)


def resources(*names: str) -> Route:
    return lambda _: web.json_response({"kind": "APIResourceList", "resources": [{"name": n} for n in names]})


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (status(401, "Unauthorized", "Unauthorized"), "the hub refused the operator's credentials (401)"),
        (status(403, "Forbidden", 'User "op" cannot get path'), 'forbidden: User "op" cannot get path (403)'),
        (status(404, "NotFound", "not found"), CRDS_MISSING),
        (resources("routerconfigs", "routerconfigs/status"), CRDS_MISSING),
    ],
)
async def test_connect_hub_names_the_cause(hub: Any, route: Route, message: str) -> None:
    with pytest.raises(HubNotReady) as refused:
        await connect_hub(await hub(route), timeout=5.0)
    assert str(refused.value).startswith(message)


async def test_connect_hub_succeeds_when_both_crds_are_served(hub: Any) -> None:
    client = await connect_hub(await hub(resources("routerconfigs", "edgeclusters")), timeout=5.0)
    await client.close()


async def test_connect_hub_says_it_cannot_reach_a_closed_port(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(HubNotReady, match=rf"cannot reach the hub at http://127.0.0.1:{port}: unreachable"):
        await connect_hub(kubeconfig_file(tmp_path, f"http://127.0.0.1:{port}"), timeout=5.0)


async def test_connect_hub_says_the_kubeconfig_does_not_load(tmp_path: Path) -> None:
    with pytest.raises(HubNotReady, match="cannot load the hub's kubeconfig"):
        await connect_hub(str(tmp_path / "missing"), timeout=5.0)
