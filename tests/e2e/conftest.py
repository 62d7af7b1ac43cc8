"""Fixtures shared by the e2e suites that run on either provider: the scenarios and the rollout suite.

EDGEROLL_E2E_PROVIDER picks the clusters (`local`, the default: the kwokctl lab; `kind`: see
docs/e2e.md). `provider` is that choice, once per session. `chart` is the Helm chart installed into
the hub for one run, with the operator under the chart's ServiceAccount, once per session: the
scenarios build their fleet on it, and so does the rollout suite on kind (on the lab it keeps its own
operator process per module, see tests/e2e/rollout/conftest.py).

Tests marked `lab_only("why")` need the lab itself (local operator processes they kill by pid and
start again, say): with EDGEROLL_E2E_PROVIDER=kind they are skipped with that reason at collection,
before any fixture runs, and hack/e2e-kind.sh deselects them; `make test` runs them on the lab.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from tests.e2e.operator.operator_e2e_kit import SIGNING_KEY
from tests.e2e.providers.e2e_provider import ChartRun, E2EProvider, OperatorHandle, RunScope, apply_crds

PROVIDERS = ("local", "kind")


def provider_name() -> str:
    return os.environ.get("EDGEROLL_E2E_PROVIDER", "local")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """On kind, a `lab_only` test is skipped, saying why, before its fixtures could start a lab."""
    if provider_name() == "local":
        return
    for item in items:
        marker = item.get_closest_marker("lab_only")
        if marker is not None:
            why = marker.args[0] if marker.args else "it needs the lab"
            item.add_marker(pytest.mark.skip(reason=f"lab only: {why} (make test runs it on the lab)"))


@pytest.fixture(scope="session")
def provider(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[E2EProvider]:
    name = provider_name()
    work = tmp_path_factory.mktemp(f"provider-{name}")
    chosen: E2EProvider
    if name == "local":
        from tests.e2e.providers.local_provider import LocalProvider

        chosen = LocalProvider(request.getfixturevalue("lab"), work)
    elif name == "kind":
        from tests.e2e.providers.kind_provider import KindProvider

        chosen = KindProvider.create(work)
    else:
        pytest.fail(f"EDGEROLL_E2E_PROVIDER={name!r}: use one of {', '.join(PROVIDERS)}")
    try:
        yield chosen
    finally:
        chosen.close()


@pytest.fixture(scope="session")
def chart(provider: E2EProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartRun]:
    """CRDs, the run's hub namespaces with the signing Secret, the chart and its operator. Whoever uses
    it deletes what it created in those namespaces while the operator runs; this fixture then stops
    the operator, deletes the namespaces and uninstalls the release."""
    scope = RunScope.new("sc")
    clusters = provider.clusters
    work = tmp_path_factory.mktemp("scenarios")
    log_path = work / "operator.log"
    apply_crds(clusters)
    operator: OperatorHandle | None = None
    try:
        for ns in (scope.ns, scope.tenant_ns):
            clusters.kubectl("hub", "create", "namespace", ns)
            clusters.kubectl(
                "hub", "-n", ns, "create", "secret", "generic", "signing", f"--from-literal=key={SIGNING_KEY}"
            )
        operator = provider.install_operator(scope, log_path)
        yield ChartRun(provider, scope, operator, work, log_path)
    finally:
        if operator is not None:
            operator.stop()
        for ns in (scope.ns, scope.tenant_ns):
            clusters.kubectl("hub", "delete", "namespace", ns, "--wait=false", check=False)
        provider.uninstall_operator(scope)
        sys.stderr.write(f"\nscenario operator log: {log_path}\n")
