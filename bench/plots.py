"""PNG plots for docs/benchmarks.md from bench/results/*.json (matplotlib, no display needed).

Usage: .venv/bin/python bench/plots.py   # writes docs/img/{propagation,fanout,publish,edge_serving}.png
A result that is missing is skipped with a note.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
OUT = REPO / "docs" / "img"
EDGEROLL, BASELINE, GOAL = "#1f6feb", "#9a9a9a", "#d1242f"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        print(f"skip {name}: {path.relative_to(REPO)} is missing")
        return None
    return dict(json.loads(path.read_text()))


def machine_note(data: dict[str, Any]) -> str:
    m = data.get("machine", {})
    load = m.get("loadavg_at_start", [])
    return f"{m.get('cpus')} cores, load {load[0] if load else '?'} at start, {m.get('time_utc', '')}"


def save(fig: Any, name: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path.relative_to(REPO)}")


def propagation(data: dict[str, Any]) -> None:
    runs = sorted(r["latency_s"] for r in data["run_details"])
    base = sorted(b["latency_s"] for b in data["baseline_details"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    for values, color, label in (
        (runs, EDGEROLL, "edgeroll"),
        (base, BASELINE, "put_object + 10 s/5 s poll"),
    ):
        ys = [(i + 1) / len(values) for i in range(len(values))]
        ax1.step(values, ys, where="post", color=color, lw=2, label=f"{label} (n={len(values)})")
    ax1.axvline(data["goal_p99_s"], color=GOAL, ls="--", lw=1, label="goal p99 5 s")
    ax1.set_xlabel("seconds from kubectl apply until every edge serves the new digest")
    ax1.set_ylabel("fraction of updates")
    ax1.set_xlim(left=0)
    ax1.set_title("Propagation, 3 edge clusters, AllAtOnce")
    ax1.legend(loc="lower right", fontsize=8)
    ax1.grid(alpha=0.3)
    stages = data["stages_median_s"]
    names = ["kubectl_apply", "template", "available", "serving", "status_ready"]
    labels = [
        "kubectl apply\nreturned",
        "pod template\nhas digest",
        "Deployment\nAvailable",
        "cache\nserves it",
        "RouterConfig\nReady",
    ]
    values = [stages.get(n) or 0 for n in names]
    ax2.barh(labels[::-1], values[::-1], color=[BASELINE] + [EDGEROLL] * 4)
    for y, v in enumerate(values[::-1]):
        ax2.text(v, y, f" {v:.2f} s", va="center", fontsize=8)
    ax2.set_xlabel("median seconds after kubectl apply (slowest edge)")
    ax2.set_title("Where the time goes")
    ax2.set_xlim(0, max(values) * 1.3)
    fig.suptitle(machine_note(data), fontsize=8, y=0.01)
    save(fig, "propagation")


def fanout(data: dict[str, Any]) -> None:
    curve = [p for p in data["curve"] if p.get("converge_s") is not None]
    if not curve:
        print("skip fanout plot: no size converged")
        return
    xs = [p["clusters"] for p in curve]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.8))
    ax1.plot(xs, [p["converge_s"] for p in curve], "o-", color=EDGEROLL, label="edgeroll")
    based = [p for p in curve if p.get("baseline_s") is not None]
    if based:  # the same-run bare apply loop: what the apiservers alone take
        ax1.plot(
            [p["clusters"] for p in based],
            [p["baseline_s"] for p in based],
            "s--",
            color=BASELINE,
            label="baseline",
        )
    ax1.axhline(data["goals"]["converge_s"], color=GOAL, ls="--", lw=1, label="goal 60 s")
    ax1.set_title(f"Cold start to all Ready ({data['routerconfigs']} RouterConfigs)")
    ax1.set_ylabel("seconds")
    ax2.plot(xs, [p["rss_mib"] for p in curve], "o-", color=EDGEROLL)
    ax2.axhline(data["goals"]["rss_mib"], color=GOAL, ls="--", lw=1, label="goal 250 MiB")
    ax2.set_title("Operator peak RSS")
    ax2.set_ylabel("MiB")
    ax3.plot(xs, [p["cpu_s"] for p in curve], "o-", color=EDGEROLL)
    ax3.set_title("Operator CPU time until converged")
    ax3.set_ylabel("CPU seconds")
    for ax in (ax1, ax2, ax3):
        ax.set_xlabel("EdgeClusters")
        ax.set_xticks(xs)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.suptitle(machine_note(data), fontsize=8, y=0.01)
    save(fig, "fanout")


def publish(data: dict[str, Any]) -> None:
    b = data["breakdown_ms"]
    fig, ax = plt.subplots(figsize=(8, 2.8))
    ax.barh(["bare put_object"], [data["baseline_put_ms"]], color=BASELINE)
    ax.barh(
        ["edgeroll publish"],
        [b["render"]],
        color="#79c0ff",
        label="render (validate, version, canonical bytes)",
    )
    ax.barh(
        ["edgeroll publish"],
        [data["edgeroll_ms"] - b["render"]],
        left=[b["render"]],
        color=EDGEROLL,
        label="then sign + PUT + manifest write (If-Match: no manifest read after our own write)",
    )
    ax.barh(["re-publish (HEAD ∥ manifest read)"], [data["republish_ms"]], color="#56d364")
    ax.axvline(
        data["baseline_put_ms"] * data["goal_overhead_ratio"],
        color=GOAL,
        ls="--",
        lw=1,
        label=f"goal: {data['goal_overhead_ratio']} x put",
    )
    ax.set_xlabel(
        f"median ms for a {data['config_bytes'] / 1e6:.1f} MB Cosmo config (lab SeaweedFS on loopback)"
    )
    ax.set_title(
        f"Publish: overhead ratio {data['overhead_ratio']} (paired {data['overhead_ratio_paired_median']})"
    )
    ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(machine_note(data), fontsize=8, y=-0.05)
    save(fig, "publish")


def edge_serving(data: dict[str, Any]) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.4))
    cases = ["200", "304"]
    width = 0.38
    xs = range(len(cases))
    for offset, server, color in ((-width / 2, "edge", EDGEROLL), (width / 2, "nginx", BASELINE)):
        ax1.bar(
            [x + offset for x in xs],
            [data[f"{server}_rps_{c}"] for c in cases],
            width,
            color=color,
            label="edgeroll cache" if server == "edge" else "nginx",
        )
        ax2.bar([x + offset for x in xs], [data[f"{server}_p99_ms_{c}"] for c in cases], width, color=color)
    for ax, title, unit in ((ax1, "Throughput", "requests/s"), (ax2, "p99 latency", "ms")):
        ax.set_xticks(list(xs))
        ax.set_xticklabels(["200 gzip (500 KB config)", "304 If-None-Match"])
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3, axis="y")
    ax1.legend(fontsize=8)
    fig.suptitle(
        f"Edge serving, medians of {data['settings']['rounds']} rounds; " + machine_note(data),
        fontsize=8,
        y=0.01,
    )
    save(fig, "edge_serving")


def main() -> int:
    for name, plot in (
        ("propagation", propagation),
        ("fanout", fanout),
        ("publish", publish),
        ("edge_serving", edge_serving),
    ):
        data = load(name)
        if data is not None:
            plot(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
