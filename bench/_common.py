"""Helpers shared by the benchmarks in bench/.

Every benchmark writes `bench/results/<name>.json` and prints, as its last
line, `BENCH <name> k=v ...` so CI and humans can grep one line per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import random
import signal
import socket
import statistics
import string
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile, p in [0, 100]."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return float(ordered[rank - 1])


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3) if denominator else float("nan")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def exit_on_sigterm() -> None:
    """Turn SIGTERM (a `kill`, a CI timeout) into SystemExit, so a benchmark's `finally` blocks still stop
    the operator and cache processes it started and delete what it created, as on Ctrl-C."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "loadavg_at_start": [round(x, 2) for x in load],
        "hostname_hash": uuid.uuid5(uuid.NAMESPACE_DNS, platform.node()).hex[:8],
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_result(name: str, data: Mapping[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def bench_line(name: str, figures: Mapping[str, float | int | str]) -> str:
    return f"BENCH {name} " + " ".join(f"{key}={value}" for key, value in figures.items())


def _words(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 10))) for _ in range(n)]


def realistic_router_config(target_bytes: int = 500_000, seed: int = 7) -> dict[str, Any]:
    """A Cosmo-style execution config (the protojson of RouterConfig) of about `target_bytes`.

    Shaped like what `wgc router compose` emits: per-subgraph datasource
    configurations with root/child nodes, federation SDL and keys, field
    configurations with arguments, and the composed schema as one big string,
    so it compresses like a real one (SDL text plus repetitive JSON keys).
    """
    rng = random.Random(seed)
    vocab = _words(rng, 600)
    scalars = ["ID", "String", "Int", "Float", "Boolean", "DateTime"]

    def type_name() -> str:
        return rng.choice(vocab).capitalize() + rng.choice(vocab).capitalize()

    datasources: list[dict[str, Any]] = []
    field_configs: list[dict[str, Any]] = []
    subgraphs: list[dict[str, Any]] = []
    schema_parts: list[str] = []
    config: dict[str, Any] = {}
    index = 0
    while True:
        name = f"{rng.choice(vocab)}-{index}"
        types = [type_name() for _ in range(rng.randint(8, 16))]
        sdl_lines: list[str] = []
        root_fields: list[str] = []
        child_nodes: list[dict[str, Any]] = []
        keys: list[dict[str, Any]] = []
        for t in types:
            fields = sorted(set(rng.sample(vocab, rng.randint(5, 14))))
            sdl_lines.append(f'type {t} @key(fields: "id") {{')
            sdl_lines.append("  id: ID!")
            for f in fields:
                sdl_lines.append(f"  {f}: {rng.choice([*scalars, *types])}{rng.choice(['', '!'])}")
            sdl_lines.append("}")
            child_nodes.append({"typeName": t, "fieldNames": ["id", *fields]})
            keys.append({"typeName": t, "selectionSet": "id"})
            root_field = f"{t[0].lower()}{t[1:]}"
            root_fields.append(root_field)
            field_configs.append(
                {
                    "typeName": "Query",
                    "fieldName": root_field,
                    "argumentsConfiguration": [{"name": "id", "sourceType": "FIELD_ARGUMENT"}],
                }
            )
        sdl_lines.append("type Query {")
        sdl_lines.extend(f"  {f}(id: ID!): {t}" for f, t in zip(root_fields, types, strict=True))
        sdl_lines.append("}")
        sdl = "\n".join(sdl_lines)
        schema_parts.append(sdl)
        url = f"http://{name}.svc.cluster.local:4001/graphql"
        datasources.append(
            {
                "id": str(index),
                "kind": "GRAPHQL",
                "rootNodes": [{"typeName": "Query", "fieldNames": root_fields}],
                "childNodes": child_nodes,
                "keys": keys,
                "requestTimeoutSeconds": "10",
                "customGraphql": {
                    "fetch": {
                        "url": {"staticVariableContent": url},
                        "method": "POST",
                        "body": {},
                        "baseUrl": {},
                        "path": {},
                    },
                    "subscription": {
                        "enabled": True,
                        "url": {"staticVariableContent": url},
                        "protocol": "GRAPHQL_SUBSCRIPTION_PROTOCOL_WS",
                        "websocketSubprotocol": "GRAPHQL_WEBSOCKET_SUBPROTOCOL_AUTO",
                    },
                    "federation": {"enabled": True, "serviceSdl": sdl},
                    "upstreamSchema": {"key": uuid.UUID(int=rng.getrandbits(128)).hex},
                },
            }
        )
        subgraphs.append({"id": str(uuid.UUID(int=rng.getrandbits(128))), "name": name, "routingUrl": url})
        index += 1
        config = {
            "compatibilityVersion": "1:0.1.0",
            "engineConfig": {
                "defaultFlushInterval": "500",
                "datasourceConfigurations": datasources,
                "fieldConfigurations": field_configs,
                "graphqlSchema": "\n\n".join(schema_parts),
                "stringStorage": {},
            },
            "subgraphs": subgraphs,
            "version": str(uuid.UUID(int=rng.getrandbits(128))),
        }
        # The composed schema appears twice in real configs (engine + client schema).
        config["engineConfig"]["graphqlClientSchema"] = config["engineConfig"]["graphqlSchema"]
        if len(json.dumps(config, separators=(",", ":"), ensure_ascii=False)) >= target_bytes:
            return config


# ---- the lab and a real operator process (propagation, fanout) ---------------------------------------

REPO = Path(__file__).resolve().parent.parent
BENCH_RUN_LABEL = "edgeroll.io/bench-run"  # on every EdgeCluster a benchmark creates; no `tier` label,
# so no RouterConfig of another session (they select `tier: edge`) ever targets a benchmark's clusters


def new_run_id() -> str:
    return uuid.uuid4().hex[:6]


def wait_for(predicate: Any, timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy (exceptions count as "not yet")."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except Exception as exc:  # an apiserver or S3 that is busy means "not yet"
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def proc_status_kib(pid: int, field: str) -> int:
    """A `VmRSS`/`VmHWM`-style field of /proc/<pid>/status, in KiB (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class OperatorProcess:
    """`edgeroll operator` as a child process of the benchmark, scoped to one hub namespace.

    Stopped by its pid only (SIGTERM, then SIGKILL), never by name.
    """

    def __init__(
        self, env: Mapping[str, str], args: Sequence[str], log_path: Path, python_args: Sequence[str] = ()
    ) -> None:
        self.port = free_port()
        self.python_args = list(python_args)  # e.g. ["-m", "cProfile", "-o", "out.prof"]
        self.env = dict(env)
        # Metrics on a free loopback port: benchmarks start several operators on one machine.
        liveness = f"http://127.0.0.1:{self.port}/healthz"
        self.args = [*args, "--liveness", liveness, "--metrics-addr", "127.0.0.1:0"]
        self.log_path = log_path
        self.proc: Any = None
        self.starts = 0

    def start(self, wait_live: bool = True) -> OperatorProcess:
        import subprocess

        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, *self.python_args, "-m", "edgeroll.cli", "operator", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait_live:
            wait_for(self.live, timeout=90, interval=0.1, what=f"operator liveness (log {self.log_path})")
        return self

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def live(self) -> bool:
        import urllib.request

        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"the operator exited; log:\n{self.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def peak_rss_mib(self) -> float:
        return round(proc_status_kib(self.pid, "VmHWM") / 1024, 1)

    def rss_mib(self) -> float:
        return round(proc_status_kib(self.pid, "VmRSS") / 1024, 1)

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def stop(self) -> None:
        import signal
        import subprocess

        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def kill9(self) -> None:
        """SIGKILL by pid: a crash, no shutdown handler runs (its Leases are not handed back)."""
        import signal

        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def metrics_text(self) -> str | None:
        """The operator's /metrics (it listens on a port of its own choosing and logs the URL)."""
        import re
        import urllib.request

        log = self.log_path.read_text(errors="replace")
        ports = re.findall(r"operator metrics on http://127\.0\.0\.1:(\d+)/metrics", log)
        if not ports:
            return None
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[-1]}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def step_totals(metrics: str | None) -> dict[str, tuple[float, int]]:
    """edgeroll_reconcile_duration_seconds per step: (sum of seconds, count), from a /metrics text."""
    totals: dict[str, tuple[float, int]] = {}
    for line in (metrics or "").splitlines():
        for suffix, slot in (("_sum", 0), ("_count", 1)):
            head = f"edgeroll_reconcile_duration_seconds{suffix}{{"
            if line.startswith(head):
                labels, _, value = line[len(head) :].partition("} ")
                step = labels.split('step="', 1)[-1].split('"', 1)[0]
                pair = list(totals.get(step, (0.0, 0)))
                pair[slot] = float(value) if slot == 0 else int(float(value))
                totals[step] = (float(pair[0]), int(pair[1]))
    return totals


def step_means_ms(
    before: Mapping[str, tuple[float, int]], after: Mapping[str, tuple[float, int]]
) -> dict[str, Any]:
    """Mean milliseconds and count of each reconcile step between two `step_totals`."""
    out: dict[str, Any] = {}
    for step, (total, count) in sorted(after.items()):
        t0, c0 = before.get(step, (0.0, 0))
        if count > c0:
            out[step] = {"mean_ms": round(1000 * (total - t0) / (count - c0), 1), "count": count - c0}
    return out


def operator_env(lab: Any, s3_prefix: str) -> dict[str, str]:
    """The environment of a benchmark's operator: the lab's, no stray EDGEROLL_*, its own S3 prefix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEROLL_")}
    env.update(lab.env())
    env["EDGEROLL_S3_PREFIX"] = s3_prefix
    return env


def kubectl_apply(lab: Any, cluster: str, objects: Sequence[Mapping[str, Any]], *extra: str) -> None:
    """One `kubectl apply` for many objects (a v1 List): one process instead of one per object."""
    body = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    lab.kubectl(cluster, "apply", *extra, "-f", "-", input=json.dumps(body), timeout=600)


def install_crds(lab: Any) -> None:
    for crd in sorted((REPO / "crds").glob("*.yaml")):
        lab.kubectl("hub", "apply", "--server-side", "--force-conflicts", "-f", str(crd))
    lab.kubectl(
        "hub",
        "wait",
        "--for=condition=Established",
        "crd/routerconfigs.edgeroll.io",
        "crd/edgeclusters.edgeroll.io",
        "--timeout=60s",
    )


def kubeconfig_secret(namespace: str, name: str, kubeconfig_text: str) -> dict[str, Any]:
    import base64

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"kubeconfig": base64.b64encode(kubeconfig_text.encode()).decode()},
    }


def edgecluster(
    name: str,
    labels: Mapping[str, str],
    secret_namespace: str,
    secret_name: str,
    edge_namespace: str,
    revision_switch: str | None = None,
) -> dict[str, Any]:
    """An EdgeCluster; `revision_switch` ("Restart" or "InPlace") sets spec.revisionSwitch, None leaves
    it out (the CRD's default, Restart)."""
    spec: dict[str, Any] = {
        "kubeconfigSecretRef": {"namespace": secret_namespace, "name": secret_name, "key": "kubeconfig"},
        "namespace": edge_namespace,
    }
    if revision_switch is not None:
        spec["revisionSwitch"] = revision_switch
    return {
        "apiVersion": "edgeroll.io/v1alpha1",
        "kind": "EdgeCluster",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": spec,
    }


def delete_s3_prefix(lab: Any, prefix: str) -> int:
    """Delete every object under `prefix/` in the lab bucket; returns how many."""
    s3 = lab.s3_client()
    deleted = 0
    token: dict[str, str] = {}
    while True:
        page = s3.list_objects_v2(Bucket=lab.s3_bucket, Prefix=prefix.rstrip("/") + "/", **token)
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        for i in range(0, len(keys), 500):
            s3.delete_objects(Bucket=lab.s3_bucket, Delete={"Objects": keys[i : i + 500], "Quiet": True})
        deleted += len(keys)
        if not page.get("IsTruncated"):
            return deleted
        token = {"ContinuationToken": page["NextContinuationToken"]}


def s3_listing(lab: Any, prefix: str) -> dict[str, tuple[str, str]]:
    """key -> (ETag, LastModified) of every object under `prefix/`."""
    s3 = lab.s3_client()
    out: dict[str, tuple[str, str]] = {}
    token: dict[str, str] = {}
    while True:
        page = s3.list_objects_v2(Bucket=lab.s3_bucket, Prefix=prefix.rstrip("/") + "/", **token)
        for o in page.get("Contents", []):
            out[o["Key"]] = (str(o["ETag"]), o["LastModified"].isoformat())
        if not page.get("IsTruncated"):
            return out
        token = {"ContinuationToken": page["NextContinuationToken"]}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class KubeWatch:
    """List, then watch, one collection on one apiserver, over raw HTTP (no client models).

    Keeps the latest object per namespace/name and a log of (monotonic time, event type, key,
    resourceVersion); `changed` is set on every event. Used to time when an object reaches a
    state (no polling) and to count the writes that changed objects.
    """

    def __init__(
        self, kubeconfig: Path, path: str, params: Mapping[str, str] | None = None, keep: bool = False
    ) -> None:
        import ssl

        import yaml

        cfg = yaml.safe_load(kubeconfig.read_text())
        cluster = cfg["clusters"][0]["cluster"]
        user = cfg["users"][0]["user"]
        self.server = str(cluster["server"]).rstrip("/")
        self._files: list[Any] = []

        def file_of(entry: Mapping[str, Any], name: str) -> str:
            if entry.get(name):
                return str(entry[name])
            import base64
            import tempfile

            handle = tempfile.NamedTemporaryFile(prefix="bench-kube-", suffix=".pem")  # noqa: SIM115
            handle.write(base64.b64decode(entry[f"{name}-data"]))
            handle.flush()
            self._files.append(handle)
            return handle.name

        self.ssl = ssl.create_default_context(cafile=file_of(cluster, "certificate-authority"))
        self.ssl.load_cert_chain(file_of(user, "client-certificate"), file_of(user, "client-key"))
        self.path = path
        self.params = dict(params or {})
        self.objects: dict[str, dict[str, Any]] = {}
        self.log: list[tuple[float, str, str, str]] = []
        self.keep = keep  # keep every version of every object (to show what a write changed)
        self.history: list[tuple[float, str, dict[str, Any]]] = []
        self.resource_version = ""
        self._task: Any = None
        self._session: Any = None
        self._changed: Any = None

    @staticmethod
    def key(obj: Mapping[str, Any]) -> str:
        meta = obj.get("metadata", {})
        return f"{meta.get('namespace', '')}/{meta.get('name', '')}"

    @property
    def changed(self) -> Any:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    async def start(self) -> KubeWatch:
        import aiohttp

        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl))
        async with self._session.get(f"{self.server}{self.path}", params=self.params) as resp:
            resp.raise_for_status()
            listed = await resp.json()
        self.resource_version = listed["metadata"]["resourceVersion"]
        for obj in listed.get("items", []):
            self.objects[self.key(obj)] = obj
        self._task = asyncio.create_task(self._watch())
        return self

    async def _watch(self) -> None:
        import aiohttp

        while True:
            params = {
                **self.params,
                "watch": "1",
                "resourceVersion": self.resource_version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "300",
            }
            try:
                timeout = aiohttp.ClientTimeout(total=None, sock_read=330)
                url = f"{self.server}{self.path}"
                async with self._session.get(url, params=params, timeout=timeout) as resp:
                    resp.raise_for_status()
                    buffer = b""
                    # Not line iteration: one event (a 500 KB RouterConfig) may exceed aiohttp's line limit.
                    async for chunk in resp.content.iter_any():
                        buffer += chunk
                        *lines, buffer = buffer.split(b"\n")
                        for line in lines:
                            if line.strip():
                                self._event(json.loads(line))
            except asyncio.CancelledError:
                raise
            except Exception:  # a restarting apiserver or an expired resourceVersion: list and watch again
                await asyncio.sleep(0.5)
                with contextlib.suppress(Exception):
                    async with self._session.get(f"{self.server}{self.path}", params=self.params) as resp:
                        listed = await resp.json()
                    self.resource_version = listed["metadata"]["resourceVersion"]

    def _event(self, event: Mapping[str, Any]) -> None:
        kind, obj = event.get("type", ""), event.get("object", {})
        rv = str(obj.get("metadata", {}).get("resourceVersion", ""))
        if rv:
            self.resource_version = rv
        if kind == "BOOKMARK":
            return
        if kind == "ERROR":
            raise RuntimeError(f"watch error: {obj}")
        key = self.key(obj)
        if kind == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = dict(obj)
        self.log.append((time.monotonic(), kind, key, rv))
        if self.keep:
            self.history.append((time.monotonic(), kind, dict(obj)))
        self.changed.set()

    async def wait_changed(self, timeout: float) -> None:
        """Wait for an event; clear `changed` *before* looking at `objects`, so none is missed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), timeout=timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._session is not None:
            await self._session.close()
        for handle in self._files:
            handle.close()


def tear_down_run(
    lab: Any,
    ns: str,
    *,
    operator_running: bool,
    stop_operator: Any,
    edgeclusters: Sequence[str],
    edges: Sequence[str],
    prefix: str,
) -> None:
    """Delete what a run created: its RouterConfigs while an operator still runs (their finalizers
    remove the edge objects), then stop the operator(s), strip finalizers left, and delete the
    EdgeClusters, the namespaces in the hub and every edge, and the S3 prefix."""
    try:
        if operator_running:
            lab.kubectl("hub", "-n", ns, "delete", "rtc", "--all", "--wait=false", check=False)
            with contextlib.suppress(TimeoutError):
                wait_for(
                    lambda: (
                        not lab.kubectl(
                            "hub", "-n", ns, "get", "rtc", "-o", "name", check=False
                        ).stdout.strip()
                    ),
                    timeout=60,
                    interval=0.5,
                    what="RouterConfigs finalized",
                )
    finally:
        stop_operator()
        for name in lab.kubectl("hub", "-n", ns, "get", "rtc", "-o", "name", check=False).stdout.split():
            patch = '{"metadata":{"finalizers":null}}'
            lab.kubectl("hub", "-n", ns, "patch", name, "--type=merge", "-p", patch, check=False)
        for ec in edgeclusters:
            lab.kubectl("hub", "delete", "edgecluster", ec, "--wait=false", check=False)
        lab.kubectl("hub", "delete", "namespace", ns, "--wait=false", check=False)
        for edge in edges:
            lab.kubectl(edge, "delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)
        with contextlib.suppress(Exception):
            delete_s3_prefix(lab, prefix)
