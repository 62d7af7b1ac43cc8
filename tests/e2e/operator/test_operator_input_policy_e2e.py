"""Issue 11 on the lab: a signing key a Cosmo router cannot use, and a cache image the operator does
not allow. The user sees a Stalled RouterConfig naming the Secret and key, or spec.cache.image; no edge
cluster gets a cache and nothing is published.

This module starts its own operator (not the suite's `ops`): it passes `--allowed-cache-image`, so the
flag is exercised end to end, and gives its EdgeClusters self-contained kubeconfigs. Its resync is long
(RESYNC_SECONDS, not the suite's 5 s), so the last test shows that an edit of the ConfigMap a RouterConfig
reads (another input) rolls out on the ConfigMap watch, not at the next resync.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from operator_e2e_kit import (
    OperatorE2E,
    cosmo_config,
    running_operator,
)
from tests.polling import wait_until

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.lab import Lab
from edgeroll.render.revision import make_revision
from edgeroll.rollout.resources import LABEL_RC_NAME
from edgeroll.settings import DEFAULT_CACHE_IMAGE

pytestmark = pytest.mark.e2e

EXTRA_IMAGE = "registry.example/edgeroll-cache:approved"
RESYNC_SECONDS = 120  # none of these tests waits for a resync: a spec change is reconciled at once


@pytest.fixture(scope="module")
def policed(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorE2E]:
    extra = ["--allowed-cache-image", EXTRA_IMAGE, "--resync-seconds", str(RESYNC_SECONDS)]
    with running_operator(lab, tmp_path_factory.mktemp("policed"), "pol", extra_args=extra) as e2e:
        yield e2e


def _stalled(ops: OperatorE2E, name: str) -> dict[str, Any]:
    generation = ops.get(name)["metadata"]["generation"]
    status = ops.wait_status(
        name,
        lambda s: (
            s.get("observedGeneration") == generation
            and any(c["type"] == "Stalled" and c["status"] == "True" for c in s.get("conditions", []))
        ),
        what="Stalled",
    )
    assert status["phase"] == "Stalled"
    return dict(next(c for c in status["conditions"] if c["type"] == "Stalled"))


def _nothing_applied(ops: OperatorE2E, name: str) -> None:
    for cluster in ops.lab.edge_kubeconfigs:
        out = ops.lab.kubectl(
            cluster, "-n", ops.ns, "get", "deployments,secrets", "-l", f"{LABEL_RC_NAME}={name}", "-o", "name"
        )
        assert out.stdout.strip() == "", f"{cluster}: {out.stdout}"
    assert ops.s3_keys(name) == {}


def test_a_signing_key_that_is_not_utf8_stalls_naming_the_secret_and_key(policed: OperatorE2E) -> None:
    ops = policed
    key = b"\xff\xfe" + b"k" * 30  # 32 bytes, but not text: an edge cache could not start with it
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "signing-binary", "namespace": ops.ns},
        "data": {"hmac": base64.b64encode(key).decode()},
    }
    ops.hub("apply", "-f", "-", input=json.dumps(secret))
    rc = ops.routerconfig("badkey", cosmo_config())
    rc["spec"]["signing"] = {"secretRef": {"name": "signing-binary", "key": "hmac"}}
    ops.apply(rc)

    stalled = _stalled(ops, "badkey")
    assert stalled["reason"] == "InvalidSigningKey"
    assert stalled["message"].startswith(f"Secret {ops.ns}/signing-binary key 'hmac' is not valid UTF-8 text")
    assert "k" * 8 not in stalled["message"]
    _nothing_applied(ops, "badkey")


def test_a_foreign_cache_image_stalls_naming_the_field(policed: OperatorE2E) -> None:
    ops = policed
    foreign = "evil.example/edge-cache:latest"
    ops.apply(ops.routerconfig("foreign", cosmo_config(), cache={"replicas": 1, "image": foreign}))

    stalled = _stalled(ops, "foreign")
    own = ops.operator.env.get("EDGEROLL_CACHE_IMAGE") or DEFAULT_CACHE_IMAGE
    assert stalled["reason"] == "CacheImageNotAllowed"
    assert stalled["message"].startswith(f"spec.cache.image: {foreign!r} is not an allowed cache image")
    assert f"allowed: {own}, {EXTRA_IMAGE} (" in stalled["message"]
    _nothing_applied(ops, "foreign")

    # An image on the list (--allowed-cache-image) is applied: the edges were writable all along.
    ops.apply(ops.routerconfig("foreign", cosmo_config(), cache={"replicas": 1, "image": EXTRA_IMAGE}))

    def images() -> set[str] | None:
        found: set[str] = set()
        for cluster in ops.lab.edge_kubeconfigs:
            out = ops.lab.kubectl(
                cluster, "-n", ops.ns, "get", "deployments", "-l", f"{LABEL_RC_NAME}=foreign", "-o", "json"
            )
            items = json.loads(out.stdout)["items"]
            if not items:
                return None
            found |= {c["image"] for i in items for c in i["spec"]["template"]["spec"]["containers"]}
        return found

    assert wait_until(images, timeout=120, message="edge Deployments of foreign") == {EXTRA_IMAGE}


def _config_map(ops: OperatorE2E, config: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "followed", "namespace": ops.ns, "labels": labels},
        "data": {"config.json": json.dumps(config)},
    }


def test_an_edit_of_the_configmap_it_reads_rolls_out_long_before_the_resync(policed: OperatorE2E) -> None:
    ops = policed
    v1, v2 = cosmo_config(), cosmo_config()
    v2["engineConfig"]["graphqlSchema"] += "\n# edited in the ConfigMap"
    ops.apply(_config_map(ops, v1, {"v": "1"}))
    ops.apply(
        ops.routerconfig(
            "follows", configFrom={"configMapKeyRef": {"name": "followed", "key": "config.json"}}
        )
    )
    first = ops.wait_ready("follows")["revision"]["digest"]
    assert first == make_revision(ConfigFormat.COSMO, v1).digest

    # Edited right after the full reconcile of the create: the next resync is RESYNC_SECONDS away.
    want = make_revision(ConfigFormat.COSMO, v2).digest
    started = time.monotonic()
    ops.apply(_config_map(ops, v2, {"v": "2"}))
    budget = RESYNC_SECONDS / 4
    ops.wait_status(
        "follows",
        lambda s: s.get("revision", {}).get("digest") == want and s.get("phase") == "Ready",
        timeout=budget,
        what=f"every cluster on the edited ConfigMap's digest within {budget:.0f} s",
    )
    assert all(ops.edge_digest(edge, "follows") == want for edge in ops.edges)
    assert time.monotonic() - started < budget
