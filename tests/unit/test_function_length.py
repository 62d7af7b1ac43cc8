"""A house rule made checkable: no function in the package runs over 80 lines (docs/development.md).
Long functions hide their steps; split them into named ones instead of raising the limit."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "edgeroll"
LIMIT = 80


def test_no_function_runs_over_the_limit() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > LIMIT:
                    where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
                    long.append(f"{where} {node.name} ({length} lines)")
    assert not long, f"functions over {LIMIT} lines:\n" + "\n".join(long)
