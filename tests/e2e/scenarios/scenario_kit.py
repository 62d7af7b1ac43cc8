"""Helpers for the scenario suite (conftest.py holds the fixtures).

Every scenario ends the way a user's router would: a client fetches the config
over HTTP from an edge cache of each edge cluster, and checks the digest, the
signature and (Cosmo) the `version`, then asks the Cosmo CDN route as a router
does: 200 with the same bytes, then 304 for the version it now holds.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tests.e2e.operator.operator_e2e_kit import OperatorE2E, broken_kubeconfig
from tests.e2e.providers.e2e_provider import ROOT, E2EProvider, RunScope

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.lab.pod_runner import FetchResult, fetch_and_verify
from edgeroll.render.revision import make_revision
from edgeroll.rollout.resources import edge_name

# A 403 means the chart's RBAC lacks a verb the operator used. kopf's timestamps end in ",<ms>",
# so a bare 403 counts only when it is not preceded by a comma, a dot or a word character.
FORBIDDEN = re.compile(r"forbidden|(?<![,.\w])403(?!\w)", re.IGNORECASE)
# An edge Deployment's own status may quote a quota denial of its ReplicaSet's pods: not the operator's.
NOT_OURS = re.compile(r"exceeded quota")


@dataclass
class Fleet:
    """The session's world: a provider, the chart installed for one run, an operator, three EdgeClusters."""

    provider: E2EProvider
    scope: RunScope
    e2e: OperatorE2E  # kubectl, status and S3 helpers of the operator suite; e2e.edges: edge -> EdgeCluster
    work: Path
    # Where the RBAC check of the operator log stops: set by a scenario that uninstalls the chart,
    # since helm deletes the RBAC while the operator pod is still shutting down.
    rbac_checked_until: int | None = None

    def edgecluster(self, edge: str) -> str:
        return self.e2e.edges[edge]

    def edge_of(self, edgecluster: str) -> str:
        return next(e for e, n in self.e2e.edges.items() if n == edgecluster)


@dataclass(frozen=True)
class ComposedGraph:
    """`wgc router compose` output for examples/graph: the file, and its parsed config."""

    path: Path
    config: dict[str, Any]


@dataclass(frozen=True)
class Expected:
    """What a client must get for one render: the digest of the exact bytes, and the Cosmo version."""

    digest: str
    version: str | None


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def expect(fmt: ConfigFormat, document: dict[str, Any]) -> Expected:
    """The digest the operator must publish for `document`, and for Cosmo the version it must carry:
    sha256 of the canonical config without `version` (docs/architecture.md, Render)."""
    revision = make_revision(fmt, document)
    served = json.loads(revision.body)
    if fmt is ConfigFormat.JSON:
        assert revision.body == canonical(document)
        return Expected(revision.digest, None)
    version = hashlib.sha256(canonical({k: v for k, v in served.items() if k != "version"})).hexdigest()
    assert served["version"] == version, "the Cosmo version is not the documented content hash"
    return Expected(revision.digest, version)


def fetch_from_edges(
    fleet: Fleet, rc: str, edges: list[str] | None = None, rc_namespace: str | None = None
) -> dict[str, FetchResult]:
    """Fetch `rc` (of `rc_namespace`, the run's by default) from an edge cache of each edge, built from
    what the operator wrote in that cluster. Every tenant's caches live in the run's edge namespace."""
    deployment = edge_name(rc_namespace or fleet.scope.ns, rc)
    results = {}
    for edge in edges or sorted(fleet.e2e.edges):
        work = Path(tempfile.mkdtemp(prefix=f"{edge}-", dir=fleet.work))  # fresh state: no last-known-good
        with fleet.provider.edge_cache(edge, fleet.scope.ns, deployment, work) as cache:
            results[edge] = fetch_and_verify(cache)
    return results


def assert_served(result: FetchResult, expected: Expected) -> None:
    where = f"edge cache in {result.cluster}"
    assert result.status == 200, f"{where}: HTTP {result.status}"
    assert result.body_digest == expected.digest, (
        f"{where} served {result.body_digest}, want {expected.digest}"
    )
    assert result.digest == expected.digest, f"{where}: X-Config-Digest {result.digest}"
    assert result.signature_ok, f"{where}: the signature does not verify with the signing key"
    assert result.version == expected.version, f"{where}: version {result.version}, want {expected.version}"
    if expected.version is None:
        assert result.cosmo_status is None, f"{where}: a JSON config has no Cosmo route"
    else:
        assert result.cosmo_status == 200, f"{where}: Cosmo POST answered {result.cosmo_status}"
        assert result.cosmo_revalidate_status == 304, (
            f"{where}: Cosmo POST with the served version answered {result.cosmo_revalidate_status}"
        )


def cosmo_variant(graph: dict[str, Any], tag: str) -> dict[str, Any]:
    """The composed graph with a comment in its schema: a new revision with the same shape."""
    config = copy.deepcopy(graph)
    config["engineConfig"]["graphqlSchema"] += f"\n# {tag}"
    return config


def phases(status: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["phase"] for c in status.get("clusters", [])}


def digests(status: dict[str, Any]) -> dict[str, str | None]:
    return {c["name"]: c.get("digest") for c in status.get("clusters", [])}


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def forbidden_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if FORBIDDEN.search(line) and not NOT_OURS.search(line)]


def set_kubeconfig_secret(fleet: Fleet, edgecluster: str, text: str) -> None:
    """Replace the kubeconfig an EdgeCluster's Secret holds (the Secret `add_edgecluster` created)."""
    secret = fleet.e2e.hub(
        "-n",
        fleet.scope.ns,
        "create",
        "secret",
        "generic",
        f"kubeconfig-{edgecluster}",
        "--from-file=kubeconfig=/dev/stdin",
        "--dry-run=client",
        "-o",
        "json",
        input=text,
    ).stdout
    fleet.e2e.hub("apply", "-f", "-", input=secret)


def unreachable_kubeconfig(fleet: Fleet, edge: str) -> str:
    """The edge's kubeconfig pointed at a closed port: the apiserver itself keeps running."""
    path = fleet.work / f"{edge}-reachable.kubeconfig"
    path.write_text(fleet.provider.edge_kubeconfig(edge))
    return broken_kubeconfig(path)


def progressive_in_crd() -> bool:
    """Whether crds/ (what the suite applies to the hub) accepts spec.rollout.strategy Progressive."""
    crd = yaml.safe_load((ROOT / "crds" / "edgeroll.io_routerconfigs.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    strategy = spec["properties"].get("rollout", {}).get("properties", {}).get("strategy", {})
    return "Progressive" in strategy.get("enum", [])


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed_graph_token(
    secret: str | None, org: str, graph: str, alg: str = "HS256", features: list[str] | None = None
) -> str:
    """A graph token as Cosmo's control plane issues it (HS256 over header.claims); unsigned without
    `secret`."""
    head = _b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload: dict[str, Any] = {"organization_id": org, "federated_graph_id": graph}
    if features is not None:
        payload["features"] = features
    claims = _b64url(json.dumps(payload).encode())
    if secret is None:
        return f"{head}.{claims}."
    signature = hmac.new(secret.encode(), f"{head}.{claims}".encode(), hashlib.sha256).digest()
    return f"{head}.{claims}.{_b64url(signature)}"


def http_answer(request: urllib.request.Request) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (names lowercase) and body of one request to an edge cache, errors included."""
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - loopback or port-forward
            return int(resp.status), {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), {k.lower(): v for k, v in exc.headers.items()}, exc.read()
