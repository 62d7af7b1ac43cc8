"""`up`, `down` and `status`: the I/O that brings the lab to the wanted state and back.

`up` reuses whatever is healthy: the fast path is one /readyz per apiserver,
one S3 /healthz and a /proc look at each recorded PID. A stopped cluster is
restarted from its files (`kwokctl start cluster`); one that will not come back
is recreated. Clusters start one after another (2 cores).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgeroll.lab.handle import Lab
from edgeroll.lab.health import apiserver_ready, ready_node_count
from edgeroll.lab.kwok import KwokCluster
from edgeroll.lab.kwok_config import dump_yaml, kwokctl_configuration
from edgeroll.lab.layout import CLUSTER_NAMES, EDGE_LABELS, HUB, KWOK_COMPONENTS, NODES_PER_CLUSTER, LabPaths
from edgeroll.lab.locks import exclusive
from edgeroll.lab.processes import (
    LabError,
    OwnedProcess,
    find_pids,
    listener_pids,
    pid_alive,
    pid_cmdline,
    pid_environ,
    port_free,
    port_listening,
    rss_bytes,
    stop_processes,
    wait_for,
)
from edgeroll.lab.prometheus import PrometheusServer, plan_prometheus
from edgeroll.lab.report import ComponentHealth
from edgeroll.lab.seaweed import SeaweedServer, plan_s3
from edgeroll.lab.state import (
    PROMETHEUS_FAULT,
    S3_FAULT,
    ClusterState,
    LabState,
    PrometheusState,
    apiserver_fault,
    dump_state,
    lab_environment,
    parse_state,
    render_env_file,
)
from edgeroll.lab.toolchain import Toolchain, find_repo_root, locate_toolchain

Log = Callable[[str], None]
STOP_GRACE = 3.0


def _quiet(_: str) -> None:
    pass


@dataclass
class UpReport:
    lab: Lab
    started: list[str] = field(default_factory=list)  # components this call started or restarted
    reused: list[str] = field(default_factory=list)  # components that were already healthy
    seconds: float = 0.0

    @property
    def fresh(self) -> bool:
        """Nothing was running before: whoever called `up` owns the whole lab."""
        return not self.reused


@dataclass
class DownReport:
    stopped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _load_state(paths: LabPaths, log: Log) -> LabState | None:
    try:
        return parse_state(paths.state.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        log(f"ignoring unreadable {paths.state}: {exc}")
        return None


def _save_state(paths: LabPaths, state: LabState) -> None:
    tmp = paths.state.with_suffix(".tmp")
    tmp.write_text(dump_state(state))
    tmp.replace(paths.state)


def _write_env(paths: LabPaths, state: LabState) -> None:
    paths.env.write_text(render_env_file(lab_environment(state)))


def _cluster_healthy(kwok: KwokCluster, faults: set[str]) -> bool:
    """Ready and every component alive, or, for an apiserver a test stopped, the rest alive."""
    if not kwok.exists():
        return False
    if apiserver_fault(kwok.name) in faults:
        return all(kwok.component_alive(c) for c in KWOK_COMPONENTS if c != "kube-apiserver")
    return kwok.ready()[0] and all(kwok.component_alive(c) for c in KWOK_COMPONENTS)


def _s3_healthy(state: LabState, faults: set[str]) -> bool:
    if state.s3 is None:
        return False
    s3 = SeaweedServer(state.s3, state.weed)
    if state.s3.edge_secret_key is None:  # started before the lab had an edge key: restart it with one
        return False
    return S3_FAULT in faults or (s3.running() and s3.healthy())


def _prometheus_healthy(state: LabState, faults: set[str]) -> bool:
    if state.prometheus is None:
        return False
    server = PrometheusServer(state.prometheus)
    return PROMETHEUS_FAULT in faults or (server.running() and server.healthy())


def _healthy(state: LabState, paths: LabPaths, faults: set[str]) -> bool:
    """The fast path: every apiserver ready, every component alive, S3 and Prometheus healthy (faults
    excepted)."""
    if [c.name for c in state.clusters] != list(CLUSTER_NAMES) or not _s3_healthy(state, faults):
        return False
    if not _prometheus_healthy(state, faults):
        return False
    return all(_cluster_healthy(KwokCluster(c.name, paths, state.bin_dir), faults) for c in state.clusters)


def _cluster_state(kwok: KwokCluster) -> ClusterState:
    return ClusterState(
        name=kwok.name,
        role="hub" if kwok.name == HUB else "edge",
        labels=EDGE_LABELS.get(kwok.name, {}),
        workdir=kwok.workdir,
        kubeconfig=kwok.kubeconfig,
        server=kwok.endpoint().server,
        ports=kwok.ports(),
        pids=kwok.pids(),
    )


def _ensure_cluster(kwok: KwokCluster, faults: set[str], log: Log) -> str:
    """Bring one cluster to usable; returns what was done: reused, restarted or created."""
    if apiserver_fault(kwok.name) in faults and _cluster_healthy(kwok, faults):
        log(f"{kwok.name}: leaving kube-apiserver stopped, a test stopped it on purpose")
        return "reused"
    if _cluster_healthy(kwok, faults) and ready_node_count(kwok.endpoint()) >= NODES_PER_CLUSTER:
        return "reused"
    action = "created"
    taken = _ports_taken_by_others(kwok) if kwok.exists() else []
    if taken:  # kwokctl would wait minutes for components that cannot bind: start afresh at once
        log(f"{kwok.name}: recorded ports are held by other programs ({', '.join(taken)}), recreating")
        stop_processes(kwok.processes(), grace=STOP_GRACE)
        kwok.delete()
    elif kwok.exists():
        log(f"{kwok.name}: starting stopped components")
        try:
            kwok.start()
            action = "restarted"
        except LabError as exc:
            log(f"{kwok.name}: restart failed, recreating: {exc}")
            stop_processes(kwok.processes(), grace=STOP_GRACE)
            kwok.delete()
    if action == "created":
        t0 = time.monotonic()
        kwok.create()
        log(f"{kwok.name}: control plane up in {time.monotonic() - t0:.1f}s")
    kwok.scale_nodes(NODES_PER_CLUSTER)
    kwok.wait_usable(NODES_PER_CLUSTER)
    return action


def _ports_taken_by_others(kwok: KwokCluster) -> list[str]:
    """The cluster's recorded ports that a program not of this cluster listens on (e.g. another
    checkout's lab took them while this one was stopped)."""
    taken = []
    for component, port in sorted(kwok.ports().items()):
        holders = listener_pids(port)
        if holders and not any(kwok.owns(pid) for pid in holders):
            taken.append(f"{component}:{port} (pid {min(holders)})")
    return taken


def _prepare(paths: LabPaths, toolchain: Toolchain) -> None:
    for directory in (paths.kwok_workdir, paths.kwok_cache, paths.kube_cache, paths.logs):
        directory.mkdir(parents=True, exist_ok=True)
    config = kwokctl_configuration(
        toolchain.bin_dir,
        kube_version=toolchain.kube_version,
        etcd_version=toolchain.etcd_version,
        cache_dir=paths.kwok_cache,
    )
    paths.kwok_config.write_text(dump_yaml(config))


def _ensure_prometheus(paths: LabPaths, state: LabState, faults: set[str], log: Log) -> tuple[LabState, bool]:
    """Start Prometheus unless it is healthy (or a test stopped it); returns the state and whether it
    started. Same port and data when it can, like S3."""
    if _prometheus_healthy(state, faults):
        if PROMETHEUS_FAULT in faults:
            log("prometheus: leaving it stopped, a test stopped it on purpose")
        return state, False
    server = PrometheusServer(state.prometheus or plan_prometheus(paths))
    if server.running():
        server.stop()
    strays = [OwnedProcess(pid, "stray Prometheus", server.owns) for pid in find_pids(server.owns)]
    stop_processes(strays, grace=STOP_GRACE)
    if not port_free(server.state.port):
        fresh = plan_prometheus(paths)
        server = PrometheusServer(
            server.state.model_copy(update={"port": fresh.port, "endpoint": fresh.endpoint})
        )
        log(f"prometheus: recorded port is taken, moving to {server.state.endpoint}")
    state = state.model_copy(update={"prometheus": server.state})
    _save_state(paths, state)  # the port first, so `down` can find a half-started Prometheus
    t0 = time.monotonic()
    state = state.model_copy(update={"prometheus": server.start()})
    _save_state(paths, state)
    log(f"prometheus: {server.state.endpoint} in {time.monotonic() - t0:.1f}s")
    return state, True


def up(root: Path | None = None, *, log: Log = _quiet) -> UpReport:
    """Start the lab, or reuse the healthy parts of a running one. Idempotent."""
    t0 = time.monotonic()
    paths = LabPaths(root or find_repo_root())
    if any(ch.isspace() for ch in str(paths.root)):
        raise LabError(
            f"checkout path {paths.root} has whitespace, which EDGEROLL_EDGE_KUBECONFIGS cannot carry"
        )
    paths.lab_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(paths.lock):
        toolchain = locate_toolchain(paths.root)
        state = _load_state(paths, log)
        if state is not None and state.bin_dir != toolchain.bin_dir:
            log(f"lab was built from {state.bin_dir}, now {toolchain.bin_dir}: recreating it")
            _down_locked(paths, log)
            state = None
        faults = state.active_faults(time.time()) if state is not None else set()
        if state is not None and _healthy(state, paths, faults):
            _write_env(paths, state)
            names = [*(c.name for c in state.clusters), "s3", "prometheus"]
            return UpReport(Lab(state), reused=names, seconds=time.monotonic() - t0)

        started: list[str] = []
        reused: list[str] = []
        if state is None:
            state = LabState(
                root=paths.root,
                bin_dir=toolchain.bin_dir,
                weed=toolchain.weed,
                kube_version=toolchain.kube_version,
            )
        _prepare(paths, toolchain)

        # S3 first: it takes a second, and a port clash shows up before the clusters are built.
        s3 = SeaweedServer(state.s3 or plan_s3(paths), toolchain.weed)
        if _s3_healthy(state, faults):
            if S3_FAULT in faults:
                log("s3: leaving SeaweedFS stopped, a test stopped it on purpose")
            reused.append("s3")
        else:
            if s3.running():
                s3.stop()
            # A weed on our data dir that the state lost track of (an `up` killed mid-start).
            strays = [OwnedProcess(pid, "stray SeaweedFS", s3.owns) for pid in find_pids(s3.owns)]
            stop_processes(strays, grace=STOP_GRACE)
            if not all(port_free(port) for port in s3.state.ports.values()):
                # Someone else took a port while weed was down: same data and keys, new ports.
                fresh = plan_s3(paths)
                s3 = SeaweedServer(
                    s3.state.model_copy(update={"ports": fresh.ports, "endpoint": fresh.endpoint}),
                    toolchain.weed,
                )
                log(f"s3: recorded ports are taken, moving to {s3.state.endpoint}")
            state = state.model_copy(update={"s3": s3.state})
            _save_state(paths, state)  # ports and credentials first, so `down` can find a half-started weed
            state = state.model_copy(update={"s3": s3.start()})
            started.append("s3")
            log(f"s3: SeaweedFS at {s3.state.endpoint}, bucket {s3.state.bucket}")
        _save_state(paths, state)
        state, prometheus_started = _ensure_prometheus(paths, state, faults, log)
        (started if prometheus_started else reused).append("prometheus")

        for name in CLUSTER_NAMES:
            kwok = KwokCluster(name, paths, toolchain.bin_dir)
            try:
                action = _ensure_cluster(kwok, faults, log)
            finally:
                if kwok.exists():  # record even a half-started cluster, so `down` stops it
                    state = state.with_cluster(_cluster_state(kwok))
                    _save_state(paths, state)
            (reused if action == "reused" else started).append(name)
            log(f"{name}: {action} ({kwok.endpoint().server})")

        _write_env(paths, state)
        return UpReport(Lab(state), started, reused, time.monotonic() - t0)


def _clusters_on_disk(paths: LabPaths) -> list[str]:
    clusters = paths.kwok_workdir / "clusters"
    return sorted(p.name for p in clusters.iterdir() if p.is_dir()) if clusters.is_dir() else []


def _lab_processes(state: LabState | None, paths: LabPaths) -> list[OwnedProcess]:
    """Recorded PIDs plus kwokctl's pid files, also of clusters a crashed `up` did not record."""
    recorded = {c.name: c.pids for c in state.clusters} if state else {}
    bin_dir = state.bin_dir if state else Path()
    targets: list[OwnedProcess] = []
    for name in sorted(set(recorded) | set(_clusters_on_disk(paths))):
        targets += KwokCluster(name, paths, bin_dir).processes(recorded.get(name))
    if state is not None and state.s3 is not None and state.s3.pid is not None:
        s3 = SeaweedServer(state.s3, state.weed)
        targets.append(OwnedProcess(state.s3.pid, "SeaweedFS", s3.owns))
    if state is not None and state.prometheus is not None and state.prometheus.pid is not None:
        prometheus = PrometheusServer(state.prometheus)
        targets.append(OwnedProcess(state.prometheus.pid, "Prometheus", prometheus.owns))
    # Anything else running a binary from the lab's directories, or weed on its data dir, was
    # started by the lab too (e.g. by an `up` that was killed before it could record it).
    known = {t.pid for t in targets}
    targets += [
        OwnedProcess(pid, f"lab process {' '.join(pid_cmdline(pid)[:2])}", lambda p: _lab_binary(paths, p))
        for pid in find_pids(lambda p: _lab_binary(paths, p))
        if pid not in known
    ]
    return targets


def _lab_listens(paths: LabPaths, port: int) -> bool:
    """Something of this lab still listens on `port`. A port another program holds now (another
    checkout's lab took it while this one was stopped) is not this lab's to wait for; one whose
    holder cannot be seen counts as the lab's."""
    if not port_listening(port):
        return False
    holders = listener_pids(port)
    return not holders or any(_lab_binary(paths, pid) for pid in holders)


def _lab_binary(paths: LabPaths, pid: int) -> bool:
    """A cluster component, weed on the lab's data, or kwokctl (and its kubectl) working in the lab."""
    argv = pid_cmdline(pid)
    if not argv:
        return False
    if argv[0].startswith(str(paths.kwok_workdir / "clusters") + "/"):
        return True
    if Path(argv[0]).name == "weed":
        return f"-dir={paths.s3_dir}" in argv
    if Path(argv[0]).name == "prometheus":
        return f"--config.file={paths.prometheus_dir / 'prometheus.yml'}" in argv
    if Path(argv[0]).name in ("kwokctl", "kubectl"):
        return pid_environ(pid).get("KWOK_WORKDIR") == str(paths.kwok_workdir)
    return False


def _lab_ports(state: LabState | None, paths: LabPaths) -> dict[str, int]:
    """Ports in the state, plus those of clusters that exist on disk only."""
    ports: dict[str, int] = {}
    for name in _clusters_on_disk(paths):
        with contextlib.suppress(OSError, ValueError):
            ports |= {f"{name} {c}": port for c, port in KwokCluster(name, paths, Path()).ports().items()}
    if state is not None:
        ports |= {f"{c.name} {name}": port for c in state.clusters for name, port in c.ports.items()}
        if state.s3 is not None:
            ports |= {f"s3 {name}": port for name, port in state.s3.ports.items()}
        if state.prometheus is not None:
            ports["prometheus"] = state.prometheus.port
    return ports


def _down_locked(paths: LabPaths, log: Log) -> DownReport:
    t0 = time.monotonic()
    report = DownReport()
    state = _load_state(paths, log)
    stopped = stop_processes(_lab_processes(state, paths), grace=STOP_GRACE)
    report.stopped = [f"{p.what} (pid {p.pid})" for p in stopped]
    for p in stopped:
        log(f"stopped {p.what} (pid {p.pid})")
    ports = _lab_ports(state, paths)

    def listening() -> list[str]:
        return [f"{name}:{port}" for name, port in ports.items() if _lab_listens(paths, port)]

    try:
        wait_for(lambda: not listening(), timeout=10, interval=0.1, what="the lab's ports to close")
    except LabError:
        raise LabError(f"lab stopped but these ports still listen: {', '.join(listening())}") from None
    # Lock files stay: a session waiting on them must keep waiting on the same inode.
    for path in (paths.kwok_workdir, paths.s3_dir, paths.prometheus_dir, paths.kube_cache, paths.kwok_cache):
        shutil.rmtree(path, ignore_errors=True)
    for path in (paths.state, paths.env):
        path.unlink(missing_ok=True)
    report.seconds = time.monotonic() - t0
    return report


def down(root: Path | None = None, *, log: Log = _quiet) -> DownReport:
    """Stop exactly the processes the lab started (by PID), check nothing listens, remove the lab's data."""
    paths = LabPaths(root or find_repo_root())
    if not paths.lab_dir.exists():
        return DownReport()
    with exclusive(paths.lock):
        return _down_locked(paths, log)


def status(root: Path | None = None) -> list[ComponentHealth]:
    """Health of every component the lab state records; empty if there is no lab."""
    paths = LabPaths(root or find_repo_root())
    state = _load_state(paths, _quiet)
    if state is None:
        return []
    rows: list[ComponentHealth] = []
    faults = state.active_faults(time.time())
    for cluster in state.clusters:
        kwok = KwokCluster(cluster.name, paths, state.bin_dir)
        pids = kwok.pids() if kwok.exists() else {}
        for component in KWOK_COMPONENTS:
            pid = pids.get(component)
            alive = pid is not None and pid_alive(pid) and kwok.owns(pid)
            port = cluster.ports.get(component)
            listening = port is not None and port_listening(port)
            if component == "kube-apiserver" and apiserver_fault(cluster.name) in faults:
                healthy, detail = False, "stopped by a test (stop_apiserver)"
            elif component == "kube-apiserver" and alive:
                healthy, detail = apiserver_ready(kwok.endpoint())
            else:
                healthy = alive and listening
                detail = "running" if healthy else ("not listening" if alive else "not running")
            rows.append(
                ComponentHealth(
                    cluster.name,
                    component,
                    healthy,
                    detail,
                    pid if alive else None,
                    port,
                    rss_bytes(pid) if alive and pid else 0,
                )
            )
        ready = ready_node_count(kwok.endpoint()) if kwok.exists() else 0
        labels = ",".join(f"{k}={v}" for k, v in cluster.labels.items())
        rows.append(
            ComponentHealth(
                cluster.name,
                "nodes",
                ready >= NODES_PER_CLUSTER,
                f"{ready}/{NODES_PER_CLUSTER} Ready" + (f"; {labels}" if labels else ""),
            )
        )
    if state.s3 is not None:
        s3 = SeaweedServer(state.s3, state.weed)
        alive = s3.running()
        healthy = alive and s3.healthy() and s3.bucket_exists()
        detail = (
            f"{state.s3.endpoint} bucket {state.s3.bucket}"
            if healthy
            else ("unhealthy" if alive else "not running")
        )
        if S3_FAULT in faults:
            detail = "stopped by a test (stop_s3)"
        pid = state.s3.pid if alive else None
        rows.append(
            ComponentHealth(
                "s3", "seaweedfs", healthy, detail, pid, state.s3.ports["s3"], rss_bytes(pid) if pid else 0
            )
        )
    if state.prometheus is not None:
        rows.append(_prometheus_row(state.prometheus, PROMETHEUS_FAULT in faults))
    return rows


def _prometheus_row(prometheus: PrometheusState, stopped_by_test: bool) -> ComponentHealth:
    server = PrometheusServer(prometheus)
    alive = server.running()
    healthy = alive and server.healthy()
    detail = prometheus.endpoint if healthy else ("unhealthy" if alive else "not running")
    if stopped_by_test:
        detail = "stopped by a test (stop_prometheus)"
    pid = prometheus.pid if alive else None
    return ComponentHealth(
        "prometheus", "prometheus", healthy, detail, pid, prometheus.port, rss_bytes(pid) if pid else 0
    )
