"""Manual rollout commands as RouterConfig annotations (pure): what `edgeroll rollout` writes, what the
reconciler reads.

One annotation per kind, `edgeroll.io/rollout-<kind>`, whose value is the command's id: an RFC 3339
UTC timestamp, so that ids sort in the order they were issued. `undo` may carry a target as JSON:
`{"id": "...", "toDigest": "sha256:...", "digests": {"<cluster>": "sha256:..."}}`, and `promote` may
let the next wave start outside its deployment windows, once: `{"id": "...", "ignoreWindows": true}`
(an operator that predates windows reads that as a plain promote: unknown fields are ignored).

The prefix is `edgeroll.io/`, not kopf's storage prefix (`kopf.edgeroll.io/`): kopf leaves annotations
under its own prefix out of change detection, so a command there would not trigger a reconcile.
The planner remembers the last id handled per kind in `status.rollout.handled`, so a command fires
once, across restarts too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import get_args

from pydantic import ValidationError

from edgeroll.rollout.planner import CommandKind, RolloutCommand

PREFIX = "edgeroll.io/rollout-"
KINDS: tuple[CommandKind, ...] = get_args(CommandKind)
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def annotation_key(kind: CommandKind) -> str:
    return f"{PREFIX}{kind}"


ANNOTATIONS: dict[str, CommandKind] = {annotation_key(k): k for k in KINDS}


def new_command_id(now: datetime | None = None) -> str:
    """An RFC 3339 UTC timestamp with microseconds: unique enough, and sorts in issue order."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def annotation_value(command: RolloutCommand) -> str:
    """The annotation value for a command: the bare id, or JSON when an undo names its target."""
    if command.to_digest is None and not command.digests and not command.ignore_windows:
        return command.id  # the bare id, as every operator version reads it
    body = command.model_dump(by_alias=True, exclude_none=True, exclude={"kind"})
    for optional in ("digests", "ignoreWindows"):
        if not body.get(optional):
            body.pop(optional, None)
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def parse_commands(annotations: Mapping[str, str]) -> tuple[list[RolloutCommand], list[str]]:
    """The commands the annotations carry, and a problem per annotation that does not parse (ignored)."""
    commands: list[RolloutCommand] = []
    problems: list[str] = []
    for key in sorted(annotations):
        kind = ANNOTATIONS.get(key)
        if kind is None:
            continue
        value = annotations[key].strip()
        try:
            if value.startswith("{"):
                fields = json.loads(value)
                if not isinstance(fields, dict):
                    raise ValueError("not a JSON object")
                command = RolloutCommand.model_validate({**fields, "kind": kind})
            else:
                command = RolloutCommand(kind=kind, id=value)
        except (ValueError, ValidationError) as exc:
            problems.append(f"annotation {key}: ignored, {_why(exc)}")
            continue
        bad = [d for d in (command.to_digest, *command.digests.values()) if d and not DIGEST.match(d)]
        if bad:
            problems.append(f"annotation {key}: ignored, not a sha256:<64 hex> digest: {', '.join(bad)}")
            continue
        if kind != "undo" and (command.to_digest or command.digests):
            problems.append(f"annotation {key}: ignored, only undo takes a digest")
            continue
        if kind != "promote" and command.ignore_windows:
            problems.append(f"annotation {key}: ignored, only promote takes ignoreWindows")
            continue
        commands.append(command)
    return commands, problems


def _why(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}" if where else str(err["msg"])
    return str(exc)
