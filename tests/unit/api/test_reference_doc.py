"""docs/reference.md is generated from the models and lists every CRD field."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from edgeroll.api.crds import all_crds
from edgeroll.api.crds_command import run as crds_command
from edgeroll.api.reference import render_reference

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
REFERENCE = ROOT / "docs" / "reference.md"


def test_committed_reference_is_not_stale() -> None:
    assert REFERENCE.read_text() == render_reference(), (
        "docs/reference.md differs from the models: run `make crds`"
    )


def _paths(node: dict[str, Any], path: str) -> list[str]:
    out = [path]
    children, suffix = node, ""
    for container, mark in (("items", "[]"), ("additionalProperties", "{}")):
        inner = node.get(container)
        if isinstance(inner, dict) and inner.get("properties"):
            children, suffix = inner, mark
    for name, sub in children.get("properties", {}).items():
        out += _paths(sub, f"{path}{suffix}.{name}")
    return out


@pytest.mark.parametrize("crd", all_crds(), ids=lambda c: c["spec"]["names"]["kind"])
def test_every_field_has_a_row_with_type_default_and_validation(crd: dict[str, Any]) -> None:
    text = render_reference()
    kind = crd["spec"]["names"]["kind"]
    section = text.split(f"## {kind}\n", 1)[1].split("\n## ", 1)[0]
    rows = {
        line.split(" | ")[0].strip("| `"): line for line in section.splitlines() if line.startswith("| `")
    }
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    for part in ("spec", "status"):
        for path in _paths(schema[part], part):
            assert path in rows, f"{kind}: no row for {path}"
            assert rows[path].count(" | ") == 4, rows[path]


def test_rows_carry_defaults_enums_ranges_and_rules() -> None:
    text = render_reference()
    assert "| `spec.cache.replicas` | integer | `2` | 0..1000 |" in text
    assert "| `spec.format` | string |  | required; one of `cosmo`, `json` |" in text
    assert "exactly one of spec.config or spec.configFrom must be set" in text
    assert '| `spec.namespace` | string | `"edgeroll-system"` |' in text


def test_check_reference_fails_when_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "reference.md"
    stale.write_text("# old\n")
    args = argparse.Namespace(write=[], check=[], reference=None, check_reference=str(stale))
    assert crds_command(args) == 1
    assert "is stale: run `make crds`" in capsys.readouterr().err
    args = argparse.Namespace(write=[], check=[], reference=str(stale), check_reference=str(stale))
    assert crds_command(args) == 0
