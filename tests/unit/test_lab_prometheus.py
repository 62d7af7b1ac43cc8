"""The lab's Prometheus: its configuration, the file_sd targets the pod runner writes, the lab env."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeroll.lab.layout import LabPaths
from edgeroll.lab.pod_runner import scrape_labels
from edgeroll.lab.prometheus import JOB, prometheus_command, prometheus_config, register_target
from edgeroll.lab.state import PrometheusState, lab_environment

pytestmark = pytest.mark.unit

ROOT = Path("/work/repo")


def test_the_config_scrapes_every_target_file_every_second() -> None:
    config = prometheus_config(ROOT / ".lab/prometheus/targets")

    (job,) = config["scrape_configs"]
    assert job["job_name"] == JOB
    assert job["file_sd_configs"] == [
        {"files": [f"{ROOT}/.lab/prometheus/targets/*.json"], "refresh_interval": "1s"}
    ]
    assert config["global"]["scrape_interval"] == "1s"


def test_prometheus_listens_on_loopback_only_with_its_data_under_the_lab() -> None:
    state = _prometheus(17091)

    argv = prometheus_command("/usr/bin/prometheus", state)

    assert "--web.listen-address=127.0.0.1:17091" in argv
    assert f"--config.file={ROOT}/.lab/prometheus/prometheus.yml" in argv
    assert f"--storage.tsdb.path={ROOT}/.lab/prometheus/data" in argv
    assert not any(a.startswith("--web.enable") for a in argv)  # no admin or lifecycle API


def test_a_target_file_is_what_file_sd_reads_and_never_half_written(tmp_path: Path) -> None:
    path = register_target(tmp_path / "targets", "edge-eu-x-1234", "127.0.0.1:1234", {"cluster": "c1"})

    assert json.loads(path.read_text()) == [{"targets": ["127.0.0.1:1234"], "labels": {"cluster": "c1"}}]
    assert sorted(p.name for p in (tmp_path / "targets").iterdir()) == ["edge-eu-x-1234.json"]


def test_scrape_labels_name_the_edgecluster_the_cache_serves() -> None:
    deployment = {
        "metadata": {
            "name": "edgeroll-ns-web",
            "namespace": "edge-ns",
            "labels": {
                "edgeroll.io/edgecluster": "prod-eu-1",
                "edgeroll.io/routerconfig-namespace": "ns",
                "edgeroll.io/routerconfig-name": "web",
            },
        }
    }

    assert scrape_labels(deployment, "edge-eu") == {
        "cluster": "prod-eu-1",
        "edge_cluster": "edge-eu",
        "edge_namespace": "edge-ns",
        "deployment": "edgeroll-ns-web",
        "routerconfig_namespace": "ns",
        "routerconfig": "web",
    }


def test_the_lab_env_exports_the_prometheus_url() -> None:
    from tests.unit.test_lab_state import _state

    env = lab_environment(_state().model_copy(update={"prometheus": _prometheus(17090)}))

    assert env["EDGEROLL_PROMETHEUS_URL"] == "http://127.0.0.1:17090"


def _prometheus(port: int) -> PrometheusState:
    paths = LabPaths(ROOT)
    return PrometheusState(
        endpoint=f"http://127.0.0.1:{port}",
        port=port,
        data_dir=paths.prometheus_dir / "data",
        config=paths.prometheus_dir / "prometheus.yml",
        targets_dir=paths.prometheus_targets,
        log=paths.logs / "prometheus.log",
    )
