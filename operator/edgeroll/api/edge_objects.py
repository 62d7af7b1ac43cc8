"""The names edgeroll writes on the objects in edge clusters: labels, annotations and Secret keys.

Part of the API: users select caches by these labels, and the annotations are how the operator
knows its own objects (rollout/ownership.py) and what a cache should serve (rollout/health.py).
"""

from __future__ import annotations

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_RC_NAMESPACE = "edgeroll.io/routerconfig-namespace"
LABEL_RC_NAME = "edgeroll.io/routerconfig-name"
LABEL_RC_UID = "edgeroll.io/routerconfig-uid"
LABEL_CLUSTER = "edgeroll.io/edgecluster"
ANNOTATION_ROUTERCONFIG = "edgeroll.io/routerconfig"  # "<namespace>/<name>": the owner (rollout/ownership.py)
# On a Service kept under a legacy name: the name of the edge objects it now routes to.
ANNOTATION_ALIAS_OF = "edgeroll.io/alias-of"
ANNOTATION_DIGEST = "edgeroll.io/digest"
ANNOTATION_KEY = "edgeroll.io/config-key"
ANNOTATION_SIGNATURE = "edgeroll.io/signature"
# A fingerprint of the graph token secret: a rotated secret rolls the pods (env from a Secret is read
# at start). Edge-namespace readers can read the Secret itself, so it tells them nothing more.
ANNOTATION_TOKEN_SECRET = "edgeroll.io/graph-token-secret-sha256"  # noqa: S105 - a name
# On the Deployment itself, not its pod template (changing it must not roll the pods): the digest this
# cluster goes back to should its current move fail. The planner reads it when status.rollout is lost.
ANNOTATION_LAST_GOOD = "edgeroll.io/last-good"
# In-place switching (EdgeCluster spec.revisionSwitch: InPlace), on the Deployment itself too: the
# pod template then carries no digest. ANNOTATION_DIGEST there is the digest every pod has said it
# serves; WANTED the one the pointer and the Secret name (the switch under way); REFUSED
# "<digest> <why>" once a pod refused WANTED (the planner fails the cluster at once).
ANNOTATION_WANTED = "edgeroll.io/wanted-digest"
ANNOTATION_REFUSED = "edgeroll.io/refused"
# A fingerprint of the signing key on an InPlace pod template: a rotated key rolls the pods.
ANNOTATION_SIGNING_KEY = "edgeroll.io/signing-key-sha256"

# Key names inside the edge Secret (names, not values).
SECRET_SIGNING_KEY = "signing-key"  # noqa: S105
SECRET_GRAPH_TOKEN_SECRET = "graph-token-secret"  # noqa: S105
SECRET_ACCESS_KEY_ID = "aws-access-key-id"  # noqa: S105
SECRET_SECRET_ACCESS_KEY = "aws-secret-access-key"  # noqa: S105
# InPlace: the wanted revision, read by pods at start (env from the Secret does not roll them).
SECRET_CONFIG_DIGEST = "config-digest"  # noqa: S105
SECRET_CONFIG_KEY = "config-key"  # noqa: S105
# A hub Secret of this name in a RouterConfig's namespace, with the two keys above, gives that namespace's
# caches their own S3 key instead of the operator's EDGEROLL_EDGE_S3_* one (docs/security.md).
NAMESPACE_EDGE_S3_SECRET = "edgeroll-edge-s3"  # noqa: S105
