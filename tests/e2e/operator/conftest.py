"""The `ops` fixture: a real `edgeroll operator` process and EdgeClusters for the lab's three edges.

Everything it creates is scoped by one run id (see operator_e2e_kit.py), so the
suite can share the lab with other suites.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator

import pytest
from operator_e2e_kit import ROOT, SIGNING_KEY, OperatorE2E, OperatorProcess, _free_port, _teardown
from tests.polling import wait_until

from edgeroll.lab import Lab


@pytest.fixture(scope="session")
def ops(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorE2E]:
    run = uuid.uuid4().hex[:6]
    ns = f"e2e-op-{run}"
    for crd in sorted((ROOT / "crds").glob("*.yaml")):
        lab.kubectl("hub", "apply", "--server-side", "--force-conflicts", "-f", str(crd))
    lab.kubectl(
        "hub",
        "wait",
        "--for=condition=Established",
        "crd/routerconfigs.edgeroll.io",
        "crd/edgeclusters.edgeroll.io",
        "--timeout=60s",
    )
    lab.kubectl("hub", "create", "namespace", ns)
    lab.kubectl(
        "hub", "-n", ns, "create", "secret", "generic", "signing", f"--from-literal=key={SIGNING_KEY}"
    )

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEROLL_")}
    env.update(lab.env())
    env["EDGEROLL_S3_PREFIX"] = f"e2e-{run}"
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
            e2e.add_edgecluster(name, labels, path.read_text())
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
