"""The CRDs in crds/ and the chart are generated from the models, and are structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from edgeroll.api.crds import all_crds, rendered_files, stale_files

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("directory", ["crds", "charts/edgeroll/crds"])
def test_committed_crds_are_not_stale(directory: str) -> None:
    stale = stale_files(ROOT / directory)
    assert not stale, f"{directory}/{stale} differ from the models: run `make crds`"


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    if isinstance(node, dict):
        out.append((path, node))
        for name, sub in node.get("properties", {}).items():
            out.extend(_walk(sub, f"{path}.{name}"))
        if isinstance(node.get("items"), dict):
            out.extend(_walk(node["items"], f"{path}[]"))
        if isinstance(node.get("additionalProperties"), dict):
            out.extend(_walk(node["additionalProperties"], f"{path}{{}}"))
    return out


@pytest.mark.parametrize("crd", all_crds(), ids=lambda c: c["metadata"]["name"])
def test_schemas_are_structural(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        for banned in ("$ref", "anyOf", "allOf", "oneOf", "title", "$defs"):
            assert banned not in node, f"{path} has {banned}"
        if node.get("type") == "object" and "properties" not in node and "additionalProperties" not in node:
            assert node.get("x-kubernetes-preserve-unknown-fields") or path in (".metadata",), path


def test_routerconfig_crd_shape() -> None:
    crd = yaml.safe_load(rendered_files()["edgeroll.io_routerconfigs.yaml"])
    assert crd["spec"]["names"]["shortNames"] == ["rtc"]
    assert crd["spec"]["scope"] == "Namespaced"
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Format",
        "Digest",
        "Ready",
        "Wave",
        "Rollout",
        "Status",
        "Age",
        "Next Window",  # -o wide: status.rollout.window.nextOpenAt, empty unless windows hold a wave
        "Shard",  # -o wide: which shard and replica own it
        "Owner",
    ]
    wide = [c["name"] for c in version["additionalPrinterColumns"] if c.get("priority") == 1]
    assert wide == ["Next Window", "Shard", "Owner"]
    wave = next(c for c in version["additionalPrinterColumns"] if c["name"] == "Wave")
    assert wave["jsonPath"] == ".status.rollout.waveProgress"
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["config"]["x-kubernetes-preserve-unknown-fields"] is True
    assert spec["properties"]["overlays"]["items"]["properties"]["patch"][
        "x-kubernetes-preserve-unknown-fields"
    ]
    assert spec["properties"]["revisionHistoryLimit"]["default"] == 10
    assert spec["properties"]["cache"]["properties"]["port"]["default"] == 8080
    assert spec["properties"]["rollout"]["properties"]["strategy"]["enum"] == ["AllAtOnce", "Progressive"]
    rules = [v["rule"] for v in spec["x-kubernetes-validations"]]
    assert "has(self.config) != has(self.configFrom)" in rules
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"observedGeneration", "conditions", "revision", "clusters", "summary", "rollout"} <= status.keys()
    assert {"waveProgress", "phase", "waves", "clusters", "handled"} <= status["rollout"]["properties"].keys()


def test_edgecluster_crd_shape() -> None:
    crd = yaml.safe_load(rendered_files()["edgeroll.io_edgeclusters.yaml"])
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["shortNames"] == ["ec"]
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["namespace"]["default"] == "edgeroll-system"
    assert spec["properties"]["kubeconfigSecretRef"]["required"] == ["name", "key", "namespace"]
