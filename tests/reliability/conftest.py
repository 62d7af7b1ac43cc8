"""The `rel` fixture: a real `edgeroll operator` process and EdgeClusters for the lab's three edges.

It is the e2e suite's setup (tests/e2e/operator: `OperatorProcess`, `OperatorE2E`, `_teardown`),
reused from there, with its own run id, hub namespace and S3 prefix, so this suite can share a
session (and the lab) with the e2e suite. Fault tests stop lab components; each restores what it
stopped in a `finally`, so the lab is healthy for whatever runs next.

Run it on a lab of your own when others use the shared one (docs/reliability.md, "Running").
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# The e2e kit is a plain module in a folder without __init__.py; make it importable from here.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e" / "operator"))

from operator_e2e_kit import (
    OperatorProcess,
    _free_port,
    _teardown,
    kubeconfig_text,
    operator_env,
    prepare_hub,
)
from reliability_kit import FIGURES, Reliability
from tests.polling import wait_until

from edgeroll.lab import Lab

# Short leases (client-go's are 15/10/2 s): a restarted operator is a new lease holder and waits for
# the dead one's lease to expire, and these tests are about what a kill does to rollouts, not about
# failover time (bench/failover.py measures that with the defaults).
OPERATOR_ARGS = [
    "--lease-duration-seconds",
    "4",
    "--renew-deadline-seconds",
    "3",
    "--retry-period-seconds",
    "1",
    "--resync-seconds",
    "5",
    "--progress-seconds",
    "1",
    "--probe-seconds",
    "2",
    "--edge-timeout-seconds",
    "3",
]


@pytest.fixture(scope="session")
def rel(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reliability]:
    run = uuid.uuid4().hex[:6]
    ns = f"rel-{run}"
    prepare_hub(lab, ns)
    port = _free_port()
    env = operator_env(lab, f"rel-{run}")
    work = tmp_path_factory.mktemp("reliability")
    args = ["--namespace", ns, "--liveness", f"http://127.0.0.1:{port}/healthz", *OPERATOR_ARGS]
    operator = OperatorProcess(env=env, args=args, log_path=work / "operator.log", port=port)
    rel = Reliability(lab, run, ns, f"rel-{run}", {}, operator, work=work)
    try:
        for cluster, path in lab.edge_kubeconfigs.items():
            name = f"rel-{run}-{cluster.removeprefix('edge-')}"
            labels = {**lab.edge_labels[cluster], "tier": "edge", "e2e-run": run}
            rel.add_edgecluster(name, labels, kubeconfig_text(path))
            rel.edges[cluster] = name
        operator.start()
        for name in rel.edges.values():
            wait_until(
                lambda n=name: rel.edgecluster_ready(n) == "True",  # type: ignore[misc]
                timeout=60,
                message=f"EdgeCluster {name} Ready",
            )
        yield rel
    finally:
        _teardown(rel)
        sys.stderr.write(f"\nreliability operator log: {operator.log_path}\n")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("reliability figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
