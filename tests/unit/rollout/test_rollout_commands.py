"""Rollout commands: the annotations the CLI writes are the ones the reconciler reads, and the CLI says
what it did."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from edgeroll.api.mergepatch import merge_patch
from edgeroll.rollout import cli
from edgeroll.rollout.commands import (
    annotation_key,
    annotation_value,
    new_command_id,
    parse_commands,
)
from edgeroll.rollout.planner import RolloutCommand

pytestmark = pytest.mark.unit

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def test_ids_are_rfc3339_utc_and_sort_in_issue_order() -> None:
    a = new_command_id(datetime(2026, 1, 1, 12, 0, 0, 5, tzinfo=UTC))
    b = new_command_id(datetime(2026, 1, 1, 12, 0, 1, tzinfo=UTC))
    assert a == "2026-01-01T12:00:00.000005Z" and a < b
    assert datetime.fromisoformat(a.replace("Z", "+00:00")).tzinfo is not None


@pytest.mark.parametrize(
    "command",
    [
        RolloutCommand(kind="promote", id="2026-01-01T00:00:00.000000Z"),
        RolloutCommand(kind="abort", id="2026-01-01T00:00:00.000000Z"),
        RolloutCommand(kind="retry", id="2026-01-01T00:00:00.000000Z"),
        RolloutCommand(kind="undo", id="2026-01-01T00:00:00.000000Z"),
        RolloutCommand(kind="undo", id="i", to_digest=D1),
        RolloutCommand(kind="undo", id="i", to_digest=D1, digests={"edge-eu": D2}),
        RolloutCommand(kind="promote", id="2026-01-01T00:00:00.000000Z", ignore_windows=True),
    ],
)
def test_what_is_written_is_what_is_read(command: RolloutCommand) -> None:
    annotations = {annotation_key(command.kind): annotation_value(command), "other.io/x": "y"}
    assert parse_commands(annotations) == ([command], [])


def test_command_annotations_live_outside_kopfs_storage_prefix() -> None:
    from edgeroll.handlers import STORAGE_PREFIX

    key = annotation_key("promote")
    assert key == "edgeroll.io/rollout-promote"
    assert not key.startswith(f"{STORAGE_PREFIX}/")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "id"),
        ("{not json", "Expecting"),
        ('{"id": "x", "toDigest": "sha256:abc"}', "sha256:<64 hex>"),
        (json.dumps({"toDigest": D1}), "id: Field required"),
    ],
)
def test_a_bad_undo_is_ignored_with_a_reason(value: str, why: str) -> None:
    commands, problems = parse_commands({annotation_key("undo"): value})
    assert commands == [] and len(problems) == 1
    assert problems[0].startswith("annotation edgeroll.io/rollout-undo: ignored") and why in problems[0]


def test_promote_ignore_windows_extends_the_annotation_and_old_values_still_read() -> None:
    key = annotation_key("promote")
    value = annotation_value(RolloutCommand(kind="promote", id="i", ignore_windows=True))
    assert json.loads(value) == {"id": "i", "ignoreWindows": True}
    # What an older CLI wrote (the bare id) is a plain promote, as before.
    assert parse_commands({key: "2026-01-01T00:00:00.000000Z"}) == (
        [RolloutCommand(kind="promote", id="2026-01-01T00:00:00.000000Z")],
        [],
    )
    commands, problems = parse_commands(
        {annotation_key("abort"): json.dumps({"id": "i", "ignoreWindows": True})}
    )
    assert commands == [] and "only promote takes ignoreWindows" in problems[0]


def test_only_undo_takes_a_digest() -> None:
    commands, problems = parse_commands({annotation_key("abort"): json.dumps({"id": "i", "toDigest": D1})})
    assert commands == [] and "only undo" in problems[0]


# ---- the CLI, against an in-memory hub ---------------------------------------------------------------


class FakeHub:
    def __init__(self, obj: dict[str, Any] | None) -> None:
        self.obj = obj
        self.patches: list[Mapping[str, Any]] = []

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.obj

    async def patch(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        assert self.obj is not None
        self.patches.append(patch)
        self.obj = merge_patch(self.obj, dict(patch))
        return self.obj

    async def close(self) -> None:
        pass


def rtc(phase: str = "Soaking") -> dict[str, Any]:
    return {
        "metadata": {"namespace": "prod", "name": "graph", "annotations": {"keep": "me"}},
        "spec": {"rollout": {"strategy": "Progressive", "canary": 1, "soakSeconds": 30}},
        "status": {
            "phase": "Progressing",
            "readyClusters": "1/3",
            "conditions": [{"type": "Reconciling", "status": "True", "reason": phase, "message": "wave 1/2"}],
            "rollout": {
                "phase": phase,
                "revision": D1,
                "wave": 0,
                "waveProgress": "1/2",
                "startedAt": "2026-01-01T00:00:00.123456Z",
                "waves": [
                    {
                        "name": "canary",
                        "startedAt": "2026-01-01T00:00:00Z",
                        "healthyAt": "2026-01-01T00:00:04Z",
                    },
                    {"name": "batch-1"},
                ],
                "clusters": [
                    {"name": "edge-ap", "wave": 0, "target": D1},
                    {"name": "edge-eu", "wave": 1, "target": D1},
                ],
            },
            "clusters": [
                {"name": "edge-ap", "wave": "canary", "phase": "Ready", "digest": D1, "message": "healthy"},
                {
                    "name": "edge-eu",
                    "wave": "batch-1",
                    "phase": "Pending",
                    "digest": D2,
                    "message": "waiting",
                },
            ],
        },
    }


def args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    parsed = parser.parse_args(list(argv))
    parsed.namespace = parsed.namespace or "prod"
    return parsed


async def run(hub: FakeHub, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = await cli.execute(args(*argv), hub, out)
    return code, out.getvalue()


async def test_pause_and_resume_set_spec_rollout_paused() -> None:
    hub = FakeHub(rtc())
    code, out = await run(hub, "pause", "graph", "-n", "prod")
    assert code == 0 and hub.patches == [{"spec": {"rollout": {"paused": True}}}]
    assert "graph pause: spec.rollout.paused=true; rollout Soaking at wave 1/2" in out
    await run(hub, "resume", "graph")
    assert hub.obj is not None and hub.obj["spec"]["rollout"] == {
        "strategy": "Progressive",
        "canary": 1,
        "soakSeconds": 30,
        "paused": False,
    }


async def test_promote_writes_a_fresh_command_annotation_and_keeps_the_others() -> None:
    hub = FakeHub(rtc())
    code, out = await run(hub, "promote", "graph")
    assert code == 0
    annotations = hub.obj["metadata"]["annotations"]  # type: ignore[index]
    assert annotations["keep"] == "me"
    (command,), problems = parse_commands(annotations)
    assert command.kind == "promote" and not problems and command.id in out


async def test_promote_ignore_windows_writes_it_into_the_promote_annotation() -> None:
    hub = FakeHub(rtc("Waiting"))
    code, out = await run(hub, "promote", "graph", "--ignore-windows")
    assert code == 0 and '"ignoreWindows":true' in out and "note:" not in out  # Waiting is active
    (command,), _ = parse_commands(hub.obj["metadata"]["annotations"])  # type: ignore[index]
    assert command.kind == "promote" and command.ignore_windows


async def test_status_shows_the_windows_and_when_the_waiting_wave_may_start() -> None:
    obj = rtc("Waiting")
    obj["spec"]["rollout"]["windows"] = [
        {"kind": "Deny", "schedule": "0 9 * * 1-5", "durationSeconds": 28800, "timeZone": "Europe/Berlin"}
    ]
    obj["status"]["rollout"]["window"] = {
        "wave": 1,
        "since": "2026-01-05T08:00:00Z",
        "nextOpenAt": "2026-01-05T16:00:00Z",
        "message": "edge-eu: inside Deny windows[0] (0 9 * * 1-5 Europe/Berlin) until 16:00",
    }
    _, out = await run(FakeHub(obj), "status", "graph")
    assert "window 0: Deny '0 9 * * 1-5' Europe/Berlin for 28800s" in out
    assert "outside window: wave 2 waits since 2026-01-05T08:00:00Z, next opening 2026-01-05T16:00:00Z" in out


async def test_undo_to_a_digest_and_per_cluster_digests() -> None:
    hub = FakeHub(rtc())
    code, _ = await run(hub, "undo", "graph", "--to-digest", "1" * 64, "--digest", f"edge-eu={D2}")
    assert code == 0
    (command,), _ = parse_commands(hub.obj["metadata"]["annotations"])  # type: ignore[index]
    assert command.kind == "undo" and command.to_digest == D1 and command.digests == {"edge-eu": D2}


async def test_refusals_write_nothing() -> None:
    hub = FakeHub(rtc())
    assert (await run(hub, "undo", "graph", "--to-digest", "v1"))[0] == 2
    assert (await run(hub, "undo", "graph", "--digest", "edge-eu"))[0] == 2
    assert (await run(FakeHub(None), "promote", "graph"))[0] == 1
    assert hub.patches == []


async def test_a_command_that_will_not_act_says_so() -> None:
    _, out = await run(FakeHub(rtc("Completed")), "abort", "graph")
    assert "note: abort acts on an active or failed rollout; this one is Completed (see undo)" in out


async def test_status_shows_waves_with_timestamps_and_clusters() -> None:
    code, out = await run(FakeHub(rtc()), "status", "graph")
    assert code == 0
    assert "rollout Soaking, wave 1/2, started 2026-01-01T00:00:00.123Z" in out
    assert "Reconciling=True Soaking: wave 1/2" in out
    lines = out.splitlines()
    canary = next(line for line in lines if "canary" in line and "edge-ap" in line and "2026" in line)
    assert canary.startswith("*1 canary") and "2026-01-01T00:00:04Z" in canary
    assert any(line.startswith("edge-eu") and "Pending" in line and "batch-1" in line for line in lines)


def test_kubeconfig_and_namespace_like_kubectl(tmp_path: Any) -> None:
    assert cli.hub_kubeconfig("x", {"KUBECONFIG": "y"}) == "x"
    assert cli.hub_kubeconfig(None, {"EDGEROLL_HUB_KUBECONFIG": "h", "KUBECONFIG": "y"}) == "h"
    assert cli.hub_kubeconfig(None, {"KUBECONFIG": "a:b"}) == "a"
    path = tmp_path / "kc"
    path.write_text("current-context: c\ncontexts: [{name: c, context: {cluster: x, namespace: prod}}]\n")
    assert cli.default_namespace(str(path)) == "prod"
    assert cli.default_namespace(str(tmp_path / "missing")) == "default"


async def test_status_shows_each_metric_and_its_latest_measurements() -> None:
    obj = rtc()
    obj["status"]["rollout"]["analysis"] = [
        {
            "wave": 0,
            "metric": "error-rate",
            "phase": "Failed",
            "tallies": [{"cluster": "edge-ap", "phase": "Failed", "successful": 1, "failed": 2}],
            "measurements": [
                {"cluster": "edge-ap", "time": "2026-01-01T00:00:10Z", "value": 0.0, "verdict": "Successful"},
                {
                    "cluster": "edge-ap",
                    "time": "2026-01-01T00:00:20Z",
                    "value": 0.31,
                    "verdict": "Failed",
                    "message": "successCondition `result < 0.05` does not hold",
                },
                {
                    "cluster": "edge-ap",
                    "time": "2026-01-01T00:00:30Z",
                    "verdict": "Inconclusive",
                    "message": "empty",
                },
            ],
        }
    ]
    code, out = await run(FakeHub(obj), "status", "graph")
    assert code == 0
    lines = out.splitlines()
    summary = next(line for line in lines if line.startswith("1 canary") and "error-rate" in line)
    assert "Failed" in summary and "edge-ap Failed 1/2/0" in summary
    failed = next(line for line in lines if "0.31" in line)
    assert failed.startswith("2026-01-01T00:00:20Z") and "edge-ap" in failed and "Failed" in failed
    assert "does not hold" in failed
    assert any("Inconclusive" in line and line.rstrip().endswith("empty") and " - " in line for line in lines)
