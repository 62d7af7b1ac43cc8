"""The kind e2e provider's pure pieces, checked without Docker (the suite itself: `make e2e-kind`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from tests.e2e.providers import kind_provider as kp

pytestmark = pytest.mark.unit


def _proxy() -> ModuleType:
    spec = importlib.util.spec_from_file_location("s3_edge_proxy", kp.HERE / "s3_edge_proxy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("path", "cni_disabled"), [("local", True), ("stock", False)])
def test_cluster_config_is_one_node_and_drops_kindnet_only_for_the_local_node_image(
    path: str, cni_disabled: bool
) -> None:
    config = yaml.safe_load(kp.cluster_config(path))
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["nodes"] == [{"role": "control-plane"}]
    assert config.get("networking", {}).get("disableDefaultCNI", False) is cni_disabled


def test_kind_setup_env_file_is_read_as_key_value_lines() -> None:
    text = "EDGEROLL_KIND=/c/kind\nEDGEROLL_KIND_PATH=local\n# comment\n\nEDGEROLL_IMAGE_BASE=a=b\n"
    assert kp.read_env_file(text) == {
        "EDGEROLL_KIND": "/c/kind",
        "EDGEROLL_KIND_PATH": "local",
        "EDGEROLL_IMAGE_BASE": "a=b",
    }


def test_seaweed_in_its_container_listens_on_every_interface_with_s3_on_8333() -> None:
    s3 = kp.SeaweedContainer("edgeroll-e2e-s3", "localhost:5000/seaweedfs:x", 41234)
    argv = s3.command()
    assert argv[0] == "mini"
    assert "-ip.bind=0.0.0.0" in argv and "-ip.bind=127.0.0.1" not in argv
    assert f"-s3.port={kp.S3_PORT}" in argv and f"-bucket={kp.S3_BUCKET}" in argv
    assert s3.endpoint == "http://127.0.0.1:41234"
    assert s3.internal_endpoint == "http://edgeroll-e2e-s3:8333"


def test_edge_proxy_alters_one_byte_and_keeps_the_length() -> None:
    altered = _proxy().altered
    body = b'{"version":"abc","engineConfig":{}}'
    changed = altered(body)
    assert len(changed) == len(body) and changed != body
    assert sum(a != b for a, b in zip(body, changed, strict=True)) == 1
    assert altered(b"") == b""


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


def test_without_a_docker_engine_the_provider_fails_with_the_engines_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert kp.docker_problem() == "the `docker` command is not installed"
    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    docker.chmod(0o755)
    assert kp.docker_problem() == "`docker info` failed: Cannot connect to the Docker daemon"
    with pytest.raises(pytest.fail.Exception, match="needs a Docker engine: `docker info` failed"):
        kp.KindProvider.create(tmp_path)
