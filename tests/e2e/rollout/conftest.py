"""The `fleet` fixture: per test module, an operator and six EdgeClusters, on the lab or on kind.

On the lab (EDGEROLL_E2E_PROVIDER=local, the default) each module gets its own run id, hub namespace,
`edgeroll operator` process and EdgeClusters (see rollout_e2e_kit.py), so its kills and broken
kubeconfigs touch nothing else. The operator polls fast (progress 1 s, probe 2 s) so soaks and
deadlines of a few seconds are observed on time.

On kind each module gets its own run id, EdgeClusters and edge namespaces, but the operator is the
session's chart install (`chart`, tests/e2e/conftest.py: two operator pods under the chart's
ServiceAccount, progress 1 s, probe 2 s) and the hub namespace is that install's second watched one
(`<ns>-a`), which the scenarios use only for one RouterConfig named `web`. One operator for the run,
because every operator on a hub probes every EdgeCluster and writes its status: a second release,
which may not read this one's kubeconfig Secrets, would report these EdgeClusters unreachable.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterator

import pytest
from rollout_e2e_kit import RolloutLab, add_targets, wait_targets_ready
from tests.e2e.operator.operator_e2e_kit import (
    OperatorE2E,
    OperatorProcess,
    _free_port,
    _teardown,
    kubeconfig_text,
    operator_env,
    prepare_hub,
)
from tests.e2e.providers.e2e_provider import ChartRun, E2EProvider
from tests.polling import wait_until

from edgeroll.lab import Lab


@pytest.fixture(scope="module")
def fleet(
    provider: E2EProvider, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RolloutLab]:
    if provider.name == "local":
        from tests.e2e.providers.local_provider import LocalProvider

        assert isinstance(provider, LocalProvider)
        yield from lab_fleet(provider.lab, tmp_path_factory)
    else:
        yield from chart_fleet(request.getfixturevalue("chart"))


def lab_fleet(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RolloutLab]:
    run = uuid.uuid4().hex[:6]
    ns = f"e2e-ro-{run}"
    prepare_hub(lab, ns)
    port = _free_port()
    env = operator_env(lab, f"e2e-{run}")
    log_path = tmp_path_factory.mktemp("rollout-operator") / "operator.log"
    args = [
        "--namespace",
        ns,
        "--liveness",
        f"http://127.0.0.1:{port}/healthz",
        "--resync-seconds",
        "10",
        "--progress-seconds",
        "1",
        "--probe-seconds",
        "2",
        "--edge-timeout-seconds",
        "3",
    ]
    operator = OperatorProcess(env=env, args=args, log_path=log_path, port=port)
    e2e = OperatorE2E(lab, run, ns, f"e2e-{run}", {}, operator)
    fleet = RolloutLab(e2e, {})
    try:
        add_targets(fleet, lambda edge: kubeconfig_text(lab.edge_kubeconfigs[edge]), (ns, f"{ns}-b"))
        operator.start()
        wait_targets_ready(fleet)
        yield fleet
    finally:
        _teardown(e2e)
        for edge in lab.edge_kubeconfigs:
            lab.kubectl(edge, "delete", "namespace", f"{ns}-b", "--wait=false", check=False)
        sys.stderr.write(f"\noperator log: {log_path}\n")


def chart_fleet(chart: ChartRun) -> Iterator[RolloutLab]:
    provider, scope, clusters = chart.provider, chart.scope, chart.provider.clusters
    run = uuid.uuid4().hex[:6]
    namespaces = (f"e2e-ro-{run}", f"e2e-ro-{run}-b")  # in the edges
    e2e = OperatorE2E(clusters, run, scope.tenant_ns, scope.prefix, {}, chart.operator)  # type: ignore[arg-type]
    edge_s3 = getattr(clusters, "edge_s3", None)
    fleet = RolloutLab(e2e, {}, provider=provider.name, edge_s3=edge_s3)
    try:
        add_targets(fleet, provider.edge_kubeconfig, namespaces)
        wait_targets_ready(fleet)
        yield fleet
    finally:
        chart_fleet_teardown(fleet, namespaces)
        sys.stderr.write(f"\noperator log (chart, shared with the scenarios): {chart.log_path}\n")


def chart_fleet_teardown(fleet: RolloutLab, namespaces: tuple[str, str]) -> None:
    """What the module created, and nothing of the session's: its RouterConfigs (finalized by the
    running operator, which removes their edge caches), EdgeClusters, their Secrets, edge namespaces."""
    e2e, clusters = fleet.e2e, fleet.e2e.lab
    for rc in sorted(fleet.applied):
        e2e.hub("-n", e2e.ns, "delete", "routerconfig", rc, "--ignore-not-found", "--wait=false", check=False)

    def left() -> list[str]:
        out = e2e.hub("-n", e2e.ns, "get", "rtc", "-o", "name", check=False).stdout.split()
        return [ref for ref in out if ref.rpartition("/")[2] in fleet.applied]

    with contextlib.suppress(AssertionError):
        wait_until(lambda: not left(), timeout=90, message="the module's RouterConfigs finalized")
    for ref in left():  # the operator could not finalize: do not leave the namespace stuck
        e2e.hub(
            "-n", e2e.ns, "patch", ref, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False
        )
    for name in e2e.created_edgeclusters:
        e2e.hub("delete", "edgecluster", name, "--wait=false", check=False)
        e2e.hub("-n", e2e.ns, "delete", "secret", f"kubeconfig-{name}", "--ignore-not-found", check=False)
    for edge in clusters.edge_kubeconfigs:
        for ns in namespaces:
            clusters.kubectl(edge, "delete", "namespace", ns, "--wait=false", check=False)
