"""kopf settings that matter: the diff-base is a digest, never a copy of a 2 MB spec."""

from __future__ import annotations

import json
from typing import Any

import kopf
import pytest

from edgeroll.handlers import STORAGE_PREFIX, DigestDiffBaseStorage

pytestmark = pytest.mark.unit


def body(config: dict[str, Any], annotations: dict[str, str] | None = None) -> kopf.Body:
    return kopf.Body(
        {
            "apiVersion": "edgeroll.io/v1alpha1",
            "kind": "RouterConfig",
            "metadata": {
                "name": "x",
                "namespace": "prod",
                "annotations": annotations or {},
                "labels": {"a": "b"},
            },
            "spec": {"format": "json", "config": config},
            "status": {"phase": "Ready"},
        }
    )


def test_large_spec_leaves_a_small_annotation() -> None:
    storage = DigestDiffBaseStorage(prefix=STORAGE_PREFIX, key="last-handled-digest")
    big = {f"k{i}": "x" * 100 for i in range(20_000)}  # 2 MB inline
    essence = storage.build(body=body(big))
    patch = kopf.Patch()
    storage.store(body=body(big), patch=patch, essence=essence)
    stored = patch["metadata"]["annotations"]
    assert set(stored) >= {f"{STORAGE_PREFIX}/last-handled-digest"}
    assert sum(len(v) for v in stored.values()) < 1024
    assert storage.fetch(body=kopf.Body({"metadata": {"annotations": stored}})) == essence


def test_digest_changes_with_spec_and_labels_not_with_status() -> None:
    storage = DigestDiffBaseStorage(prefix=STORAGE_PREFIX, key="last-handled-digest")
    a = storage.build(body=body({"v": 1}))
    assert storage.build(body=body({"v": 1})) == a
    assert storage.build(body=body({"v": 2}))["spec-sha256"] != a["spec-sha256"]
    changed = body({"v": 1}, {"edgeroll.io/pause": "true"})
    assert storage.build(body=changed)["metadata-sha256"] != a["metadata-sha256"]
    assert json.dumps(a).count("sha256") == 2


def test_a_rollout_command_annotation_is_a_change_kopf_reacts_to() -> None:
    """kopf calls on.update when the essence changes; a command under kopf's own prefix would not count."""
    storage = DigestDiffBaseStorage(prefix=STORAGE_PREFIX, key="last-handled-digest")
    before = storage.build(body=body({"v": 1}))
    promoted = body({"v": 1}, {"edgeroll.io/rollout-promote": "2026-01-01T00:00:00.000000Z"})
    assert storage.build(body=promoted) != before
    hidden = body({"v": 1}, {f"{STORAGE_PREFIX}/last-handled-digest": "{}"})
    assert storage.build(body=hidden) == before


def test_the_reconciler_sees_the_command_annotations_only() -> None:
    from edgeroll.handlers import _rc

    obj = _rc(body({"v": 1}, {"edgeroll.io/rollout-abort": "id-1", "kubectl.kubernetes.io/x": "big"}))
    assert dict(obj.annotations) == {"edgeroll.io/rollout-abort": "id-1"}
