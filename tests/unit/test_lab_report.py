"""`edgeroll lab status` table and the tooling parsers."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeroll.lab.processes import LabError
from edgeroll.lab.report import ComponentHealth, all_healthy, format_table, rss_by_cluster
from edgeroll.lab.toolchain import REQUIRED_BINARIES, find_repo_root, locate_toolchain, parse_versions_env

pytestmark = pytest.mark.unit

ROWS = [
    ComponentHealth("hub", "kube-apiserver", True, "readyz ok", 101, 32764, 300 * 2**20),
    ComponentHealth("hub", "etcd", True, "running", 100, 32765, 40 * 2**20),
    ComponentHealth("edge-eu", "kube-apiserver", False, "unreachable", None, 32758),
    ComponentHealth("s3", "seaweedfs", True, "http://127.0.0.1:18333", 7, 18333, 120 * 2**20),
]


def test_table_has_a_row_per_component_with_aligned_columns() -> None:
    lines = format_table(ROWS).splitlines()

    assert lines[0].split() == ["CLUSTER", "COMPONENT", "HEALTH", "PID", "PORT", "RSS", "DETAIL"]
    assert lines[1].split()[:6] == ["hub", "kube-apiserver", "ok", "101", "32764", "300Mi"]
    assert lines[3].split()[:6] == ["edge-eu", "kube-apiserver", "DOWN", "-", "32758", "-"]
    detail_column = lines[0].index("DETAIL")
    assert all(line[detail_column - 2 : detail_column] == "  " for line in lines[1:5])
    assert lines[-1] == "RSS: hub 340Mi, s3 120Mi"


def test_rss_is_summed_per_cluster() -> None:
    assert rss_by_cluster(ROWS) == {"hub": 340 * 2**20, "s3": 120 * 2**20}


def test_all_healthy() -> None:
    assert not all_healthy(ROWS)
    assert all_healthy([r for r in ROWS if r.healthy])
    assert not all_healthy([])


def test_versions_env_parsing() -> None:
    text = "# pinned\nK8S_VERSION=v1.34.4\n\nETCD_VERSION='v3.6.16'  # quoted\n"
    assert parse_versions_env(text) == {"K8S_VERSION": "v1.34.4", "ETCD_VERSION": "v3.6.16"}
    with pytest.raises(ValueError):
        parse_versions_env("not a pair\n")


def _fake_repo(root: Path) -> Path:
    (root / "hack").mkdir(parents=True)
    (root / "hack" / "versions.env").write_text("K8S_VERSION=v1.34.4\nETCD_VERSION=v3.6.16\n")
    (root / "pyproject.toml").write_text("[project]\nname='x'\n")
    return root


def test_repo_root_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    root = _fake_repo(tmp_path / "repo")
    deep = root / "a" / "b"
    deep.mkdir(parents=True)
    assert find_repo_root(deep) == root.resolve()


def test_toolchain_names_missing_binaries(tmp_path: Path) -> None:
    root = _fake_repo(tmp_path / "repo")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in REQUIRED_BINARIES[:-1]:
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)

    with pytest.raises(LabError, match=f"{REQUIRED_BINARIES[-1]}.*make setup"):
        locate_toolchain(root, {"EDGEROLL_BIN_DIR": str(bin_dir)})

    (bin_dir / REQUIRED_BINARIES[-1]).write_text("#!/bin/sh\n")
    (bin_dir / REQUIRED_BINARIES[-1]).chmod(0o755)
    toolchain = locate_toolchain(root, {"EDGEROLL_BIN_DIR": str(bin_dir)})
    assert (toolchain.bin_dir, toolchain.kube_version, toolchain.etcd_version) == (
        bin_dir,
        "v1.34.4",
        "v3.6.16",
    )
