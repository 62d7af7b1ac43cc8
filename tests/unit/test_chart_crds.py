"""The chart ships the same CRDs as crds/ (`make crds` writes both)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_chart_crds_match_top_level_crds() -> None:
    top = {p.name: p.read_bytes() for p in sorted((ROOT / "crds").glob("*.yaml"))}
    chart = {p.name: p.read_bytes() for p in sorted((ROOT / "charts/edgeroll/crds").glob("*.yaml"))}
    assert top, "crds/ is empty: run `make crds`"
    assert chart == top, "charts/edgeroll/crds differs from crds/: run `make crds`"
