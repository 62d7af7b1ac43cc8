"""spec.rollout.analysis and EdgeCluster spec.prometheus: CEL conditions compiled when the spec is
validated, query templates with known references only, PromQL-safe substitution, and the CRD's rules."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from tests.unit.analysis_specs import metric, policy

from edgeroll.api.crds import rendered_files
from edgeroll.api.edgecluster import EdgeClusterSpec
from edgeroll.api.expressions import (
    ExpressionError,
    check_condition,
    check_query,
    evaluate_condition,
    substitute_query,
)
from edgeroll.api.rollout import RolloutPolicy, RolloutState
from edgeroll.pipeline.gather import spec_path

pytestmark = pytest.mark.unit


def test_an_analysis_parses_with_its_defaults() -> None:
    parsed = RolloutPolicy.model_validate(policy(metric(failureCondition="result >= 0.1", count=3)))

    assert parsed.analysis is not None and parsed.analysis.interval_seconds == 30
    (m,) = parsed.analysis.metrics
    assert (m.failure_limit, m.inconclusive_limit, m.count) == (0, 0, 3)
    assert m.prometheus.address is None and m.failure_condition == "result >= 0.1"
    assert RolloutPolicy.model_validate(parsed.to_wire()) == parsed


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("successCondition", "result <", "not valid CEL"),
        ("successCondition", "result.rate < 1", "field selection"),
        ("successCondition", "result + 1", "not a boolean"),
        ("successCondition", "errors < 1", "undeclared reference"),
        ("failureCondition", "result > 'high'", "evaluating"),
    ],
)
def test_a_bad_condition_is_refused_naming_its_field(field: str, value: str, why: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RolloutPolicy.model_validate(policy(metric(), metric(name="p99", **{field: value})))

    err = caught.value.errors()[0]
    assert spec_path(("rollout", *err["loc"])) == f"spec.rollout.analysis.metrics[1].{field}"
    assert why in err["msg"]


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ('x{c="${cluster.nam}"}', "unknown reference ${cluster.nam}"),
        ('x{c="${cluster.labels.}"}', "unknown reference"),
        ('x{c="${cluster.name"}', "unknown reference"),
        ("rate(x[1m]) > ${revision.digest", "unterminated"),
    ],
)
def test_a_query_with_an_unknown_reference_is_refused(query: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why.replace("$", r"\$").replace("{", r"\{")):
        RolloutPolicy.model_validate(policy(metric(prometheus={"query": query})))


@pytest.mark.parametrize(
    "spec",
    [
        policy(metric(), metric()),  # duplicate names
        policy(metric(count=0)),
        policy(metric(failureLimit=-1)),
        policy(metric(prometheus={"query": "up", "address": "prometheus:9090"})),  # no scheme
        policy(metric(prometheus={"query": "up", "address": "http://p:9090/?x=1"})),  # a query string
        policy(),  # no metrics
        policy(metric(), interval=0),
    ],
)
def test_malformed_analyses_are_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RolloutPolicy.model_validate(spec)


def test_substitution_fills_cluster_labels_and_digest() -> None:
    template = 'x{c="${cluster.name}",r="${cluster.labels.region}",d="${revision.digest}"} $${literal}'

    query = substitute_query(template, "edge-eu", {"region": "eu"}, "sha256:ab12")

    assert query == 'x{c="edge-eu",r="eu",d="sha256:ab12"} ${literal}'
    with pytest.raises(ExpressionError, match="no label 'tier'"):
        substitute_query('x{t="${cluster.labels.tier}"}', "edge-eu", {}, "sha256:ab12")


@given(st.text(max_size=40))
def test_a_substituted_value_never_ends_its_string_literal(value: str) -> None:
    """Whatever a label holds, the query keeps exactly one string literal, whose content is the value."""
    query = substitute_query('x{l="${cluster.labels.k}"}', "c", {"k": value}, "sha256:0")

    inner = query.removeprefix('x{l="').removesuffix('"}')
    assert _unquote(inner) == value


def _unquote(escaped: str) -> str:
    """PromQL's (Go's) unquoting of the escapes promql_string writes; an unescaped quote is a break-out."""
    out, i = [], 0
    while i < len(escaped):
        ch = escaped[i]
        assert ch not in "\"'`\n", f"unescaped {ch!r} in {escaped!r}"
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = escaped[i + 1]
        if nxt == "u":
            out.append(chr(int(escaped[i + 2 : i + 6], 16)))
            i += 6
        else:
            out.append({"n": "\n"}.get(nxt, nxt))
            i += 2
    return "".join(out)


def test_conditions_judge_the_value_and_refuse_nan() -> None:
    assert check_condition("result < 0.05") == "result < 0.05"
    assert evaluate_condition("result < 0.05", 0.01) is True
    assert evaluate_condition("result < 0.05", 0.5) is False
    with pytest.raises(ExpressionError, match="NaN"):
        evaluate_condition("result < 0.05", float("nan"))
    assert check_query("up $${not.a.ref}") == "up $${not.a.ref}"


def test_the_crd_carries_the_query_rule_and_the_edgecluster_default() -> None:
    files = {name: yaml.safe_load(text) for name, text in rendered_files().items()}
    rc = files["edgeroll.io_routerconfigs.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    analysis = rc["properties"]["spec"]["properties"]["rollout"]["properties"]["analysis"]
    item = analysis["properties"]["metrics"]["items"]
    query = item["properties"]["prometheus"]["properties"]["query"]
    assert "findAll" in query["x-kubernetes-validations"][0]["rule"]
    assert query["maxLength"] == 4096
    assert analysis["properties"]["metrics"]["x-kubernetes-list-map-keys"] == ["name"]
    ec = files["edgeroll.io_edgeclusters.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert "address" in ec["properties"]["spec"]["properties"]["prometheus"]["properties"]
    spec = EdgeClusterSpec.model_validate(
        {
            "kubeconfigSecretRef": {"namespace": "a", "name": "b", "key": "c"},
            "prometheus": {"address": "http://p:9090"},
        }
    )
    assert spec.prometheus is not None and spec.prometheus.address == "http://p:9090"


def test_status_analysis_round_trips() -> None:
    raw = {
        "analysis": [
            {
                "wave": 0,
                "metric": "error-rate",
                "phase": "Running",
                "tallies": [
                    {"cluster": "a", "successful": 1, "lastValue": 0.0, "lastTime": "2026-01-01T00:00:00Z"}
                ],
                "measurements": [
                    {"cluster": "a", "time": "2026-01-01T00:00:00Z", "value": 0.0, "verdict": "Successful"},
                    {
                        "cluster": "b",
                        "time": "2026-01-01T00:00:01Z",
                        "verdict": "Inconclusive",
                        "message": "empty",
                    },
                ],
            }
        ]
    }
    state = RolloutState.from_status(raw)
    assert RolloutState.from_status(state.to_status()) == state
    assert "value" not in state.to_status()["analysis"][0]["measurements"][1]
