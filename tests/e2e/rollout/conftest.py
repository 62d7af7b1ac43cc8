"""The `fleet` fixture: one `edgeroll operator` process per test module, and six EdgeClusters.

Each module gets its own run id, hub namespace, operator and EdgeClusters (see rollout_e2e_kit.py), so
its kills and broken kubeconfigs touch nothing else. The operator polls fast (progress 1 s, probe 2 s)
so soaks and deadlines of a few seconds are observed on time.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator

import pytest
from rollout_e2e_kit import RolloutLab, Target
from tests.e2e.operator.operator_e2e_kit import (
    OperatorE2E,
    OperatorProcess,
    _free_port,
    _teardown,
    kubeconfig_text,
    operator_env,
    prepare_hub,
)
from tests.polling import wait_until

from edgeroll.lab import Lab


@pytest.fixture(scope="module")
def fleet(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RolloutLab]:
    run = uuid.uuid4().hex[:6]
    ns = f"e2e-ro-{run}"
    prepare_hub(lab, ns)
    port = _free_port()
    env = operator_env(lab, f"e2e-{run}")
    log_path = tmp_path_factory.mktemp("rollout-operator") / "operator.log"
    args = [
        "--namespace",
        ns,
        "--liveness",
        f"http://127.0.0.1:{port}/healthz",
        "--resync-seconds",
        "10",
        "--progress-seconds",
        "1",
        "--probe-seconds",
        "2",
        "--edge-timeout-seconds",
        "3",
    ]
    operator = OperatorProcess(env=env, args=args, log_path=log_path, port=port)
    e2e = OperatorE2E(lab, run, ns, f"e2e-{run}", {}, operator)
    fleet = RolloutLab(e2e, {})
    try:
        add_targets(fleet)
        operator.start()
        wait_targets_ready(fleet)
        yield fleet
    finally:
        _teardown(e2e)
        for edge in lab.edge_kubeconfigs:
            lab.kubectl(edge, "delete", "namespace", f"{ns}-b", "--wait=false", check=False)
        sys.stderr.write(f"\noperator log: {log_path}\n")


def add_targets(fleet: RolloutLab) -> None:
    """Six EdgeClusters: each lab edge twice (the run's namespace and `<ns>-b`), labelled with the run."""
    e2e, lab, run = fleet.e2e, fleet.e2e.lab, fleet.e2e.run
    for edge, path in sorted(lab.edge_kubeconfigs.items()):
        region = edge.removeprefix("edge-")
        for half, namespace in (("a", e2e.ns), ("b", f"{e2e.ns}-b")):
            name = f"r{run}-{region}-{half}"
            labels = {**lab.edge_labels[edge], "tier": "edge", "e2e-run": run, "half": half}
            kubeconfig = kubeconfig_text(path)
            add_edgecluster(e2e, name, labels, kubeconfig, namespace)
            fleet.targets[name] = Target(name, edge, namespace, kubeconfig)


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
