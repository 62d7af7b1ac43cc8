"""The edge resources: contract env, restricted pods, digest in the template, ownership labels."""

from __future__ import annotations

import base64

import pytest

from edgeroll.api.routerconfig import ResourceRequirements
from edgeroll.rollout.resources import (
    ANNOTATION_DIGEST,
    ANNOTATION_KEY,
    EdgeCacheParams,
    EdgeS3,
    deployment,
    edge_manifests,
    edge_name,
    edge_refs,
    label_value,
    secret,
    service,
)

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "ab" * 32


def params(**over: object) -> EdgeCacheParams:
    base: dict[str, object] = dict(
        rc_namespace="prod",
        rc_name="graph",
        cluster="edge-eu",
        namespace="edgeroll-system",
        digest=DIGEST,
        key=f"edgeroll/prod/graph/{'ab' * 32}.json",
        signature="c2ln",
        signing_key=b"k" * 32,
        s3=EdgeS3("bucket", "http://127.0.0.1:8333", "us-east-1", "ro-id", "ro-secret"),
        image="ghcr.io/edgeroll/edgeroll:0.1.0",
        replicas=2,
        port=8080,
        cosmo_organization_id="org",
        cosmo_federated_graph_id="graph",
    )
    base.update(over)
    return EdgeCacheParams(**base)  # type: ignore[arg-type]


def env_of(dep: dict) -> dict[str, object]:  # type: ignore[type-arg]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def test_env_follows_the_cache_contract() -> None:
    env = env_of(deployment(params()))
    name = edge_name("prod", "graph")
    assert env["EDGEROLL_S3_ENDPOINT"] == "http://127.0.0.1:8333"
    assert env["EDGEROLL_S3_BUCKET"] == "bucket"
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": name, "key": "aws-access-key-id"}}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": name, "key": "aws-secret-access-key"}}
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["EDGEROLL_CONFIG_KEY"] == f"edgeroll/prod/graph/{'ab' * 32}.json"
    assert env["EDGEROLL_CONFIG_DIGEST"] == DIGEST
    assert env["EDGEROLL_SIGNING_KEY"] == {"secretKeyRef": {"name": name, "key": "signing-key"}}
    assert env["EDGEROLL_CONFIG_NAMESPACE"] == "prod" and env["EDGEROLL_CONFIG_NAME"] == "graph"
    assert env["EDGEROLL_COSMO_ORGANIZATION_ID"] == "org"
    assert env["EDGEROLL_COSMO_FEDERATED_GRAPH_ID"] == "graph"
    assert env["EDGEROLL_CACHE_PORT"] == "8080" and env["EDGEROLL_STATE_DIR"] == "/var/lib/edgeroll"
    assert not any("secret" in str(v).lower() and isinstance(v, str) for v in env.values())


def test_peer_url_is_the_caches_own_service() -> None:
    p = params(port=9090)
    svc = service(p)
    url = f"http://{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc:{svc['spec']['ports'][0]['port']}"
    assert env_of(deployment(p))["EDGEROLL_CACHE_PEER_URL"] == url
    assert url == "http://edgeroll-prod-graph.edgeroll-system.svc:9090"


def test_no_endpoint_or_cosmo_means_no_variable() -> None:
    env = env_of(deployment(params(s3=EdgeS3("b", None, None, "i", "s"), cosmo_organization_id=None)))
    assert "EDGEROLL_S3_ENDPOINT" not in env and "AWS_DEFAULT_REGION" not in env
    assert "EDGEROLL_COSMO_ORGANIZATION_ID" not in env


def test_no_static_key_means_no_key_in_the_env_or_the_secret() -> None:
    """Workload identity: the cache's boto3 finds its credentials through the pod's default chain."""
    p = params(s3=EdgeS3("bucket", "http://127.0.0.1:8333", "us-east-1"))
    env = env_of(deployment(p))
    assert "AWS_ACCESS_KEY_ID" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["EDGEROLL_S3_BUCKET"] == "bucket" and env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert set(secret(p)["data"]) == {"signing-key"}
    assert set(secret(params())["data"]) == {"signing-key", "aws-access-key-id", "aws-secret-access-key"}


def test_pod_is_restricted_probed_and_carries_the_revision() -> None:
    dep = deployment(params())
    template = dep["spec"]["template"]
    pod, c = template["spec"], template["spec"]["containers"][0]
    assert template["metadata"]["annotations"][ANNOTATION_DIGEST] == DIGEST
    assert template["metadata"]["annotations"][ANNOTATION_KEY].endswith(".json")
    assert c["command"] == ["edgeroll", "cache"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"name": "state", "mountPath": "/var/lib/edgeroll"} in c["volumeMounts"]
    assert {"name": "state", "emptyDir": {"sizeLimit": "256Mi"}} in pod["volumes"]
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert pod["automountServiceAccountToken"] is False


def test_new_digest_or_signature_changes_only_the_template() -> None:
    a = deployment(params())
    b = deployment(params(digest="sha256:" + "cd" * 32, signature="bmV3"))
    assert a["spec"]["selector"] == b["spec"]["selector"]
    assert (
        a["spec"]["template"]["metadata"]["annotations"] != b["spec"]["template"]["metadata"]["annotations"]
    )


def test_resources_default_and_user_values() -> None:
    c = deployment(params())["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"]["requests"]["memory"] == "64Mi"
    custom = ResourceRequirements(requests={"cpu": 1}, limits={"memory": "1Gi"})
    c = deployment(params(resources=custom))["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"] == {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}


def test_secret_service_and_ownership() -> None:
    p = params()
    s = secret(p)
    assert base64.b64decode(s["data"]["signing-key"]) == b"k" * 32
    assert base64.b64decode(s["data"]["aws-secret-access-key"]) == b"ro-secret"
    assert service(p)["spec"]["ports"][0]["port"] == 8080
    for m in edge_manifests(p):
        labels = m["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "edgeroll"
        assert labels["edgeroll.io/routerconfig-namespace"] == "prod"
        assert labels["edgeroll.io/edgecluster"] == "edge-eu"
        assert "ownerReferences" not in m["metadata"]
    assert [m["kind"] for m in edge_manifests(p)] == ["ServiceAccount", "Secret", "Service", "Deployment"]
    assert [r.kind for r in edge_refs("prod", "graph", "ns")] == [
        "Deployment",
        "Service",
        "Secret",
        "ServiceAccount",
    ]


def test_names_are_dns_labels_and_unique() -> None:
    assert edge_name("prod", "graph") == "edgeroll-prod-graph"
    long = edge_name("n" * 60, "x" * 200)
    assert len(long) <= 63 and long[0].isalpha() and long == long.lower()
    assert edge_name("a", "b.c") != edge_name("a", "b-c")
    assert len(label_value("y" * 100)) <= 63 and label_value("ok") == "ok"
