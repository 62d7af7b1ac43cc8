"""In-memory stand-ins for the hub and edge apiservers (the KubeApi seam), and a World that runs the
reconciler against them, with in-memory S3 and a clock the test moves."""

from __future__ import annotations

import base64
import copy
import json
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from edgeroll.admission.review import SIGNATURE_HEADER, AdmissionRequest, signature_matches
from edgeroll.api.edgecluster import DEFAULT_NAMESPACE, EdgeClusterSpec
from edgeroll.api.mergepatch import merge_patch
from edgeroll.api.routerconfig import RouterConfigStatus
from edgeroll.clusters.hub import StatusConflict
from edgeroll.clusters.kube import ClusterUnreachable, KubeApiError
from edgeroll.clusters.objects import ObjectRef, ref_of
from edgeroll.clusters.registry import ClusterRegistry, EdgeClusterInfo
from edgeroll.pipeline.controller import RouterConfigController
from edgeroll.pipeline.reconciler import EventNote, Reconciler, RouterConfigObject
from edgeroll.publish.memory import InMemoryRevisionStore
from edgeroll.publish.publisher import RevisionPublisher
from edgeroll.render.canonical import content_digest
from edgeroll.render.pointer import read_pointer
from edgeroll.render.signing import verify
from edgeroll.rollout.resources import ANNOTATION_ROUTERCONFIG, edge_name
from edgeroll.settings import EdgeS3Credentials, OperatorSettings, S3Settings


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base.get(k), v)
        return out
    return copy.deepcopy(patch)


class FakeKube:
    """Objects by (kind, namespace, name). `apply` merges like a forced server-side apply would for
    fields we own; a Deployment's generation moves when its spec changes."""

    def __init__(
        self, name: str = "fake", namespaces: tuple[str, ...] = ("default",), journal: list[str] | None = None
    ) -> None:
        self.name = name
        self.journal = journal if journal is not None else []
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.namespaces = set(namespaces)
        self.calls: Counter[str] = Counter()
        self.unreachable = False
        self.forbidden: set[tuple[str, str | None]] = set()  # (kind, namespace) RBAC does not grant
        self.closed = False
        self._rv = 0
        self.pods_pending = False
        self._applied_annotations: dict[tuple[str, str | None, str], set[str]] = {}
        self.cache: FakeEdgeCache | None = None  # what answers a pod's proxy (InPlace switching)

    def _check(self, op: str) -> None:
        self.calls[op] += 1
        if self.unreachable:
            raise ClusterUnreachable(f"{self.name} unreachable: ConnectionRefusedError")

    @property
    def writes(self) -> int:
        return self.calls["apply"] + self.calls["delete"]

    def put(self, obj: Mapping[str, Any]) -> None:
        ref = ref_of(obj)
        self._rv += 1
        stored = copy.deepcopy(dict(obj))
        stored.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        stored["metadata"].setdefault("uid", f"uid-{self.name}-{self._rv}")
        self.objects[(ref.kind, ref.namespace, ref.name)] = stored
        if ref.kind == "Namespace":
            self.namespaces.add(ref.name)

    def obj(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    async def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        self._check("get")
        if (ref.kind, ref.namespace) in self.forbidden:
            raise KubeApiError(
                403,
                "Forbidden",
                f'{ref.kind.lower()}s "{ref.name}" is forbidden: User "system:serviceaccount:edgeroll-system:'
                f'edgeroll" cannot get resource "{ref.kind.lower()}s" in the namespace "{ref.namespace}"',
            )
        found = self.objects.get((ref.kind, ref.namespace, ref.name))
        return copy.deepcopy(found) if found is not None else None

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        self._check("apply")
        ref = ref_of(manifest)
        self.journal.append(f"{self.name}: apply {ref.kind}")
        if ref.namespace is not None and ref.namespace not in self.namespaces:
            raise KubeApiError(404, "NotFound", f'namespaces "{ref.namespace}" not found')
        key = (ref.kind, ref.namespace, ref.name)
        old = self.objects.get(key)
        new = _merge(old or {}, dict(manifest))
        if ref.kind == "Secret":  # we write every key of an edge Secret: the apply drops keys we stop sending
            new["data"] = copy.deepcopy(dict(manifest.get("data") or {}))
        # As server-side apply does: an annotation this manager applied before and sends no more goes;
        # anyone else's stays.
        sent = set((manifest.get("metadata") or {}).get("annotations") or {})
        for gone in self._applied_annotations.get(key, set()) - sent:
            new["metadata"].get("annotations", {}).pop(gone, None)
        self._applied_annotations[key] = sent
        if ref.kind == "Deployment":
            gen = int((old or {}).get("metadata", {}).get("generation", 0))
            changed = old is None or old.get("spec") != new.get("spec")
            new["metadata"]["generation"] = gen + 1 if changed else gen
            new.setdefault("status", {})
        self.put(new)
        if ref.kind == "Namespace":
            self.namespaces.add(ref.name)
        return copy.deepcopy(self.objects[key])

    async def delete(self, ref: ObjectRef, uid: str | None = None) -> bool:
        self._check("delete")
        key = (ref.kind, ref.namespace, ref.name)
        found = self.objects.get(key)
        if found is not None and uid is not None and found["metadata"].get("uid") != uid:
            raise KubeApiError(409, "Conflict", f"Precondition failed: UID in precondition: {uid}")
        return self.objects.pop(key, None) is not None

    async def version(self) -> str:
        self._check("version")
        return "v1.34.4"

    async def list_objects(self, path: str, query: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], str]:
        """Only pods, as the in-place switch lists them: `replicas` pods per Deployment, named
        `<deployment>-<i>`, Running unless `pods_pending`."""
        self._check("list")
        parts = path.strip("/").split("/")
        assert parts[-1] == "pods", path
        namespace = parts[3]
        wanted = dict(item.split("=", 1) for item in dict(query)["labelSelector"].split(","))
        pods = []
        for d in self.deployments():
            labels = d["spec"]["selector"]["matchLabels"]
            if d["metadata"]["namespace"] != namespace or any(labels.get(k) != v for k, v in wanted.items()):
                continue
            for i in range(int(d["spec"].get("replicas", 1))):
                status = (
                    {"phase": "Pending"}
                    if self.pods_pending
                    else {"phase": "Running", "podIP": f"10.0.0.{i}"}
                )
                pods.append({"metadata": {"name": f"{d['metadata']['name']}-{i}"}, "status": status})
        return pods, str(self._rv)

    async def proxy_post(self, path: str, timeout: float) -> tuple[int, bytes]:
        self._check("proxy")
        parts = path.strip("/").split("/")  # api v1 namespaces <ns> pods <pod>:<port> proxy ...
        assert self.cache is not None, f"{self.name}: no edge cache answers {path}"
        return await self.cache.answer(self, parts[3], parts[5].split(":")[0])

    async def close(self) -> None:
        self.closed = True

    def deployments(self) -> list[dict[str, Any]]:
        return [o for (kind, _, _), o in self.objects.items() if kind == "Deployment"]

    def stall_rollouts(self) -> None:
        """A new template whose pods never become available (old pods keep it Available)."""
        for d in self.deployments():
            n = d["spec"].get("replicas", 1)
            d["status"] = {
                "observedGeneration": d["metadata"]["generation"],
                "replicas": n + 1,
                "updatedReplicas": 1,
                "readyReplicas": n,
                "availableReplicas": n,
                "conditions": [{"type": "Available", "status": "True"}],
            }

    def finish_rollouts(self) -> None:
        """What the Deployment controller and kwok do: every replica updated and available."""
        for d in self.deployments():
            n = d["spec"].get("replicas", 1)
            d["status"] = {
                "observedGeneration": d["metadata"]["generation"],
                "replicas": n,
                "updatedReplicas": n,
                "readyReplicas": n,
                "availableReplicas": n,
                "conditions": [{"type": "Available", "status": "True"}],
            }


class FakeEdgeCache:
    """The cache pods of one edge as `POST /-/revision` finds them (hack/CONTRACTS.md): each reads its
    Deployment's revision pointer from S3, checks it and the revision it names, and serves it.
    `refuses(pod, digest)` makes a pod refuse a digest (as a tampered object would be); `down` makes
    the proxy fail (503)."""

    def __init__(self, store: InMemoryRevisionStore, signing_key: bytes) -> None:
        self.store = store
        self.signing_key = signing_key
        self.served: dict[str, str] = {}  # pod -> digest
        self.refuses: Callable[[str, str], bool] = lambda pod, digest: (
            False
        )  # as if (pod, digest) did not verify
        self.down = False

    async def answer(self, kube: FakeKube, namespace: str, pod: str) -> tuple[int, bytes]:
        if self.down:
            return (
                503,
                b'{"kind":"Status","message":"error trying to reach service: dial tcp: connect refused"}',
            )
        deployment = next(d for d in kube.deployments() if pod.startswith(d["metadata"]["name"] + "-"))
        env = {
            e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        found = await self.store.get(str(env["EDGEROLL_CONFIG_POINTER_KEY"]))
        assert found is not None, "the pointer is written before any pod is told"
        pointer = read_pointer(
            found[0],
            found[1],
            self.signing_key,
            namespace=str(env["EDGEROLL_CONFIG_NAMESPACE"]),
            name=str(env["EDGEROLL_CONFIG_NAME"]),
        )
        revision = await self.store.get(pointer.key)
        intact = (
            revision is not None
            and content_digest(revision[0]) == pointer.digest
            and verify(self.signing_key, revision[0], revision[1])
        )
        if self.refuses(pod, pointer.digest) or not intact:
            body = {"outcome": "refused", "reason": "digest", "message": "the S3 object does not hash to it"}
            return 422, json.dumps({**body, "serving": self.served.get(pod)}).encode()
        outcome = "unchanged" if self.served.get(pod) == pointer.digest else "switched"
        self.served[pod] = pointer.digest
        body = {"outcome": outcome, "serving": pointer.digest, "wanted": pointer.digest}
        return 200, json.dumps(body).encode()


def kubeconfig_secret(namespace: str, name: str, server: str) -> dict[str, Any]:
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "kubeconfig-bearer-value"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    return secret(namespace, name, {"kubeconfig": yaml.safe_dump(kubeconfig)})


def secret(namespace: str, name: str, data: Mapping[str, str | bytes]) -> dict[str, Any]:
    def b64(v: str | bytes) -> str:
        return base64.b64encode(v.encode() if isinstance(v, str) else v).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: b64(v) for k, v in data.items()},
    }


def configmap(
    namespace: str,
    name: str,
    data: Mapping[str, Any] | None = None,
    binary: Mapping[str, bytes] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
    }
    if data:
        out["data"] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    if binary:
        out["binaryData"] = {k: base64.b64encode(v).decode() for k, v in binary.items()}
    return out


COSMO = json.loads((Path(__file__).parents[1] / "render" / "data" / "cosmo-minimal.json").read_text())
T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = b"s" * 32
EDGES = {
    "edge-eu": {"tier": "edge", "region": "eu"},
    "edge-us": {"tier": "edge", "region": "us"},
    "edge-ap": {"tier": "edge", "region": "ap"},
}


class FakeWebhook:
    """An admission webhook (the AdmissionTransport seam): answers by digest, records what it was asked,
    and checks every request's signature itself."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.asked: list[dict[str, Any]] = []
        self.refuse: dict[str, tuple[int, bytes]] = {}  # digest -> answer
        self.down: BaseException | None = None  # raised instead of answering
        self.answer: tuple[int, bytes] = (200, b"{}")  # to every other digest

    async def post(self, request: AdmissionRequest, timeout: float) -> tuple[int, bytes]:
        if self.down is not None:
            raise self.down
        assert signature_matches(self.key, request.body, request.headers[SIGNATURE_HEADER])
        doc = json.loads(request.body)
        self.asked.append(doc)
        return self.refuse.get(doc["digest"], self.answer)

    def digests(self) -> list[str]:
        return [d["digest"] for d in self.asked]


class StatusStore:
    """The hub's status subresource: merge patches applied to a stored status."""

    def __init__(self, journal: list[str] | None = None) -> None:
        self.status: dict[str, Any] = {}
        self.version = 1  # the object's resourceVersion; every write (ours or anyone's) bumps it
        self.patches = 0
        self.refused = 0  # writes conditioned on a resourceVersion that was no longer current
        self.journal = journal if journal is not None else []
        self.fail_with: Exception | None = None
        self.history: list[dict[str, Any]] = []  # the stored status after every patch

    async def patch_status(
        self, namespace: str, name: str, patch: Mapping[str, Any], resource_version: str | None = None
    ) -> str | None:
        if self.fail_with is not None:
            raise self.fail_with
        if resource_version is not None and resource_version != str(self.version):
            self.refused += 1
            raise StatusConflict(f"stale resourceVersion {resource_version}")
        self.patches += 1
        self.journal.append("status.rollout" if "rollout" in patch else "status")
        self.status = merge_patch(self.status, dict(patch))
        self.history.append(copy.deepcopy(self.status))
        self.version += 1
        return str(self.version)

    async def read_status(self, namespace: str, name: str) -> tuple[dict[str, Any], str] | None:
        return copy.deepcopy(self.status), str(self.version)


class World:
    """One RouterConfig (`namespace`/`name`) and its operator; `share` puts it in another World's hub,
    edges and S3 (two tenants of one install)."""

    def __init__(
        self,
        spec: dict[str, Any] | None = None,
        namespace: str = "prod",
        name: str = "graph",
        share: World | None = None,
    ) -> None:
        self.namespace, self.name, self.uid = namespace, name, f"uid-{namespace}-{name}"
        if share is not None:
            self.hub, self.journal, self.edges = share.hub, share.journal, share.edges
            self.clusters, self.store = share.clusters, share.store
        else:
            self._make_install()
        self.hub.put(secret(namespace, "sign", {"key": KEY}))
        self.settings = OperatorSettings(
            s3=S3Settings(bucket="bucket", endpoint="http://127.0.0.1:8333", prefix="edgeroll"),
            edge_s3=EdgeS3Credentials("ro-id", "ro-secret", "http://127.0.0.1:8333", "us-east-1"),
        )
        self.statuses = StatusStore(self.journal)
        self.t = T0  # the planner's clock: tests move it
        self.annotations: dict[str, str] = {}
        self.events: list[EventNote] = []
        self.spec = spec or {
            "format": "cosmo",
            "config": copy.deepcopy(COSMO),
            "targets": {"clusterSelector": {"matchLabels": {"tier": "edge"}}},
            "signing": {"secretRef": {"name": "sign", "key": "key"}},
            "cosmo": {"organizationId": "org", "federatedGraphId": "graph"},
        }
        self.generation = 1
        self.webhook: FakeWebhook | None = None  # spec.admission's webhook, when a test sets one
        self.restart()

    def _make_install(self) -> None:
        """The hub, three edge clusters and S3."""
        self.hub = FakeKube("hub", namespaces=("prod", "edgeroll-system"))
        self.journal: list[str] = []  # status patches and edge writes, in order
        self.edges = {name: FakeKube(name, namespaces=(), journal=self.journal) for name in EDGES}
        self.clusters: dict[str, EdgeClusterInfo] = {}
        for name, labels in EDGES.items():
            self.hub.put(kubeconfig_secret("edgeroll-system", f"kc-{name}", f"https://127.0.0.1:1/{name}"))
            self.clusters[name] = EdgeClusterInfo(
                name,
                labels,
                EdgeClusterSpec.model_validate(
                    {
                        "kubeconfigSecretRef": {
                            "namespace": "edgeroll-system",
                            "name": f"kc-{name}",
                            "key": "kubeconfig",
                        }
                    }
                ),
            )
        self.store = InMemoryRevisionStore("bucket")

    def restart(self) -> None:
        """A new operator process: fresh registry, publisher, controller; same clusters and S3."""

        async def factory(kubeconfig: Mapping[str, Any], timeout: float, name: str) -> FakeKube:
            return self.edges[name]

        self.registry = ClusterRegistry(self.hub, timeout=1.0, factory=factory)
        publisher = RevisionPublisher(self.store, "edgeroll")
        self.reconciler = Reconciler(
            self.hub,
            self.registry,
            publisher,
            self.settings,
            now=lambda: self.t.strftime("%Y-%m-%dT%H:%M:%SZ"),
            clock=lambda: self.t,
            admission=self.webhook,
        )
        self.controller = RouterConfigController(self.reconciler, self.statuses, self.settings)

    def obj(self) -> RouterConfigObject:
        return RouterConfigObject(
            self.namespace,
            self.name,
            self.generation,
            copy.deepcopy(self.spec),
            copy.deepcopy(self.statuses.status),
            uid=self.uid,
            annotations=dict(self.annotations),
            resource_version=str(self.statuses.version),
        )

    def update(self, **spec: Any) -> None:
        self.spec.update(spec)
        self.generation += 1
        self.statuses.version += 1

    async def reconcile(self, full: bool = True) -> RouterConfigStatus:
        result = await self.controller.reconcile(self.obj(), self.clusters, self.events.append, full=full)
        assert result is not None
        return result.status

    async def converge(self) -> RouterConfigStatus:
        await self.reconcile()
        for edge in self.edges.values():
            edge.finish_rollouts()
        return await self.reconcile(full=False)

    def switch_in_place(self, *edges: str) -> dict[str, FakeEdgeCache]:
        """Make `edges` InPlace clusters, each with cache pods that answer a switch."""
        caches = {}
        for name in edges:
            info = self.clusters[name]
            spec = info.spec.model_copy(update={"revision_switch": "InPlace"}) if info.spec else None
            self.clusters[name] = EdgeClusterInfo(info.name, info.labels, spec)
            caches[name] = self.edges[name].cache = FakeEdgeCache(self.store, KEY)
        return caches

    def edge_writes(self) -> int:
        return sum(e.writes for e in self.edges.values())

    def template_digest(self, edge: str) -> str | None:
        deps = self.edges[edge].deployments()
        return deps[0]["spec"]["template"]["metadata"]["annotations"]["edgeroll.io/digest"] if deps else None

    def reasons(self) -> Counter[str]:
        return Counter(e.reason for e in self.events)

    def tick(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)

    def generations(self) -> dict[str, int]:
        return {
            name: int(deps[0]["metadata"]["generation"])
            for name, edge in self.edges.items()
            if (deps := edge.deployments())
        }


def foreign_deployment(rc_namespace: str = "prod", rc_name: str = "graph") -> dict[str, Any]:
    """The edge Deployment of `rc_namespace/rc_name`, by name, but held by RouterConfig other/graph."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": edge_name(rc_namespace, rc_name),
            "namespace": DEFAULT_NAMESPACE,
            "generation": 1,
            "annotations": {ANNOTATION_ROUTERCONFIG: "other/graph"},
        },
        "spec": {"replicas": 7},
    }
