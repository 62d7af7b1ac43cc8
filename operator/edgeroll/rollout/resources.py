"""The edge cache's resources in one edge cluster, built as plain manifests (pure).

Ownership is tracked with labels: there are no ownerReferences across clusters.
With `revisionSwitch: Restart` the pod template carries the digest, S3 key and
signature of the wanted revision, so a new revision (or a rotated signing key)
is a rolling update, gated on the cache's readiness probe. With `InPlace` the
template carries none of them: pods read the wanted revision from the Secret at
start, running pods are switched through their revision pointer
(pipeline/switching.py), and the Deployment's own annotations say which digest
every pod serves.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from edgeroll.api.edge_objects import (
    ANNOTATION_ALIAS_OF as ANNOTATION_ALIAS_OF,
)
from edgeroll.api.edge_objects import (
    ANNOTATION_DIGEST as ANNOTATION_DIGEST,
)
from edgeroll.api.edge_objects import (
    ANNOTATION_KEY as ANNOTATION_KEY,
)
from edgeroll.api.edge_objects import (
    ANNOTATION_LAST_GOOD as ANNOTATION_LAST_GOOD,
)
from edgeroll.api.edge_objects import (
    ANNOTATION_REFUSED as ANNOTATION_REFUSED,
)
from edgeroll.api.edge_objects import (
    ANNOTATION_ROUTERCONFIG as ANNOTATION_ROUTERCONFIG,
)
from edgeroll.api.edge_objects import (
    ANNOTATION_SIGNATURE as ANNOTATION_SIGNATURE,
)
from edgeroll.api.edge_objects import (
    ANNOTATION_SIGNING_KEY as ANNOTATION_SIGNING_KEY,
)
from edgeroll.api.edge_objects import (
    ANNOTATION_TOKEN_SECRET as ANNOTATION_TOKEN_SECRET,
)
from edgeroll.api.edge_objects import (
    ANNOTATION_WANTED as ANNOTATION_WANTED,
)
from edgeroll.api.edge_objects import (
    LABEL_CLUSTER as LABEL_CLUSTER,
)
from edgeroll.api.edge_objects import (
    LABEL_COMPONENT as LABEL_COMPONENT,
)
from edgeroll.api.edge_objects import (
    LABEL_INSTANCE as LABEL_INSTANCE,
)
from edgeroll.api.edge_objects import (  # re-exported: the vocabulary of the objects built here
    LABEL_MANAGED_BY as LABEL_MANAGED_BY,
)
from edgeroll.api.edge_objects import (
    LABEL_NAME as LABEL_NAME,
)
from edgeroll.api.edge_objects import (
    LABEL_RC_NAME as LABEL_RC_NAME,
)
from edgeroll.api.edge_objects import (
    LABEL_RC_NAMESPACE as LABEL_RC_NAMESPACE,
)
from edgeroll.api.edge_objects import (
    LABEL_RC_UID as LABEL_RC_UID,
)
from edgeroll.api.edge_objects import (
    NAMESPACE_EDGE_S3_SECRET as NAMESPACE_EDGE_S3_SECRET,
)
from edgeroll.api.edge_objects import (
    SECRET_ACCESS_KEY_ID as SECRET_ACCESS_KEY_ID,
)
from edgeroll.api.edge_objects import (
    SECRET_CONFIG_DIGEST as SECRET_CONFIG_DIGEST,
)
from edgeroll.api.edge_objects import (
    SECRET_CONFIG_KEY as SECRET_CONFIG_KEY,
)
from edgeroll.api.edge_objects import (
    SECRET_GRAPH_TOKEN_SECRET as SECRET_GRAPH_TOKEN_SECRET,
)
from edgeroll.api.edge_objects import (
    SECRET_SECRET_ACCESS_KEY as SECRET_SECRET_ACCESS_KEY,
)
from edgeroll.api.edge_objects import (
    SECRET_SIGNING_KEY as SECRET_SIGNING_KEY,
)
from edgeroll.api.routerconfig import ResourceRequirements
from edgeroll.clusters.objects import FIELD_MANAGER, ObjectRef

MANAGER = FIELD_MANAGER
CONTAINER = "cache"
STATE_DIR = "/var/lib/edgeroll"
UID = 65532  # the image's non-root user (Dockerfile)

TMP_DIR = "/tmp"  # noqa: S108 - an emptyDir of its own, needed with a read-only root filesystem

DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}


def _hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def edge_name(namespace: str, name: str) -> str:
    """The edge objects' name: a DNS-1035 label (Service names need one), distinct for every pair.

    `edgeroll-<namespace>-<name>` splits one way only when neither part has a `-` or `.`: those keep
    it (exactly two dashes). Every other pair gets a readable prefix, `--` and 10 hex digits of its
    sha256 (at least three dashes), so the two forms never meet, and two hashed names meet only if
    40 bits of sha256 do; an object in the way is then refused by owner (rollout/ownership.py).
    """
    plain = f"edgeroll-{namespace}-{name}"
    if re.fullmatch(r"[a-z0-9]+", namespace) and re.fullmatch(r"[a-z0-9]+", name) and len(plain) <= 63:
        return plain
    readable = re.sub(r"[^a-z0-9-]", "-", plain.lower())[:51].rstrip("-")
    return f"{readable}--{_hash(f'{namespace}/{name}', 10)}"


def legacy_edge_name(namespace: str, name: str) -> str:
    """The name edgeroll 0.1 gave (`team-a/web` and `team/a-web` shared one); migrated away
    from by `executor.retire_legacy`, which keeps its Service as an alias for routers that use it."""
    raw = f"edgeroll-{namespace}-{name}"
    clean = re.sub(r"[^a-z0-9-]", "-", raw.lower())
    if clean == raw and len(clean) <= 63:
        return clean
    return f"{clean[:54].rstrip('-')}-{_hash(f'{namespace}/{name}')}"


def label_value(value: str) -> str:
    """A label value (<= 63 chars, alnum at both ends) that stays unique for long inputs."""
    if len(value) <= 63 and re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", value):
        return value
    clean = re.sub(r"[^A-Za-z0-9_.-]", "-", value)[:54].strip("-_.")
    return f"{clean}-{_hash(value)}" if clean else _hash(value)


@dataclass(frozen=True)
class S3Key:
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True)
class EdgeS3:
    """Where the cache reads and with which key; no key: the pod's default AWS credential chain
    (workload identity), so neither the Secret nor the env carries one."""

    bucket: str
    endpoint: str | None
    region: str | None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)

    @property
    def static(self) -> bool:
        return self.access_key_id is not None and self.secret_access_key is not None


@dataclass(frozen=True)
class EdgeCacheParams:
    """Everything the edge resources of one RouterConfig in one cluster depend on."""

    rc_namespace: str
    rc_name: str
    cluster: str
    namespace: str  # the edge namespace
    digest: str
    key: str
    signature: str
    signing_key: bytes = field(repr=False)
    s3: EdgeS3 = field(repr=False)
    image: str
    replicas: int
    port: int
    resources: ResourceRequirements | None = None
    cosmo_organization_id: str | None = None
    cosmo_federated_graph_id: str | None = None
    last_good: str | None = None  # recorded on the Deployment (ANNOTATION_LAST_GOOD)
    graph_token_secret: bytes | None = field(default=None, repr=False)  # verifies graph tokens (HS256)
    public_read: bool = False  # GET /configs/... without a credential (spec.cache.publicRead)
    rc_uid: str = ""  # the owner's uid, labelled on every object
    # InPlace switching (EdgeCluster spec.revisionSwitch); the rest is for it only.
    in_place: bool = False
    pointer_key: str | None = None  # the revision pointer in S3 (render/pointer.py)
    served_digest: str | None = None  # what every pod has said it serves (None: not known yet)
    refused: str | None = None  # "<digest> <why>": a pod refused `digest`

    @property
    def name(self) -> str:
        return edge_name(self.rc_namespace, self.rc_name)


def selector_labels(p: EdgeCacheParams) -> dict[str, str]:
    return {LABEL_NAME: "edgeroll-cache", LABEL_INSTANCE: p.name}


def ownership_labels(rc_namespace: str, rc_name: str, cluster: str, rc_uid: str = "") -> dict[str, str]:
    labels = {
        LABEL_MANAGED_BY: MANAGER,
        LABEL_RC_NAMESPACE: label_value(rc_namespace),
        LABEL_RC_NAME: label_value(rc_name),
        LABEL_CLUSTER: label_value(cluster),
    }
    if rc_uid:
        labels[LABEL_RC_UID] = label_value(rc_uid)
    return labels


def _labels(p: EdgeCacheParams) -> dict[str, str]:
    return {
        **selector_labels(p),
        LABEL_COMPONENT: "edge-cache",
        **ownership_labels(p.rc_namespace, p.rc_name, p.cluster, p.rc_uid),
    }


def _metadata(p: EdgeCacheParams, **extra: Any) -> dict[str, Any]:
    return {
        "name": p.name,
        "namespace": p.namespace,
        "labels": _labels(p),
        "annotations": {ANNOTATION_ROUTERCONFIG: f"{p.rc_namespace}/{p.rc_name}"},
        **extra,
    }


def namespace_manifest(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {LABEL_MANAGED_BY: MANAGER}},
    }


def service_account(p: EdgeCacheParams) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(p),
        "automountServiceAccountToken": False,
    }


def _b64(value: bytes | str) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode("ascii")


def secret(p: EdgeCacheParams) -> dict[str, Any]:
    data = {SECRET_SIGNING_KEY: _b64(p.signing_key)}
    if p.in_place:
        data[SECRET_CONFIG_DIGEST] = _b64(p.digest)
        data[SECRET_CONFIG_KEY] = _b64(p.key)
    if p.graph_token_secret is not None:
        data[SECRET_GRAPH_TOKEN_SECRET] = _b64(p.graph_token_secret)
    if p.s3.access_key_id is not None and p.s3.secret_access_key is not None:
        data[SECRET_ACCESS_KEY_ID] = _b64(p.s3.access_key_id)
        data[SECRET_SECRET_ACCESS_KEY] = _b64(p.s3.secret_access_key)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(p),
        "type": "Opaque",
        "data": data,
    }


def service(p: EdgeCacheParams) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(p),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(p),
            "ports": [{"name": "http", "port": p.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def legacy_alias_service(p: EdgeCacheParams) -> dict[str, Any]:
    """The Service under the legacy name, routing to the current pods: routers keep their URL."""
    manifest = service(p)
    manifest["metadata"]["name"] = legacy_edge_name(p.rc_namespace, p.rc_name)
    manifest["metadata"]["annotations"][ANNOTATION_ALIAS_OF] = p.name
    return manifest


def peer_url(p: EdgeCacheParams) -> str:
    """The cache's own Service (`service()`), namespace-qualified: resolves in any cluster domain."""
    return f"http://{p.name}.{p.namespace}.svc:{p.port}"


def _env(p: EdgeCacheParams) -> list[dict[str, Any]]:
    def plain(name: str, value: str) -> dict[str, Any]:
        return {"name": name, "value": value}

    def from_secret(name: str, key: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": p.name, "key": key}}}

    env = [plain("EDGEROLL_S3_ENDPOINT", p.s3.endpoint)] if p.s3.endpoint else []
    env.append(plain("EDGEROLL_S3_BUCKET", p.s3.bucket))
    if p.s3.static:  # else boto3's default chain (IRSA, pod identity, instance profile)
        env += [
            from_secret("AWS_ACCESS_KEY_ID", SECRET_ACCESS_KEY_ID),
            from_secret("AWS_SECRET_ACCESS_KEY", SECRET_SECRET_ACCESS_KEY),
        ]
    if p.s3.region:
        env.append(plain("AWS_DEFAULT_REGION", p.s3.region))
    if p.in_place:  # read at start; running pods switch through the pointer
        env += [
            from_secret("EDGEROLL_CONFIG_KEY", SECRET_CONFIG_KEY),
            from_secret("EDGEROLL_CONFIG_DIGEST", SECRET_CONFIG_DIGEST),
        ]
        if p.pointer_key is not None:
            env.append(plain("EDGEROLL_CONFIG_POINTER_KEY", p.pointer_key))
    else:
        env += [plain("EDGEROLL_CONFIG_KEY", p.key), plain("EDGEROLL_CONFIG_DIGEST", p.digest)]
    env += [
        from_secret("EDGEROLL_SIGNING_KEY", SECRET_SIGNING_KEY),
        plain("EDGEROLL_CONFIG_NAMESPACE", p.rc_namespace),
        plain("EDGEROLL_CONFIG_NAME", p.rc_name),
    ]
    if p.cosmo_organization_id and p.cosmo_federated_graph_id:
        env += [
            plain("EDGEROLL_COSMO_ORGANIZATION_ID", p.cosmo_organization_id),
            plain("EDGEROLL_COSMO_FEDERATED_GRAPH_ID", p.cosmo_federated_graph_id),
        ]
    if p.graph_token_secret is not None:
        env.append(from_secret("EDGEROLL_COSMO_TOKEN_SECRET", SECRET_GRAPH_TOKEN_SECRET))
    if p.public_read:
        env.append(plain("EDGEROLL_CACHE_PUBLIC_READ", "true"))
    env += [
        plain("EDGEROLL_CACHE_PORT", str(p.port)),
        plain("EDGEROLL_STATE_DIR", STATE_DIR),
        # Peer fill: a pod that cannot reach S3 asks its ready siblings through this Service (an
        # unready pod is not in its endpoints, so never itself); it verifies the answer like S3's.
        plain("EDGEROLL_CACHE_PEER_URL", peer_url(p)),
    ]
    return env


def _resources(p: EdgeCacheParams) -> dict[str, Any]:
    if p.resources is None:
        return {k: dict(v) for k, v in DEFAULT_RESOURCES.items()}
    out: dict[str, Any] = {}
    if p.resources.requests:
        out["requests"] = {k: str(v) for k, v in p.resources.requests.items()}
    if p.resources.limits:
        out["limits"] = {k: str(v) for k, v in p.resources.limits.items()}
    return out


def _template_annotations(p: EdgeCacheParams) -> dict[str, str]:
    if p.in_place:  # a new revision must not roll the pods; a new signing key must (env is read at start)
        annotations = {ANNOTATION_SIGNING_KEY: hashlib.sha256(p.signing_key).hexdigest()[:16]}
    else:
        annotations = {ANNOTATION_DIGEST: p.digest, ANNOTATION_KEY: p.key, ANNOTATION_SIGNATURE: p.signature}
    if p.graph_token_secret is not None:
        annotations[ANNOTATION_TOKEN_SECRET] = hashlib.sha256(p.graph_token_secret).hexdigest()[:16]
    return annotations


def _switch_annotations(p: EdgeCacheParams) -> dict[str, str]:
    annotations = {ANNOTATION_WANTED: p.digest}
    if p.served_digest is not None:
        annotations[ANNOTATION_DIGEST] = p.served_digest
    if p.refused is not None:
        annotations[ANNOTATION_REFUSED] = p.refused
    return annotations


def deployment(p: EdgeCacheParams) -> dict[str, Any]:
    # Readiness is the rollout's health gate and the Service's routing: probed every second, so a
    # verified revision is routed to within about a second (docs/benchmarks.md, propagation on kind).
    probe: dict[str, Any] = {
        "httpGet": {"path": "/readyz", "port": "http"},
        "periodSeconds": 1,
        "failureThreshold": 3,
    }
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": p.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["edgeroll", "cache"],
        "ports": [{"name": "http", "containerPort": p.port, "protocol": "TCP"}],
        "env": _env(p),
        "readinessProbe": probe,
        # Let endpoints drop the pod before the cache closes its listener on SIGTERM
        # (it then drains for up to 10 s); sleep is a kubelet action, no binary needed.
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "state", "mountPath": STATE_DIR}, {"name": "tmp", "mountPath": TMP_DIR}],
    }
    resources = _resources(p)
    if resources:
        container["resources"] = resources
    metadata = _metadata(p)
    if p.last_good is not None:
        metadata["annotations"][ANNOTATION_LAST_GOOD] = p.last_good
    if p.in_place:
        metadata["annotations"].update(_switch_annotations(p))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": p.replicas,
            "revisionHistoryLimit": 3,
            "progressDeadlineSeconds": 300,
            "selector": {"matchLabels": selector_labels(p)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": _labels(p),
                    "annotations": _template_annotations(p),
                },
                "spec": {
                    "serviceAccountName": p.name,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": UID,
                        "runAsGroup": UID,
                        "fsGroup": UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "state", "emptyDir": {"sizeLimit": "256Mi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                },
            },
        },
    }


def edge_manifests(p: EdgeCacheParams) -> list[dict[str, Any]]:
    """In apply order: the Deployment last, once what it mounts and runs as exists."""
    return [service_account(p), secret(p), service(p), deployment(p)]


def _refs(name: str, namespace: str) -> list[ObjectRef]:
    return [
        ObjectRef("apps/v1", "Deployment", namespace, name),
        ObjectRef("v1", "Service", namespace, name),
        ObjectRef("v1", "Secret", namespace, name),
        ObjectRef("v1", "ServiceAccount", namespace, name),
    ]


def edge_refs(rc_namespace: str, rc_name: str, namespace: str) -> list[ObjectRef]:
    """What to delete, in deletion order (the Deployment first)."""
    return _refs(edge_name(rc_namespace, rc_name), namespace)


def legacy_refs(rc_namespace: str, rc_name: str, namespace: str) -> list[ObjectRef]:
    """The objects under the legacy name, when it differs from the current one (else none)."""
    legacy = legacy_edge_name(rc_namespace, rc_name)
    if legacy == edge_name(rc_namespace, rc_name):
        return []
    return _refs(legacy, namespace)


def deployment_ref(rc_namespace: str, rc_name: str, namespace: str) -> ObjectRef:
    return edge_refs(rc_namespace, rc_name, namespace)[0]
