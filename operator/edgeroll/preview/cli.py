"""`edgeroll plan -f routerconfig.yaml` (also `kubectl edgeroll plan`): what applying the file would do.

Reads the hub and writes nothing. For every RouterConfig in the file and every target cluster: its wave,
the digest it would move to, the digest it serves now, and what changes in its rendered config (JSON
paths, values cut to --width). `-o json` gives the same for scripts. A RouterConfig the operator would
refuse says so, naming the field, and the command exits 1 (for the Prometheus addresses of its analysis
the operator's allow-list is --allowed-prometheus-address, else EDGEROLL_ALLOWED_PROMETHEUS_ADDRESSES).
The hub is reached as `edgeroll rollout` reaches it (--kubeconfig, EDGEROLL_HUB_KUBECONFIG, KUBECONFIG,
in-cluster, ~/.kube/config).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import yaml

from edgeroll.api.common import GROUP
from edgeroll.clusters.kube import KubeClient
from edgeroll.pipeline.gather import Retryable
from edgeroll.preview.output import render_text, to_json
from edgeroll.preview.reader import PreviewHub, edge_clusters, preview_routerconfig
from edgeroll.rollout.cli import default_namespace, hub_kubeconfig
from edgeroll.settings import ALLOWED_PROMETHEUS_ENV, SettingsError, allowed_prometheus_addresses


class ManifestError(ValueError):
    """The file holds no RouterConfig, or one without a name, or a namespace that contradicts -n."""


@dataclass(frozen=True)
class Manifests:
    routerconfigs: list[dict[str, Any]]  # each with metadata.namespace set
    config_maps: dict[tuple[str, str], dict[str, Any]]  # (namespace, name) -> ConfigMap


def _objects(docs: list[Any]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for doc in docs:
        if isinstance(doc, Mapping) and str(doc.get("kind", "")).endswith("List"):
            out += [item for item in doc.get("items") or [] if isinstance(item, Mapping)]
        elif isinstance(doc, Mapping):
            out.append(doc)
    return out


def parse_manifests(text: str, namespace: str, explicit: bool) -> Manifests:
    """The RouterConfigs and ConfigMaps of a manifest file (YAML or JSON, several documents, Lists),
    each in its own namespace, else `namespace`; with `explicit` (-n given) another one is an error,
    as with kubectl."""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ManifestError(f"not YAML or JSON: {exc}") from None
    rcs, cms = [], {}
    for obj in _objects(docs):
        kind, api = obj.get("kind"), str(obj.get("apiVersion", ""))
        meta = dict(obj.get("metadata") or {})
        ns = str(meta.get("namespace") or namespace)
        if explicit and ns != namespace:
            raise ManifestError(f"{kind} {meta.get('name')} is in namespace {ns}, not -n {namespace}")
        if kind == "RouterConfig" and api.startswith(f"{GROUP}/"):
            if not meta.get("name"):
                raise ManifestError("a RouterConfig without metadata.name")
            rcs.append({**obj, "metadata": {**meta, "namespace": ns}})
        elif kind == "ConfigMap" and api == "v1" and meta.get("name"):
            cms[(ns, str(meta["name"]))] = dict(obj)
    if not rcs:
        raise ManifestError(f"no RouterConfig ({GROUP}) in the file")
    return Manifests(rcs, cms)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0] if __doc__ else None
    parser.add_argument(
        "-f",
        "--filename",
        required=True,
        help="RouterConfig manifest, YAML or JSON ('-': stdin); ConfigMaps in it stand in for the hub's",
    )
    parser.add_argument(
        "-n", "--namespace", help="namespace of objects that name none (default: the context's)"
    )
    parser.add_argument("--kubeconfig", help="hub kubeconfig (default: EDGEROLL_HUB_KUBECONFIG, KUBECONFIG)")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")
    parser.add_argument(
        "--width", type=int, default=80, help="cut values in the changes to this many characters (0: whole)"
    )
    parser.add_argument(
        "--max-changes", type=int, default=20, help="changes listed per cluster in text output (0: all)"
    )
    parser.add_argument(
        "--allowed-prometheus-address",
        action="append",
        metavar="URL",
        help="a Prometheus the operator allows in spec.rollout.analysis (repeatable; pass the operator's "
        f"--allowed-prometheus-address list; default: {ALLOWED_PROMETHEUS_ENV}, comma-separated); target "
        "EdgeClusters' spec.prometheus.address is always allowed",
    )


def allowed_prometheus(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, ...]:
    """The operator's --allowed-prometheus-address as the preview knows it: the flags, else the operator's
    own environment variable (the preview cannot read the operator's flags). SettingsError when malformed."""
    given = getattr(args, "allowed_prometheus_address", None)
    if given:
        return allowed_prometheus_addresses({ALLOWED_PROMETHEUS_ENV: ",".join(given)})
    return allowed_prometheus_addresses(env)


async def execute(
    args: argparse.Namespace,
    hub: PreviewHub,
    manifests: Manifests,
    out: TextIO,
    env: Mapping[str, str] | None = None,
) -> int:
    """Preview every RouterConfig of the file; 1 when any would be refused."""
    now = datetime.now(UTC)
    allowed = allowed_prometheus(args, os.environ if env is None else env)
    clusters = await edge_clusters(hub)
    previews = [
        await preview_routerconfig(hub, rc, manifests.config_maps, clusters, now, allowed)
        for rc in manifests.routerconfigs
    ]
    if args.output == "json":
        json.dump({"items": [to_json(p, args.width) for p in previews]}, out, indent=2)
        out.write("\n")
    else:
        out.write("\n".join(render_text(p, args.width, args.max_changes) for p in previews))
    return 1 if any(p.refused is not None for p in previews) else 0


def run(args: argparse.Namespace) -> int:
    kubeconfig = hub_kubeconfig(args.kubeconfig, os.environ)
    namespace = args.namespace or default_namespace(kubeconfig)
    try:
        allowed_prometheus(args, os.environ)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        text = sys.stdin.read() if args.filename == "-" else Path(args.filename).read_text()
        manifests = parse_manifests(text, namespace, explicit=args.namespace is not None)
    except (OSError, ManifestError) as exc:
        print(f"error: {args.filename}: {exc}", file=sys.stderr)
        return 2

    async def main() -> int:
        hub: KubeClient | None = None
        try:
            hub = await KubeClient.from_environment(kubeconfig, timeout=30.0)
            return await execute(args, hub, manifests, sys.stdout)
        except Retryable as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        except Exception as exc:  # one line, not a traceback, for an apiserver refusal (a 403, say)
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        finally:
            if hub is not None:
                await hub.close()

    return asyncio.run(main())
