"""The kind e2e provider cannot run here (no Docker in CI): its pure pieces are checked without it."""

from __future__ import annotations

from pathlib import Path
from string import Template

import pytest
import yaml
from tests.e2e.providers import kind_provider as kp

pytestmark = pytest.mark.unit


def test_hub_cluster_config_maps_the_s3_node_port_to_a_loopback_host_port() -> None:
    config = yaml.safe_load(Template((kp.HERE / "hub-cluster.yaml").read_text()).substitute(HOST_PORT=41234))
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    (mapping,) = config["nodes"][0]["extraPortMappings"]
    assert mapping == {"containerPort": kp.S3_NODE_PORT, "hostPort": 41234, "listenAddress": "127.0.0.1"}


def test_minio_manifests_expose_s3_on_the_node_port_with_the_test_credentials() -> None:
    docs = list(yaml.safe_load_all(Template((kp.HERE / "minio.yaml").read_text()).substitute(kp.S3)))
    assert [d["kind"] for d in docs] == ["Namespace", "Deployment", "Service"]
    (container,) = docs[1]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == kp.S3["S3_IMAGE"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"MINIO_ROOT_USER": kp.S3["S3_USER"], "MINIO_ROOT_PASSWORD": kp.S3["S3_PASSWORD"]}
    assert docs[2]["spec"]["ports"][0]["nodePort"] == kp.S3_NODE_PORT


@pytest.mark.parametrize(
    ("line", "port"),
    [
        ("Forwarding from 127.0.0.1:41234 -> 8080\n", 41234),
        ("Forwarding from [::1]:41234 -> 8080\n", None),
        ("error: unable to forward port\n", None),
    ],
)
def test_forwarded_port_is_read_from_kubectls_first_line(line: str, port: int | None) -> None:
    assert kp.forwarded_port(line) == port


def test_without_docker_the_provider_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert kp.docker_problem() == "the `docker` command is not installed"
    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    docker.chmod(0o755)
    assert kp.docker_problem() == "`docker info` failed: Cannot connect to the Docker daemon"
    with pytest.raises(pytest.skip.Exception, match="needs Docker: `docker info` failed"):
        kp.KindProvider.create(tmp_path)
