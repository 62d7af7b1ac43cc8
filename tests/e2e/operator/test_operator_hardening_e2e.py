"""Issue 11, kubeconfig Secrets and startup errors, end to end on the lab: a real `edgeroll operator`
process, a real hub apiserver and real edge apiservers.

This module starts its own operator (not the suite's `ops`) because it needs probe heartbeats
every probe, so that "the marker never appears" is checked across probes, not after a sleep.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_e2e_kit import (
    OperatorE2E,
    _free_port,
    operator_env,
    running_operator,
)
from tests.polling import wait_until

from edgeroll.lab import Lab

pytestmark = pytest.mark.e2e


def flattened(lab: Lab, cluster: str) -> dict[str, Any]:
    """The cluster's kubeconfig with certificates inlined: the only shape an EdgeCluster Secret may have."""
    return dict(
        yaml.safe_load(lab.kubectl(cluster, "config", "view", "--raw", "--flatten", "--minify").stdout)
    )


@pytest.fixture(scope="module")
def hardened(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorE2E]:
    """No EdgeClusters of its own: each test adds the one it needs. lastProbeTime moves on every probe."""
    heartbeat = {"EDGEROLL_PROBE_HEARTBEAT_SECONDS": "1"}
    log_dir = tmp_path_factory.mktemp("hardened")
    with running_operator(lab, log_dir, "hard", extra_env=heartbeat, with_edges=False) as e2e:
        yield e2e


def edgecluster_status(e2e: OperatorE2E, name: str) -> dict[str, Any]:
    out = e2e.hub("get", "edgecluster", name, "-o", "json")
    return dict(json.loads(out.stdout).get("status") or {})


def reachable(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == "Reachable"), None)


def test_an_exec_kubeconfig_is_refused_by_field_and_its_command_never_runs(
    hardened: OperatorE2E, tmp_path: Path
) -> None:
    e2e = hardened
    marker = tmp_path / "exec-ran"
    cfg = flattened(e2e.lab, "edge-eu")
    cfg["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "/bin/sh",
            "args": ["-c", f"touch {marker}; exit 1"],
            "interactiveMode": "Never",
        }
    }
    name = f"e2e-{e2e.run}-exec"
    e2e.add_edgecluster(name, {"e2e-run": e2e.run, "tier": "exec"}, yaml.safe_dump(cfg))

    marker_seen: list[bool] = []
    probe_times: set[str] = set()

    def refused_across_probes() -> bool:
        status = edgecluster_status(e2e, name)
        marker_seen.append(marker.exists())
        cond = reachable(status)
        if cond is None or cond["status"] != "False":
            return False
        assert "users[0].user.exec" in cond["message"], cond["message"]
        probe_times.add(str(status.get("lastProbeTime")))
        return len(probe_times) >= 4  # refused again on at least four probes

    wait_until(
        refused_across_probes, timeout=90, message=lambda: f"{name} refused; log:\n{e2e.operator.tail()}"
    )
    cond = reachable(edgecluster_status(e2e, name))
    assert cond is not None and cond["reason"] == "Unreachable"
    assert "runs a command in the operator" in cond["message"] and "touch" not in cond["message"]
    assert not any(marker_seen) and not marker.exists()
    assert e2e.operator.live()  # the same process, still serving

    # The in-memory client (CA, client certificate and key from the Secret, no files) reaches a real edge.
    good = f"e2e-{e2e.run}-good"
    e2e.add_edgecluster(
        good, {"e2e-run": e2e.run, "tier": "good"}, yaml.safe_dump(flattened(e2e.lab, "edge-eu"))
    )
    wait_until(lambda: e2e.edgecluster_ready(good) == "True", timeout=60, message=f"{good} Ready")
    assert not marker.exists()


def test_the_operator_against_a_hub_that_answers_401_exits_and_says_so(lab: Lab, tmp_path: Path) -> None:
    cfg = flattened(lab, "hub")
    cfg["users"][0]["user"] = {"token": "garbage-not-a-token"}
    kubeconfig = tmp_path / "hub-401.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(cfg))
    env = operator_env(lab, f"e2e-401-{uuid.uuid4().hex[:6]}")
    port = _free_port()
    args = ["operator", "--hub-kubeconfig", str(kubeconfig), "--liveness", f"http://127.0.0.1:{port}/healthz"]
    done = subprocess.run(
        [sys.executable, "-m", "edgeroll.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "edgeroll operator: the hub refused the operator's credentials (401)" in done.stderr
    assert "CRDs are not installed" not in done.stderr and "Traceback" not in done.stderr
