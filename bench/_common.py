"""Helpers shared by the benchmarks in bench/.

Every benchmark writes `bench/results/<name>.json` and prints, as its last
line, `BENCH <name> k=v ...` so CI and humans can grep one line per run.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import socket
import statistics
import string
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile, p in [0, 100]."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return float(ordered[rank - 1])


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3) if denominator else float("nan")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "loadavg_at_start": [round(x, 2) for x in load],
        "hostname_hash": uuid.uuid5(uuid.NAMESPACE_DNS, platform.node()).hex[:8],
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_result(name: str, data: Mapping[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def bench_line(name: str, figures: Mapping[str, float | int | str]) -> str:
    return f"BENCH {name} " + " ".join(f"{key}={value}" for key, value in figures.items())


def _words(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 10))) for _ in range(n)]


def realistic_router_config(target_bytes: int = 500_000, seed: int = 7) -> dict[str, Any]:
    """A Cosmo-style execution config (the protojson of RouterConfig) of about `target_bytes`.

    Shaped like what `wgc router compose` emits: per-subgraph datasource
    configurations with root/child nodes, federation SDL and keys, field
    configurations with arguments, and the composed schema as one big string,
    so it compresses like a real one (SDL text plus repetitive JSON keys).
    """
    rng = random.Random(seed)
    vocab = _words(rng, 600)
    scalars = ["ID", "String", "Int", "Float", "Boolean", "DateTime"]

    def type_name() -> str:
        return rng.choice(vocab).capitalize() + rng.choice(vocab).capitalize()

    datasources: list[dict[str, Any]] = []
    field_configs: list[dict[str, Any]] = []
    subgraphs: list[dict[str, Any]] = []
    schema_parts: list[str] = []
    config: dict[str, Any] = {}
    index = 0
    while True:
        name = f"{rng.choice(vocab)}-{index}"
        types = [type_name() for _ in range(rng.randint(8, 16))]
        sdl_lines: list[str] = []
        root_fields: list[str] = []
        child_nodes: list[dict[str, Any]] = []
        keys: list[dict[str, Any]] = []
        for t in types:
            fields = sorted(set(rng.sample(vocab, rng.randint(5, 14))))
            sdl_lines.append(f'type {t} @key(fields: "id") {{')
            sdl_lines.append("  id: ID!")
            for f in fields:
                sdl_lines.append(f"  {f}: {rng.choice([*scalars, *types])}{rng.choice(['', '!'])}")
            sdl_lines.append("}")
            child_nodes.append({"typeName": t, "fieldNames": ["id", *fields]})
            keys.append({"typeName": t, "selectionSet": "id"})
            root_field = f"{t[0].lower()}{t[1:]}"
            root_fields.append(root_field)
            field_configs.append(
                {
                    "typeName": "Query",
                    "fieldName": root_field,
                    "argumentsConfiguration": [{"name": "id", "sourceType": "FIELD_ARGUMENT"}],
                }
            )
        sdl_lines.append("type Query {")
        sdl_lines.extend(f"  {f}(id: ID!): {t}" for f, t in zip(root_fields, types, strict=True))
        sdl_lines.append("}")
        sdl = "\n".join(sdl_lines)
        schema_parts.append(sdl)
        url = f"http://{name}.svc.cluster.local:4001/graphql"
        datasources.append(
            {
                "id": str(index),
                "kind": "GRAPHQL",
                "rootNodes": [{"typeName": "Query", "fieldNames": root_fields}],
                "childNodes": child_nodes,
                "keys": keys,
                "requestTimeoutSeconds": "10",
                "customGraphql": {
                    "fetch": {
                        "url": {"staticVariableContent": url},
                        "method": "POST",
                        "body": {},
                        "baseUrl": {},
                        "path": {},
                    },
                    "subscription": {
                        "enabled": True,
                        "url": {"staticVariableContent": url},
                        "protocol": "GRAPHQL_SUBSCRIPTION_PROTOCOL_WS",
                        "websocketSubprotocol": "GRAPHQL_WEBSOCKET_SUBPROTOCOL_AUTO",
                    },
                    "federation": {"enabled": True, "serviceSdl": sdl},
                    "upstreamSchema": {"key": uuid.UUID(int=rng.getrandbits(128)).hex},
                },
            }
        )
        subgraphs.append({"id": str(uuid.UUID(int=rng.getrandbits(128))), "name": name, "routingUrl": url})
        index += 1
        config = {
            "compatibilityVersion": "1:0.1.0",
            "engineConfig": {
                "defaultFlushInterval": "500",
                "datasourceConfigurations": datasources,
                "fieldConfigurations": field_configs,
                "graphqlSchema": "\n\n".join(schema_parts),
                "stringStorage": {},
            },
            "subgraphs": subgraphs,
            "version": str(uuid.UUID(int=rng.getrandbits(128))),
        }
        # The composed schema appears twice in real configs (engine + client schema).
        config["engineConfig"]["graphqlClientSchema"] = config["engineConfig"]["graphqlSchema"]
        if len(json.dumps(config, separators=(",", ":"), ensure_ascii=False)) >= target_bytes:
            return config
