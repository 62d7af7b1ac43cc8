"""Helpers for the operator e2e suite (conftest.py holds the fixture).

The operator end to end: a real `edgeroll operator` process against the lab's hub, edges and S3.

One run id scopes everything this suite creates, so it can share the lab with
other suites: a hub namespace (RouterConfigs, Secrets), EdgeClusters labelled
`e2e-run=<id>`, the same namespace in every edge for the edge caches, and an
S3 prefix. The operator only watches that hub namespace.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tests.e2e.providers.e2e_provider import apply_crds
from tests.polling import wait_until

from edgeroll.lab import Lab
from edgeroll.rollout.resources import edge_name

ROOT = Path(__file__).resolve().parents[3]
DATA = Path(__file__).parent / "data"
SIGNING_KEY = "e2e-signing-key-of-32-bytes-long"  # a Cosmo router wants exactly 32 bytes
LOCAL_METRICS = ["--metrics-addr", "127.0.0.1:0"]  # loopback, a free port


def prepare_hub(lab: Lab, ns: str) -> None:
    """CRDs applied and Established, the run's namespace, and its signing-key Secret."""
    apply_crds(lab)
    prepare_namespace(lab, ns)


def prepare_namespace(lab: Lab, ns: str) -> None:
    """A hub namespace with the signing-key Secret every test RouterConfig names."""
    lab.kubectl("hub", "create", "namespace", ns)
    lab.kubectl(
        "hub", "-n", ns, "create", "secret", "generic", "signing", f"--from-literal=key={SIGNING_KEY}"
    )


def operator_env(lab: Lab, s3_prefix: str) -> dict[str, str]:
    """This process's environment without stray EDGEROLL_* settings, plus the lab's (with its read-only
    edge key), under a run prefix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEROLL_")}
    env.update(lab.env())
    env["EDGEROLL_S3_PREFIX"] = s3_prefix
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OperatorProcess:
    """`edgeroll operator` as a child process we own (its pid only; never a name-based kill)."""

    env: dict[str, str]
    args: list[str]
    log_path: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            # Several test operators share the machine: each serves its metrics on a port of its own.
            metrics = [] if any(a.startswith("--metrics-addr") for a in self.args) else LOCAL_METRICS
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edgeroll.cli", "operator", *self.args, *metrics],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self.live, timeout=60, message=lambda: f"operator liveness; log:\n{self.tail()}")

    def live(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"operator exited; log:\n{self.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_since_start(self) -> str:
        return self.log().rsplit(f"===== start {self.starts} =====", 1)[-1]

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


@dataclass
class OperatorE2E:
    lab: Lab
    run: str
    ns: str
    prefix: str
    edges: dict[str, str]  # lab cluster name -> EdgeCluster name
    operator: OperatorProcess
    created_edgeclusters: list[str] = field(default_factory=list)

    # --- kubectl ------------------------------------------------------------------------------

    def hub(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.lab.kubectl("hub", *args, input=input, check=check)

    def apply(self, obj: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
        return self.hub("apply", *extra, "-f", "-", input=json.dumps(obj))

    def selector(self, **extra: str) -> dict[str, Any]:
        return {"matchLabels": {"tier": "edge", "e2e-run": self.run, **extra}}

    def routerconfig(self, name: str, config: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "format": "cosmo",
            "targets": {"clusterSelector": self.selector()},
            "signing": {"secretRef": {"name": "signing", "key": "key"}},
            "cosmo": {"organizationId": "org-e2e", "federatedGraphId": "graph-e2e"},
            "cache": {"replicas": 1},
        }
        if config is not None:
            body["config"] = config
        body.update(spec)
        return {
            "apiVersion": "edgeroll.io/v1alpha1",
            "kind": "RouterConfig",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": body,
        }

    def get(self, name: str) -> dict[str, Any]:
        out = self.hub("-n", self.ns, "get", "routerconfig", name, "-o", "json")
        return dict(json.loads(out.stdout))

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        return next((c for c in self.status(name).get("conditions", []) if c["type"] == type_), None)

    def events(self, name: str) -> list[dict[str, Any]]:
        """The hub's events about the RouterConfig `name`."""
        out = self.hub(
            "-n", self.ns, "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json"
        )
        return list(json.loads(out.stdout).get("items", []))

    def wait_ready(self, name: str, timeout: float = 120) -> dict[str, Any]:
        """kubectl wait --for=condition=Ready, then the status it waited for."""
        self.lab.kubectl(
            "hub",
            "-n",
            self.ns,
            "wait",
            "--for=condition=Ready",
            f"rtc/{name}",
            f"--timeout={int(timeout)}s",
            timeout=timeout + 30,
        )
        return self.status(name)

    def wait_status(
        self, name: str, predicate: Any, timeout: float = 120, what: str = "status"
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            st = self.status(name)
            return st if predicate(st) else None

        return dict(
            wait_until(
                check,
                timeout=timeout,
                interval=0.5,
                message=lambda: (
                    f"{what} of {name}: {json.dumps(self.status(name))[:3000]}\n{self.operator.tail()}"
                ),
            )
        )

    # --- edges ---------------------------------------------------------------------------------

    def edge_object(self, edge: str, kind: str, name: str) -> dict[str, Any] | None:
        out = self.lab.kubectl(edge, "-n", self.ns, "get", kind, name, "-o", "json", check=False)
        if out.returncode != 0:
            if "NotFound" in out.stderr or "not found" in out.stderr:
                return None
            raise AssertionError(out.stderr)
        return dict(json.loads(out.stdout))

    def edge_deployment(self, edge: str, rc_name: str) -> dict[str, Any] | None:
        return self.edge_object(edge, "deployment", edge_name(self.ns, rc_name))

    def edge_digest(self, edge: str, rc_name: str) -> str | None:
        dep = self.edge_deployment(edge, rc_name)
        if dep is None:
            return None
        return str(dep["spec"]["template"]["metadata"]["annotations"]["edgeroll.io/digest"])

    # --- S3 -------------------------------------------------------------------------------------

    def s3_key(self, rc_name: str, digest: str) -> str:
        return f"{self.prefix}/{self.ns}/{rc_name}/{digest.removeprefix('sha256:')}.json"

    def manifest(self, rc_name: str) -> dict[str, Any]:
        obj = self.lab.s3_client().get_object(
            Bucket=self.lab.s3_bucket, Key=f"{self.prefix}/{self.ns}/{rc_name}/manifest.json"
        )
        return {"etag": obj["ETag"], "body": json.loads(obj["Body"].read())}

    def s3_keys(self, rc_name: str) -> dict[str, Any]:
        listed = self.lab.s3_client().list_objects_v2(
            Bucket=self.lab.s3_bucket, Prefix=f"{self.prefix}/{self.ns}/{rc_name}/"
        )
        return {o["Key"]: o for o in listed.get("Contents", [])}

    # --- EdgeClusters -----------------------------------------------------------------------------

    def add_edgecluster(self, name: str, labels: dict[str, str], kubeconfig_text: str) -> None:
        secret = f"kubeconfig-{name}"
        self.hub(
            "-n",
            self.ns,
            "create",
            "secret",
            "generic",
            secret,
            "--from-file=kubeconfig=/dev/stdin",
            input=kubeconfig_text,
        )
        self.apply(
            {
                "apiVersion": "edgeroll.io/v1alpha1",
                "kind": "EdgeCluster",
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "kubeconfigSecretRef": {"namespace": self.ns, "name": secret, "key": "kubeconfig"},
                    "namespace": self.ns,
                },
            }
        )
        self.created_edgeclusters.append(name)

    def edgecluster_ready(self, name: str) -> str | None:
        out = self.hub("get", "edgecluster", name, "-o", "json")
        conds = json.loads(out.stdout).get("status", {}).get("conditions", [])
        return next((c["status"] for c in conds if c["type"] == "Ready"), None)


def cosmo_config() -> dict[str, Any]:
    """`wgc router compose` output for the graph in data/ (wgc 0.112.7)."""
    return dict(json.loads((DATA / "cosmo-products.json").read_text()))


def _teardown(e2e: OperatorE2E, tenant_namespaces: Sequence[str] = ()) -> None:
    lab = e2e.lab
    hub_namespaces = [e2e.ns, *tenant_namespaces]

    def left() -> list[str]:
        return [
            f"{ns}/{name}"
            for ns in hub_namespaces
            for name in lab.kubectl("hub", "-n", ns, "get", "rtc", "-o", "name", check=False).stdout.split()
        ]

    try:
        if e2e.operator.proc is not None and e2e.operator.proc.poll() is None:
            for ns in hub_namespaces:
                lab.kubectl("hub", "-n", ns, "delete", "routerconfigs", "--all", "--wait=false", check=False)
            with contextlib.suppress(AssertionError):
                wait_until(lambda: not left(), timeout=90, message="RouterConfigs finalized")
    finally:
        e2e.operator.stop()
        for ref in left():  # the operator could not finalize: do not leave the namespace stuck
            ns, name = ref.split("/", 1)
            patch = '{"metadata":{"finalizers":null}}'
            lab.kubectl("hub", "-n", ns, "patch", name, "--type=merge", "-p", patch, check=False)
        for name in e2e.created_edgeclusters:
            lab.kubectl("hub", "delete", "edgecluster", name, "--wait=false", check=False)
            # EdgeClusters carry no finalizer of ours; strip any, so a stopped operator never strands one.
            lab.kubectl(
                "hub",
                "patch",
                "edgecluster",
                name,
                "--type=merge",
                "-p",
                '{"metadata":{"finalizers":null}}',
                check=False,
            )
        for ns in hub_namespaces:
            lab.kubectl("hub", "delete", "namespace", ns, "--wait=false", check=False)
        for cluster in lab.edge_kubeconfigs:
            lab.kubectl(cluster, "delete", "namespace", e2e.ns, "--wait=false", check=False)


def kubeconfig_text(path: Path) -> str:
    """The kubeconfig with its certificate files inlined: the operator refuses file paths in a Secret."""
    cfg = yaml.safe_load(path.read_text())
    for section, body, fields in (
        ("clusters", "cluster", ("certificate-authority",)),
        ("users", "user", ("client-certificate", "client-key")),
    ):
        for entry in cfg.get(section) or []:
            for key in fields:
                if key in entry[body]:
                    file = Path(entry[body].pop(key))
                    data = (file if file.is_absolute() else path.parent / file).read_bytes()
                    entry[body][f"{key}-data"] = base64.b64encode(data).decode()
    return str(yaml.safe_dump(cfg))


def broken_kubeconfig(path: Path) -> str:
    cfg = yaml.safe_load(kubeconfig_text(path))
    cfg["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"  # nothing listens there
    return str(yaml.safe_dump(cfg))


@contextlib.contextmanager
def running_operator(
    lab: Lab,
    log_dir: Path,
    kind: str,
    extra_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
    with_edges: bool = True,
    tenants: Sequence[str] = (),
) -> Iterator[OperatorE2E]:
    """An `edgeroll operator` of a run of its own (hub namespace `e2e-<kind>-<run>`, fast loops), with an
    EdgeCluster per lab edge (flattened kubeconfigs) Ready unless `with_edges` is false; torn down after.
    Each of `tenants` is one more watched hub namespace, `<ns>-<tenant>` (see `tenant_view`)."""
    run = uuid.uuid4().hex[:6]
    ns = f"e2e-{kind}-{run}"
    prepare_hub(lab, ns)
    tenant_namespaces = [f"{ns}-{t}" for t in tenants]
    for tenant_ns in tenant_namespaces:
        prepare_namespace(lab, tenant_ns)
    port = _free_port()
    env = {**operator_env(lab, f"e2e-{run}"), **(extra_env or {})}
    args = ["--liveness", f"http://127.0.0.1:{port}/healthz"]
    for watched in (ns, *tenant_namespaces):
        args += ["--namespace", watched]
    args += ["--resync-seconds", "5", "--progress-seconds", "1", "--probe-seconds", "2"]
    args += ["--edge-timeout-seconds", "3", *extra_args]
    log_path = log_dir / "operator.log"
    operator = OperatorProcess(env=env, args=args, log_path=log_path, port=port)
    e2e = OperatorE2E(lab, run, ns, f"e2e-{run}", {}, operator)
    try:
        if with_edges:
            for cluster, path in lab.edge_kubeconfigs.items():
                name = f"e2e-{run}-{cluster.removeprefix('edge-')}"
                labels = {**lab.edge_labels[cluster], "tier": "edge", "e2e-run": run}
                e2e.add_edgecluster(name, labels, kubeconfig_text(path))
                e2e.edges[cluster] = name
        operator.start()
        for name in e2e.edges.values():
            wait_until(
                lambda n=name: e2e.edgecluster_ready(n) == "True",  # type: ignore[misc]
                timeout=60,
                message=f"EdgeCluster {name} Ready",
            )
        yield e2e
    finally:
        _teardown(e2e, tenant_namespaces)
        sys.stderr.write(f"\noperator log: {log_path}\n")


def tenant_view(e2e: OperatorE2E, hub_ns: str) -> OperatorE2E:
    """The same run seen from another hub namespace: RouterConfigs and their statuses there. Its edge
    caches are still in the run's edge namespace, `e2e.ns` (query them through `e2e`)."""
    return dataclasses.replace(e2e, ns=hub_ns)
