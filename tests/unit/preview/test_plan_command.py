"""`edgeroll plan` / `kubectl edgeroll plan`: the file, the output formats, the exit codes, the plugin."""

from __future__ import annotations

import argparse
import copy
import io
import json
import tomllib
from pathlib import Path

import pytest
import yaml
from tests.unit.pipeline.pipeline_fakes import World, configmap
from tests.unit.preview.preview_fakes import PreviewHub

from edgeroll import cli
from edgeroll.preview.cli import ManifestError, execute, parse_manifests

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def args(output: str = "text") -> argparse.Namespace:
    return argparse.Namespace(output=output, width=60, max_changes=20)


def manifest(w: World, spec: dict[str, object] | None = None, namespace: str | None = "prod") -> str:
    meta: dict[str, object] = {"name": w.name}
    if namespace is not None:
        meta["namespace"] = namespace
    rc = {
        "apiVersion": "edgeroll.io/v1alpha1",
        "kind": "RouterConfig",
        "metadata": meta,
        "spec": spec or w.spec,
    }
    return yaml.safe_dump_all([configmap("prod", "other", {"k": "v"}), rc])


def test_the_file_gives_routerconfigs_in_their_namespaces_and_its_configmaps() -> None:
    w = World()
    found = parse_manifests(manifest(w, namespace=None), "team", explicit=False)
    assert [rc["metadata"]["namespace"] for rc in found.routerconfigs] == ["team"]
    assert list(found.config_maps) == [("prod", "other")]
    listed = json.dumps({"apiVersion": "v1", "kind": "List", "items": found.routerconfigs})
    assert len(parse_manifests(listed, "x", explicit=False).routerconfigs) == 1


@pytest.mark.parametrize(
    ("text", "namespace", "explicit", "why"),
    [
        ("kind: ConfigMap\napiVersion: v1\nmetadata: {name: a}\n", "prod", False, "no RouterConfig"),
        ("apiVersion: edgeroll.io/v1alpha1\nkind: RouterConfig\nmetadata: {}\n", "prod", False, "without"),
        ("{not yaml", "prod", False, "not YAML"),
    ],
)
def test_a_file_without_a_usable_routerconfig_is_an_error(
    text: str, namespace: str, explicit: bool, why: str
) -> None:
    with pytest.raises(ManifestError, match=why):
        parse_manifests(text, namespace, explicit)


def test_a_namespace_that_contradicts_dash_n_is_an_error_as_with_kubectl() -> None:
    with pytest.raises(ManifestError, match="not -n other"):
        parse_manifests(manifest(World()), "other", explicit=True)


async def test_json_output_has_per_cluster_waves_digests_and_changes() -> None:
    w = World()
    served = {c.name: c.digest for c in (await w.converge()).clusters}
    spec = copy.deepcopy(w.spec)
    spec["config"]["engineConfig"]["defaultFlushInterval"] = "100"
    out = io.StringIO()
    code = await execute(args("json"), PreviewHub(w), parse_manifests(manifest(w, spec), "prod", False), out)
    assert code == 0
    (item,) = json.loads(out.getvalue())["items"]
    assert item["exists"] and item["refused"] is None and item["waves"] == ["all"]
    for cluster in item["clusters"]:
        assert cluster["wave"] == 1 and cluster["moves"] and cluster["servingDigest"] != cluster["digest"]
        assert cluster["changes"][0] == {
            "path": "$.engineConfig.defaultFlushInterval",
            "op": "changed",
            "old": '"500"',
            "new": '"100"',
        }
    assert {c["name"]: c["servingDigest"] for c in item["clusters"]} == served


async def test_a_refusal_is_printed_naming_the_field_and_exits_1() -> None:
    w = World()
    spec = {**copy.deepcopy(w.spec), "rollout": {"strategy": "AllAtOnce", "canary": 1}}
    out = io.StringIO()
    code = await execute(args(), PreviewHub(w), parse_manifests(manifest(w, spec), "prod", False), out)
    assert code == 1
    assert out.getvalue().startswith("routerconfig prod/graph: would be refused (InvalidSpec): spec.rollout")


def test_kubectl_edgeroll_is_a_console_script_offering_rollout_and_plan(
    capsys: pytest.CaptureFixture[str],
) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-edgeroll"] == "edgeroll.cli:kubectl_main"
    with pytest.raises(SystemExit):
        cli.kubectl_main(["--help"])
    help_text = capsys.readouterr().out
    commands = [line.split()[0] for line in help_text.splitlines() if line.startswith("    ")]
    assert help_text.startswith("usage: kubectl edgeroll") and commands[:2] == ["rollout", "plan"]
    assert "operator" not in help_text
    with pytest.raises(SystemExit):
        cli.kubectl_main(["operator"])  # not offered as a plugin command
    assert "invalid choice" in capsys.readouterr().err
