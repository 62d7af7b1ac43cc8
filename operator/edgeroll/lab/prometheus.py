"""The lab's Prometheus: Debian's `prometheus` (hack/setup.sh installs it), on loopback, scraping the
edge caches that tests start through file-based service discovery.

Every edge cache the pod runner starts (`edgeroll.lab.pod_runner.LocalEdgeCache`) writes one JSON file
into `.lab/prometheus/targets/` and removes it when it stops; Prometheus watches that directory
(inotify, with a 1 s re-read as a fallback) and scrapes each cache's /metrics every second, so a test
sees a fresh sample within a few seconds. Each target carries the labels `cluster` (the EdgeCluster
name, from the Deployment's `edgeroll.io/edgecluster` label), `edge_cluster` (the lab cluster),
`edge_namespace`, `deployment`, and the RouterConfig's `routerconfig_namespace`/`routerconfig`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeroll.lab.health import http_status
from edgeroll.lab.layout import LOOPBACK, LabPaths
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
from edgeroll.lab.state import PrometheusState

# Below 30000 (kwokctl counts down from 32766, Linux's ephemeral ports start at 32768) and clear of
# SeaweedFS's blocks (18333-19342, and their admin gRPC ports 28341-29342).
DEFAULT_PORT = 17090
START_TIMEOUT = 30.0
STOP_GRACE = 5.0
SCRAPE_INTERVAL = "1s"  # tests wait for samples: a short interval keeps that wait short
JOB = "edge-caches"


def candidate_ports(first: int = DEFAULT_PORT, count: int = 50) -> list[int]:
    return [first + i for i in range(count)]


def plan_prometheus(paths: LabPaths) -> PrometheusState:
    """A fresh Prometheus setup on the first free loopback port."""
    for port in candidate_ports():
        if port_free(port):
            return PrometheusState(
                endpoint=f"http://{LOOPBACK}:{port}",
                port=port,
                data_dir=paths.prometheus_dir / "data",
                config=paths.prometheus_dir / "prometheus.yml",
                targets_dir=paths.prometheus_targets,
                log=paths.logs / "prometheus.log",
            )
    raise LabError(f"no free loopback port for Prometheus (tried {DEFAULT_PORT} upwards)")


def prometheus_config(targets_dir: Path) -> dict[str, Any]:
    """prometheus.yml: one job, its targets from the JSON files in `targets_dir`."""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": JOB,
                "file_sd_configs": [{"files": [str(targets_dir / "*.json")], "refresh_interval": "1s"}],
            }
        ],
    }


def prometheus_command(binary: str, state: PrometheusState) -> list[str]:
    return [
        binary,
        f"--config.file={state.config}",
        f"--storage.tsdb.path={state.data_dir}",
        f"--web.listen-address={LOOPBACK}:{state.port}",
        "--storage.tsdb.retention.time=2h",
        # No remote-write or lifecycle endpoints: only queries and the UI, on loopback.
        "--log.level=warn",
    ]


def find_binary() -> str:
    """Debian installs it as /usr/bin/prometheus (hack/setup.sh); EDGEROLL_PROMETHEUS overrides."""
    configured = os.environ.get("EDGEROLL_PROMETHEUS", "").strip()
    for candidate in (configured, "/usr/bin/prometheus"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise LabError("no prometheus binary (run `make setup`, which installs Debian's `prometheus`)")


def target_file(targets_dir: Path, name: str) -> Path:
    return targets_dir / f"{name}.json"


def register_target(targets_dir: Path, name: str, address: str, labels: Mapping[str, str]) -> Path:
    """Write one file_sd target file, atomically (Prometheus may read it at any moment); returns it."""
    targets_dir.mkdir(parents=True, exist_ok=True)
    path = target_file(targets_dir, name)
    tmp = path.with_suffix(".json.tmp")  # not *.json: Prometheus never reads a half-written file
    tmp.write_text(json.dumps([{"targets": [address], "labels": dict(labels)}]))
    tmp.replace(path)
    return path


class PrometheusServer:
    def __init__(self, state: PrometheusState, binary: str | None = None) -> None:
        self.state = state
        self._binary = binary

    @property
    def binary(self) -> str:
        if self._binary is None:
            self._binary = find_binary()
        return self._binary

    def owns(self, pid: int) -> bool:
        argv = pid_cmdline(pid)
        return (
            len(argv) >= 2
            and Path(argv[0]).name == "prometheus"
            and f"--config.file={self.state.config}" in argv
        )

    def running(self) -> bool:
        pid = self.state.pid
        return pid is not None and OwnedProcess(pid, "Prometheus", self.owns).running()

    def healthy(self) -> bool:
        return http_status(f"{self.state.endpoint}/-/ready") == 200

    def start(self) -> PrometheusState:
        """Start on the recorded port with the recorded data; returns the state with its PID once ready."""
        if not port_free(self.state.port):
            raise LabError(f"Prometheus port {self.state.port} already in use")
        self.state.data_dir.mkdir(parents=True, exist_ok=True)
        self.state.targets_dir.mkdir(parents=True, exist_ok=True)
        # JSON is YAML: no yaml dependency for a file this small.
        self.state.config.write_text(json.dumps(prometheus_config(self.state.targets_dir), indent=2) + "\n")
        argv = prometheus_command(self.binary, self.state)
        pid = spawn_detached(argv, env=dict(os.environ), log=self.state.log, cwd=self.state.data_dir)
        self.state = self.state.model_copy(update={"pid": pid})

        def up() -> bool:
            if not pid_alive(pid):
                raise LabError(f"Prometheus exited during start-up; see {self.state.log}")
            return self.healthy()

        wait_for(up, timeout=START_TIMEOUT, interval=0.1, what=f"Prometheus at {self.state.endpoint}")
        return self.state

    def stop(self) -> None:
        if self.state.pid is not None:
            stop_processes([OwnedProcess(self.state.pid, "Prometheus", self.owns)], grace=STOP_GRACE)
        wait_for(
            lambda: not port_listening(self.state.port),
            timeout=10,
            interval=0.1,
            what=f"Prometheus port {self.state.port} to close",
        )
