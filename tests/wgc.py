"""`wgc router compose` (npm package wgc, installed by `make setup`) for suites that want real
Cosmo execution configs, composed at test time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest


def wgc() -> str:
    candidates = [
        os.environ.get("EDGEROLL_NPM_BIN", ""),
        str(Path.home() / ".cache" / "edgeroll" / "npm" / "node_modules" / ".bin"),
    ]
    for directory in candidates:
        if directory and (Path(directory) / "wgc").exists():
            return str(Path(directory) / "wgc")
    found = shutil.which("wgc")
    if not found:
        pytest.fail("`wgc` (npm package wgc) is not installed: run `make setup`")
    return found


def compose(graph_yaml: Path, out: Path) -> dict[str, Any]:
    """Compose the graph `graph_yaml` describes (its schema paths are relative to it) into `out`."""
    result = subprocess.run(
        [wgc(), "router", "compose", "-i", graph_yaml.name, "-o", str(out)],
        cwd=graph_yaml.parent,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"wgc router compose failed:\n{result.stdout}\n{result.stderr}"
    config = json.loads(out.read_text())
    assert {"engineConfig", "subgraphs"} <= set(config), sorted(config)
    return dict(config)
