"""Pure lab configuration: kwokctl options, weed command line and ports, kubeconfig and kwok.yaml parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edgeroll.lab.kwok_config import cluster_ports, dump_yaml, kwokctl_configuration, parse_kubeconfig
from edgeroll.lab.s3_config import (
    ADMIN_GRPC_OFFSET,
    DEFAULT_BASE_PORT,
    candidate_bases,
    s3_ports,
    weed_command,
    weed_environment,
)

pytestmark = pytest.mark.unit

BIN = Path("/cache/edgeroll/bin")


def test_kwokctl_configuration_uses_local_binaries_on_loopback() -> None:
    config = kwokctl_configuration(BIN, kube_version="v1.34.4", etcd_version="v3.6.16", cache_dir=Path("/c"))
    options = config["options"]

    assert config["kind"] == "KwokctlConfiguration"
    assert options["runtime"] == "binary"
    assert options["bindAddress"] == "127.0.0.1"
    assert options["kubeVersion"] == "v1.34.4"
    assert options["etcdVersion"] == "3.6.16"
    binaries = {k: v for k, v in options.items() if k.endswith("Binary")}
    assert set(binaries) == {
        "kubeApiserverBinary",
        "kubeControllerManagerBinary",
        "kubeSchedulerBinary",
        "kubectlBinary",
        "etcdBinary",
        "kwokControllerBinary",
    }
    # A path without a URL scheme is never downloaded by kwokctl.
    assert all(v.startswith(str(BIN) + "/") and "://" not in v for v in binaries.values())
    assert options["kwokControllerBinary"] == str(BIN / "kwok")


def test_kwokctl_configuration_turns_leader_election_off() -> None:
    config = kwokctl_configuration(BIN, kube_version="v1.34.4", etcd_version="3.6.16", cache_dir=Path("/c"))
    patched = {p["name"]: p["extraArgs"] for p in config["componentsPatches"]}

    assert patched == {
        "kube-controller-manager": [{"key": "leader-elect", "value": "false"}],
        "kube-scheduler": [{"key": "leader-elect", "value": "false"}],
    }
    assert yaml.safe_load(dump_yaml(config)) == config


CLUSTER_KWOK_YAML = """\
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  bindAddress: 127.0.0.1
  etcdPeerPort: 32766
  etcdPort: 32765
  kubeApiserverPort: 32764
  kubeControllerManagerPort: 32762
  kubeSchedulerPort: 32761
  kwokControllerPort: 32763
  prometheusPort: 0
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: node-initialize}
"""


def test_cluster_ports_reads_the_kwokctl_document() -> None:
    assert cluster_ports(CLUSTER_KWOK_YAML) == {
        "etcd": 32765,
        "etcd-peer": 32766,
        "kube-apiserver": 32764,
        "kube-controller-manager": 32762,
        "kube-scheduler": 32761,
        "kwok-controller": 32763,
    }


def test_cluster_ports_without_kwokctl_document_is_an_error() -> None:
    with pytest.raises(ValueError, match="no KwokctlConfiguration"):
        cluster_ports("kind: Stage\n")


KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- cluster: {certificate-authority: pki/ca.crt, server: "https://127.0.0.1:32764/"}
  name: kwok-hub
contexts:
- context: {cluster: kwok-hub, user: kwok-hub}
  name: kwok-hub
current-context: kwok-hub
users:
- name: kwok-hub
  user: {client-certificate: /abs/admin.crt, client-key: pki/admin.key}
"""


def test_parse_kubeconfig_resolves_relative_paths() -> None:
    endpoint = parse_kubeconfig(KUBECONFIG, Path("/lab/hub"))

    assert endpoint.server == "https://127.0.0.1:32764"
    assert endpoint.ca_file == Path("/lab/hub/pki/ca.crt")
    assert endpoint.cert_file == Path("/abs/admin.crt")
    assert endpoint.key_file == Path("/lab/hub/pki/admin.key")


def test_parse_kubeconfig_names_what_is_missing() -> None:
    broken = KUBECONFIG.replace("client-key: pki/admin.key", "token: x")
    with pytest.raises(ValueError, match="client-key"):
        parse_kubeconfig(broken, Path("/lab"))


def test_s3_ports_are_distinct_and_admin_grpc_is_admin_plus_10000() -> None:
    ports = s3_ports(DEFAULT_BASE_PORT)

    assert len(set(ports.values())) == len(ports)
    assert ports["admin-grpc"] == ports["admin"] + ADMIN_GRPC_OFFSET
    assert ports["s3"] == DEFAULT_BASE_PORT


@pytest.mark.parametrize("base", candidate_bases())
def test_s3_ports_stay_clear_of_kwokctl_and_ephemeral_ranges(base: int) -> None:
    # kwokctl counts down from 32766; Linux hands out ephemeral ports from 32768.
    assert max(s3_ports(base).values()) < 32000


def test_candidate_blocks_do_not_overlap() -> None:
    blocks = [set(s3_ports(b).values()) for b in candidate_bases()]
    for i, block in enumerate(blocks):
        for other in blocks[i + 1 :]:
            assert not block & other


def test_s3_ports_reject_a_base_without_room() -> None:
    with pytest.raises(ValueError):
        s3_ports(60000)


def test_weed_command_binds_loopback_and_pins_every_port() -> None:
    ports = s3_ports(18333)
    argv = weed_command(Path("/venv/bin/weed"), data_dir=Path("/lab/s3"), ports=ports, bucket="edgeroll")
    flags = dict(a.lstrip("-").split("=", 1) for a in argv[2:])

    assert argv[:2] == ["/venv/bin/weed", "mini"]
    assert flags["ip"] == flags["ip.bind"] == "127.0.0.1"
    assert flags["bucket"] == "edgeroll"
    assert flags["dir"] == "/lab/s3"
    pinned = {int(v) for k, v in flags.items() if k.endswith(("port", "port.grpc"))}
    assert pinned == set(ports.values()) - {ports["admin-grpc"]}
    assert flags["webdav"] == "false"
    assert flags["s3.port.iceberg"] == flags["s3.port.lance"] == "0"
    assert flags["master.telemetry"] == "false"
    assert "admin.port.grpc" not in flags  # weed ignores it for its worker; see s3_config
    assert flags["s3.localSocket"].startswith("/lab/s3/")
    assert flags["filer.localSocket"].startswith("/lab/s3/")


def test_weed_environment_sets_credentials_and_drops_inherited_aws_settings() -> None:
    env = weed_environment(
        {"PATH": "/bin", "AWS_PROFILE": "prod", "AWS_ACCESS_KEY_ID": "other", "S3_BUCKET": "x"},
        access_key="k",
        secret_key="s",
    )
    assert env == {"PATH": "/bin", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
