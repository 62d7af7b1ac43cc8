"""Offline JSON schemas for kubeconform, taken from the lab's own kube-apiserver.

kubeconform normally downloads schemas from GitHub; here nothing is downloaded
outside the package registries, and the apiserver we test against is the best
source of truth anyway. Built-in kinds come from `/openapi/v2`; our kinds come
from the CRDs in `crds/`. Files are named as kubeconform's
`{{ .ResourceKind }}{{ .KindSuffix }}.json` template expects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

SCHEMA_LOCATION = "{{ .ResourceKind }}{{ .KindSuffix }}.json"


def _file_name(kind: str, group: str, version: str) -> str:
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix}.json"


def _inline(node: Any, definitions: dict[str, Any], stack: tuple[str, ...]) -> Any:
    """Resolve `$ref`s, cutting recursion (JSONSchemaProps) with an open schema."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name in stack or len(stack) > 12:
                return {}
            return _inline(definitions[name], definitions, (*stack, name))
        if node.get("format") == "int-or-string":
            # IntOrString (maxSurge, minAvailable, ports): v2 says `type: string`, the apiserver takes both.
            return {"oneOf": [{"type": "string"}, {"type": "integer"}]}
        out = {k: _inline(v, definitions, stack) for k, v in node.items()}
        if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False  # what makes `kubeconform -strict` catch typos
        return out
    if isinstance(node, list):
        return [_inline(v, definitions, stack) for v in node]
    return node


def write_builtin_schemas(openapi_v2: dict[str, Any], out_dir: Path) -> int:
    definitions: dict[str, Any] = openapi_v2["definitions"]
    count = 0
    for name, schema in definitions.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            resolved = _inline(schema, definitions, (name,))
            # Every object accepts apiVersion/kind even where the definition omits them.
            path = out_dir / _file_name(gvk["kind"], gvk.get("group", ""), gvk["version"])
            path.write_text(json.dumps(resolved))
            count += 1
    return count


def write_crd_schemas(crd_files: list[Path], out_dir: Path) -> int:
    count = 0
    for crd_file in crd_files:
        crd = yaml.safe_load(crd_file.read_text())
        spec = crd["spec"]
        for version in spec["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            path = out_dir / _file_name(spec["names"]["kind"], spec["group"], version["name"])
            path.write_text(json.dumps(schema))
            count += 1
    return count
