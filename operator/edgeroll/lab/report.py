"""The `edgeroll lab status` table. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ComponentHealth:
    cluster: str  # "hub", "edge-eu", ... or "s3"
    component: str
    healthy: bool
    detail: str
    pid: int | None = None
    port: int | None = None
    rss_bytes: int = 0


HEADERS = ("CLUSTER", "COMPONENT", "HEALTH", "PID", "PORT", "RSS", "DETAIL")


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f}Mi" if n else "-"


def format_table(rows: Sequence[ComponentHealth]) -> str:
    """Aligned columns, one row per component, then per-cluster RSS totals."""
    cells = [
        (
            r.cluster,
            r.component,
            "ok" if r.healthy else "DOWN",
            str(r.pid or "-"),
            str(r.port or "-"),
            _mib(r.rss_bytes),
            r.detail,
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(HEADERS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip() for cell in cells]
    totals = rss_by_cluster(rows)
    if totals:
        lines.append("")
        lines.append("RSS: " + ", ".join(f"{name} {_mib(total)}" for name, total in totals.items()))
    return "\n".join(lines)


def rss_by_cluster(rows: Sequence[ComponentHealth]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for row in rows:
        if row.rss_bytes:
            totals[row.cluster] = totals.get(row.cluster, 0) + row.rss_bytes
    return totals


def all_healthy(rows: Sequence[ComponentHealth]) -> bool:
    return bool(rows) and all(r.healthy for r in rows)
