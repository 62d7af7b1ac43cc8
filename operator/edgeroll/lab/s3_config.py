"""The SeaweedFS (`weed mini`) command line and its ports. Pure: no I/O.

`weed mini` runs master, volume, filer, S3 and admin in one process, and every
one of them opens ports. All are pinned here so the lab owns a known set and
`down` can check that none is left listening:

- `-s3.port.iceberg=0`, `-s3.port.lance=0` and `-webdav=false` turn those off.
- The admin server always runs (even with `-admin.ui=false`), and its
  built-in worker dials admin port + 10000 whatever `-admin.port.grpc` says,
  so the admin gRPC port is left implicit and both ports are reserved.
- kwokctl hands out cluster ports counting down from 32766, and Linux's
  ephemeral range starts at 32768; the default base keeps all of these below
  30000, out of both ranges.
"""

from __future__ import annotations

from pathlib import Path

from edgeroll.lab.layout import LOOPBACK

DEFAULT_BASE_PORT = 18333
ADMIN_GRPC_OFFSET = 10000  # fixed in weed: the worker dials admin port + 10000
# Offsets from the base port; `admin-grpc` is implied by weed, not passed.
_OFFSETS: dict[str, int] = {
    "s3": 0,
    "s3-grpc": 1,
    "master": 2,
    "master-grpc": 3,
    "volume": 4,
    "volume-grpc": 5,
    "filer": 6,
    "filer-grpc": 7,
    "admin": 8,
}
BLOCK_SIZE = len(_OFFSETS)


def s3_ports(base: int) -> dict[str, int]:
    """Every port `weed mini` listens on when started with `weed_command(ports=s3_ports(base))`."""
    ports = {name: base + offset for name, offset in _OFFSETS.items()}
    ports["admin-grpc"] = ports["admin"] + ADMIN_GRPC_OFFSET
    if max(ports.values()) > 65535:
        raise ValueError(f"base port {base} leaves no room for the SeaweedFS ports")
    return ports


def candidate_bases(first: int = DEFAULT_BASE_PORT, step: int = 20, count: int = 50) -> list[int]:
    """Base ports to try in order when the default block is taken."""
    return [first + i * step for i in range(count)]


def weed_command(
    weed: Path, *, data_dir: Path, ports: dict[str, int], bucket: str, s3_config: Path | None = None
) -> list[str]:
    """`weed mini` bound to loopback only, with every port pinned and telemetry off.

    Credentials are not flags: weed reads AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
    from its environment (see `weed_environment`).
    """
    return [
        str(weed),
        "mini",
        f"-dir={data_dir}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        f"-bucket={bucket}",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3-grpc']}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master-grpc']}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume-grpc']}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer-grpc']}",
        f"-admin.port={ports['admin']}",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        # Keep the unix sockets weed would otherwise put in /tmp next to the data.
        f"-s3.localSocket={data_dir / 's3.sock'}",
        *([f"-s3.config={s3_config}"] if s3_config is not None else []),
        f"-filer.localSocket={data_dir / 'filer.sock'}",
    ]


def identities(
    bucket: str, *, operator: tuple[str, str], edge: tuple[str, str]
) -> dict[str, list[dict[str, object]]]:
    """`-s3.config` for weed: the operator's key may do anything, the edges' may only read `bucket`,
    as a production bucket policy would have it (docs/security.md, Edge credentials)."""

    def identity(name: str, key: tuple[str, str], actions: list[str]) -> dict[str, object]:
        return {"name": name, "credentials": [{"accessKey": key[0], "secretKey": key[1]}], "actions": actions}

    return {
        "identities": [
            identity("operator", operator, ["Admin", "Read", "Write", "List", "Tagging"]),
            identity("edge", edge, [f"Read:{bucket}"]),
        ]
    }


def weed_environment(base: dict[str, str], *, access_key: str, secret_key: str) -> dict[str, str]:
    """The environment for `weed mini`: the lab's credentials and nothing AWS-ish inherited."""
    env = {k: v for k, v in base.items() if not k.startswith(("AWS_", "S3_"))}
    env["AWS_ACCESS_KEY_ID"] = access_key
    env["AWS_SECRET_ACCESS_KEY"] = secret_key
    return env
