"""Helpers for the progressive rollout suite, on the lab or on kind (conftest.py holds the fixture).

Six targets or more: every edge twice, as EdgeClusters `r<run>-<region>-a` and `r<run>-<region>-b` whose
`spec.namespace` differ (on the lab `<ns>` and `<ns>-b`, on kind `e2e-ro-<run>` and `e2e-ro-<run>-b`), so
two independent edge caches of one RouterConfig share an apiserver. Names sort as ap-a, ap-b, eu-a,
eu-b, us-a, us-b: with `canary: 1`, ap-a is the canary.

Everything is scoped by one run id (EdgeClusters labelled `e2e-run=<id>`, edge namespaces; on the lab
also the hub namespace and the S3 prefix) and the operator watches only its hub namespaces, so the
suite shares the clusters with others.

Two things differ by provider, each behind one method: how a new revision is made to fail at one target
(`new_revision_fails`: a ResourceQuota on the lab, bytes the caches refuse on kind) and how the operator
is killed (`restart_operator`: kill -9 and start of the local process on the lab; on kind, deletion of
the operator pod acting on the RouterConfig, whose shard the chart's other replica takes over).
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
from typing import TYPE_CHECKING, Any

from tests.e2e.operator.operator_e2e_kit import OperatorE2E, broken_kubeconfig
from tests.polling import wait_until

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.render.revision import make_revision
from edgeroll.rollout.resources import edge_name

if TYPE_CHECKING:
    from tests.e2e.providers.kind_provider import EdgeS3Proxy

QUOTA = "e2e-no-new-pods"
DIGEST = "edgeroll.io/digest"


@dataclass(frozen=True)
class Target:
    """One EdgeCluster: an edge and the namespace of its edge caches there."""

    name: str
    edge: str  # edge cluster: edge-eu, edge-us, edge-ap
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
    provider: str = "local"  # "local" (the lab) or "kind"
    edge_s3: EdgeS3Proxy | None = None  # kind: the proxy the edges read S3 through
    applied: set[str] = field(default_factory=set)  # RouterConfigs this module applied

    @property
    def on_kind(self) -> bool:
        return self.provider == "kind"

    @property
    def names(self) -> list[str]:
        return sorted(self.targets)

    # --- hub ----------------------------------------------------------------------------------

    def apply(self, name: str, config: dict[str, Any], rollout: dict[str, Any], **spec: Any) -> None:
        self.applied.add(name)
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
        env["KUBECONFIG"] = str(self.e2e.lab.hub_kubeconfig)
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
        """The digest `target` serves: its pod template's (`revisionSwitch: Restart`), else what every pod
        has said it serves, on the Deployment itself (`InPlace`)."""
        dep = self.deployment(target, rc)
        if dep is None:
            return None
        template, own = dep["spec"]["template"]["metadata"], dep["metadata"]
        return template.get("annotations", {}).get(DIGEST) or own.get("annotations", {}).get(DIGEST)

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
    def new_revision_fails(self, name: str, rc: str, digest: str) -> Iterator[None]:
        """While the block runs, the revision `digest` of `rc` can never become healthy at target `name`,
        while what runs there keeps running. On the lab a ResourceQuota freezes the pod count of the
        target's edge namespace (`no_new_pods`); kind forbids such tricks, so there the edge S3 proxy
        alters that revision's bytes on their way to the edges: every new cache pod refuses them (digest
        mismatch) and never turns Ready, while the operator, which reads S3 directly, sees nothing wrong.
        Only `name` may move to `digest` during the block: the proxy serves every edge."""
        if not self.on_kind:
            with self.no_new_pods(name):
                yield
            return
        assert self.edge_s3 is not None
        bucket, key = self.e2e.lab.s3_bucket, self.e2e.s3_key(rc, digest)
        served_before = int((self.edge_s3.state() or {}).get("served", 0))
        self.edge_s3.tamper(bucket, key)
        try:
            yield
            served = int((self.edge_s3.state() or {}).get("served", 0))
            assert served > served_before, (
                "no edge cache fetched the altered bytes: the failure is not theirs"
            )
        finally:
            self.edge_s3.restore(bucket, key)

    def restart_operator(self, rc: str) -> None:
        """The operator acting on `rc` is killed and another one carries on. On the lab: kill -9 of the
        operator process, then the same command started again (liveness awaited). On kind: the operator
        pod holding the Lease of `rc`'s shard is deleted with --grace-period=0 --force; the chart's other
        replica takes the shard over (awaited), and the Deployment's replacement pod is Ready on return."""
        if not self.on_kind:
            self.e2e.operator.kill9()
            self.e2e.operator.start()
            return
        shard = int(self.status(rc)["owner"]["shard"])
        victim, taker = self.e2e.operator.delete_shard_holder(shard)  # type: ignore[attr-defined]
        print(f"\noperator pod {victim} (shard {shard}) deleted; {taker} took the shard over")

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


# --- the fleet's EdgeClusters (conftest.py and test_rollout_ha.py) ---------------------------------------


def add_targets(fleet: RolloutLab, kubeconfig: Callable[[str], str], namespaces: tuple[str, str]) -> None:
    """Six EdgeClusters: each edge twice (edge namespaces `namespaces[0]` and `namespaces[1]`), labelled
    with the run. `kubeconfig(edge)` is the text the EdgeCluster's Secret holds for that edge."""
    e2e, run = fleet.e2e, fleet.e2e.run
    for edge in sorted(e2e.lab.edge_kubeconfigs):
        region = edge.removeprefix("edge-")
        text = kubeconfig(edge)
        for half, namespace in zip(("a", "b"), namespaces, strict=True):
            name = f"r{run}-{region}-{half}"
            labels = {**e2e.lab.edge_labels[edge], "tier": "edge", "e2e-run": run, "half": half}
            add_edgecluster(e2e, name, labels, text, namespace)
            fleet.targets[name] = Target(name, edge, namespace, text)


def wait_targets_ready(fleet: RolloutLab) -> None:
    for name in fleet.names:
        wait_until(
            lambda n=name: fleet.e2e.edgecluster_ready(n) == "True",  # type: ignore[misc]
            timeout=60,
            message=f"EdgeCluster {name} Ready",
        )


def add_edgecluster(
    e2e: OperatorE2E, name: str, labels: dict[str, str], kubeconfig: str, namespace: str
) -> None:
    secret = f"kubeconfig-{name}"
    e2e.hub(
        "-n",
        e2e.ns,
        "create",
        "secret",
        "generic",
        secret,
        "--from-file=kubeconfig=/dev/stdin",
        input=kubeconfig,
    )
    e2e.apply(
        {
            "apiVersion": "edgeroll.io/v1alpha1",
            "kind": "EdgeCluster",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "kubeconfigSecretRef": {"namespace": e2e.ns, "name": secret, "key": "kubeconfig"},
                "namespace": namespace,
            },
        }
    )
    e2e.created_edgeclusters.append(name)
