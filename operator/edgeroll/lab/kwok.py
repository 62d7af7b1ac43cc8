"""One lab cluster run by `kwokctl --runtime binary`: create, scale, stop/start, delete."""

from __future__ import annotations

import os
from pathlib import Path

from edgeroll.lab.health import apiserver_ready, default_service_account_exists, ready_node_count
from edgeroll.lab.kwok_config import ApiEndpoint, cluster_ports, parse_kubeconfig
from edgeroll.lab.layout import KWOK_COMPONENTS, LabPaths
from edgeroll.lab.processes import (
    LabError,
    OwnedProcess,
    pid_alive,
    pid_cmdline,
    read_pid_file,
    run_logged,
    stop_processes,
    wait_for,
)

CREATE_TIMEOUT = 180.0
READY_TIMEOUT = 120.0


def kwokctl_environment(paths: LabPaths, bin_dir: Path) -> dict[str, str]:
    """kwokctl works in `.lab/kwok` and finds our kubectl first on PATH (it looks kubectl up there)."""
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG",) and not k.startswith("KWOK_")}
    env["KWOK_WORKDIR"] = str(paths.kwok_workdir)
    env["KUBECACHEDIR"] = str(paths.kube_cache)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


class KwokCluster:
    def __init__(self, name: str, paths: LabPaths, bin_dir: Path) -> None:
        self.name = name
        self.paths = paths
        self.bin_dir = bin_dir
        self.workdir = paths.cluster_dir(name)
        self.kubeconfig = self.workdir / "kubeconfig.yaml"
        self.log = paths.logs / f"kwokctl-{name}.log"

    # --- facts read from kwokctl's files -------------------------------------------------------

    def exists(self) -> bool:
        return (self.workdir / "kwok.yaml").is_file() and self.kubeconfig.is_file()

    def endpoint(self) -> ApiEndpoint:
        return parse_kubeconfig(self.kubeconfig.read_text(), self.workdir)

    def ports(self) -> dict[str, int]:
        return cluster_ports((self.workdir / "kwok.yaml").read_text())

    def pids(self) -> dict[str, int]:
        """PIDs kwokctl recorded for each component (`<workdir>/pids/<component>.pid`)."""
        found: dict[str, int] = {}
        for component in KWOK_COMPONENTS:
            pid = read_pid_file(self.workdir / "pids" / f"{component}.pid")
            if pid is not None:
                found[component] = pid
        return found

    def owns(self, pid: int) -> bool:
        """kwokctl runs each component from a symlink in `<workdir>/bin/`; anything else is not ours."""
        argv = pid_cmdline(pid)
        return bool(argv) and argv[0].startswith(str(self.workdir / "bin") + os.sep)

    def component_alive(self, component: str) -> bool:
        pid = self.pids().get(component)
        return pid is not None and pid_alive(pid) and self.owns(pid)

    def ready(self) -> tuple[bool, str]:
        if not self.exists():
            return False, "not created"
        return apiserver_ready(self.endpoint())

    # --- kwokctl ------------------------------------------------------------------------------

    def _kwokctl(self, *args: str, timeout: float, what: str) -> None:
        argv = [str(self.bin_dir / "kwokctl"), "--name", self.name, *args]
        run_logged(
            argv,
            env=kwokctl_environment(self.paths, self.bin_dir),
            log=self.log,
            timeout=timeout,
            what=f"{what} ({self.name})",
        )

    def create(self) -> None:
        # --kubeconfig "": do not add a context to ~/.kube/config.
        self._kwokctl(
            "create",
            "cluster",
            "--runtime",
            "binary",
            "--config",
            str(self.paths.kwok_config),
            "--kubeconfig",
            "",
            "--wait",
            f"{READY_TIMEOUT:.0f}s",
            timeout=CREATE_TIMEOUT,
            what="kwokctl create cluster",
        )

    def clear_stale_pid_files(self) -> list[str]:
        """Remove pid files of components that are gone. kwokctl tests a PID with signal 0, which
        a zombie passes, so it would skip restarting a killed component until PID 1 reaps it."""
        cleared = []
        for component, pid in self.pids().items():
            if not (pid_alive(pid) and self.owns(pid)):
                (self.workdir / "pids" / f"{component}.pid").unlink(missing_ok=True)
                cleared.append(component)
        return cleared

    def start(self) -> None:
        """Start the components that are not running (kwokctl skips running ones)."""
        self.clear_stale_pid_files()
        self._kwokctl(
            "start",
            "cluster",
            "--wait",
            f"{READY_TIMEOUT:.0f}s",
            timeout=CREATE_TIMEOUT,
            what="kwokctl start cluster",
        )

    def scale_nodes(self, replicas: int) -> None:
        self._kwokctl("scale", "node", "--replicas", str(replicas), timeout=60, what="kwokctl scale node")

    def delete(self) -> None:
        """Remove the cluster's files once its processes are stopped. delete rejects `--kubeconfig ""`,
        so it gets a lab-local file that holds no contexts."""
        if not self.workdir.exists():
            return
        self._kwokctl(
            "delete",
            "cluster",
            "--kubeconfig",
            str(self.paths.lab_dir / "kwok-contexts.yaml"),
            timeout=60,
            what="kwokctl delete cluster",
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def wait_usable(self, nodes: int, timeout: float = READY_TIMEOUT) -> None:
        """Ready apiserver, `nodes` Ready nodes and the default ServiceAccount (pods need it)."""
        endpoint = self.endpoint()
        wait_for(
            lambda: apiserver_ready(endpoint)[0],
            timeout=timeout,
            interval=0.2,
            what=f"{self.name} apiserver /readyz",
        )
        wait_for(
            lambda: ready_node_count(endpoint) >= nodes,
            timeout=timeout,
            interval=0.2,
            what=f"{nodes} Ready nodes in {self.name}",
        )
        wait_for(
            lambda: default_service_account_exists(endpoint),
            timeout=timeout,
            interval=0.2,
            what=f"ServiceAccount default/default in {self.name}",
        )

    def processes(self, extra_pids: dict[str, int] | None = None) -> list[OwnedProcess]:
        """Every component PID: pid files plus `extra_pids` (the lab state's snapshot)."""
        found = {(pid, component) for component, pid in self.pids().items()}
        found |= {(pid, component) for component, pid in (extra_pids or {}).items()}
        return [OwnedProcess(pid, f"{self.name} {component}", self.owns) for pid, component in sorted(found)]

    def stop_component(self, component: str, grace: float) -> None:
        pid = self.pids().get(component)
        if pid is None:
            raise LabError(f"{self.name}: no pid file for {component} in {self.workdir / 'pids'}")
        stop_processes([OwnedProcess(pid, f"{self.name} {component}", self.owns)], grace=grace)
