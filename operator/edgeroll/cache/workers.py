"""EDGEROLL_CACHE_WORKERS > 1: a supervisor that fetches, and N workers that serve.

- The supervisor loads last-known-good, fetches the wanted revision from S3
  (or, when S3 fails, from a peer), verifies it and stores it in the state
  directory. It serves no HTTP.
- Each worker is `python -m edgeroll.cache.workers` with its own SO_REUSEPORT
  socket on the same port, so the kernel spreads connections across them.
  Workers read revisions only from the state directory and verify them again.
- When a new revision is stored the supervisor writes `reload` to each
  worker's control pipe; a worker whose pipe closes (supervisor gone) drains
  and exits. A worker that dies is restarted.
- Counters live in one shared memfd mapping, one row per process, so any
  worker's /metrics shows the whole pod (see `edgeroll.cache.metrics`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import mmap
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace

from edgeroll.cache.fetcher import fetch_wanted, load_last_known_good
from edgeroll.cache.metrics import Metrics, shared_size
from edgeroll.cache.origin import S3Origin
from edgeroll.cache.revision import Revision
from edgeroll.cache.runner import (
    RunOptions,
    cancel,
    install_stop_signals,
    installer,
    listen_socket,
    make_peer,
    make_server_state,
    make_state_dir,
    serve_until_stopped,
)
from edgeroll.cache.settings import CacheSettings, settings_from_env
from edgeroll.cache.state import StateDir

log = logging.getLogger("edgeroll.cache.workers")  # also when run as __main__

RESTART_WINDOW_S = 30.0
MAX_RESTARTS_IN_WINDOW = 5


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes]
    control: int  # write end of the worker's control pipe


class Supervisor:
    def __init__(self, settings: CacheSettings, options: RunOptions, state: StateDir) -> None:
        self.settings = settings
        self.options = options
        self.state = state
        self.memfd = os.memfd_create("edgeroll-cache-metrics", os.MFD_CLOEXEC)
        self.rows = settings.workers + 1
        os.ftruncate(self.memfd, shared_size(self.rows))
        self.metrics = Metrics(mmap.mmap(self.memfd, shared_size(self.rows)), rows=self.rows, row=0)
        self.workers: dict[int, _Worker] = {}
        self.restarts: list[float] = []

    def spawn(self, index: int) -> _Worker:
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        cmd = [
            sys.executable,
            "-m",
            "edgeroll.cache.workers",
            "--row",
            str(index),
            "--rows",
            str(self.rows),
            "--metrics-fd",
            str(self.memfd),
            "--control-fd",
            str(read_end),
            "--host",
            self.settings.host,
            "--drain-seconds",
            str(self.options.drain_seconds),
            "--log-level",
            logging.getLevelName(logging.getLogger().level),
        ]
        proc = subprocess.Popen(cmd, pass_fds=(self.memfd, read_end))
        os.close(read_end)
        os.set_blocking(write_end, False)
        worker = _Worker(index, proc, write_end)
        self.workers[index] = worker
        log.info("worker %d started (pid %d)", index, proc.pid)
        return worker

    def notify(self) -> None:
        for worker in self.workers.values():
            # A full pipe already holds a reload; a dead worker is restarted and loads anyway.
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(worker.control, b"reload\n")

    def reap(self) -> bool:
        """Restart workers that died; False when they die too often to keep going."""
        for index, worker in list(self.workers.items()):
            code = worker.proc.poll()
            if code is None:
                continue
            os.close(worker.control)
            log.error("worker %d (pid %d) exited with %s; restarting it", index, worker.proc.pid, code)
            now = time.monotonic()
            self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_S] + [now]
            if len(self.restarts) > MAX_RESTARTS_IN_WINDOW:
                log.error(
                    "workers keep dying (%d restarts in %.0fs); giving up",
                    len(self.restarts),
                    RESTART_WINDOW_S,
                )
                del self.workers[index]
                return False
            self.spawn(index)
        return True

    def stop_workers(self) -> None:
        for worker in self.workers.values():
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.options.drain_seconds + 5
        for worker in self.workers.values():
            try:
                worker.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()
            os.close(worker.control)

    async def run(self) -> int:
        stop = asyncio.Event()
        install_stop_signals(stop)
        settings = self.settings
        lkg = load_last_known_good(self.state, settings.signing_key, self.metrics)
        for index in range(1, settings.workers + 1):
            self.spawn(index)

        async def install(revision: Revision) -> None:
            self.notify()  # fetch_wanted stored it in the state dir before calling us

        fetch: asyncio.Task[bool] | None = None
        if lkg is None or lkg.digest != settings.config_digest:
            origin = S3Origin(
                bucket=settings.s3_bucket, endpoint=settings.s3_endpoint, region=settings.s3_region
            )
            fetch = asyncio.create_task(
                fetch_wanted(
                    origin=origin,
                    key=settings.config_key,
                    digest=settings.config_digest,
                    signing_key=settings.signing_key,
                    state=self.state,
                    metrics=self.metrics,
                    install=install,
                    backoff=self.options.backoff,
                    stop=stop,
                    peer=make_peer(settings),
                )
            )
        code = 0
        while not stop.is_set():
            if not self.reap():
                code = 1
                stop.set()
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
        await cancel(fetch)
        await asyncio.to_thread(self.stop_workers)
        return code


def run_supervisor(settings: CacheSettings, options: RunOptions) -> int:
    import uvloop

    state = make_state_dir(settings)
    if state is None:
        log.error("EDGEROLL_CACHE_WORKERS > 1 needs a writable EDGEROLL_STATE_DIR (%s)", settings.state_dir)
        return 2
    return int(uvloop.run(Supervisor(settings, options, state).run()))


# -- worker side -----------------------------------------------------------------------------


async def serve_worker(args: argparse.Namespace) -> int:
    settings = replace(settings_from_env(), host=args.host)
    metrics = Metrics(mmap.mmap(args.metrics_fd, shared_size(args.rows)), rows=args.rows, row=args.row)
    server_state = make_server_state(settings, metrics)
    install = installer(server_state, settings)
    state_dir = make_state_dir(settings)
    if state_dir is None:
        return 2
    stop = asyncio.Event()
    install_stop_signals(stop)
    loading = asyncio.Lock()

    async def load() -> None:
        async with loading:
            revision = await asyncio.to_thread(load_last_known_good, state_dir, settings.signing_key, metrics)
            if revision is not None and revision.digest != server_state.status.served_digest:
                await install(revision)
                log.info("worker %d serving %s", args.row, revision.digest)

    await load()
    loop = asyncio.get_running_loop()
    os.set_blocking(args.control_fd, False)
    pending: set[asyncio.Task[None]] = set()

    def on_control() -> None:
        try:
            data = os.read(args.control_fd, 4096)
        except BlockingIOError:
            return
        if not data:  # the supervisor is gone: drain and exit
            loop.remove_reader(args.control_fd)
            stop.set()
            return
        task = asyncio.create_task(load())
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_reader(args.control_fd, on_control)
    sock = listen_socket(settings.host, settings.port, reuse_port=True)
    await serve_until_stopped(server_state, sock, stop, args.drain_seconds)
    return 0


def worker_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="edgeroll-cache-worker")
    parser.add_argument("--row", type=int, required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--metrics-fd", type=int, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--drain-seconds", type=float, default=10.0)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s %(name)s[worker {args.row}] %(message)s",
    )
    import uvloop

    return int(uvloop.run(serve_worker(args)))


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
