"""Plots for docs/reliability.md from the suite's results (not a test; run by hand).

    export EDGEROLL_RELIABILITY_RESULTS=tests/reliability/results
    .venv/bin/python -m pytest tests/reliability -m reliability
    .venv/bin/python tests/reliability/plot_reliability.py [RESULTS_DIR] [IMG_DIR]

Reads <name>.json as written by reliability_kit.figure(), writes docs/img/reliability-<name>.png.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

ROOT = Path(__file__).resolve().parents[2]
COLORS = {"v1": "#9ecae1", "v2": "#fdae6b", "v3": "#74c476", "?": "#bbbbbb", "FAILED": "#d62728"}
EDGES = ["edge-eu", "edge-us", "edge-ap"]


def load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def caption(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    load_avg = "/".join(f"{x:g}" for x in m["loadavg"])
    return f"{m['cores']} cores, {m['mem_gib']} GiB, load {load_avg} at the end of the test"


def segments(rows: list[list[Any]], end: float) -> dict[str, list[tuple[float, float, str]]]:
    """[t, edge, label] change rows -> per edge [(start, width, label)]."""
    out: dict[str, list[tuple[float, float, str]]] = {e: [] for e in EDGES}
    by_edge: dict[str, list[tuple[float, str]]] = {e: [] for e in EDGES}
    for t, edge, label, *_ in rows:
        by_edge.setdefault(edge, []).append((t, label))
    for edge, changes in by_edge.items():
        for (t, label), nxt in zip(changes, [*changes[1:], (end, "")], strict=True):
            if nxt[0] > t:
                out.setdefault(edge, []).append((t, nxt[0] - t, label))
    return out


def lanes(ax: Any, rows: list[list[Any]], end: float, title: str) -> None:
    for i, segs in enumerate(segments(rows, end).values()):
        ax.broken_barh(
            [(s, w) for s, w, _ in segs],
            (i - 0.35, 0.7),
            facecolors=[COLORS.get(label, "#bbbbbb") for _, _, label in segs],
        )
    ax.set_yticks(range(len(EDGES)), EDGES)
    ax.set_ylim(-0.6, len(EDGES) - 0.4)
    ax.set_title(title, fontsize=10, loc="left")


def mark(ax: Any, t: float | None, text: str, low: bool = False) -> None:
    """A dashed line at `t`, labelled at the top (or the bottom) of the axes."""
    if t is None:
        return
    ax.axvline(t, color="black", lw=1, ls="--")
    y0, y1 = ax.get_ylim()
    ax.text(
        t, y0 if low else y1, f" {text} ", rotation=90, va="bottom" if low else "top", ha="right", fontsize=7
    )


def plot_s3_outage(doc: dict[str, Any], out: Path) -> None:
    d, m = doc["data"], doc["data"]["marks"]
    end = max(m["served_v3"] + 3, m["s3_back"] + 10)
    fig, (top, mid, low) = plt.subplots(3, 1, figsize=(10, 6.5), sharex=True, height_ratios=[3, 2, 1.3])
    lanes(top, d["served"], end, "what each edge's live cache answered (0 failed polls)")
    lanes(mid, d["versions"], end, "edge Deployment pod template (watch)")
    for ax in (top, mid):
        ax.axvspan(m["s3_stopped"], m["s3_back"], color="#d62728", alpha=0.08)
    for t0, ready, edge, label in d["pods"]:
        if label == "v2":
            y = EDGES.index(edge) + 0.42
            top.plot([t0, ready if ready is not None else m["s3_back"]], [y, y], color="#e6550d", lw=2)
    mark(mid, m["condition_shown"], "Published=False")
    mark(mid, m["s3_back"], "S3 back")
    mark(mid, m["ready_on_v3"], "Ready on v3", low=True)
    secs, counts = zip(*d["polls_per_s"], strict=True) if d["polls_per_s"] else ((), ())
    low.bar(secs, counts, width=1.0, color="#6baed6")
    low.axvspan(m["s3_stopped"], m["s3_back"], color="#d62728", alpha=0.08)
    low.set_ylabel("answers/s")
    low.set_xlabel("seconds since S3 was stopped")
    low.set_xlim(-5, end)
    legend = [Patch(color=COLORS[v], label=v) for v in ("v1", "v2", "v3")]
    legend += [Patch(color="#e6550d", label="v2 pods, unready (no S3)"), Patch(color="#d62728", alpha=0.2)]
    legend[-1].set_label("S3 down")
    top.legend(handles=legend, fontsize=7, loc="lower left", ncol=5)
    fig.suptitle(f"S3 stopped for 60 s mid-rollout — {caption(doc)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_apiserver_loss(doc: dict[str, Any], out: Path) -> None:
    d, m = doc["data"], doc["data"]["marks"]
    end = m["ready"] + 5
    fig, (top, low) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    lanes(top, d["served"], end, "what each edge's live cache answered (0 failed polls)")
    healthy = [[t, e, label if ok else f"{label}?"] for t, e, label, ok in d["versions"]]
    lanes(low, healthy, end, "edge Deployment: template, rolled out (solid) or not yet (grey)")
    lost = EDGES.index(d["lost"])
    for ax in (top, low):
        ax.fill_between([m["stopped"], m["restarted"]], lost - 0.45, lost + 0.45, color="#d62728", alpha=0.15)
    marks = (
        ("marked", "Unreachable"),
        ("others_ready", "others Ready"),
        ("restarted", "apiserver restarted"),
        ("reapplied", "re-applied"),
        ("edge_observed", "edge controller saw it"),
        ("edge_rolled", "edge rolled out"),
        ("ready", "Ready"),
    )
    for n, (key, text) in enumerate(marks):
        mark(low, m.get(key), text, low=n % 2 == 1)
    low.set_xlabel(f"seconds since {d['lost']}'s apiserver was stopped")
    low.set_xlim(-5, end)
    legend = [Patch(color=COLORS[v], label=v) for v in ("v1", "v2")]
    legend.append(Patch(color="#bbbbbb", label="not rolled out"))
    legend.append(Patch(color="#d62728", alpha=0.15, label="apiserver down"))
    top.legend(handles=legend, fontsize=7, loc="lower left", ncol=4)
    fig.suptitle(f"One edge apiserver stopped for 60 s — {caption(doc)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


MOMENT_COLORS = {
    "before-publish": "#fdd0a2",
    "published": "#fd8d3c",
    "edges-moving": "#d94801",
    "edges-moved": "#7f2704",
}


def plot_operator_kills(doc: dict[str, Any], out: Path) -> None:
    rows = doc["data"]["rollouts"]
    fig, ax = plt.subplots(figsize=(10, 6))
    for r in rows:
        y = r["i"]
        moment = r["kill_moment"]
        parts = [
            (0.0, r["kill_after_s"], MOMENT_COLORS[moment]),
            (r["kill_after_s"], r["restart_s"], "#bdbdbd"),
            (r["kill_after_s"] + r["restart_s"], r["converged_after_restart_s"], "#6baed6"),
        ]
        ax.broken_barh([(s, w) for s, w, _ in parts], (y - 0.4, 0.8), facecolors=[c for _, _, c in parts])
        ax.plot(r["apply_to_served_s"], y, "k|", ms=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the apply")
    ax.set_ylabel("rollout")
    legend = [Patch(color=c, label=f"apply → kill ({k})") for k, c in MOMENT_COLORS.items()]
    legend += [
        Patch(color="#bdbdbd", label="restart until liveness"),
        Patch(color="#6baed6", label="until Ready on the new digest"),
    ]
    ax.plot([], [], "k|", label="every edge's live cache serves it")
    ax.legend(handles=[*legend, ax.get_lines()[-1]], fontsize=7, loc="lower right")
    strategy = doc["data"].get("strategy", "")
    fig.suptitle(f"{len(rows)} {strategy} rollouts, SIGKILL at a random moment — {caption(doc)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_bad_input(doc: dict[str, Any], out: Path) -> None:
    by_fault = doc["data"]["by_fault"]
    faults = sorted(by_fault, key=lambda f: (by_fault[f][0] == 0, f))
    refused = [by_fault[f][0] for f in faults]
    reported = [by_fault[f][1] for f in faults]
    fig, ax = plt.subplots(figsize=(9, 8))
    ys = range(len(faults))
    ax.barh(ys, refused, color="#9ecae1", label="refused by the CRD, naming the field")
    ax.barh(ys, reported, left=refused, color="#fd8d3c", label="Stalled condition, naming the field")
    ax.set_yticks(ys, faults, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("generated RouterConfigs, by the fault each carries")
    ax.set_xlim(0, max(r + p for r, p in zip(refused, reported, strict=True)) * 1.6)
    ax.legend(fontsize=8, loc="center right")
    f = doc["figures"]
    fig.suptitle(
        f"{f['cases']} generated bad RouterConfigs: {f['refused']} refused, {f['reported']} reported, "
        f"{f['misnamed']} misnamed\n{caption(doc)}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


PLOTS = {
    "s3_outage": plot_s3_outage,
    "apiserver_loss": plot_apiserver_loss,
    "operator_kills": plot_operator_kills,
    "bad_input": plot_bad_input,
}


def main(argv: list[str]) -> int:
    results = Path(argv[1]) if len(argv) > 1 else ROOT / "tests" / "reliability" / "results"
    img = Path(argv[2]) if len(argv) > 2 else ROOT / "docs" / "img"
    img.mkdir(parents=True, exist_ok=True)
    for name, plot in PLOTS.items():
        doc = load(results, name)
        if doc is None:
            print(f"skip {name}: no {results / name}.json")
            continue
        out = img / f"reliability-{name.replace('_', '-')}.png"
        plot(doc, out)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
