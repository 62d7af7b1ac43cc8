"""A real Prometheus and real edge caches for the analysis tests, on the lab or on kind.

- On the lab, Prometheus is the lab's (Debian's, on loopback). The lab's pods are kwok fakes, so each
  target gets an `edgeroll cache` process started from the Deployment the operator wrote
  (`edge_cache_from_cluster`), which registers itself as a file-based scrape target labelled with its
  EdgeCluster's name. Bad requests go to that process.
- On kind, Prometheus runs in a container on the kind network and scrapes the real cache pods through
  each edge's API server (tests/e2e/providers/kind_prometheus.py), each pod registered as a file-based
  target once the test's RouterConfig runs it. The EdgeClusters switch revisions
  in place, so a cache pod and its counters live through a rollout, as the lab's processes do. Bad
  requests come from a client pod in the target's edge namespace, through the cache's Service, as a
  router there would send them.

Both label every cache's series `cluster="<EdgeCluster>"`, which the metric's query selects on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rollout_e2e_kit import RolloutLab
from tests.polling import wait_until

from edgeroll.lab import Lab
from edgeroll.lab.pod_runner import LocalEdgeCache, edge_cache_from_cluster
from edgeroll.rollout.resources import edge_name

if TYPE_CHECKING:
    from tests.e2e.providers.kind_prometheus import PrometheusContainer
    from tests.e2e.providers.kind_provider import KindProvider

CACHE_PORT = 8080  # the chart's and the operator's default cache port


class Prometheus(Protocol):
    def query(self, promql: str) -> list[dict[str, Any]]: ...

    def stop(self) -> None: ...

    def start(self) -> None: ...


class Serving(Protocol):
    def bad_requests(self, target: str) -> AbstractContextManager[list[int]]:
        """Requests with a bad token (401s) at `target`'s cache until the block ends; the statuses seen
        (0: no answer) are in the list once it has ended."""
        ...


class AnalysisRig(ABC):
    """Prometheus, the address the EdgeClusters give the operator for it, and serving caches."""

    def __init__(self, fleet: RolloutLab, prometheus: Prometheus, address: str) -> None:
        self.fleet = fleet
        self.prometheus = prometheus
        self.address = address

    def point_edgeclusters(self, **spec: Any) -> None:
        patch = json.dumps({"spec": {"prometheus": {"address": self.address}, **spec}})
        for name in self.fleet.names:
            self.fleet.e2e.hub("patch", "edgecluster", name, "--type=merge", "-p", patch)

    def wait_scraped(self, target: str) -> None:
        wait_until(
            lambda: self.prometheus.query(f'up{{cluster="{target}"}} == 1'),
            timeout=60,
            message=f"Prometheus scraping the cache of {target}",
        )

    def wait_all_scraped(self) -> None:
        for name in self.fleet.names:
            self.wait_scraped(name)

    @abstractmethod
    def serving(self, rc: str, work: Path) -> AbstractContextManager[Serving]:
        """Every target of `rc` has a cache that serves it and that Prometheus scrapes, until the end."""


class LabPrometheus:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def query(self, promql: str) -> list[dict[str, Any]]:
        return self.lab.prometheus_query(promql)

    def stop(self) -> None:
        self.lab.stop_prometheus()

    def start(self) -> None:
        self.lab.start_prometheus()


# A router with the wrong token, printing each answer's status (0: none). Standard library only: the lab
# runs it as a local process, kind as a pod from the edgeroll image.
HAMMER = """
import os, time, urllib.error, urllib.request
url = os.environ["URL"]
while True:
    request = urllib.request.Request(url, headers={"Authorization": "Bearer not-the-token"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            code = response.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    except OSError:
        code = 0
    print(code, flush=True)
    time.sleep(0.02)  # about 50 requests a second: load pacing, not synchronisation
"""


class LabServing:
    def __init__(self, fleet: RolloutLab, rc: str, running: dict[str, LocalEdgeCache]) -> None:
        self.fleet, self.rc, self.running = fleet, rc, running

    @contextmanager
    def bad_requests(self, target: str) -> Iterator[list[int]]:
        url = f"{self.running[target].url}/configs/{self.fleet.e2e.ns}/{self.rc}"
        proc = subprocess.Popen(
            [sys.executable, "-c", HAMMER], env={**os.environ, "URL": url}, stdout=subprocess.PIPE, text=True
        )
        seen: list[int] = []
        try:
            yield seen
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=10)
            seen.extend(int(line) for line in out.split() if line.isdigit())


class LabAnalysis(AnalysisRig):
    def __init__(self, fleet: RolloutLab, lab: Lab) -> None:
        super().__init__(fleet, LabPrometheus(lab), lab.prometheus_url)
        self.lab = lab

    @contextmanager
    def serving(self, rc: str, work: Path) -> Iterator[Serving]:
        """A running, scraped edge cache for every target of `rc`, as kubelets would run them."""
        with ExitStack() as stack:
            running = {}
            for name, t in self.fleet.targets.items():
                cache = edge_cache_from_cluster(
                    self.lab, t.edge, t.namespace, edge_name(self.fleet.e2e.ns, rc), work / name
                )
                running[name] = stack.enter_context(cache.start())
            for cache in running.values():
                cache.wait_ready()
            self.wait_all_scraped()
            yield LabServing(self.fleet, rc, running)


class KindServing:
    def __init__(self, fleet: RolloutLab, provider: KindProvider, rc: str) -> None:
        self.fleet, self.provider, self.rc = fleet, provider, rc

    @contextmanager
    def bad_requests(self, target: str) -> Iterator[list[int]]:
        t, clusters = self.fleet.targets[target], self.provider.clusters
        service, pod = edge_name(self.fleet.e2e.ns, self.rc), f"bad-client-{uuid.uuid4().hex[:6]}"
        url = f"http://{service}.{t.namespace}.svc:{CACHE_PORT}/configs/{self.fleet.e2e.ns}/{self.rc}"
        clusters.kubectl(t.edge, "apply", "-f", "-", input=json.dumps(self._pod(pod, t.namespace, url)))
        seen: list[int] = []
        try:
            wait_until(
                lambda: clusters.kubectl(t.edge, "-n", t.namespace, "logs", pod, check=False).stdout.strip(),
                timeout=60,
                message=f"the bad client in {t.edge}/{t.namespace} sending",
            )
            yield seen
        finally:
            logs = clusters.kubectl(t.edge, "-n", t.namespace, "logs", pod, check=False).stdout
            seen.extend(int(line) for line in logs.split() if line.isdigit())
            clusters.kubectl(t.edge, "-n", t.namespace, "delete", "pod", pod, "--wait=false", check=False)

    def _pod(self, name: str, namespace: str, url: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "e2e-bad-client"}},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [
                    {
                        "name": "client",
                        "image": self.provider.setup.image,
                        "imagePullPolicy": "Never",
                        "command": ["python3", "-c", HAMMER],
                        "env": [{"name": "URL", "value": url}],
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }
                ],
            },
        }


class KindAnalysis(AnalysisRig):
    def __init__(self, fleet: RolloutLab, provider: KindProvider, prometheus: PrometheusContainer) -> None:
        super().__init__(fleet, prometheus, prometheus.internal_url)
        self.provider = provider
        self.container = prometheus

    def cache_pods(self, target: str, rc: str) -> list[dict[str, Any]]:
        """The running cache pods of `rc` at `target` (its Deployment's selector)."""
        t, deployment = self.fleet.targets[target], self.fleet.deployment(target, rc)
        if deployment is None:
            return []
        selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
        pods = self.provider.clusters.get_json(t.edge, "-n", t.namespace, "pods", "-l", selector)["items"]
        running = (p for p in pods if p["status"].get("phase") == "Running")
        return [p for p in running if not p["metadata"].get("deletionTimestamp")]

    @contextmanager
    def serving(self, rc: str, work: Path) -> Iterator[Serving]:
        """The cache pods the operator runs: nothing to start; each is registered with Prometheus (as a
        scrape target through its edge's API server) until the block ends. They switch revisions in
        place, so the pods found now are the pods of the whole rollout."""
        registered: list[Path] = []
        try:
            for name, t in self.fleet.targets.items():
                pods = wait_until(
                    lambda n=name: self.cache_pods(n, rc),  # type: ignore[misc]
                    timeout=60,
                    message=f"running cache pods of {rc} at {name}",
                )
                registered += [self.container.register(t.edge, pod) for pod in pods]
            self.wait_all_scraped()
            yield KindServing(self.fleet, self.provider, rc)
        finally:
            for path in registered:
                self.container.unregister(path)
