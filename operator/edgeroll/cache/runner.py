"""Process wiring: one event loop that loads, fetches and serves (the default), or a
supervisor plus N serving workers on one SO_REUSEPORT port (EDGEROLL_CACHE_WORKERS > 1)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from edgeroll.cache import cosmo
from edgeroll.cache.fetcher import Backoff, fetch_wanted, load_last_known_good
from edgeroll.cache.metrics import Metrics, ServingStatus
from edgeroll.cache.origin import S3Origin
from edgeroll.cache.peer import PeerOrigin
from edgeroll.cache.responses import prepare
from edgeroll.cache.revision import Revision
from edgeroll.cache.server import CosmoRoute, HttpConnection, ServerState, run_ticker
from edgeroll.cache.settings import CacheSettings
from edgeroll.cache.state import StateDir, StateIdentity
from edgeroll.cache.switching import Keeper, Switcher
from edgeroll.render.signing import read_token

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    backoff: Backoff = field(default_factory=Backoff)
    drain_seconds: float = 10.0


def make_state_dir(settings: CacheSettings) -> StateDir | None:
    state = StateDir(settings.state_dir, StateIdentity(settings.namespace, settings.name))
    try:
        state.prepare()
    except OSError as exc:
        log.error("state directory %s is unusable, running without last-known-good: %s", state.root, exc)
        return None
    return state


def make_peer(settings: CacheSettings) -> PeerOrigin | None:
    """The sibling pods (through the Service) to fill from when S3 fails; None without a peer URL."""
    if settings.peer_url is None:
        return None
    # Siblings need the read token like any client, unless they serve publicly.
    token = read_token(settings.signing_key, settings.namespace, settings.name)
    return PeerOrigin(settings.peer_url, settings.config_path, read_token=token)


def make_server_state(settings: CacheSettings, metrics: Metrics) -> ServerState:
    route = None
    if settings.cosmo_organization_id and settings.cosmo_federated_graph_id:
        route = CosmoRoute(
            settings.cosmo_organization_id,
            settings.cosmo_federated_graph_id,
            cosmo.TokenCache(settings.cosmo_token_secret),
        )
    return ServerState(
        configs_path=settings.config_path.encode("utf-8"),
        status=ServingStatus(settings.namespace, settings.name, settings.config_digest),
        metrics=metrics,
        configs_read_token=None
        if settings.public_read
        else read_token(settings.signing_key, settings.namespace, settings.name).encode("ascii"),
        cosmo_route=route,
    )


def installer(state: ServerState, settings: CacheSettings) -> Callable[[Revision], Awaitable[None]]:
    # The split-config files (manifest/...) exist only where the Cosmo routes do.
    manifest_key = settings.signing_key if state.cosmo_route is not None else None

    async def install(revision: Revision) -> None:
        prepared = await asyncio.to_thread(prepare, revision, manifest_key)  # gzip off the event loop
        state.install(prepared, published_at=revision.published_at)
        # Revisions are long-lived: keep them out of the cyclic GC's way for a flat p99.
        gc.collect()
        gc.freeze()

    return install


def listen_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(socket.SOMAXCONN)
    sock.setblocking(False)
    return sock


async def serve_until_stopped(
    state: ServerState, sock: socket.socket, stop: asyncio.Event, drain_seconds: float
) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpConnection(state), sock=sock, backlog=socket.SOMAXCONN)
    ticker = asyncio.create_task(run_ticker(state, stop))
    log.info("listening on %s", sock.getsockname()[:2])
    await stop.wait()
    # Graceful: stop accepting, close idle keep-alive connections, let answers finish.
    server.close()
    state.begin_drain()
    deadline = time.monotonic() + drain_seconds
    while state.connections and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for conn in list(state.connections):
        if conn.transport is not None:
            conn.transport.abort()
    await ticker


async def cancel(task: asyncio.Task[bool] | None) -> None:
    """Stop a fetch loop that may be waiting on the origin; it holds nothing worth waiting for."""
    if task is not None and not task.done():
        task.cancel()
    if task is not None:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def make_switcher(
    settings: CacheSettings,
    state: ServerState,
    keeper: Keeper,
    origin: S3Origin,
    peer: PeerOrigin | None,
) -> Switcher | None:
    """In-place switching (POST /-/revision): with a pointer key, in this one-process mode only."""
    if settings.pointer_key is None:
        return None
    log.info("in-place switching on: POST /-/revision reads the revision pointer %s", settings.pointer_key)
    return Switcher(
        pointer_key=settings.pointer_key,
        namespace=settings.namespace,
        name=settings.name,
        signing_key=settings.signing_key,
        origin=origin,  # the start-up fetch's: its S3 client is made once and kept warm
        peer=peer,
        keeper=keeper,
        metrics=state.metrics,
    )


async def serve_single(settings: CacheSettings, options: RunOptions) -> int:
    stop = asyncio.Event()
    install_stop_signals(stop)
    metrics = Metrics()
    state = make_server_state(settings, metrics)
    install = installer(state, settings)
    state_dir = make_state_dir(settings)
    if state_dir is not None:
        lkg = load_last_known_good(state_dir, settings.signing_key, metrics)
        if lkg is not None:
            await install(lkg)
    sock = listen_socket(settings.host, settings.port, reuse_port=False)
    # Made now, its boto3 client on first use, by the start-up fetch or by a switch.
    origin = S3Origin(bucket=settings.s3_bucket, endpoint=settings.s3_endpoint, region=settings.s3_region)
    peer = make_peer(settings)
    # Stores and installs for the start-up fetch and for switches, one at a time (switching.Keeper).
    keeper = Keeper(state.status, state_dir, install)
    state.switcher = make_switcher(settings, state, keeper, origin, peer)
    fetch: asyncio.Task[bool] | None = None
    if not state.status.ready:
        fetch = asyncio.create_task(
            fetch_wanted(
                origin=origin,
                key=settings.config_key,
                digest=settings.config_digest,
                signing_key=settings.signing_key,
                state=None,  # the keeper stores
                metrics=metrics,
                install=keeper.keep_startup,
                backoff=options.backoff,
                stop=stop,
                peer=peer,
            )
        )
        keeper.startup = fetch
    else:
        log.info("last-known-good is the wanted revision %s; not contacting S3", settings.config_digest)
    await serve_until_stopped(state, sock, stop, options.drain_seconds)
    if state.switcher is not None:
        state.switcher.close()
    await cancel(fetch)
    return 0
