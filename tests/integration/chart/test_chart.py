"""The Helm chart: lint, schema, kubeconform against the lab's apiserver, install, RBAC limits."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.chart.kubeconform_schemas import (
    SCHEMA_LOCATION,
    write_builtin_schemas,
    write_crd_schemas,
)

from edgeroll.lab import Lab

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "edgeroll"
KUBE_VERSION = "1.34.4"
SECRET_NS = "edgeroll-kubeconfigs"
BASE_VALUES = ["--set", "s3.bucket=edgeroll", "--set", "s3.endpoint=http://127.0.0.1:8333"]
# What the shard elector does with its Leases (sharding/kube_store.py), in the release namespace only.
LEASE_VERBS = ("list", "create", "update", "delete")


def helm(lab: Lab, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(lab.bin_dir / "helm"), *args],
        capture_output=True,
        text=True,
        check=check,
        env={**lab.env(), "KUBECONFIG": str(lab.hub_kubeconfig), "HELM_CACHE_HOME": str(ROOT / ".lab/helm")},
    )


def template(lab: Lab, *values: str, namespace: str = "edgeroll-system") -> str:
    return helm(
        lab, "template", "edgeroll", str(CHART), "-n", namespace, "--kube-version", KUBE_VERSION, *values
    ).stdout


def test_helm_lint_passes(lab: Lab) -> None:
    result = helm(lab, "lint", "--strict", str(CHART), *BASE_VALUES, "--kube-version", KUBE_VERSION)
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("values", "field"),
    [
        (["--set", "s3.bucket="], "/s3/bucket"),
        (["--set", "s3.bucket=edgeroll", "--set", "logLevel=verbose"], "/logLevel"),
        (["--set", "s3.bucket=edgeroll", "--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (
            ["--set", "s3.bucket=edgeroll", "--set", "secretNamespaces[0]=Not_A_Namespace"],
            "/secretNamespaces/0",
        ),
        (["--set", "s3.bucket=edgeroll", "--set", "replicas=0"], "/replicas"),
        (["--set", "s3.bucket=edgeroll", "--set", "sharding.shards=0"], "/sharding/shards"),
        (["--set", "s3.bucket=edgeroll", "--set", "sharding.replicas=2"], "/sharding"),
        (
            ["--set", "s3.bucket=edgeroll", "--set", "leaderElection.renewDeadlineSeconds=20"],
            "retryPeriodSeconds (2) < renewDeadlineSeconds (20) < leaseDurationSeconds (15)",
        ),
    ],
)
def test_values_schema_rejects_bad_values(lab: Lab, values: list[str], field: str) -> None:
    result = helm(lab, "template", "x", str(CHART), "--kube-version", KUBE_VERSION, *values, check=False)
    assert result.returncode != 0
    assert field in result.stderr, result.stderr


@pytest.fixture(scope="module")
def schema_dir(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kubeconform-schemas")
    raw = lab.kubectl("hub", "get", "--raw", "/openapi/v2").stdout
    assert write_builtin_schemas(json.loads(raw), out) > 100
    assert write_crd_schemas(sorted((ROOT / "crds").glob("*.yaml")), out) == 2
    return out


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "crds.templated=true", "--set", "metrics.serviceMonitor.enabled=false"],
        ["--set", "watchNamespace=team-a", "--set", "secretNamespaces={team-a,team-b}"],
        [
            "--set",
            "s3.accessKeyId=AK",
            "--set",
            "s3.secretAccessKey=SK",
            "--set",
            "s3.edgeCredentialsSecret=ro",
        ],
        [
            "--set",
            "s3.edgeAccessKeyId=EK",
            "--set",
            "s3.edgeSecretAccessKey=ES",
            "--set",
            "s3.allowSharedEdgeKey=true",
        ],
        ["--set", "replicas=1"],
        ["--set", "replicas=3", "--set", "sharding.shards=4"],
    ],
    ids=[
        "defaults",
        "templated-crds",
        "namespaced",
        "inline-s3-secret",
        "inline-edge-key",
        "one-replica",
        "sharded",
    ],
)
def test_rendered_manifests_are_valid(lab: Lab, schema_dir: Path, values: list[str]) -> None:
    rendered = template(lab, *BASE_VALUES, *values)
    result = subprocess.run(
        [
            str(lab.bin_dir / "kubeconform"),
            "-strict",
            "-summary",
            "-output",
            "json",
            "-schema-location",
            str(schema_dir / SCHEMA_LOCATION),
        ],
        input=rendered,
        capture_output=True,
        text=True,
        check=False,
    )
    summary = json.loads(result.stdout)["summary"]
    assert result.returncode == 0, result.stdout
    assert summary["invalid"] == 0 and summary["errors"] == 0 and summary["skipped"] == 0, summary
    assert summary["valid"] >= 6


def manifests(lab: Lab, *values: str, namespace: str = "edgeroll-system") -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(template(lab, *BASE_VALUES, *values, namespace=namespace)) if d]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def operator_env(deploy: dict[str, Any]) -> dict[str, Any]:
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_operator_pod_is_restricted(lab: Lab) -> None:
    (deploy,) = of_kind(manifests(lab), "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_two_replicas_roll_one_by_one_under_a_budget_spread_over_nodes(lab: Lab) -> None:
    docs = manifests(lab)
    (deploy,) = of_kind(docs, "Deployment")
    selector = deploy["spec"]["selector"]["matchLabels"]
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    (pdb,) = of_kind(docs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["metadata"]["namespace"] == "edgeroll-system"
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": selector}}
    (spread,) = deploy["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert (spread["maxSkew"], spread["whenUnsatisfiable"]) == (1, "ScheduleAnyway")
    assert spread["labelSelector"] == {"matchLabels": selector}


def test_one_replica_is_recreated_without_a_budget(lab: Lab) -> None:
    docs = manifests(lab, "--set", "replicas=1")
    (deploy,) = of_kind(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    assert of_kind(docs, "PodDisruptionBudget") == []
    assert "topologySpreadConstraints" not in deploy["spec"]["template"]["spec"]


def test_values_that_predate_replicas_keep_two(lab: Lab) -> None:
    """`helm upgrade --reuse-values` from a release without these values gets the chart's defaults."""
    unset = ["--set", "replicas=null", "--set", "sharding=null", "--set", "leaderElection=null"]
    (deploy,) = of_kind(manifests(lab, *unset), "Deployment")
    assert deploy["spec"]["replicas"] == 2
    env = operator_env(deploy)
    assert (env["EDGEROLL_SHARDS"], env["EDGEROLL_LEASE_DURATION_SECONDS"]) == ("1", "15")


def test_operator_env_carries_its_identity_and_the_lease_settings(lab: Lab) -> None:
    (deploy,) = of_kind(manifests(lab), "Deployment")
    env = operator_env(deploy)
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["EDGEROLL_LEASE_NAMESPACE"] == "edgeroll-system"
    assert env["EDGEROLL_SHARDS"] == "1"
    assert env["EDGEROLL_LEASE_DURATION_SECONDS"] == "15"
    assert env["EDGEROLL_RENEW_DEADLINE_SECONDS"] == "10"
    assert env["EDGEROLL_RETRY_PERIOD_SECONDS"] == "2"
    values = {
        "sharding.shards": "EDGEROLL_SHARDS",
        "leaderElection.leaseDurationSeconds": "EDGEROLL_LEASE_DURATION_SECONDS",
        "leaderElection.renewDeadlineSeconds": "EDGEROLL_RENEW_DEADLINE_SECONDS",
        "leaderElection.retryPeriodSeconds": "EDGEROLL_RETRY_PERIOD_SECONDS",
    }
    given = dict(zip(values, ["4", "30", "20", "4"], strict=True))
    sets = [a for key, value in given.items() for a in ("--set", f"{key}={value}")]
    (deploy,) = of_kind(manifests(lab, *sets, namespace="ops"), "Deployment")
    env = operator_env(deploy)
    assert env["EDGEROLL_LEASE_NAMESPACE"] == "ops"
    assert {var: env[var] for var in values.values()} == {values[key]: v for key, v in given.items()}


def test_leases_are_granted_in_the_release_namespace_only(lab: Lab) -> None:
    docs = manifests(lab, "--set", "deployOperator=false")
    (cluster_role,) = of_kind(docs, "ClusterRole")
    assert all("coordination.k8s.io" not in rule["apiGroups"] for rule in cluster_role["rules"])
    leases = [
        role for role in of_kind(docs, "Role") if any("leases" in rule["resources"] for rule in role["rules"])
    ]
    assert [role["metadata"]["namespace"] for role in leases] == ["edgeroll-system"]
    (rule,) = leases[0]["rules"]
    assert rule["apiGroups"] == ["coordination.k8s.io"]
    assert sorted(rule["verbs"]) == sorted(LEASE_VERBS)
    (binding,) = [
        b for b in of_kind(docs, "RoleBinding") if b["roleRef"]["name"] == leases[0]["metadata"]["name"]
    ]
    assert binding["metadata"]["namespace"] == "edgeroll-system"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "edgeroll", "namespace": "edgeroll-system"}
    ]


def test_templated_crds_carry_keep_policy(lab: Lab) -> None:
    crds = of_kind(manifests(lab, "--set", "crds.templated=true"), "CustomResourceDefinition")
    assert {c["metadata"]["name"] for c in crds} == {"routerconfigs.edgeroll.io", "edgeclusters.edgeroll.io"}
    assert all(c["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for c in crds)


@pytest.fixture(scope="module")
def installed(lab: Lab) -> Iterator[str]:
    """The chart installed into the lab hub; release and namespace share one throwaway name.

    A unique release keeps its cluster-scoped objects (ClusterRole, binding) clear of any other
    install on the same hub, such as `make demo`'s. The chart names everything after the release.
    """
    ns = release = f"edgeroll-chart-{uuid.uuid4().hex[:6]}"
    # Roles for extra secret namespaces need those namespaces to exist.
    lab.kubectl("hub", "create", "namespace", SECRET_NS, check=False)
    result = helm(
        lab,
        "install",
        release,
        str(CHART),
        "-n",
        ns,
        "--create-namespace",
        *BASE_VALUES,
        "--set",
        f"secretNamespaces={{{SECRET_NS}}}",
    )
    assert "STATUS: deployed" in result.stdout
    try:
        yield ns
    finally:
        helm(lab, "uninstall", release, "-n", ns, "--wait", check=False)
        lab.kubectl("hub", "delete", "namespace", ns, "--wait=false", check=False)


def can_i(lab: Lab, ns: str, verb: str, resource: str, in_namespace: str | None) -> bool:
    scope = ["-n", in_namespace] if in_namespace else ["--all-namespaces"]
    resource, _, sub = resource.partition("/")
    if sub:
        scope.append(f"--subresource={sub}")
    result = lab.kubectl(
        "hub",
        "auth",
        "can-i",
        verb,
        resource,
        *scope,
        f"--as=system:serviceaccount:{ns}:{ns}",
        check=False,
    )
    return result.stdout.strip() == "yes"


def test_helm_install_into_hub(lab: Lab, installed: str) -> None:
    """The release installs and its Deployment carries real probes. Whether the operator pod then runs
    and turns Ready is not something the lab can show (kwok marks every pod Ready without running it):
    tests/e2e/scenarios/test_kind_data_plane.py proves a live operator pod on kind."""
    dep = json.loads(lab.kubectl("hub", "get", "deploy", installed, "-n", installed, "-o", "json").stdout)
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        http_get = container[probe]["httpGet"]
        assert (http_get["path"], http_get["port"]) == ("/healthz", "health"), container[probe]
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    assert dep["spec"]["replicas"] == 2
    notes = helm(lab, "get", "notes", installed, "-n", installed).stdout
    assert "kubectl wait --for=condition=Ready" in notes
    assert f"kubectl -n {installed} get leases -l edgeroll.io/lease=shard" in notes
    pdb = json.loads(lab.kubectl("hub", "get", "pdb", installed, "-n", installed, "-o", "json").stdout)
    assert pdb["spec"]["minAvailable"] == 1


def test_service_account_has_what_the_operator_needs(lab: Lab, installed: str) -> None:
    needed = [
        ("watch", "routerconfigs.edgeroll.io", None),
        ("patch", "routerconfigs.edgeroll.io", "team-x"),
        ("patch", "routerconfigs.edgeroll.io/status", "team-x"),
        ("watch", "edgeclusters.edgeroll.io", None),
        ("patch", "edgeclusters.edgeroll.io/status", None),
        ("get", "configmaps", "team-x"),
        ("list", "configmaps", "team-x"),  # the ConfigMap watch (a RouterConfig follows its ConfigMap)
        ("watch", "configmaps", None),
        ("create", "events", "team-x"),
        ("get", "secrets", installed),
        ("get", "secrets", SECRET_NS),
        ("get", "routerconfigs.edgeroll.io", "team-x"),
        *((verb, "leases.coordination.k8s.io", installed) for verb in LEASE_VERBS),
    ]
    missing = [n for n in needed if not can_i(lab, installed, *n)]
    assert not missing


def test_service_account_has_nothing_more(lab: Lab, installed: str) -> None:
    forbidden = [
        ("get", "secrets", "default"),
        ("get", "secrets", "kube-system"),
        ("list", "secrets", installed),
        ("update", "configmaps", "team-x"),
        ("create", "deployments.apps", installed),
        ("delete", "routerconfigs.edgeroll.io", "team-x"),
        ("create", "edgeclusters.edgeroll.io", None),
        ("patch", "edgeclusters.edgeroll.io", None),
        ("update", "routerconfigs.edgeroll.io", "team-x"),
        ("create", "pods", installed),
        ("update", "customresourcedefinitions.apiextensions.k8s.io", None),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io", None),
        ("patch", "leases.coordination.k8s.io", installed),
        ("watch", "leases.coordination.k8s.io", installed),
        ("list", "leases.coordination.k8s.io", None),
        ("create", "leases.coordination.k8s.io", "default"),
        ("update", "leases.coordination.k8s.io", "kube-system"),
    ]
    allowed = [f for f in forbidden if can_i(lab, installed, *f)]
    assert not allowed
