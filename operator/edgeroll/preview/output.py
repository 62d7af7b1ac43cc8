"""The preview as text for a terminal and as JSON for scripts: the same facts in both. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgeroll.preview.diff import Change, compact, cut, cut_pair, describe
from edgeroll.preview.model import ClusterPreview, Preview, short


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def short_revision(revision: str | None) -> str:
    """A content revision as the terminal shows it: the base digest shortened, the overlays' hash kept."""
    base, plus, overlays = (revision or "-").partition("+")
    return f"{short(base)}…{plus}{overlays}" if base.startswith("sha256:") else (revision or "-")


def _headline(p: Preview) -> str:
    what = f"routerconfig {p.namespace}/{p.name}"
    if p.refused is not None:
        return f"{what}: would be refused ({p.refused.reason}): {p.refused.message}"
    if not p.exists:
        return f"{what}: new; revision {short_revision(p.revision)}"
    revision = short_revision(p.revision)
    if p.restarts:
        return f"{what}: new revision {revision}; the rollout starts again from wave 1/{len(p.waves)}"
    return f"{what}: same revision {revision}; the rollout in progress keeps its waves"


def _changes(c: ClusterPreview, width: int, max_changes: int) -> list[str]:
    if c.baseline is None:
        return []
    head = f"{c.name}: {len(c.changes)} change(s) from {short(c.baseline.digest)}, {c.baseline.what}"
    if not c.changes:
        return [f"{c.name}: no change from {short(c.baseline.digest)}, {c.baseline.what}"]
    shown = c.changes if max_changes <= 0 else c.changes[:max_changes]
    lines = [head, *(f"  {describe(ch, width)}" for ch in shown)]
    if len(shown) < len(c.changes):
        lines.append(f"  … {len(c.changes) - len(shown)} more (--max-changes)")
    return lines


def render_text(p: Preview, width: int = 80, max_changes: int = 20) -> str:
    lines = [_headline(p), *(f"note: {n}" for n in p.notes)]
    if p.refused is not None:
        return "\n".join(lines) + "\n"
    if not p.clusters:
        lines.append("no EdgeCluster matches spec.targets.clusterSelector: nothing would be rolled out")
    else:
        waves = " | ".join(
            f"{i + 1} {w} ({', '.join(c.name for c in p.clusters if c.wave == i + 1) or '-'})"
            for i, w in enumerate(p.waves)
        )
        lines.append(f"waves: {waves}")
        rows = [["CLUSTER", "WAVE", "SERVES NOW", "MOVES TO"]]
        for c in p.clusters:
            moves = short(c.digest) if c.moves else "(no move)"
            rows.append([c.name, f"{c.wave}/{len(p.waves)} {c.wave_name}", short(c.serving), moves])
        lines += ["", *_table(rows)]
    if p.leaving:
        lines.append(f"no longer targets, their edge caches are removed: {', '.join(p.leaving)}")
    diffs = [line for c in p.clusters for line in _changes(c, width, max_changes)]
    if diffs:
        lines += ["", *diffs]
    return "\n".join(lines) + "\n"


def _change_json(ch: Change, width: int) -> dict[str, Any]:
    out: dict[str, Any] = {"path": ch.path, "op": ch.kind}
    if ch.kind == "changed":
        out["old"], out["new"] = cut_pair(ch.old, ch.new, width)
    elif ch.kind == "added":
        out["new"] = cut(compact(ch.new), width)
    else:
        out["old"] = cut(compact(ch.old), width)
    return out


def to_json(p: Preview, width: int = 80) -> dict[str, Any]:
    """The preview as a JSON object; values in changes are compact JSON text cut to `width` (0: whole)."""
    clusters = [
        {
            "name": c.name,
            "wave": c.wave,
            "waveName": c.wave_name,
            "digest": c.digest,
            "servingDigest": c.serving,
            "moves": c.moves,
            "baseline": {"digest": c.baseline.digest, "what": c.baseline.what} if c.baseline else None,
            "changes": [_change_json(ch, width) for ch in c.changes],
        }
        for c in p.clusters
    ]
    refused = {"reason": p.refused.reason, "message": p.refused.message} if p.refused else None
    return {
        "namespace": p.namespace,
        "name": p.name,
        "exists": p.exists,
        "refused": refused,
        "revision": p.revision,
        "baseDigest": p.base_digest,
        "restartsRollout": p.restarts,
        "waves": list(p.waves),
        "clusters": clusters,
        "leaving": list(p.leaving),
        "notes": list(p.notes),
    }
