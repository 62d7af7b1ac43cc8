"""Helpers for the progressive rollout suite on the lab (conftest.py holds the fixture).

Six targets or more: every lab edge twice, as EdgeClusters `<run>-<region>-a` and `<run>-<region>-b` whose
`spec.namespace` differ (`<ns>` and `<ns>-b`), so two independent edge caches of one RouterConfig share
an apiserver. Names sort as ap-a, ap-b, eu-a, eu-b, us-a, us-b: with `canary: 1`, ap-a is the canary.

Everything is scoped by one run id (hub namespace, EdgeClusters labelled `e2e-run=<id>`, edge namespaces,
S3 prefix) and the operator watches only its hub namespace, so the suite shares the lab with others.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.e2e.operator.operator_e2e_kit import OperatorE2E, broken_kubeconfig
from tests.polling import wait_until

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.render.revision import make_revision
from edgeroll.rollout.resources import edge_name

QUOTA = "e2e-no-new-pods"


@dataclass(frozen=True)
class Target:
    """One EdgeCluster: a lab edge and the namespace of its edge caches there."""

    name: str
    edge: str  # lab cluster: edge-eu, edge-us, edge-ap
    namespace: str
    kubeconfig: str = field(repr=False)


def ts(value: str | None) -> datetime:
    assert value, "a timestamp the rollout should have recorded"
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def digest_of(config: dict[str, Any]) -> str:
    """The digest the operator publishes for a Cosmo config (no overlays)."""
    return make_revision(ConfigFormat.COSMO, config).digest


def hold_for(seconds: float, check: Callable[[], None]) -> None:
    """`check()` must keep passing for `seconds`: what must not happen, watched throughout."""
    end = time.monotonic() + seconds
    checks = 0
    while time.monotonic() < end or checks < 3:
        check()  # a few kubectl calls: it paces itself
        checks += 1


def cosmo_variant(config: dict[str, Any], tag: str) -> dict[str, Any]:
    """The same graph with a comment in its schema: a new revision, same shape."""
    out = copy.deepcopy(config)
    out["engineConfig"]["graphqlSchema"] += f"\n# {tag}"
    return out


@dataclass
class RolloutLab:
    e2e: OperatorE2E
    targets: dict[str, Target]  # EdgeCluster name -> where its edge cache lives
    broken: dict[str, str] = field(default_factory=dict)  # EdgeCluster -> its good kubeconfig

    @property
    def names(self) -> list[str]:
        return sorted(self.targets)

    # --- hub ----------------------------------------------------------------------------------

    def apply(self, name: str, config: dict[str, Any], rollout: dict[str, Any], **spec: Any) -> None:
        self.e2e.apply(self.e2e.routerconfig(name, config, rollout=rollout, **spec), "--server-side")

    def status(self, name: str) -> dict[str, Any]:
        return self.e2e.status(name)

    def rollout(self, name: str) -> dict[str, Any]:
        return dict(self.status(name).get("rollout") or {})

    def wait_rollout(
        self,
        name: str,
        predicate: Callable[[dict[str, Any]], Any],
        timeout: float = 90,
        what: str = "rollout",
    ) -> dict[str, Any]:
        """Poll status until `predicate(status)`; the whole status is returned."""
        return self.e2e.wait_status(name, predicate, timeout=timeout, what=what)

    def wait_phase(
        self, name: str, phase: str, revision: str | None = None, timeout: float = 90
    ) -> dict[str, Any]:
        def done(st: dict[str, Any]) -> bool:
            r = st.get("rollout") or {}
            return r.get("phase") == phase and (revision is None or r.get("revision") == revision)

        return self.wait_rollout(name, done, timeout, what=f"rollout {phase}")

    def cli(self, *args: str) -> str:
        """`edgeroll rollout ...` as a user runs it, with the hub kubeconfig from KUBECONFIG."""
        env = {k: v for k, v in os.environ.items() if k not in ("EDGEROLL_HUB_KUBECONFIG", "KUBECONFIG")}
        env["KUBECONFIG"] = str(self.e2e.lab.kubeconfig("hub"))
        out = subprocess.run(
            [sys.executable, "-m", "edgeroll.cli", "rollout", *args, "-n", self.e2e.ns],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, f"edgeroll rollout {' '.join(args)}: {out.stdout}{out.stderr}"
        return out.stdout

    def events(self, name: str) -> list[dict[str, Any]]:
        return self.e2e.events(name)

    def reasons(self, name: str) -> list[str]:
        return [e.get("reason", "") for e in self.events(name)]

    def delete(self, name: str) -> None:
        self.e2e.hub("-n", self.e2e.ns, "delete", "routerconfig", name, "--wait=true", "--timeout=90s")

    # --- edges ----------------------------------------------------------------------------------

    def deployment(self, target: str, rc: str) -> dict[str, Any] | None:
        t = self.targets[target]
        out = self.e2e.lab.kubectl(
            t.edge,
            "-n",
            t.namespace,
            "get",
            "deployment",
            edge_name(self.e2e.ns, rc),
            "-o",
            "json",
            check=False,
        )
        if out.returncode != 0:
            if "NotFound" in out.stderr or "not found" in out.stderr:
                return None
            raise AssertionError(out.stderr)
        return dict(json.loads(out.stdout))

    def digest(self, target: str, rc: str) -> str | None:
        dep = self.deployment(target, rc)
        return (
            None if dep is None else dep["spec"]["template"]["metadata"]["annotations"]["edgeroll.io/digest"]
        )

    def generations(self, rc: str) -> dict[str, int]:
        out = {}
        for name in self.names:
            dep = self.deployment(name, rc)
            if dep is not None:
                out[name] = int(dep["metadata"]["generation"])
        return out

    def digests(self, rc: str) -> dict[str, str | None]:
        return {name: self.digest(name, rc) for name in self.names}

    # --- faults ---------------------------------------------------------------------------------

    def _set_kubeconfig(self, name: str, text: str) -> None:
        manifest = self.e2e.hub(
            "-n",
            self.e2e.ns,
            "create",
            "secret",
            "generic",
            f"kubeconfig-{name}",
            "--from-file=kubeconfig=/dev/stdin",
            "--dry-run=client",
            "-o",
            "yaml",
            input=text,
        ).stdout
        self.e2e.hub("apply", "-f", "-", input=manifest)

    @contextmanager
    def unreachable(self, name: str) -> Iterator[None]:
        """The EdgeCluster's kubeconfig Secret points at a closed port (the apiserver itself keeps running),
        until the block ends."""
        good = self.targets[name].kubeconfig
        path = Path(self.e2e.lab.edge_kubeconfigs[self.targets[name].edge])
        self._set_kubeconfig(name, broken_kubeconfig(path))
        try:
            wait_until(
                lambda: self.e2e.edgecluster_ready(name) == "False",
                timeout=60,
                message=f"EdgeCluster {name} seen unreachable",
            )
            yield
        finally:
            self._set_kubeconfig(name, good)

    def wait_reachable(self, name: str) -> None:
        wait_until(lambda: self.e2e.edgecluster_ready(name) == "True", timeout=60, message=f"{name} Ready")

    @contextmanager
    def no_new_pods(self, name: str) -> Iterator[None]:
        """Freeze the pod count of the target's edge namespace with a ResourceQuota: what runs keeps
        running, no new pod can be created, so a new revision never becomes Available there."""
        t = self.targets[name]

        def kubectl(*args: str, check: bool = True) -> str:
            return str(self.e2e.lab.kubectl(t.edge, "-n", t.namespace, *args, check=check).stdout)

        def quota() -> dict[str, Any]:
            return dict(json.loads(kubectl("get", "resourcequota", QUOTA, "-o", "json")))

        kubectl("create", "quota", QUOTA, "--hard=pods=1000")
        try:
            used = wait_until(lambda: quota().get("status", {}).get("used", {}).get("pods"), timeout=30)
            patch = json.dumps({"spec": {"hard": {"pods": used}}})
            kubectl("patch", "resourcequota", QUOTA, "--type=merge", "-p", patch)
            wait_until(
                lambda: quota()["status"]["hard"]["pods"] == used, timeout=30, message="quota in force"
            )
            yield
        finally:
            kubectl("delete", "resourcequota", QUOTA, "--ignore-not-found", check=False)


def assert_waves_in_order(rollout: dict[str, Any], soak: float) -> None:
    """No gate skipped: each wave started only after the previous one was healthy and had soaked, and
    every cluster moved only once its wave had started."""
    waves = rollout["waves"]
    for before, after in itertools.pairwise(waves):
        gap = ts(after["startedAt"]) - ts(before["healthyAt"])
        promoted = before.get("promoted", False)
        assert promoted or gap >= timedelta(seconds=soak), (before, after)
        assert ts(before["completedAt"]) <= ts(after["startedAt"])
    for record in rollout["clusters"]:
        wave = waves[record["wave"]]
        assert ts(record["movedAt"]) >= ts(wave["startedAt"]), record
        assert ts(record["readyAt"]) <= ts(wave["healthyAt"]) or record.get("stale"), (record, wave)
