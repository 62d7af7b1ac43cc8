"""A RouterConfig's analysis queries only a Prometheus the operator's or an EdgeCluster's admin named."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from tests.unit.analysis_specs import metric, policy

from edgeroll.api.rollout import RolloutAnalysis, RolloutPolicy
from edgeroll.operator_main import add_arguments, load_settings
from edgeroll.rollout.prometheus_policy import prometheus_address_problem
from edgeroll.settings import SettingsError, settings_from_env

pytestmark = pytest.mark.unit

EDGE = "http://prometheus.monitoring:9090"


def analysis(*metrics: dict[str, Any]) -> RolloutAnalysis | None:
    return RolloutPolicy.model_validate(policy(*metrics)).analysis


def test_a_metric_without_an_address_uses_its_clusters_and_needs_no_permission() -> None:
    assert prometheus_address_problem(analysis(metric()), (), ()) is None


@pytest.mark.parametrize(
    ("address", "allowed", "edges"),
    [
        (EDGE, (), (EDGE,)),  # what a target EdgeCluster names
        (EDGE + "/", (), (EDGE,)),  # a trailing slash is the same server
        ("https://metrics.internal:443", ("https://metrics.internal:443",), ()),  # the operator's list
    ],
)
def test_an_address_the_admins_named_is_allowed(
    address: str, allowed: tuple[str, ...], edges: tuple[str, ...]
) -> None:
    spec = analysis(metric(prometheus={"query": "up", "address": address}))
    assert prometheus_address_problem(spec, allowed, edges) is None


def test_any_other_address_is_refused_naming_the_field_and_what_is_allowed() -> None:
    spec = analysis(
        metric(name="ok", prometheus={"query": "up", "address": EDGE}),
        metric(name="probe", prometheus={"query": "up", "address": "http://169.254.169.254"}),
    )

    problem = prometheus_address_problem(spec, (), (EDGE, None))

    assert problem == (
        "spec.rollout.analysis.metrics[1].prometheus.address: 'http://169.254.169.254' is not an allowed "
        f"Prometheus; allowed: {EDGE} (the operator's --allowed-prometheus-address, or a target "
        "EdgeCluster's spec.prometheus.address; leave it unset to use the cluster's)"
    )


def test_nothing_allowed_says_none() -> None:
    spec = analysis(metric(prometheus={"query": "up", "address": EDGE}))
    problem = prometheus_address_problem(spec, (), ())
    assert problem is not None and "allowed: (none)" in problem


def test_the_operator_reads_its_list_from_the_flag_or_the_environment() -> None:
    env = {"EDGEROLL_S3_BUCKET": "b", "AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert load_settings(parser.parse_args([]), env).allowed_prometheus_addresses == ()
    from_env = {**env, "EDGEROLL_ALLOWED_PROMETHEUS_ADDRESSES": f" {EDGE}, ,https://p2:9090 "}
    assert load_settings(parser.parse_args([]), from_env).allowed_prometheus_addresses == (
        EDGE,
        "https://p2:9090",
    )
    args = parser.parse_args(
        ["--allowed-prometheus-address", EDGE, "--allowed-prometheus-address", "https://p2"]
    )
    assert load_settings(args, from_env).allowed_prometheus_addresses == (EDGE, "https://p2")
    with pytest.raises(SettingsError, match="EDGEROLL_ALLOWED_PROMETHEUS_ADDRESSES must be URLs"):
        settings_from_env({**env, "EDGEROLL_ALLOWED_PROMETHEUS_ADDRESSES": f"{EDGE} https://p2"})
