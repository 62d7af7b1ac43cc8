"""A barrage of generated bad RouterConfigs against the real hub apiserver and a running operator.

Each case is refused by the CRD (schema, CEL, server-side field validation) with a message that
names the field, or accepted and then reported by the operator as Stalled with a message that
names the field, JSON path or source. Meanwhile the operator keeps its PID and its liveness, and a
valid neighbour still rolls out an update.

The bad RouterConfigs target one EdgeCluster of their own whose kubeconfig points nowhere, so
overlays are rendered (they need a target) but nothing could ever reach an edge.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from operator_e2e_kit import broken_kubeconfig
from reliability_bad_input import FAULTS, Case, bad_case, to_json
from reliability_kit import Reliability, condition, digest_of, figure, variant
from tests.polling import wait_until

pytestmark = pytest.mark.reliability

PER_FAULT = 18  # examples asked of each kind of fault; at least 500 distinct cases in all
BATCH = 130  # objects per `kubectl apply`


def generate(selector: dict[str, Any]) -> list[Case]:
    """Hypothesis as a seeded generator: the same cases on every run, every fault alike."""
    cases: dict[str, Case] = {}
    for fault in FAULTS:

        @seed(20251127)
        @settings(
            max_examples=PER_FAULT,
            derandomize=True,
            database=None,
            phases=[Phase.generate],
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(bad_case(selector, fault))
        def collect(case: Case) -> None:
            cases.setdefault(case.key(), case)

        collect()
    return list(cases.values())


def documents(cases: list[Case], ns: str, run: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for case in cases:
        if case.configmap is not None:
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": case.name, "namespace": ns, "labels": {"rel-bad": run}},
                    **case.configmap,
                }
            )
        docs.append(
            {
                "apiVersion": "edgeroll.io/v1alpha1",
                "kind": "RouterConfig",
                "metadata": {"name": case.name, "namespace": ns, "labels": {"rel-bad": run}},
                "spec": case.spec,
            }
        )
    return docs


def refusals(stderr: str, names: list[str]) -> dict[str, str]:
    """kubectl prints one line per refused object; find each by its quoted name or `ns/name;`."""
    found: dict[str, str] = {}
    for line in stderr.splitlines():
        for name in names:
            if f'"{name}"' in line or f"/{name};" in line:
                found[name] = line
    return found


def test_bad_input_is_refused_or_reported_and_the_operator_keeps_going(rel: Reliability) -> None:
    void = f"rel-{rel.run}-void"
    rel.add_edgecluster(
        void, {"tier": "void", "e2e-run": rel.run}, broken_kubeconfig(rel.lab.edge_kubeconfigs["edge-eu"])
    )
    neighbour = "neighbour"
    n1, n2 = variant("neighbour-v1"), variant("neighbour-v2")
    rel.apply(rel.routerconfig(neighbour, n1))
    rel.wait_ready(neighbour)

    started = time.monotonic()
    cases = [
        c.named(f"bad-{i:04d}", rel.ns)
        for i, c in enumerate(generate({"matchLabels": {"tier": "void", "e2e-run": rel.run}}))
    ]
    generated_s = time.monotonic() - started
    assert len(cases) >= 500, f"only {len(cases)} distinct cases"
    assert {c.fault for c in cases} == set(FAULTS), "every kind of fault was generated"

    pid = rel.operator.proc.pid if rel.operator.proc else None
    live_failures: list[float] = []
    stop = threading.Event()

    def watch_liveness() -> None:
        while not stop.wait(0.5):
            try:
                ok = rel.operator.live()
            except AssertionError:  # exited
                ok = False
            if not ok:
                live_failures.append(time.monotonic())

    checker = threading.Thread(target=watch_liveness, daemon=True)
    checker.start()
    try:
        applied_at = time.monotonic()
        refused: dict[str, str] = {}
        docs = documents(cases, rel.ns, rel.run)
        for i in range(0, len(docs), BATCH):
            chunk = docs[i : i + BATCH]
            out = rel.hub(
                "apply",
                "--server-side",
                "-f",
                "-",
                # raw UTF-8: YAML refuses the surrogate pairs of json.dumps' \u escapes
                input="\n---\n".join(to_json(d) for d in chunk),
                check=False,
            )
            names = [d["metadata"]["name"] for d in chunk if d["kind"] == "RouterConfig"]
            refused.update(refusals(out.stderr, names))
            created = {
                line.split()[0].split("/")[-1] for line in out.stdout.splitlines() if "routerconfig" in line
            }
            unaccounted = set(names) - created - set(refused)
            assert not unaccounted, (
                f"neither applied nor refused: {sorted(unaccounted)[:5]}\n{out.stderr[-2000:]}"
            )
        apply_s = time.monotonic() - applied_at

        # A valid neighbour rolls out an update while the operator works through the barrage.
        rel.apply(rel.routerconfig(neighbour, n2))
        d2 = digest_of(n2)
        rel.wait_status(
            neighbour,
            lambda s: s.get("phase") == "Ready" and (s.get("revision") or {}).get("digest") == d2,
            timeout=120,
            what="the neighbour's update rolled out during the barrage",
        )
        neighbour_s = time.monotonic() - applied_at - apply_s

        accepted = [c for c in cases if c.name not in refused]

        def reported() -> dict[str, dict[str, Any]] | None:
            items = json.loads(
                rel.hub("-n", rel.ns, "get", "rtc", "-l", f"rel-bad={rel.run}", "-o", "json").stdout
            )
            got = {i["metadata"]["name"]: i for i in items["items"]}
            done = {
                n: o
                for n, o in got.items()
                if (o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"]
                and condition(o["status"], "Stalled") is not None
            }
            return done if len(done) == len(accepted) else None

        objects = wait_until(
            reported, timeout=240, interval=2, message="every accepted case reported Stalled"
        )
        assert objects is not None  # wait_until returns only a truthy value
        reported_s = time.monotonic() - applied_at
    finally:
        stop.set()
        checker.join()

    problems: list[str] = []
    for case in cases:
        if case.name in refused:
            line = refused[case.name]
            if not any(t in line for t in case.tokens):
                problems.append(f"{case.name} [{case.fault}] refused without naming {case.tokens}: {line}")
        else:
            stalled = condition(objects[case.name]["status"], "Stalled")
            assert stalled is not None
            text = f"{stalled['reason']}: {stalled['message']}"
            if stalled["status"] != "True" or not any(t in text for t in case.tokens):
                problems.append(f"{case.name} [{case.fault}] reported without naming {case.tokens}: {text}")

    log = rel.operator.log_since_start()
    alive = rel.operator.proc is not None and rel.operator.proc.poll() is None
    same_pid = alive and rel.operator.proc is not None and rel.operator.proc.pid == pid
    by_fault: dict[str, list[int]] = {}  # fault -> [refused, reported]
    for case in cases:
        row = by_fault.setdefault(case.fault, [0, 0])
        row[0 if case.name in refused else 1] += 1
    reasons = Counter((condition(o["status"], "Stalled") or {}).get("reason", "?") for o in objects.values())

    cleanup_started = time.monotonic()
    rel.hub("-n", rel.ns, "delete", "rtc,configmap", "-l", f"rel-bad={rel.run}", "--timeout=180s")
    cleanup_s = time.monotonic() - cleanup_started
    figure(
        "bad_input",
        data={"by_fault": by_fault, "stalled_reasons": dict(reasons)},
        cases=len(cases),
        refused=len(refused),
        reported=len(cases) - len(refused),
        misnamed=len(problems),
        generate_s=round(generated_s, 1),
        apply_s=round(apply_s, 1),
        reported_after_s=round(reported_s, 1),
        neighbour_update_s=round(neighbour_s, 1),
        delete_all_s=round(cleanup_s, 1),
        liveness_failures=len(live_failures),
        same_pid=same_pid,
    )
    assert problems == [], "\n".join(problems[:30])
    assert same_pid, "the operator exited or was restarted"
    assert live_failures == [], f"liveness failed {len(live_failures)} times"
    assert "Traceback" not in log, log[log.index("Traceback") - 2000 : log.index("Traceback") + 3000]

    rel.delete_routerconfig(neighbour)
    rel.hub("delete", "edgecluster", void)
