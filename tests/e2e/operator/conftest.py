"""The `ops` fixture: a real `edgeroll operator` process and EdgeClusters for the lab's three edges.

Everything it creates is scoped by one run id (see operator_e2e_kit.py), so the
suite can share the lab with other suites.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from operator_e2e_kit import (
    OperatorE2E,
    running_operator,
)

from edgeroll.lab import Lab


@pytest.fixture(scope="session")
def ops(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorE2E]:
    with running_operator(lab, tmp_path_factory.mktemp("operator"), "op") as e2e:
        yield e2e
