"""`Lab`: a handle on a running lab for tests, benchmarks and the demo."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeroll.lab.kwok import KwokCluster
from edgeroll.lab.layout import HUB, LabPaths
from edgeroll.lab.locks import exclusive
from edgeroll.lab.processes import LabError, port_listening, wait_for
from edgeroll.lab.prometheus import PrometheusServer
from edgeroll.lab.seaweed import SeaweedServer
from edgeroll.lab.state import (
    PROMETHEUS_FAULT,
    S3_FAULT,
    LabState,
    apiserver_fault,
    dump_state,
    lab_environment,
    parse_state,
)
from edgeroll.lab.toolchain import find_repo_root

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

APISERVER_STOP_GRACE = 3.0  # kube-apiserver drains for up to 60 s on SIGTERM; an outage need not wait


class KubectlError(LabError):
    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        self.result = result
        args = " ".join(result.args[1:]) if isinstance(result.args, list) else str(result.args)
        super().__init__(f"kubectl {args} exited {result.returncode}: {result.stderr.strip()}")


class Lab:
    """A running lab, as recorded in `.lab/state.json`. Get one from `edgeroll.lab.up()` or `Lab.load()`."""

    def __init__(self, state: LabState) -> None:
        self._state = state
        self.paths = LabPaths(state.root)

    @classmethod
    def load(cls, root: Path | None = None) -> Lab:
        """The lab recorded under `root` (default: the checkout around cwd); LabError if there is none."""
        paths = LabPaths(root or find_repo_root())
        try:
            text = paths.state.read_text()
        except FileNotFoundError:
            raise LabError(f"no lab at {paths.lab_dir}; run `edgeroll lab up`") from None
        return cls(parse_state(text))

    # --- what tests read ----------------------------------------------------------------------

    @property
    def state(self) -> LabState:
        return self._state

    @property
    def bin_dir(self) -> Path:
        return self._state.bin_dir

    @property
    def clusters(self) -> list[str]:
        return [c.name for c in self._state.clusters]

    @property
    def hub_kubeconfig(self) -> Path:
        return self._state.cluster(HUB).kubeconfig

    @property
    def edge_kubeconfigs(self) -> dict[str, Path]:
        return {c.name: c.kubeconfig for c in self._state.clusters if c.role == "edge"}

    @property
    def edge_labels(self) -> dict[str, dict[str, str]]:
        return {c.name: dict(c.labels) for c in self._state.clusters if c.role == "edge"}

    def kubeconfig(self, cluster: str) -> Path:
        return self._state.cluster(cluster).kubeconfig

    @property
    def _s3(self) -> SeaweedServer:
        if self._state.s3 is None:
            raise LabError("the lab has no S3 server recorded")
        return SeaweedServer(self._state.s3, self._state.weed)

    @property
    def s3_endpoint(self) -> str:
        return self._s3.state.endpoint

    @property
    def s3_bucket(self) -> str:
        return self._s3.state.bucket

    @property
    def access_key(self) -> str:
        return self._s3.state.access_key

    @property
    def secret_key(self) -> str:
        return self._s3.state.secret_key

    @property
    def region(self) -> str:
        return self._s3.state.region

    @property
    def _prometheus(self) -> PrometheusServer:
        if self._state.prometheus is None:
            raise LabError("the lab has no Prometheus recorded (run `edgeroll lab up`)")
        return PrometheusServer(self._state.prometheus)

    @property
    def prometheus_url(self) -> str:
        return self._prometheus.state.endpoint

    @property
    def prometheus_targets(self) -> Path:
        """Where scrape targets go (file_sd): the pod runner writes one file per edge cache it starts."""
        return self.paths.prometheus_targets

    def prometheus_query(self, promql: str, timeout: float = 5.0) -> list[dict[str, Any]]:
        """An instant query against the lab's Prometheus: the `result` list of a vector answer."""
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
            answer = json.loads(response.read())
        if answer.get("status") != "success":
            raise LabError(f"Prometheus refused {promql!r}: {answer.get('error')}")
        return list(answer["data"]["result"])

    def prometheus_targets_up(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The lab Prometheus's active targets (`/api/v1/targets`), each with its labels and health."""
        url = f"{self.prometheus_url}/api/v1/targets?state=active"
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
            return list(json.loads(response.read())["data"]["activeTargets"])

    def env(self) -> dict[str, str]:
        """What `.lab/env` exports, for `subprocess.run(..., env=os.environ | lab.env())`."""
        return lab_environment(self._state)

    def s3_client(self) -> S3Client:
        """boto3 S3 client for the lab; checksums only when required (boto3 >= 1.36 breaks SeaweedFS)."""
        import boto3  # imported here so `edgeroll lab` does not pay for boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 2, "mode": "standard"},
            ),
        )

    def kubectl(
        self, cluster: str, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the lab's kubectl against `cluster` ("hub", "edge-eu", ...). Raises KubectlError if `check`."""
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["KUBECACHEDIR"] = str(self.paths.kube_cache)
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig(cluster)), *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(result)
        return result

    # --- fault injection ----------------------------------------------------------------------
    # Each method re-reads the state under the lab lock, so it never writes back a stale snapshot
    # over another session's change, and records the fault so a concurrent `up` does not undo it.

    def _reload(self) -> LabState:
        try:
            self._state = parse_state(self.paths.state.read_text())
        except FileNotFoundError:
            raise LabError(f"the lab at {self.paths.lab_dir} was torn down") from None
        return self._state

    def _save(self, state: LabState) -> None:
        tmp = self.paths.state.with_suffix(".tmp")
        tmp.write_text(dump_state(state))
        tmp.replace(self.paths.state)
        self._state = state

    def _kwok(self, state: LabState, cluster: str) -> KwokCluster:
        state.cluster(cluster)  # KeyError naming the known clusters
        return KwokCluster(cluster, self.paths, state.bin_dir)

    def stop_s3(self) -> None:
        """Stop SeaweedFS (SIGTERM, by PID); returns once none of its ports listens."""
        with exclusive(self.paths.lock):
            state = self._reload()
            self._s3.stop()
            assert state.s3 is not None
            stopped = state.model_copy(update={"s3": state.s3.model_copy(update={"pid": None})})
            self._save(stopped.with_fault(S3_FAULT, time.time()))

    def start_s3(self) -> None:
        """Start SeaweedFS again on the same ports and data; returns once /healthz and the bucket answer."""
        with exclusive(self.paths.lock):
            state = self._reload()
            server = self._s3
            if not (server.running() and server.healthy()):
                state = state.model_copy(update={"s3": server.start()})
            self._save(state.without_fault(S3_FAULT))

    def stop_prometheus(self) -> None:
        """Stop Prometheus (SIGTERM, by PID); returns once its port no longer accepts connections."""
        with exclusive(self.paths.lock):
            state = self._reload()
            self._prometheus.stop()
            assert state.prometheus is not None
            stopped = state.model_copy(
                update={"prometheus": state.prometheus.model_copy(update={"pid": None})}
            )
            self._save(stopped.with_fault(PROMETHEUS_FAULT, time.time()))

    def start_prometheus(self) -> None:
        """Start Prometheus again on the same port and data; returns once /-/ready answers."""
        with exclusive(self.paths.lock):
            state = self._reload()
            server = self._prometheus
            if not (server.running() and server.healthy()):
                state = state.model_copy(update={"prometheus": server.start()})
            self._save(state.without_fault(PROMETHEUS_FAULT))

    def stop_apiserver(self, cluster: str) -> None:
        """Kill `cluster`'s kube-apiserver by PID; returns once its port no longer accepts connections."""
        with exclusive(self.paths.lock):
            state = self._reload()
            self._kwok(state, cluster).stop_component("kube-apiserver", grace=APISERVER_STOP_GRACE)
            port = state.cluster(cluster).ports.get("kube-apiserver")
            if port is not None:
                wait_for(
                    lambda: not port_listening(port),
                    timeout=10,
                    interval=0.1,
                    what=f"{cluster} apiserver port {port} to close",
                )
            self._save(state.with_fault(apiserver_fault(cluster), time.time()))

    def start_apiserver(self, cluster: str) -> None:
        """Start `cluster`'s stopped components (`kwokctl start cluster`); returns once /readyz is ok."""
        with exclusive(self.paths.lock):
            state = self._reload()
            kwok = self._kwok(state, cluster)
            kwok.start()
            kwok.wait_usable(nodes=0)
            recorded = state.cluster(cluster).model_copy(update={"pids": kwok.pids()})
            self._save(state.with_cluster(recorded).without_fault(apiserver_fault(cluster)))

    def __repr__(self) -> str:
        return f"Lab(root={str(self._state.root)!r}, clusters={self.clusters}, s3={self.s3_endpoint!r})"
