"""Issue 3's scenarios 1-9, end to end: kubectl on the hub, a real operator process, three real edge
apiservers (kwok marks pods Ready, so Deployments become Available) and real S3."""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import json
import random
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from operator_e2e_kit import SIGNING_KEY, OperatorE2E, broken_kubeconfig, cosmo_config
from tests.polling import wait_until

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.render.revision import make_revision
from edgeroll.render.signing import verify
from edgeroll.rollout.resources import edge_name

pytestmark = pytest.mark.e2e

EDGE_KINDS = ("deployment", "service", "secret", "serviceaccount")


def digest_of(config: dict[str, Any]) -> str:
    return make_revision(ConfigFormat.COSMO, config).digest


def variant(tag: str) -> dict[str, Any]:
    config = cosmo_config()
    config["engineConfig"]["graphqlSchema"] += f"\n# {tag}"
    return config


def all_on(ops: OperatorE2E, rc: str, digest: str) -> bool:
    return all(ops.edge_digest(edge, rc) == digest for edge in ops.edges)


def available(dep: dict[str, Any] | None) -> bool:
    if dep is None:
        return False
    conds = {c["type"]: c["status"] for c in dep.get("status", {}).get("conditions", [])}
    st = dep.get("status", {})
    return (
        conds.get("Available") == "True"
        and st.get("observedGeneration") == dep["metadata"]["generation"]
        and st.get("updatedReplicas") == dep["spec"]["replicas"] == st.get("availableReplicas")
    )


def big_config(target_bytes: int) -> dict[str, Any]:
    """A Cosmo config padded with realistic interned strings until it is `target_bytes` long."""
    config = cosmo_config()
    rng = random.Random(7)
    storage: dict[str, str] = {}
    size, i = len(json.dumps(config)), 0
    while size < target_bytes:
        fields = " ".join(f"f{rng.randrange(10_000)}: String" for _ in range(12))
        value = f'type T{i} @key(fields: "id") {{ id: ID! {fields} }}'
        storage[f"k{i:06d}"] = value
        size += len(value) + 14
        i += 1
    config["engineConfig"]["stringStorage"] = storage
    return config


# 1 ---------------------------------------------------------------------------------------------


def test_1_cosmo_config_reaches_every_edge_signed_and_ready(ops: OperatorE2E) -> None:
    config = cosmo_config()
    ops.apply(ops.routerconfig("graph", config))
    status = ops.wait_ready("graph", timeout=120)  # kubectl wait --for=condition=Ready

    digest = digest_of(config)
    assert status["revision"]["digest"] == digest
    assert (
        status["readyClusters"] == "3/3" and status["summary"]["ready"] == 3 == status["summary"]["desired"]
    )
    assert (
        status["phase"] == "Ready"
        and status["observedGeneration"] == ops.get("graph")["metadata"]["generation"]
    )

    key = ops.s3_key("graph", digest)
    assert status["revision"]["key"] == key
    obj = ops.lab.s3_client().get_object(Bucket=ops.lab.s3_bucket, Key=key)
    body = obj["Body"].read()
    assert "sha256:" + hashlib.sha256(body).hexdigest() == digest
    assert verify(SIGNING_KEY.encode(), body, obj["Metadata"]["signature-sha256"])
    served = json.loads(body)
    assert served["version"] != "00000000-0000-0000-0000-000000000000" and "engineConfig" in served

    for edge in ops.edges:
        dep = ops.edge_deployment(edge, "graph")
        assert dep is not None and available(dep), f"{edge}: {dep and dep.get('status')}"
        annotations = dep["spec"]["template"]["metadata"]["annotations"]
        assert annotations["edgeroll.io/digest"] == digest and annotations["edgeroll.io/config-key"] == key
        env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["EDGEROLL_CONFIG_DIGEST"] == digest and env["EDGEROLL_CONFIG_KEY"] == key
        for kind in ("service", "secret", "serviceaccount"):
            assert ops.edge_object(edge, kind, edge_name(ops.ns, "graph")) is not None

    table = ops.hub("-n", ops.ns, "get", "rtc", "graph").stdout
    assert table.split()[:8] == ["NAME", "FORMAT", "DIGEST", "READY", "WAVE", "ROLLOUT", "STATUS", "AGE"]
    assert f"graph cosmo {digest[7:19]} 3/3 1/1 Completed Ready" in " ".join(table.split())


# 2 ---------------------------------------------------------------------------------------------


def test_2_update_moves_every_cluster_and_keeps_the_old_revision(ops: OperatorE2E) -> None:
    v1, v2 = variant("update-v1"), variant("update-v2")
    ops.apply(ops.routerconfig("update", v1))
    old = ops.wait_ready("update")["revision"]["digest"]
    ops.apply(ops.routerconfig("update", v2))
    new = digest_of(v2)
    ops.wait_status(
        "update",
        lambda s: s.get("revision", {}).get("digest") == new and s.get("phase") == "Ready",
        what="the new revision ready",
    )
    assert all_on(ops, "update", new)
    history = [r["digest"] for r in ops.manifest("update")["body"]["revisions"]]
    assert history[:2] == [new, old]
    assert ops.s3_key("update", old) in ops.s3_keys("update")


# 3 ---------------------------------------------------------------------------------------------


def test_3_overlay_for_eu_gives_edge_eu_its_own_digest_only(ops: OperatorE2E) -> None:
    config = variant("overlay")
    ops.apply(ops.routerconfig("overlay", config))
    base = ops.wait_ready("overlay")["revision"]["digest"]
    generations = {
        e: ops.edge_deployment(e, "overlay")["metadata"]["generation"] for e in ("edge-us", "edge-ap")
    }  # type: ignore[index]

    overlay = {
        "clusterSelector": {"matchLabels": {"region": "eu"}},
        "patch": {
            "subgraphs": [
                {
                    "id": "0",
                    "name": "products",
                    "routingUrl": "http://products.${cluster.labels.region}:4001/graphql",
                }
            ]
        },
    }
    ops.apply(ops.routerconfig("overlay", config, overlays=[overlay]))
    eu = ops.edges["edge-eu"]

    def eu_moved(st: dict[str, Any]) -> bool:
        c = {x["name"]: x for x in st.get("clusters", [])}
        return (
            st.get("phase") == "Ready"
            and c[eu]["digest"] != base
            and c[eu]["digest"] == c[eu]["desiredDigest"]
        )

    status = ops.wait_status("overlay", eu_moved, what="edge-eu on its own digest")
    clusters = {c["name"]: c for c in status["clusters"]}
    eu_digest = clusters[eu]["digest"]
    assert status["revision"]["digest"] == base
    assert ops.edge_digest("edge-eu", "overlay") == eu_digest
    for edge in ("edge-us", "edge-ap"):
        assert clusters[ops.edges[edge]]["digest"] == base == ops.edge_digest(edge, "overlay")
        assert ops.edge_deployment(edge, "overlay")["metadata"]["generation"] == generations[edge]  # type: ignore[index]
    body = json.loads(
        ops.lab.s3_client().get_object(Bucket=ops.lab.s3_bucket, Key=clusters[eu]["key"])["Body"].read()
    )
    assert body["subgraphs"][0]["routingUrl"] == "http://products.eu:4001/graphql"


# 4 ---------------------------------------------------------------------------------------------


def _small_annotations(obj: dict[str, Any]) -> int:
    """Total annotation size; kopf must have stored its diff-base (a digest, not the spec)."""
    annotations = obj["metadata"].get("annotations") or {}
    assert "kopf.edgeroll.io/last-handled-digest" in annotations, annotations.keys()
    return sum(len(k) + len(v) for k, v in annotations.items())


def test_4_two_megabyte_config_from_a_configmap(ops: OperatorE2E) -> None:
    config = big_config(2_100_000)
    raw = json.dumps(config).encode()
    packed = gzip.compress(raw)
    assert len(raw) > 2_000_000 and len(packed) < 900_000  # a ConfigMap holds at most 1 MiB
    ops.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "big-config", "namespace": ops.ns},
            "binaryData": {"config.json.gz": __import__("base64").b64encode(packed).decode()},
        },
        "--server-side",
    )
    ops.apply(
        ops.routerconfig(
            "big", configFrom={"configMapKeyRef": {"name": "big-config", "key": "config.json.gz"}}
        )
    )
    status = ops.wait_ready("big", timeout=180)
    digest = digest_of(config)
    assert status["revision"]["digest"] == digest and status["revision"]["size"] > 2_000_000
    assert all_on(ops, "big", digest)
    assert _small_annotations(ops.get("big")) < 4096


def test_4b_large_inline_config_does_not_overflow_annotations(ops: OperatorE2E) -> None:
    config = big_config(600_000)  # past the 256 KiB annotation limit, inside etcd's request limit
    ops.apply(ops.routerconfig("inline", config), "--server-side")  # client-side apply would copy it too
    status = ops.wait_ready("inline", timeout=180)
    assert status["revision"]["digest"] == digest_of(config)
    assert _small_annotations(ops.get("inline")) < 4096


# 5 ---------------------------------------------------------------------------------------------


def test_5a_schema_violations_are_refused_naming_the_field(ops: OperatorE2E) -> None:
    both = ops.routerconfig(
        "bad", cosmo_config(), configFrom={"configMapKeyRef": {"name": "x", "key": "cfg"}}
    )
    out = ops.hub("apply", "-f", "-", input=json.dumps(both), check=False)
    assert out.returncode != 0 and "exactly one of spec.config or spec.configFrom" in out.stderr

    wrong = ops.routerconfig("bad", cosmo_config(), format="yaml", cache={"port": 70000})
    wrong["spec"]["targets"]["clusterSelector"]["matchExpressions"] = [{"key": "region", "operator": "In"}]
    out = ops.hub("apply", "-f", "-", input=json.dumps(wrong), check=False)
    assert out.returncode != 0
    for field in ("spec.format", "spec.cache.port"):
        assert field in out.stderr, out.stderr
    assert ops.hub("-n", ops.ns, "get", "rtc", "bad", check=False).returncode != 0


def test_5b_bad_cosmo_config_stalls_publishes_nothing_and_keeps_serving(ops: OperatorE2E) -> None:
    good = variant("stall")
    ops.apply(ops.routerconfig("stall", good))
    served = ops.wait_ready("stall")["revision"]["digest"]
    before = ops.manifest("stall")
    keys = set(ops.s3_keys("stall"))

    bad = copy.deepcopy(good)
    bad["engineConfig"]["datasourceConfigurations"][0]["kind"] = "SOAP"
    ops.apply(ops.routerconfig("stall", bad))
    generation = ops.get("stall")["metadata"]["generation"]
    status = ops.wait_status(
        "stall",
        lambda s: (
            s.get("observedGeneration") == generation
            and any(c["type"] == "Stalled" and c["status"] == "True" for c in s.get("conditions", []))
        ),
        what="Stalled",
    )
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "InvalidConfig"
    assert "$.engineConfig.datasourceConfigurations[0].kind" in stalled["message"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and status["phase"] == "Stalled"
    assert status["revision"]["digest"] == served
    assert ops.manifest("stall")["etag"] == before["etag"] and set(ops.s3_keys("stall")) == keys
    assert all_on(ops, "stall", served)


# 6 ---------------------------------------------------------------------------------------------


def test_6_broken_kubeconfig_is_unreachable_and_the_others_go_ready(ops: OperatorE2E) -> None:
    broken = f"e2e-{ops.run}-broken"
    ops.add_edgecluster(
        broken,
        {"tier": "broken-edge", "e2e-run": ops.run},
        broken_kubeconfig(ops.lab.edge_kubeconfigs["edge-eu"]),
    )
    rc = ops.routerconfig("reach", variant("reach"))
    rc["spec"]["targets"]["clusterSelector"] = {
        "matchLabels": {"e2e-run": ops.run},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["edge", "broken-edge"]}],
    }
    ops.apply(rc)

    def settled(st: dict[str, Any]) -> bool:
        phases = {c["name"]: c["phase"] for c in st.get("clusters", [])}
        return phases.get(broken) == "Unreachable" and sum(p == "Ready" for p in phases.values()) == 3

    status = ops.wait_status("reach", settled, what="3 Ready + 1 Unreachable")
    assert status["summary"] == {"desired": 4, "ready": 3, "failed": 0, "unreachable": 1}
    assert status["readyClusters"] == "3/4"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ClustersUnreachable"
    ec_obj = json.loads(ops.hub("get", "edgecluster", broken, "-o", "json").stdout)
    assert not ec_obj["metadata"].get("finalizers")  # EdgeClusters stay deletable with the operator down
    ec = ec_obj["status"]
    assert {c["type"]: c["status"] for c in ec["conditions"]} == {"Ready": "False", "Reachable": "False"}
    text = json.dumps(status) + json.dumps(ec)
    assert "BEGIN" not in text and "client-key" not in text  # no kubeconfig material anywhere
    # Deleting does not wait for a cluster that never received anything.
    ops.hub("-n", ops.ns, "delete", "rtc", "reach", "--timeout=60s")


# 7 ---------------------------------------------------------------------------------------------


def test_7_hand_edited_edge_deployment_is_put_back(ops: OperatorE2E) -> None:
    ops.apply(ops.routerconfig("drift", variant("drift")))
    ops.wait_ready("drift")
    name = edge_name(ops.ns, "drift")
    patch = {
        "spec": {
            "replicas": 3,
            "template": {"spec": {"containers": [{"name": "cache", "image": "evil:latest"}]}},
        }
    }
    ops.lab.kubectl(
        "edge-us", "-n", ops.ns, "patch", "deployment", name, "--type=strategic", "-p", json.dumps(patch)
    )

    def restored() -> bool:
        dep = ops.edge_deployment("edge-us", "drift")
        assert dep is not None
        return (
            dep["spec"]["replicas"] == 1
            and dep["spec"]["template"]["spec"]["containers"][0]["image"] != "evil:latest"
        )

    wait_until(restored, timeout=60, message="the Deployment put back")

    def reasons() -> set[str]:
        events = ops.hub(
            "-n", ops.ns, "get", "events", "--field-selector", "involvedObject.name=drift", "-o", "json"
        )
        return {e["reason"] for e in json.loads(events.stdout)["items"]}

    # Events are posted after the status patch that follows the apply: poll for it.
    wait_until(
        lambda: "DriftCorrected" in reasons(), timeout=15, message=lambda: f"DriftCorrected in {reasons()}"
    )


# 8 ---------------------------------------------------------------------------------------------


def test_8_deleting_removes_the_edge_resources_everywhere(ops: OperatorE2E) -> None:
    ops.apply(ops.routerconfig("gone", variant("gone")))
    ops.wait_ready("gone")
    name = edge_name(ops.ns, "gone")
    assert all(ops.edge_object(e, k, name) is not None for e in ops.edges for k in EDGE_KINDS)
    ops.hub("-n", ops.ns, "delete", "rtc", "gone", "--timeout=90s")
    leftovers = [(e, k) for e in ops.edges for k in EDGE_KINDS if ops.edge_object(e, k, name) is not None]
    assert leftovers == []


# 9 ---------------------------------------------------------------------------------------------


def _deployment_versions(ops: OperatorE2E, rc: str) -> dict[str, tuple[int, str]]:
    out = {}
    for edge in ops.edges:
        dep = ops.edge_deployment(edge, rc)
        assert dep is not None
        out[edge] = (int(dep["metadata"]["generation"]), str(dep["metadata"]["resourceVersion"]))
    return out


def test_9_kill_minus_nine_mid_reconcile_converges_without_duplicates_or_flapping(ops: OperatorE2E) -> None:
    ops.apply(ops.routerconfig("restart", variant("restart-v1")))
    ops.wait_ready("restart")

    # A restart with nothing to do writes nothing: not the RouterConfig, not the edges, not S3.
    rc_version = ops.get("restart")["metadata"]["resourceVersion"]
    deployments = _deployment_versions(ops, "restart")
    manifest = ops.manifest("restart")
    ops.operator.kill9()
    ops.operator.start()
    wait_until(
        lambda: f"[{ops.ns}/restart] Handler 'reconcile' succeeded" in ops.operator.log_since_start(),
        timeout=60,
        message="the resumed reconcile",
    )
    assert ops.get("restart")["metadata"]["resourceVersion"] == rc_version
    assert _deployment_versions(ops, "restart") == deployments
    assert ops.manifest("restart")["etag"] == manifest["etag"]

    # Now kill it in the middle of rolling out a new revision.
    v2 = variant("restart-v2")
    new = digest_of(v2)
    key = ops.s3_key("restart", new)
    ops.apply(ops.routerconfig("restart", v2))
    wait_until(
        lambda: key in ops.s3_keys("restart"), timeout=60, interval=0.02, message="the new revision in S3"
    )
    ops.operator.kill9()
    written = ops.s3_keys("restart")[key]["LastModified"]
    ops.operator.start()

    status = ops.wait_status(
        "restart",
        lambda s: s.get("phase") == "Ready" and s.get("revision", {}).get("digest") == new,
        what="converged on the new revision",
    )
    assert all(c["digest"] == new for c in status["clusters"])
    after = _deployment_versions(ops, "restart")
    for edge, (generation, _) in deployments.items():
        assert after[edge][0] == generation + 1, (
            f"{edge} rolled more than once: {generation} -> {after[edge][0]}"
        )
    assert ops.s3_keys("restart")[key]["LastModified"] == written  # not written again
    history = [r["digest"] for r in ops.manifest("restart")["body"]["revisions"]]
    assert history.count(new) == 1


# 10 --------------------------------------------------------------------------------------------


def test_10_a_manifest_overwritten_with_garbage_is_rebuilt_from_the_listing(ops: OperatorE2E) -> None:
    v1, v2, v3 = variant("manifest-v1"), variant("manifest-v2"), variant("manifest-v3")
    ops.apply(ops.routerconfig("manifest", v1))
    first = ops.wait_ready("manifest")["revision"]["digest"]
    ops.apply(ops.routerconfig("manifest", v2))
    ops.wait_status("manifest", lambda s: s.get("revision", {}).get("digest") == digest_of(v2), what="v2")
    key = f"{ops.prefix}/{ops.ns}/manifest/manifest.json"
    ops.lab.s3_client().put_object(Bucket=ops.lab.s3_bucket, Key=key, Body=b"{garbage")

    ops.apply(ops.routerconfig("manifest", v3))
    ops.wait_status(
        "manifest",
        lambda s: s.get("revision", {}).get("digest") == digest_of(v3) and s.get("phase") == "Ready",
        what="v3 ready after the manifest was damaged",
    )
    history = [r["digest"] for r in ops.manifest("manifest")["body"]["revisions"]]
    assert history == [
        digest_of(v3),
        digest_of(v2),
        first,
    ]  # nothing forgotten: v1 is still a rollback target
    rebuilt = [e for e in ops.events("manifest") if e.get("reason") == "ManifestRebuilt"]
    assert len(rebuilt) == 1 and rebuilt[0]["type"] == "Warning"
    assert key in rebuilt[0]["message"] and "2 revisions recovered" in rebuilt[0]["message"]


# 11 --------------------------------------------------------------------------------------------


def test_11_a_status_emptied_by_hand_still_lets_an_untargeted_cache_be_removed(ops: OperatorE2E) -> None:
    ops.apply(ops.routerconfig("hand", variant("hand")))
    ops.wait_ready("hand")
    ap = ops.edges["edge-ap"]

    # With the operator down, someone replaces status.clusters and takes edge-ap out of the selector:
    # only the edge objects still say it holds a cache.
    ops.operator.stop()
    broken = {"status": {"clusters": [{"name": "", "phase": "Ready"}]}}
    ops.hub(
        "-n", ops.ns, "patch", "rtc", "hand", "--subresource=status", "--type=merge", "-p", json.dumps(broken)
    )
    selector = ops.selector()
    selector["matchExpressions"] = [{"key": "region", "operator": "NotIn", "values": ["ap"]}]
    ops.apply(ops.routerconfig("hand", variant("hand"), targets={"clusterSelector": selector}))
    ops.operator.start()

    wait_until(
        lambda: ops.edge_deployment("edge-ap", "hand") is None,
        timeout=60,
        message=lambda: f"edge-ap's cache removed: {json.dumps(ops.status('hand'))}\n{ops.operator.tail()}",
    )
    status = ops.wait_status(
        "hand", lambda s: s.get("phase") == "Ready" and len(s.get("clusters", [])) == 2, what="rewritten"
    )
    assert ap not in [c["name"] for c in status["clusters"]] and "" not in [
        c["name"] for c in status["clusters"]
    ]
    assert any(e.get("reason") == "Removed" and ap in e.get("message", "") for e in ops.events("hand"))
    assert all(ops.edge_deployment(edge, "hand") is not None for edge in ("edge-eu", "edge-us"))


# 12 --------------------------------------------------------------------------------------------


def test_12_the_key_the_caches_hold_reads_revisions_and_can_neither_write_nor_delete(
    ops: OperatorE2E,
) -> None:
    ops.apply(ops.routerconfig("edgekey", variant("edgekey")))
    key = ops.s3_key("edgekey", ops.wait_ready("edgekey")["revision"]["digest"])
    secret = ops.edge_object("edge-eu", "secret", edge_name(ops.ns, "edgekey"))
    assert secret is not None
    held = {k: base64.b64decode(v).decode() for k, v in secret["data"].items() if k.startswith("aws-")}
    assert held["aws-access-key-id"] != ops.lab.access_key, "the caches must not hold the operator's key"
    s3 = boto3.client(
        "s3",
        endpoint_url=ops.lab.s3_endpoint,
        aws_access_key_id=held["aws-access-key-id"],
        aws_secret_access_key=held["aws-secret-access-key"],
        region_name=ops.lab.region,
        config=Config(request_checksum_calculation="when_required", s3={"addressing_style": "path"}),
    )
    assert s3.get_object(Bucket=ops.lab.s3_bucket, Key=key)["Body"].read()
    for attempt in (
        lambda: s3.put_object(Bucket=ops.lab.s3_bucket, Key=key, Body=b"{}"),
        lambda: s3.delete_object(Bucket=ops.lab.s3_bucket, Key=key),
    ):
        with pytest.raises(ClientError) as refused:
            attempt()
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert key in ops.s3_keys("edgekey")
