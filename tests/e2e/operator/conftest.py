"""The `ops` fixture: a real `edgeroll operator` process and EdgeClusters for the lab's three edges.

Everything it creates is scoped by one run id (see operator_e2e_kit.py), so the
suite can share the lab with other suites.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator

import pytest
from operator_e2e_kit import (
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


@pytest.fixture(scope="session")
def ops(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorE2E]:
    run = uuid.uuid4().hex[:6]
    ns = f"e2e-op-{run}"
    prepare_hub(lab, ns)

    port = _free_port()
    env = operator_env(lab, f"e2e-{run}")
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    args = [
        "--namespace",
        ns,
        "--liveness",
        f"http://127.0.0.1:{port}/healthz",
        "--resync-seconds",
        "5",
        "--progress-seconds",
        "1",
        "--probe-seconds",
        "2",
        "--edge-timeout-seconds",
        "3",
    ]
    operator = OperatorProcess(env=env, args=args, log_path=log_path, port=port)
    e2e = OperatorE2E(lab, run, ns, f"e2e-{run}", {}, operator)
    try:
        for cluster, path in lab.edge_kubeconfigs.items():
            name = f"e2e-{run}-{cluster.removeprefix('edge-')}"
            labels = {**lab.edge_labels[cluster], "tier": "edge", "e2e-run": run}
            e2e.add_edgecluster(name, labels, kubeconfig_text(path))
            e2e.edges[cluster] = name
        operator.start()
        for name in e2e.edges.values():
            wait_until(
                lambda n=name: e2e.edgecluster_ready(n) == "True",
                timeout=60,  # type: ignore[misc]
                message=f"EdgeCluster {name} Ready",
            )
        yield e2e
    finally:
        _teardown(e2e)
        sys.stderr.write(f"\noperator log: {log_path}\n")
