"""Lab state (`.lab/state.json`) and the `.lab/env` file it produces."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeroll.lab.layout import CLUSTER_NAMES, EDGE_LABELS, LabPaths
from edgeroll.lab.s3_config import identities
from edgeroll.lab.state import (
    FAULT_TTL,
    S3_FAULT,
    ClusterState,
    LabState,
    S3State,
    apiserver_fault,
    dump_state,
    lab_environment,
    parse_edge_kubeconfigs,
    parse_state,
    render_env_file,
)
from edgeroll.settings import settings_from_env

pytestmark = pytest.mark.unit

ROOT = Path("/work/repo")


def _cluster(name: str, port: int) -> ClusterState:
    workdir = LabPaths(ROOT).cluster_dir(name)
    return ClusterState(
        name=name,
        role="hub" if name == "hub" else "edge",
        labels=EDGE_LABELS.get(name, {}),
        workdir=workdir,
        kubeconfig=workdir / "kubeconfig.yaml",
        server=f"https://127.0.0.1:{port}",
        ports={"kube-apiserver": port},
        pids={"kube-apiserver": port + 1000},
    )


def _state() -> LabState:
    s3 = S3State(
        endpoint="http://127.0.0.1:18333",
        bucket="edgeroll",
        region="us-east-1",
        access_key="edgeroll-lab",
        secret_key="s3cr3t'$(rm -rf)",
        edge_access_key="edgeroll-lab-edge",
        edge_secret_key="edge-s3cr3t",
        data_dir=ROOT / ".lab/s3",
        log=ROOT / ".lab/logs/seaweedfs.log",
        ports={"s3": 18333},
        pid=42,
    )
    clusters = [_cluster(name, 32764 - 6 * i) for i, name in enumerate(CLUSTER_NAMES)]
    return LabState(
        root=ROOT,
        bin_dir=Path("/bin dir"),
        weed=Path("/venv/bin/weed"),
        kube_version="v1.34.4",
        clusters=clusters,
        s3=s3,
    )


def test_state_round_trips_through_json() -> None:
    state = _state().with_fault(S3_FAULT, 100.0)
    assert parse_state(dump_state(state)) == state


def test_state_of_another_version_is_rejected() -> None:
    text = dump_state(_state()).replace('"version": 1', '"version": 99')
    with pytest.raises(ValueError, match="lab down"):
        parse_state(text)


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValueError):
        parse_state(dump_state(_state()).replace('"version": 1', '"version": 1, "surprise": true'))


def test_environment_has_the_contract_variables() -> None:
    env = lab_environment(_state())

    assert env["EDGEROLL_HUB_KUBECONFIG"] == str(ROOT / ".lab/kwok/clusters/hub/kubeconfig.yaml")
    assert parse_edge_kubeconfigs(env["EDGEROLL_EDGE_KUBECONFIGS"]).keys() == set(EDGE_LABELS)
    assert env["EDGEROLL_S3_ENDPOINT"] == "http://127.0.0.1:18333"
    assert env["EDGEROLL_S3_BUCKET"] == "edgeroll"
    assert env["AWS_ACCESS_KEY_ID"] == "edgeroll-lab"
    assert env["AWS_SECRET_ACCESS_KEY"] == "s3cr3t'$(rm -rf)"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"


def test_an_operator_on_the_lab_gives_its_caches_a_key_of_their_own_without_the_development_flag() -> None:
    env = lab_environment(_state())
    assert env["EDGEROLL_EDGE_S3_ACCESS_KEY_ID"] == "edgeroll-lab-edge" != env["AWS_ACCESS_KEY_ID"]
    settings = settings_from_env(env)
    assert not settings.allow_shared_edge_key and settings.edge_s3.access_key_id == "edgeroll-lab-edge"


def test_the_lab_s3_edge_identity_only_reads_the_bucket() -> None:
    config = identities("edgeroll", operator=("op", "ops"), edge=("edge", "edges"))
    by_name = {i["name"]: i for i in config["identities"]}
    assert by_name["edge"]["actions"] == ["Read:edgeroll"]
    assert by_name["edge"]["credentials"] == [{"accessKey": "edge", "secretKey": "edges"}]
    assert "Write" in by_name["operator"]["actions"]  # type: ignore[operator]


def test_environment_needs_s3() -> None:
    with pytest.raises(ValueError, match="S3"):
        lab_environment(_state().model_copy(update={"s3": None}))


def test_edge_kubeconfig_paths_with_whitespace_are_refused() -> None:
    state = _state()
    spaced = state.with_cluster(
        state.cluster("edge-eu").model_copy(update={"kubeconfig": Path("/my repo/edge-eu.yaml")})
    )
    with pytest.raises(ValueError, match="whitespace"):
        lab_environment(spaced)


def test_env_file_exports_exactly_the_values() -> None:
    # A secret with quotes and `$(...)` must survive `source` unchanged; shlex parses like sh.
    env = lab_environment(_state()) | {"EXTRA": "a b\tc"}
    lines = [line for line in render_env_file(env).splitlines() if not line.startswith("#")]

    words = [shlex.split(line) for line in lines]

    assert all(w[0] == "export" and len(w) == 2 for w in words)
    assert dict(w[1].split("=", 1) for w in words) == env


def test_env_file_lines_are_exports() -> None:
    lines = [line for line in render_env_file({"A": "x y"}).splitlines() if not line.startswith("#")]
    assert lines == [f"export A={shlex.quote('x y')}"]


@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True), st.just("/p/kubeconfig.yaml")))
def test_edge_kubeconfigs_round_trip(pairs: dict[str, str]) -> None:
    value = " ".join(f"{name}={path}" for name, path in pairs.items())
    assert parse_edge_kubeconfigs(value) == {name: Path(path) for name, path in pairs.items()}


def test_edge_kubeconfigs_reject_items_without_equals() -> None:
    with pytest.raises(ValueError, match="name=path"):
        parse_edge_kubeconfigs("edge-eu")


def test_with_cluster_replaces_in_place_and_appends_new() -> None:
    state = _state()
    replaced = state.with_cluster(_cluster("edge-us", 1))
    assert [c.name for c in replaced.clusters] == list(CLUSTER_NAMES)
    assert replaced.cluster("edge-us").server == "https://127.0.0.1:1"

    added = state.without_cluster("edge-ap").with_cluster(_cluster("edge-ap", 2))
    assert [c.name for c in added.clusters][-1] == "edge-ap"


def test_unknown_cluster_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="edge-eu"):
        _state().cluster("edge-xx")


def test_faults_expire_after_the_ttl() -> None:
    state = _state().with_fault(S3_FAULT, 1000.0).with_fault(apiserver_fault("edge-us"), 1500.0)

    assert state.active_faults(now=1000.0 + FAULT_TTL - 1) == {"s3", "edge-us/kube-apiserver"}
    assert state.active_faults(now=1000.0 + FAULT_TTL + 1) == {"edge-us/kube-apiserver"}
    assert state.without_fault(S3_FAULT).active_faults(now=1500.0) == {"edge-us/kube-apiserver"}
