"""The lab's S3 server: one `weed mini` process, started detached, stopped by PID."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from edgeroll.lab.health import http_status
from edgeroll.lab.layout import LOOPBACK, S3_ACCESS_KEY, S3_BUCKET, S3_EDGE_ACCESS_KEY, S3_REGION, LabPaths
from edgeroll.lab.processes import (
    LabError,
    OwnedProcess,
    pid_alive,
    pid_cmdline,
    port_free,
    port_listening,
    spawn_detached,
    stop_processes,
    wait_for,
)
from edgeroll.lab.s3_config import candidate_bases, identities, s3_ports, weed_command, weed_environment
from edgeroll.lab.state import S3State

START_TIMEOUT = 60.0
STOP_GRACE = 15.0  # weed stops in ~4 s on SIGTERM (filer and volume flush)


def plan_s3(paths: LabPaths) -> S3State:
    """A fresh S3 setup: the first block of free loopback ports, new credentials."""
    for base in candidate_bases():
        ports = s3_ports(base)
        if all(port_free(p) for p in ports.values()):
            return S3State(
                endpoint=f"http://{LOOPBACK}:{ports['s3']}",
                bucket=S3_BUCKET,
                region=S3_REGION,
                access_key=S3_ACCESS_KEY,
                secret_key=secrets.token_urlsafe(24),
                edge_access_key=S3_EDGE_ACCESS_KEY,
                edge_secret_key=secrets.token_urlsafe(24),
                data_dir=paths.s3_dir,
                log=paths.logs / "seaweedfs.log",
                ports=ports,
            )
    raise LabError("no free block of loopback ports for SeaweedFS (tried from 18333 upwards)")


class SeaweedServer:
    def __init__(self, state: S3State, weed: Path) -> None:
        self.state = state
        self.weed = weed

    def owns(self, pid: int) -> bool:
        argv = pid_cmdline(pid)
        return (
            len(argv) >= 2
            and Path(argv[0]).name == "weed"
            and argv[1] == "mini"
            and f"-dir={self.state.data_dir}" in argv
        )

    def running(self) -> bool:
        pid = self.state.pid
        return pid is not None and OwnedProcess(pid, "SeaweedFS", self.owns).running()

    def healthy(self) -> bool:
        return http_status(f"{self.state.endpoint}/healthz") == 200

    def bucket_exists(self) -> bool:
        # The filer's HTTP API needs no S3 signature, so this probe does not need boto3.
        url = f"http://{LOOPBACK}:{self.state.ports['filer']}/buckets/{self.state.bucket}/"
        return http_status(url) == 200

    def start(self) -> S3State:
        """Start weed on the recorded ports and data dir; returns the state with its PID once healthy."""
        taken = [f"{name}:{port}" for name, port in self.state.ports.items() if not port_free(port)]
        if taken:
            raise LabError(f"SeaweedFS ports already in use: {', '.join(taken)}")
        self.state.data_dir.mkdir(parents=True, exist_ok=True)
        for stale in ("s3.sock", "filer.sock"):  # left behind by a SIGKILL
            (self.state.data_dir / stale).unlink(missing_ok=True)
        if self.state.edge_secret_key is None:  # a state from before the edge key: give it one
            update = {"edge_access_key": S3_EDGE_ACCESS_KEY, "edge_secret_key": secrets.token_urlsafe(24)}
            self.state = self.state.model_copy(update=update)
        assert self.state.edge_access_key is not None and self.state.edge_secret_key is not None
        config = self.state.data_dir / "identities.json"
        config.touch(mode=0o600)
        config.write_text(
            json.dumps(
                identities(
                    self.state.bucket,
                    operator=(self.state.access_key, self.state.secret_key),
                    edge=(self.state.edge_access_key, self.state.edge_secret_key),
                )
            )
        )
        argv = weed_command(
            self.weed,
            data_dir=self.state.data_dir,
            ports=self.state.ports,
            bucket=self.state.bucket,
            s3_config=config,
        )
        env = weed_environment(
            dict(os.environ), access_key=self.state.access_key, secret_key=self.state.secret_key
        )
        # Returns once the exec is complete, so `owns` recognises the PID from the first look.
        pid = spawn_detached(argv, env=env, log=self.state.log, cwd=self.state.data_dir)
        self.state = self.state.model_copy(update={"pid": pid})

        def up() -> bool:
            if not pid_alive(pid):
                raise LabError(f"SeaweedFS exited during start-up; see {self.state.log}")
            if not self.owns(pid):
                running = " ".join(pid_cmdline(pid)[:2]) or "nothing recognisable"
                raise LabError(
                    f"SeaweedFS pid {pid} now runs {running}, not weed mini on {self.state.data_dir}"
                )
            return self.healthy() and self.bucket_exists()

        wait_for(up, timeout=START_TIMEOUT, interval=0.2, what=f"SeaweedFS at {self.state.endpoint}")
        return self.state

    def stop(self) -> None:
        """Stop the recorded PID and check that none of the S3 ports is still listening."""
        if self.state.pid is not None:
            stop_processes([OwnedProcess(self.state.pid, "SeaweedFS", self.owns)], grace=STOP_GRACE)
        wait_for(lambda: not self.listening(), timeout=10, interval=0.1, what="SeaweedFS ports to close")

    def listening(self) -> list[str]:
        return [f"{name}:{port}" for name, port in self.state.ports.items() if port_listening(port)]
