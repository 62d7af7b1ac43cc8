"""`kubectl edgeroll plan` before an apply: the digests and waves it shows are the ones the operator then
publishes and rolls out, and it changes nothing on the hub or the edges (issue 15, items 4 and 6).

The preview runs as a kubectl plugin: the real kubectl finds `kubectl-edgeroll` on PATH (the venv's bin)
and runs it with the user's KUBECONFIG, as a platform engineer would. Two steps: a new RouterConfig (a
canary wave, an overlay for the EU edge, its config in a ConfigMap of the same file), then a new config
in that ConfigMap, previewed while the hub still holds the old one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from scenario_kit import ComposedGraph, Fleet, cosmo_variant
from tests.e2e.providers.e2e_provider import ROOT
from tests.polling import wait_until

from edgeroll.rollout.resources import edge_name

# The preview reads the hub and writes nothing: real pods add nothing to what this checks, and the
# kind run's minutes are CI's budget (docs/development.md).
LAB_ONLY = "reads the hub only; real pods add nothing to what it checks"
pytestmark = [pytest.mark.e2e, pytest.mark.lab_only(LAB_ONLY)]

NAME = "previewed"
POLICY = {"strategy": "Progressive", "canary": 1, "soakSeconds": 0, "progressDeadlineSeconds": 120}


def plugin_path(work: Path) -> str:
    """PATH for kubectl: the venv's bin (where `pip install -e` puts `kubectl-edgeroll`) and the pinned
    kubectl. A venv installed before the entry point existed lacks the script: then one written exactly
    as pip writes a console script, from pyproject.toml's own entry, stands in (`make setup` reinstalls
    when pyproject.toml changes)."""
    venv_bin = Path(sys.executable).parent
    dirs = [str(venv_bin)]
    if not (venv_bin / "kubectl-edgeroll").exists():
        entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["kubectl-edgeroll"]
        module, func = entry.split(":")
        shim = work / "plugin-bin" / "kubectl-edgeroll"
        shim.parent.mkdir(exist_ok=True)
        shim.write_text(f"#!{sys.executable}\nimport sys\nfrom {module} import {func}\nsys.exit({func}())\n")
        shim.chmod(0o755)
        dirs.insert(0, str(shim.parent))
    return os.pathsep.join(dirs)


def kubectl_edgeroll(fleet: Fleet, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`kubectl edgeroll ARGS` through the real kubectl, as a user with only KUBECONFIG set runs it."""
    clusters = fleet.provider.clusters
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEROLL_")}
    env["PATH"] = os.pathsep.join([plugin_path(fleet.work), str(clusters.bin_dir), "/usr/bin:/bin"])
    env["KUBECONFIG"] = str(clusters.hub_kubeconfig)
    result = subprocess.run(
        [str(clusters.bin_dir / "kubectl"), "edgeroll", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl edgeroll {' '.join(args)}: {result.returncode}\n{result.stderr}")
    return result


def manifest_file(fleet: Fleet, config: dict[str, Any], tag: str) -> Path:
    """A ConfigMap with the config and the RouterConfig that names it, in one file, as one applies them."""
    e2e = fleet.e2e
    overlay = {
        "clusterSelector": {"matchLabels": {"region": "eu"}},
        "patch": {"engineConfig": {"defaultFlushInterval": "250"}},
    }
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{NAME}-config", "namespace": e2e.ns},
        "data": {"config.json": json.dumps(config)},
    }
    rc = e2e.routerconfig(
        NAME,
        configFrom={"configMapKeyRef": {"name": f"{NAME}-config", "key": "config.json"}},
        overlays=[overlay],
        rollout=POLICY,
    )
    path = fleet.work / f"{NAME}-{tag}.yaml"
    path.write_text(yaml.safe_dump_all([cm, rc]))
    return path


def plan(fleet: Fleet, path: Path) -> dict[str, Any]:
    (item,) = json.loads(kubectl_edgeroll(fleet, "plan", "-f", str(path), "-o", "json").stdout)["items"]
    assert item["refused"] is None, item
    return dict(item)


def resource_versions(fleet: Fleet) -> dict[str, str]:
    """Every object the preview reads or could be taken to write: the RouterConfig, its ConfigMap and
    signing Secret on the hub, the EdgeClusters, and the RouterConfig's edge objects in every edge. (Other
    scenarios' objects are left out: their operator may still be at work on them.)"""
    e2e, out = fleet.e2e, {}
    for kind, name in (("routerconfig", NAME), ("configmap", f"{NAME}-config"), ("secret", "signing")):
        found = e2e.hub("-n", e2e.ns, "get", kind, name, "-o", "json", "--ignore-not-found").stdout
        out[f"hub/{kind}/{name}"] = json.loads(found)["metadata"]["resourceVersion"] if found else "absent"
    for name in e2e.edges.values():
        ec = json.loads(e2e.hub("get", "edgecluster", name, "-o", "json").stdout)
        # Generation and labels: the operator's prober rewrites an EdgeCluster's status on a heartbeat
        # (EDGEROLL_PROBE_HEARTBEAT_SECONDS), which is not the preview's doing.
        meta = ec["metadata"]
        out[f"hub/edgecluster/{name}"] = f"generation {meta['generation']} labels {meta.get('labels')}"
    for edge in sorted(e2e.edges):
        for kind in ("deployment", "service", "secret", "serviceaccount"):
            obj = e2e.edge_object(edge, kind, edge_name(e2e.ns, NAME))
            out[f"{edge}/{kind}"] = obj["metadata"]["resourceVersion"] if obj else "absent"
    return out


def settled_versions(fleet: Fleet) -> dict[str, str]:
    """The resourceVersions once two readings in a row agree (a rollout's last status writes are done)."""
    last: list[dict[str, str]] = [{}]

    def steady() -> dict[str, str] | None:
        now = resource_versions(fleet)
        agreed, last[0] = now == last[0], now
        return now if agreed else None

    return dict(wait_until(steady, timeout=60, interval=1.0, message="the objects stopped changing"))


def rolled_out(fleet: Fleet, digests: dict[str, str]) -> dict[str, Any]:
    return fleet.e2e.wait_status(
        NAME,
        lambda st: (
            st.get("phase") == "Ready"
            and st.get("rollout", {}).get("phase") == "Completed"
            and {c["name"]: c.get("digest") for c in st.get("clusters", [])} == digests
        ),
        timeout=240,
        what="the previewed revision rolled out",
    )


def test_the_preview_shows_what_the_operator_then_does_and_writes_nothing(
    fleet: Fleet, composed_graph: ComposedGraph
) -> None:
    e2e = fleet.e2e
    help_text = kubectl_edgeroll(fleet, "plan", "--help").stdout
    assert help_text.startswith("usage: kubectl edgeroll plan") and "--output" in help_text

    first = manifest_file(fleet, cosmo_variant(composed_graph.config, "preview-v1"), "v1")
    before = settled_versions(fleet)
    new = plan(fleet, first)
    assert resource_versions(fleet) == before, "the preview of a new RouterConfig wrote something"
    canary = sorted(e2e.edges.values())[0]
    assert not new["exists"] and new["waves"] == ["canary", "batch-1"]
    assert {c["name"]: c["waveName"] for c in new["clusters"]} == {
        n: "canary" if n == canary else "batch-1" for n in e2e.edges.values()
    }
    eu = next(c for c in new["clusters"] if c["name"] == fleet.edgecluster("edge-eu"))
    assert eu["digest"] != new["baseDigest"]
    assert [ch["path"] for ch in eu["changes"]] == ["$.engineConfig.defaultFlushInterval", "$.version"]

    e2e.hub("apply", "-f", str(first))
    wanted = {c["name"]: c["digest"] for c in new["clusters"]}
    status = rolled_out(fleet, wanted)
    assert {c["name"]: c["wave"] for c in status["clusters"]} == {
        c["name"]: c["waveName"] for c in new["clusters"]
    }
    assert status["rollout"]["revision"] == new["revision"]
    published = {key.rsplit("/", 1)[1] for key in e2e.s3_keys(NAME)}
    assert {d.removeprefix("sha256:") + ".json" for d in wanted.values()} <= published

    second = manifest_file(fleet, cosmo_variant(composed_graph.config, "preview-v2"), "v2")
    before = settled_versions(fleet)
    text = kubectl_edgeroll(fleet, "plan", "-f", str(second)).stdout
    change = plan(fleet, second)
    assert resource_versions(fleet) == before, "the preview of a change wrote something"
    assert "the rollout starts again from wave 1/2" in text and "$.engineConfig.graphqlSchema" in text
    assert change["exists"] and change["restartsRollout"]
    for cluster in change["clusters"]:
        assert cluster["servingDigest"] == wanted[cluster["name"]] and cluster["moves"]
        assert cluster["baseline"] == {"digest": wanted[cluster["name"]], "what": "what it serves"}
        assert cluster["changes"][0]["path"] == "$.engineConfig.graphqlSchema"

    e2e.hub("apply", "-f", str(second))
    rolled_out(fleet, {c["name"]: c["digest"] for c in change["clusters"]})
    shown = kubectl_edgeroll(fleet, "rollout", "status", NAME, "-n", e2e.ns).stdout
    assert shown.startswith(f"RouterConfig {e2e.ns}/{NAME}: Ready"), shown
