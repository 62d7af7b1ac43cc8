"""Run a Python module under tracemalloc and keep a snapshot taken near its peak RSS.

    python bench/memtrace.py --out snap.bin -m edgeroll.cli operator ...
    python bench/memtrace.py --report snap.bin

`bench/fanout.py --tracemalloc snap.bin` starts the operator this way. A thread reads VmRSS every
second and dumps a snapshot each time RSS passes the last dump by `--step` MiB, so the file left at
the end is the one nearest the peak. The report says how much of that RSS Python's allocator traced;
the rest is C (OpenSSL, the interpreter, arenas freed but not returned). With `--keep` (which
`bench/fanout.py` passes) every dump is also kept as `snap.bin.<seconds>s`, and `--report LATER
--since EARLIER` prints what grew between two of them, by the innermost edgeroll frame.
"""

from __future__ import annotations

import argparse
import runpy
import sys
import threading
import time
import tracemalloc
from pathlib import Path


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _sampler(out: Path, step_mib: float, keep: bool) -> None:
    dumped = 0.0
    started = time.monotonic()
    while True:
        rss = rss_mib()
        if rss >= dumped + step_mib:
            snapshot = tracemalloc.take_snapshot()
            tmp = out.with_suffix(".tmp")
            snapshot.dump(str(tmp))
            if keep:  # every dump, named by when it was taken: how the memory grew, not only its peak
                kept = out.with_name(f"{out.name}.{time.monotonic() - started:05.0f}s")
                kept.hardlink_to(tmp)
                kept.with_name(kept.name + ".rss").write_text(f"{rss:.1f}\n")
            tmp.replace(out)  # never a half-written file, even if the process is killed mid-dump
            out.with_suffix(".rss").write_text(f"{rss:.1f}\n")
            dumped = rss
        time.sleep(1.0)


def report(path: Path, top: int) -> None:
    snapshot = tracemalloc.Snapshot.load(str(path)).filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    rss_file = path.with_name(path.name + ".rss")  # a kept dump's; else the last dump's
    if not rss_file.exists():
        rss_file = path.with_suffix(".rss")
    rss = float(rss_file.read_text()) if rss_file.exists() else float("nan")
    traced = sum(s.size for s in snapshot.statistics("filename")) / 2**20
    print(f"RSS at the snapshot {rss:.1f} MiB, traced by tracemalloc {traced:.1f} MiB")
    for group in ("filename", "lineno"):
        print(f"\ntop {top} by {group}:")
        for stat in snapshot.statistics(group)[:top]:
            frame = stat.traceback[0]
            where = frame.filename if group == "filename" else f"{frame.filename}:{frame.lineno}"
            print(f"{stat.size / 2**20:8.2f} MiB {stat.count:9d} blocks  {where}")
    print(f"\ntop {top} by the innermost edgeroll frame (what our code holds, whoever allocated it):")
    for where, (size, count) in _by_own_frame(snapshot)[:top]:
        print(f"{size / 2**20:8.2f} MiB {count:9d} blocks  {where}")


def growth(later: Path, earlier: Path, top: int) -> None:
    old, new = tracemalloc.Snapshot.load(str(earlier)), tracemalloc.Snapshot.load(str(later))
    print(f"grown from {earlier.name} to {later.name}, by file:")
    for stat in new.compare_to(old, "filename")[:top]:
        print(f"{stat.size_diff / 2**20:+8.2f} MiB  {stat.traceback[0].filename}")
    before = dict(_by_own_frame(old))
    after = _by_own_frame(new)
    grown = sorted(((size - before.get(where, (0, 0))[0], where) for where, (size, _) in after), reverse=True)
    print("\nby the innermost edgeroll frame:")
    for size, where in grown[:top]:
        print(f"{size / 2**20:+8.2f} MiB  {where}")


def _by_own_frame(snapshot: tracemalloc.Snapshot) -> list[tuple[str, tuple[int, int]]]:
    totals: dict[str, tuple[int, int]] = {}
    for trace in snapshot.traces:
        # Frames run from the oldest to the most recent: the last of ours is the nearest caller.
        own = [f for f in trace.traceback if "/edgeroll/" in f.filename]
        where = "(not under edgeroll)"
        if own:
            where = f"{own[-1].filename.split('/edgeroll/')[-1]}:{own[-1].lineno}"
        size, count = totals.get(where, (0, 0))
        totals[where] = (size + trace.size, count + 1)
    return sorted(totals.items(), key=lambda item: -item[1][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="snapshot file to keep")
    parser.add_argument("--step", type=float, default=8.0, help="MiB of RSS growth between dumps")
    parser.add_argument("--keep", action="store_true", help="also keep every dump, as OUT.<seconds>s")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--report", type=Path, help="print a snapshot's top allocations and exit")
    parser.add_argument("--since", type=Path, help="with --report: what grew since this earlier snapshot")
    parser.add_argument("--top", type=int, default=30)
    parser.epilog = "then: -m MODULE [its arguments]"
    # Everything after `-m MODULE` is the module's, so its flags never meet this parser.
    split = sys.argv.index("-m") if "-m" in sys.argv else len(sys.argv)
    args = parser.parse_args(sys.argv[1:split])
    if args.report:
        if args.since:
            growth(args.report, args.since, args.top)
        else:
            report(args.report, args.top)
        return
    module, rest = sys.argv[split + 1 : split + 2], sys.argv[split + 2 :]
    if not (args.out and module):
        parser.error("--out and -m MODULE are needed to run a module")
    tracemalloc.start(args.frames)
    threading.Thread(target=_sampler, args=(args.out, args.step, args.keep), daemon=True).start()
    sys.argv = [module[0], *rest]
    runpy.run_module(module[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
