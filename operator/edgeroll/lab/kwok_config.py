"""kwokctl configuration and the files kwokctl writes, as plain data. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgeroll.lab.layout import LOOPBACK

# options.<key> in a cluster's kwok.yaml -> the name the lab reports it under.
_PORT_OPTIONS: dict[str, str] = {
    "etcdPort": "etcd",
    "etcdPeerPort": "etcd-peer",
    "kubeApiserverPort": "kube-apiserver",
    "kubeControllerManagerPort": "kube-controller-manager",
    "kubeSchedulerPort": "kube-scheduler",
    "kwokControllerPort": "kwok-controller",
}


def kwokctl_configuration(
    bin_dir: Path, *, kube_version: str, etcd_version: str, cache_dir: Path
) -> dict[str, Any]:
    """The KwokctlConfiguration every lab cluster is created from.

    Binary paths without a URL scheme are used as they are, so nothing is
    downloaded. Leader election is off for the controller-manager and the
    scheduler: with it on they exit when the apiserver is down longer than the
    renew deadline, and `start_apiserver` would race their exit.
    """
    no_leader_election = [{"key": "leader-elect", "value": "false"}]
    return {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": {
            "runtime": "binary",
            "bindAddress": LOOPBACK,
            "kubeVersion": kube_version,
            "etcdVersion": etcd_version.removeprefix("v"),
            "kubeApiserverBinary": str(bin_dir / "kube-apiserver"),
            "kubeControllerManagerBinary": str(bin_dir / "kube-controller-manager"),
            "kubeSchedulerBinary": str(bin_dir / "kube-scheduler"),
            "kubectlBinary": str(bin_dir / "kubectl"),
            "etcdBinary": str(bin_dir / "etcd"),
            "kwokControllerBinary": str(bin_dir / "kwok"),
            "cacheDir": str(cache_dir),
            "quietPull": True,
        },
        "componentsPatches": [
            {"name": "kube-controller-manager", "extraArgs": no_leader_election},
            {"name": "kube-scheduler", "extraArgs": no_leader_election},
        ],
    }


def dump_yaml(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(document), sort_keys=False)


def _kwokctl_options(cluster_config_text: str) -> dict[str, Any]:
    for doc in yaml.safe_load_all(cluster_config_text):
        if isinstance(doc, dict) and doc.get("kind") == "KwokctlConfiguration":
            options = doc.get("options") or {}
            if not isinstance(options, dict):
                raise ValueError("KwokctlConfiguration.options is not a mapping")
            return options
    raise ValueError("no KwokctlConfiguration document in the cluster's kwok.yaml")


def cluster_ports(cluster_config_text: str) -> dict[str, int]:
    """Ports kwokctl chose for a cluster, read from `<cluster dir>/kwok.yaml`."""
    options = _kwokctl_options(cluster_config_text)
    return {name: int(options[key]) for key, name in _PORT_OPTIONS.items() if options.get(key)}


@dataclass(frozen=True)
class ApiEndpoint:
    """How to reach one apiserver with the admin client certificate."""

    server: str
    ca_file: Path
    cert_file: Path
    key_file: Path


def _resolve(value: str, base: Path) -> Path:
    path = Path(value)
    return path if path.is_absolute() else base / path


def parse_kubeconfig(text: str, base: Path) -> ApiEndpoint:
    """The current context's server and credentials. Relative paths resolve against `base`."""
    config = yaml.safe_load(text)
    if not isinstance(config, dict):
        raise ValueError("kubeconfig is not a mapping")
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    current = config.get("current-context") or next(iter(contexts), None)
    if current not in contexts:
        raise ValueError(f"kubeconfig has no context {current!r}")
    context = contexts[current]
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
    users = {u["name"]: u["user"] for u in config.get("users") or []}
    try:
        cluster = clusters[context["cluster"]]
        user = users[context["user"]]
        return ApiEndpoint(
            server=str(cluster["server"]).rstrip("/"),
            ca_file=_resolve(cluster["certificate-authority"], base),
            cert_file=_resolve(user["client-certificate"], base),
            key_file=_resolve(user["client-key"], base),
        )
    except KeyError as exc:
        raise ValueError(f"kubeconfig context {current!r} lacks {exc.args[0]!r}") from exc
