"""`edgeroll rollout pause|resume|promote|abort|undo|retry|status NAME -n NS`: manual rollout control.

Like `kubectl argo rollouts`, against the hub (`--kubeconfig`, else EDGEROLL_HUB_KUBECONFIG, else
KUBECONFIG, else in-cluster or ~/.kube/config). pause and resume set `spec.rollout.paused`; the
one-shot commands write the annotation `edgeroll.io/rollout-<kind>` with a fresh RFC 3339 UTC id
(rollout/commands.py), which the operator handles exactly once. Each command prints what it wrote
and where the rollout stands; the operator acts within a second or two (`status` shows it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from edgeroll.api.common import GROUP, VERSION
from edgeroll.api.routerconfig import PLURAL
from edgeroll.rollout.commands import DIGEST, annotation_key, annotation_value, new_command_id
from edgeroll.rollout.planner import ACTIVE_PHASES, CommandKind, RolloutCommand

ACTIONS = ("pause", "resume", "promote", "abort", "undo", "retry", "status")
COMMANDS: dict[str, CommandKind] = {"promote": "promote", "abort": "abort", "undo": "undo", "retry": "retry"}
HELP = {
    "pause": "set spec.rollout.paused: no cluster moves and no wave starts",
    "resume": "clear spec.rollout.paused",
    "promote": "skip the rest of the current wave's soak (health is still required); with "
    "--ignore-windows the next wave also starts outside its deployment windows, once",
    "abort": "halt an active or failed rollout and send every cluster back to its last-good digest",
    "undo": "roll back from any phase: to last-good digests, or to --to-digest",
    "retry": "start a halted (Failed/RolledBack) revision again from the first wave",
    "status": "show the rollout: phase, waves with their timestamps, analysis measurements, clusters",
}


class RouterConfigs(Protocol):
    """The hub, as far as this command needs it."""

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def patch(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class HubRouterConfigs:
    def __init__(self, kubeconfig: str | None) -> None:
        self.kubeconfig = kubeconfig
        self._client: Any = None

    async def _hub(self) -> Any:
        if self._client is None:
            from edgeroll.clusters.kube import KubeClient  # aiohttp only when it talks

            self._client = await KubeClient.from_environment(self.kubeconfig, timeout=30.0)
        return self._client

    @staticmethod
    def _path(namespace: str, name: str) -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = await (await self._hub()).get_path(self._path(namespace, name))
        return None if found is None else dict(found)

    async def patch(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return dict(await (await self._hub()).patch_merge(self._path(namespace, name), patch))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


# ---- pure parts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    action: str
    to_digest: str | None = None
    digests: Mapping[str, str] | None = None
    ignore_windows: bool = False


def normalise_digest(value: str) -> str:
    """`sha256:<hex>`, or the bare 64 hex digits; anything else is refused."""
    digest = value if value.startswith("sha256:") else f"sha256:{value}"
    if not DIGEST.match(digest):
        raise ValueError(f"not a digest (sha256:<64 hex>): {value!r}")
    return digest


def command_patch(request: Request, command_id: str) -> tuple[dict[str, Any], str]:
    """The merge patch for a request, and a sentence saying what it asks for."""
    if request.action in ("pause", "resume"):
        paused = request.action == "pause"
        return {"spec": {"rollout": {"paused": paused}}}, f"spec.rollout.paused={str(paused).lower()}"
    kind = COMMANDS.get(request.action)
    if kind is None:
        raise ValueError(f"not a command: {request.action}")
    command = RolloutCommand(
        kind=kind,
        id=command_id,
        to_digest=request.to_digest,
        digests=dict(request.digests or {}),
        ignore_windows=request.ignore_windows,
    )
    key, value = annotation_key(kind), annotation_value(command)
    return {"metadata": {"annotations": {key: value}}}, f"{key}={value}"


def advice(action: str, rollout: Mapping[str, Any] | None) -> str | None:
    """A note when the command will not do what one might expect in the rollout's current phase."""
    phase = (rollout or {}).get("phase")
    now = phase or "not started"
    if action == "promote" and phase not in ACTIVE_PHASES:
        return f"note: promote acts on an active rollout; this one is {now}"
    if action == "abort" and phase not in (*ACTIVE_PHASES, "Failed"):
        return f"note: abort acts on an active or failed rollout; this one is {now} (see undo)"
    if action == "retry" and phase not in ("Failed", "RolledBack"):
        return f"note: retry acts on a halted rollout; this one is {now}"
    return None


def where(obj: Mapping[str, Any]) -> str:
    rollout = (obj.get("status") or {}).get("rollout") or {}
    if not rollout:
        return "no rollout recorded yet"
    return f"rollout {rollout.get('phase')} at wave {rollout.get('waveProgress')}"


def _time(value: Any) -> str:
    if not value:
        return "-"
    text = str(value)
    return re.sub(r"(\.\d{3})\d*", r"\1", text)  # milliseconds are plenty on a terminal


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _window_lines(rollout: Mapping[str, Any], policy: Mapping[str, Any]) -> list[str]:
    """The deployment windows, and the wave they hold with when it may start (status.rollout.window)."""
    windows = policy.get("windows") or []
    lines = [
        f"window {i}: {w.get('kind')} {w.get('schedule')!r} {w.get('timeZone', 'UTC')} for "
        f"{w.get('durationSeconds')}s" + (" (clusterSelector)" if w.get("clusterSelector") else "")
        for i, w in enumerate(windows)
    ]
    hold = rollout.get("window")
    if hold:
        opens = _time(hold.get("nextOpenAt")) if hold.get("nextOpenAt") else "none within a year"
        lines.append(
            f"outside window: wave {int(hold.get('wave', 0)) + 1} waits since {_time(hold.get('since'))}, "
            f"next opening {opens}: {hold.get('message', '')}"
        )
    return lines


def render_status(obj: Mapping[str, Any]) -> str:
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    rollout = status.get("rollout") or {}
    policy = (obj.get("spec") or {}).get("rollout") or {}
    lines = [
        f"RouterConfig {meta.get('namespace')}/{meta.get('name')}: {status.get('phase') or 'Unknown'}, "
        f"{status.get('readyClusters') or '-'} clusters ready",
        f"strategy {policy.get('strategy', 'AllAtOnce')}"
        + (", paused" if policy.get("paused") else "")
        + f"; revision {rollout.get('revision') or '-'}",
    ]
    if rollout:
        lines.append(
            f"rollout {rollout.get('phase')}, wave {rollout.get('waveProgress')}, "
            f"started {_time(rollout.get('startedAt'))}"
            + (f", reason {rollout['reason']}" if rollout.get("reason") else "")
        )
    lines += _window_lines(rollout, policy)
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Ready", "Reconciling", "Stalled"):
            lines.append(
                f"  {cond['type']}={cond.get('status')} {cond.get('reason', '')}: {cond.get('message', '')}"
            )
    waves = rollout.get("waves") or []
    members: dict[int, list[str]] = {}
    for record in rollout.get("clusters") or []:
        members.setdefault(int(record.get("wave", 0)), []).append(str(record.get("name")))
    if waves:
        rows = [["WAVE", "STARTED", "HEALTHY", "COMPLETED", "CLUSTERS"]]
        current = int(rollout.get("wave", 0))
        for index, wave in enumerate(waves):
            mark = "*" if index == current and rollout.get("phase") in ACTIVE_PHASES else " "
            promoted = " (promoted)" if wave.get("promoted") else ""
            rows.append(
                [
                    f"{mark}{index + 1} {wave.get('name')}",
                    _time(wave.get("startedAt")),
                    _time(wave.get("healthyAt")),
                    _time(wave.get("completedAt")) + promoted,
                    ", ".join(sorted(members.get(index, []))) or "-",
                ]
            )
        lines += ["", *_table(rows)]
    lines += _analysis_lines(rollout)
    clusters = status.get("clusters") or []
    if clusters:
        rows = [["CLUSTER", "WAVE", "PHASE", "DIGEST", "READY", "MESSAGE"]]
        for c in clusters:
            digest = str(c.get("digest") or "-")
            rows.append(
                [
                    str(c.get("name")),
                    str(c.get("wave") or "-"),
                    str(c.get("phase")),
                    digest[:19],
                    f"{c.get('readyReplicas', 0)}/{c.get('replicas', 0)}",
                    str(c.get("message") or ""),
                ]
            )
        lines += ["", *_table(rows)]
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    return "-" if value is None else f"{float(value):g}"


def _analysis_lines(rollout: Mapping[str, Any]) -> list[str]:
    """spec.rollout.analysis as recorded: per wave and metric its phase and per-cluster counts, then
    the latest measurements (value, verdict, time, why)."""
    entries = rollout.get("analysis") or []
    if not entries:
        return []
    names = [str(w.get("name")) for w in rollout.get("waves") or []]

    def wave(index: Any) -> str:
        i = int(index)
        return f"{i + 1} {names[i]}" if i < len(names) else str(i + 1)

    summary = [["ANALYSIS", "METRIC", "PHASE", "PER CLUSTER (successful/failed/inconclusive in a row)"]]
    measured = [["TIME", "WAVE", "METRIC", "CLUSTER", "VALUE", "VERDICT", "MESSAGE"]]
    for entry in entries:
        tallies = ", ".join(
            f"{t.get('cluster')} {t.get('phase')} {t.get('successful', 0)}/{t.get('failed', 0)}/"
            f"{t.get('inconclusive', 0)}"
            for t in entry.get("tallies") or []
        )
        summary.append(
            [wave(entry.get("wave", 0)), str(entry.get("metric")), str(entry.get("phase")), tallies]
        )
        for m in entry.get("measurements") or []:
            measured.append(
                [
                    _time(m.get("time")),
                    wave(entry.get("wave", 0)),
                    str(entry.get("metric")),
                    str(m.get("cluster")),
                    _value(m.get("value")),
                    str(m.get("verdict")),
                    str(m.get("message") or ""),
                ]
            )
    return ["", *_table(summary), "", *_table(measured)]


# ---- the command ---------------------------------------------------------------------------------


def hub_kubeconfig(explicit: str | None, env: Mapping[str, str]) -> str | None:
    """--kubeconfig, else EDGEROLL_HUB_KUBECONFIG, else the first file of KUBECONFIG."""
    if explicit:
        return explicit
    if env.get("EDGEROLL_HUB_KUBECONFIG"):
        return env["EDGEROLL_HUB_KUBECONFIG"]
    first = next((p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p), None)
    return first


def default_namespace(kubeconfig: str | None) -> str:
    """The current context's namespace, as kubectl does; else "default"."""
    path = Path(kubeconfig) if kubeconfig else Path.home() / ".kube" / "config"
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return "default"
    current = cfg.get("current-context")
    for ctx in cfg.get("contexts") or []:
        if ctx.get("name") == current:
            return str((ctx.get("context") or {}).get("namespace") or "default")
    return "default"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("name", metavar="NAME", help="the RouterConfig")
    common.add_argument("-n", "--namespace", help="its namespace (default: the kubeconfig context's)")
    common.add_argument("--kubeconfig", help="hub kubeconfig (default: EDGEROLL_HUB_KUBECONFIG, KUBECONFIG)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action in ACTIONS:
        sub = actions.add_parser(action, parents=[common], help=HELP[action], description=HELP[action])
        if action == "promote":
            sub.add_argument(
                "--ignore-windows",
                action="store_true",
                help="let the next wave start outside its deployment windows, once (an event records it)",
            )
        if action == "undo":
            sub.add_argument("--to-digest", metavar="DIGEST", help="go back to this digest (sha256:<hex>)")
            sub.add_argument(
                "--digest",
                action="append",
                default=[],
                metavar="CLUSTER=DIGEST",
                help="per-cluster digest, for revisions with overlays (repeatable)",
            )


def request_of(args: argparse.Namespace) -> Request:
    if args.action == "promote":
        return Request("promote", ignore_windows=bool(getattr(args, "ignore_windows", False)))
    if args.action != "undo":
        return Request(args.action)
    to_digest = normalise_digest(args.to_digest) if args.to_digest else None
    digests: dict[str, str] = {}
    for item in args.digest:
        cluster, sep, value = item.partition("=")
        if not sep or not cluster:
            raise ValueError(f"--digest wants CLUSTER=DIGEST: {item!r}")
        digests[cluster] = normalise_digest(value)
    return Request("undo", to_digest, digests)


async def execute(args: argparse.Namespace, hub: RouterConfigs, out: Any = sys.stdout) -> int:
    namespace, name = args.namespace, args.name
    try:
        request = request_of(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    obj = await hub.get(namespace, name)
    if obj is None:
        print(f"error: routerconfig {namespace}/{name} not found", file=sys.stderr)
        return 1
    if request.action == "status":
        out.write(render_status(obj))
        return 0
    patch, what = command_patch(request, new_command_id())
    updated = await hub.patch(namespace, name, patch)
    print(f"routerconfig.{GROUP}/{name} {request.action}: {what}; {where(obj)}", file=out)
    note = advice(request.action, (updated.get("status") or {}).get("rollout"))
    if note:
        print(note, file=out)
    return 0


def run(args: argparse.Namespace) -> int:
    kubeconfig = hub_kubeconfig(args.kubeconfig, os.environ)
    args.namespace = args.namespace or default_namespace(kubeconfig)

    async def main() -> int:
        hub = HubRouterConfigs(kubeconfig)
        try:
            return await execute(args, hub)
        except Exception as exc:  # one line, not a traceback, for an apiserver refusal
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        finally:
            await hub.close()

    return asyncio.run(main())
