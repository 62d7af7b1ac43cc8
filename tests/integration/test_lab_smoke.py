"""The lab is real: apiservers answer, Deployments roll out on kwok nodes, S3 enforces conditional writes."""

from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from tests.polling import wait_until

from edgeroll.lab import Lab
from edgeroll.lab.health import api_get
from edgeroll.lab.kwok_config import parse_kubeconfig
from edgeroll.lab.layout import CLUSTER_NAMES, EDGE_LABELS

pytestmark = pytest.mark.integration

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: default
  labels: {{app: {name}}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: web
          image: registry.invalid/smoke:1   # kwok nodes never pull or run it
"""


@pytest.mark.parametrize("cluster", CLUSTER_NAMES)
def test_every_apiserver_answers_readyz(lab: Lab, cluster: str) -> None:
    kubeconfig = lab.kubeconfig(cluster)
    endpoint = parse_kubeconfig(kubeconfig.read_text(), kubeconfig.parent)
    assert endpoint.server.startswith("https://127.0.0.1:")

    status, body = api_get(endpoint, "/readyz")

    assert (status, body) == (200, b"ok")


def test_lab_records_edge_labels_and_env(lab: Lab) -> None:
    assert lab.edge_labels == EDGE_LABELS
    env = lab.env()
    pairs = dict(item.split("=", 1) for item in env["EDGEROLL_EDGE_KUBECONFIGS"].split())
    assert pairs == {name: str(path) for name, path in lab.edge_kubeconfigs.items()}
    assert env["EDGEROLL_HUB_KUBECONFIG"] == str(lab.hub_kubeconfig)
    assert env["EDGEROLL_S3_ENDPOINT"] == lab.s3_endpoint
    assert env["EDGEROLL_S3_ENDPOINT"].startswith("http://127.0.0.1:")


@pytest.mark.parametrize("cluster", list(EDGE_LABELS))
def test_deployment_becomes_available_on_each_edge(lab: Lab, cluster: str) -> None:
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    lab.kubectl(cluster, "apply", "-f", "-", input=DEPLOYMENT.format(name=name))
    try:
        lab.kubectl(cluster, "rollout", "status", f"deployment/{name}", "--timeout=90s", timeout=120)

        def available() -> bool:
            deployment = json.loads(lab.kubectl(cluster, "get", "deployment", name, "-o", "json").stdout)
            conditions = {c["type"]: c["status"] for c in deployment["status"].get("conditions", [])}
            return (
                conditions.get("Available") == "True" and deployment["status"].get("availableReplicas") == 2
            )

        wait_until(available, timeout=30, message=f"deployment {name} Available with 2 replicas in {cluster}")
        nodes = lab.kubectl(
            cluster, "get", "pods", "-l", f"app={name}", "-o", "jsonpath={.items[*].spec.nodeName}"
        )
        assert all(node.startswith("node-") for node in nodes.stdout.split()), nodes.stdout
    finally:
        lab.kubectl(cluster, "delete", "deployment", name, "--wait=false", check=False)


def test_s3_round_trip_and_conditional_put(lab: Lab) -> None:
    s3 = lab.s3_client()
    key = f"smoke/{uuid.uuid4().hex}.json"
    body = b'{"hello": "edge"}'
    try:
        s3.put_object(
            Bucket=lab.s3_bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
            Metadata={"signature-sha256": "c2ln"},
            IfNoneMatch="*",
        )

        got = s3.get_object(Bucket=lab.s3_bucket, Key=key)
        assert got["Body"].read() == body
        assert got["Metadata"] == {"signature-sha256": "c2ln"}

        with pytest.raises(ClientError) as second:
            s3.put_object(Bucket=lab.s3_bucket, Key=key, Body=b"other bytes", IfNoneMatch="*")
        assert second.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
        assert second.value.response["Error"]["Code"] == "PreconditionFailed"
        # The losing write must not have replaced the object (seaweedfs #8800).
        assert s3.get_object(Bucket=lab.s3_bucket, Key=key)["Body"].read() == body
    finally:
        s3.delete_object(Bucket=lab.s3_bucket, Key=key)


def test_s3_rejects_a_wrong_secret(lab: Lab) -> None:
    import boto3
    from botocore.config import Config

    wrong = boto3.client(
        "s3",
        endpoint_url=lab.s3_endpoint,
        aws_access_key_id=lab.access_key,
        aws_secret_access_key="wrong",
        region_name=lab.region,
        config=Config(
            request_checksum_calculation="when_required", response_checksum_validation="when_required"
        ),
    )
    with pytest.raises(ClientError) as denied:
        wrong.list_objects_v2(Bucket=lab.s3_bucket)
    assert denied.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


# The fault-injection API other suites rely on. These briefly take S3 and one apiserver down,
# so they also carry the `reliability` mark.


@pytest.mark.reliability
def test_stop_and_start_s3_keeps_ports_and_data(lab: Lab) -> None:
    key = f"smoke/{uuid.uuid4().hex}"
    lab.s3_client().put_object(Bucket=lab.s3_bucket, Key=key, Body=b"kept")
    endpoint = lab.s3_endpoint

    lab.stop_s3()
    try:
        with pytest.raises(EndpointConnectionError):
            lab.s3_client().head_object(Bucket=lab.s3_bucket, Key=key)
    finally:
        lab.start_s3()

    assert lab.s3_endpoint == endpoint
    s3 = lab.s3_client()
    assert s3.get_object(Bucket=lab.s3_bucket, Key=key)["Body"].read() == b"kept"
    s3.delete_object(Bucket=lab.s3_bucket, Key=key)


@pytest.mark.reliability
def test_stop_and_start_apiserver_keeps_the_cluster_working(lab: Lab) -> None:
    cluster = "edge-ap"
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    lab.kubectl(cluster, "create", "configmap", name, "--from-literal=kept=yes")
    endpoint = parse_kubeconfig(lab.kubeconfig(cluster).read_text(), lab.kubeconfig(cluster).parent)

    lab.stop_apiserver(cluster)
    try:
        assert api_get(endpoint, "/readyz")[0] == 0  # nothing accepts connections
    finally:
        lab.start_apiserver(cluster)

    assert api_get(endpoint, "/readyz") == (200, b"ok")
    kept = lab.kubectl(cluster, "get", "configmap", name, "-o", "jsonpath={.data.kept}").stdout
    assert kept == "yes"
    # The controller-manager and scheduler survived the outage: a new Deployment still rolls out.
    lab.kubectl(cluster, "apply", "-f", "-", input=DEPLOYMENT.format(name=name))
    try:
        lab.kubectl(cluster, "rollout", "status", f"deployment/{name}", "--timeout=90s", timeout=120)
    finally:
        lab.kubectl(cluster, "delete", "deployment,configmap", name, "--wait=false", check=False)
