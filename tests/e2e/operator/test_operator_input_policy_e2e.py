"""Issue 11 on the lab: a signing key a Cosmo router cannot use, and a cache image the operator does
not allow. The user sees a Stalled RouterConfig naming the Secret and key, or spec.cache.image; no edge
cluster gets a cache and nothing is published.

This module starts its own operator (not the suite's `ops`): it passes `--allowed-cache-image`, so the
flag is exercised end to end, and gives its EdgeClusters self-contained kubeconfigs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from operator_e2e_kit import (
    OperatorE2E,
    cosmo_config,
    running_operator,
)
from tests.polling import wait_until

from edgeroll.lab import Lab
from edgeroll.rollout.resources import LABEL_RC_NAME
from edgeroll.settings import DEFAULT_CACHE_IMAGE

pytestmark = pytest.mark.e2e

EXTRA_IMAGE = "registry.example/edgeroll-cache:approved"


@pytest.fixture(scope="module")
def policed(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorE2E]:
    extra = ["--allowed-cache-image", EXTRA_IMAGE]
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
