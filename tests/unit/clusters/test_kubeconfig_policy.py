"""Kubeconfig Secrets: fields that run code, read files or reroute traffic are refused by path (pure)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from edgeroll.clusters.kubeconfig import (
    EdgeCredentials,
    KubeconfigRefused,
    check_kubeconfig,
    edge_credentials,
    kubeconfig_problems,
)

pytestmark = pytest.mark.unit

CA = b"-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"
CERT = b"-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def flattened() -> dict[str, Any]:
    """What `kubectl config view --raw --flatten --minify` prints for a client-certificate user."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": "edge",
                "cluster": {"server": "https://127.0.0.1:6443/", "certificate-authority-data": b64(CA)},
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {"client-certificate-data": b64(CERT), "client-key-data": b64(KEY)},
            }
        ],
        "contexts": [{"name": "edge", "context": {"cluster": "edge", "user": "admin", "namespace": "x"}}],
        "current-context": "edge",
    }


def test_a_flattened_kubeconfig_passes_and_resolves_in_memory() -> None:
    cfg = flattened()
    assert kubeconfig_problems(cfg) == []
    creds = edge_credentials(cfg)
    assert creds == EdgeCredentials(server="https://127.0.0.1:6443", ca_pem=CA, cert_pem=CERT, key_pem=KEY)


def test_a_token_user_passes_and_its_token_stays_out_of_repr() -> None:
    cfg = flattened()
    cfg["users"][0]["user"] = {"token": "s3cr3t-token"}
    creds = edge_credentials(cfg)
    assert creds.token == "s3cr3t-token" and creds.cert_pem is None
    assert "s3cr3t" not in repr(creds) and "KEY" not in repr(edge_credentials(flattened()))


EXEC = {"apiVersion": "client.authentication.k8s.io/v1", "command": "touch", "args": ["/tmp/pwned"]}


@pytest.mark.parametrize(
    ("section", "field", "value", "path"),
    [
        ("users", "exec", EXEC, "users[0].user.exec"),
        ("users", "auth-provider", {"name": "oidc", "config": {}}, "users[0].user.auth-provider"),
        ("users", "tokenFile", "/var/run/secrets/token", "users[0].user.tokenFile"),
        ("users", "client-certificate", "/etc/edgeroll/cert.pem", "users[0].user.client-certificate"),
        ("users", "client-key", "/etc/edgeroll/key.pem", "users[0].user.client-key"),
        ("clusters", "certificate-authority", "/etc/ssl/ca.pem", "clusters[0].cluster.certificate-authority"),
        ("clusters", "proxy-url", "http://attacker:3128", "clusters[0].cluster.proxy-url"),
        ("users", "username", "admin", "users[0].user.username"),
        ("users", "as", "system:admin", "users[0].user.as"),
    ],
)
def test_each_forbidden_field_is_refused_by_its_path(section: str, field: str, value: Any, path: str) -> None:
    cfg = flattened()
    cfg[section][0][section[:-1]][field] = value
    with pytest.raises(KubeconfigRefused) as refused:
        check_kubeconfig(cfg)
    assert str(refused.value).startswith(f"{path} ")
    with pytest.raises(KubeconfigRefused, match=path.replace(".", r"\.").replace("[", r"\[")):
        edge_credentials(cfg)  # the credentials are never resolved past a refused field


def test_an_unused_user_with_exec_still_refuses_the_whole_kubeconfig() -> None:
    cfg = flattened()
    spare = copy.deepcopy(cfg["users"][0])
    spare["name"] = "spare"
    spare["user"] = {"exec": EXEC}
    cfg["users"].append(spare)
    assert kubeconfig_problems(cfg) == ["users[1].user.exec runs a command in the operator; not allowed"]


def test_every_problem_is_listed_and_the_message_counts_the_rest() -> None:
    cfg = flattened()
    cfg["users"][0]["user"].update({"exec": EXEC, "tokenFile": "/t"})
    cfg["clusters"][0]["cluster"]["certificate-authority"] = "/ca"
    assert [p.split(" ")[0] for p in kubeconfig_problems(cfg)] == [
        "users[0].user.exec",
        "users[0].user.tokenFile",
        "clusters[0].cluster.certificate-authority",
    ]
    with pytest.raises(KubeconfigRefused, match=r"\(and 2 more\).*--flatten"):
        check_kubeconfig(cfg)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.update({"current-context": "nope"}), r"contexts: no entry named 'nope'"),
        (
            lambda c: c["clusters"][0]["cluster"].update({"server": "ftp://x"}),
            r"clusters\[0\]\.cluster\.server",
        ),
        (
            lambda c: c["users"][0]["user"].update({"client-key-data": "%%%"}),
            r"users\[0\]\.user\.client-key-data: not base64",
        ),
        (lambda c: c["users"][0]["user"].pop("client-key-data"), r"go together"),
        (lambda c: c.update({"users": [{"name": "admin"}]}), r"users\[0\]\.user: missing"),
    ],
)
def test_broken_kubeconfigs_name_the_field(mutate: Any, message: str) -> None:
    cfg = flattened()
    mutate(cfg)
    with pytest.raises(KubeconfigRefused, match=message):
        edge_credentials(cfg)


def test_the_only_context_is_used_without_current_context_and_insecure_is_honoured() -> None:
    cfg = flattened()
    del cfg["current-context"]
    cfg["clusters"][0]["cluster"] = {
        "server": "https://10.0.0.1",
        "insecure-skip-tls-verify": True,
        "tls-server-name": "edge.internal",
    }
    creds = edge_credentials(cfg)
    assert (creds.server, creds.verify, creds.ca_pem, creds.tls_server_name) == (
        "https://10.0.0.1",
        False,
        None,
        "edge.internal",
    )
