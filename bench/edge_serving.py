"""Edge cache vs nginx under wrk: a 500 KB config answered 200 with gzip, and the 304 path.

Both servers run on 127.0.0.1 in the same run and serve the same bytes:
- the edge cache (`edgeroll cache`, a real subprocess) from a pre-seeded
  last-known-good state dir whose digest is the wanted one, so no S3 is needed;
- nginx (Debian package) with a private prefix and config in a temp dir,
  `etag on` and `gzip_static on`, serving the file and the identical .gz bytes.

Fairness: the same number of server worker processes (`--workers`, default 1)
for both, the same wrk threads/connections/duration, rounds interleaved
(alternating which server goes first) so background load hits both alike, and,
on machines with >= 2 CPUs and one worker, the server pinned to CPU 0 and wrk
to CPU 1 for both. Medians over rounds are reported.

Usage: .venv/bin/python bench/edge_serving.py [--rounds 5] [--duration 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    bench_line,
    exit_on_sigterm,
    free_port,
    machine_info,
    median,
    ratio,
    realistic_router_config,
    write_result,
)
from edgeroll.cache.responses import compress_body
from edgeroll.cache.revision import verify_revision
from edgeroll.cache.state import StateDir, StateIdentity
from edgeroll.render.canonical import canonical_json, content_digest, digest_hex
from edgeroll.render.signing import read_token, sign

NAME = "edge_serving"
CASES = ("200", "304")
NAMESPACE, CONFIG_NAME = "bench", "router"
PATH = f"/configs/{NAMESPACE}/{CONFIG_NAME}"
SIGNING_KEY = "bench-signing-key-0123456789abcd"  # 32 bytes, like a Cosmo graph.sign_key
# GET /configs needs a credential; nginx ignores it, so both servers get the same request.
AUTH = {"Authorization": f"Bearer {read_token(SIGNING_KEY.encode(), NAMESPACE, CONFIG_NAME)}"}
REPO = Path(__file__).resolve().parent.parent
EDGEROLL = REPO / ".venv" / "bin" / "edgeroll"


@dataclass
class WrkResult:
    server: str
    case: str
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    bytes_per_request: float
    errors: int
    non_2xx_3xx: int
    load1: float  # 1-minute load average right after the run: context for noisy rounds


def _duration_ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def parse_wrk(output: str) -> dict[str, float]:
    def grab(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output)
        if match is None:
            raise RuntimeError(f"wrk output lacks {pattern!r}:\n{output}")
        return match

    size = grab(r"requests in [\d.]+\w+, ([\d.]+)(B|KB|MB|GB|TB) read")
    total_bytes = (
        float(size.group(1))
        * {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[size.group(2)]
    )
    requests = int(grab(r"(\d+) requests in").group(1))
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sock:
        errors = sum(int(x) for x in sock.groups())
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    p50 = grab(r"\s50%\s+([\d.]+)(us|ms|s|m)\b")
    p99 = grab(r"\s99%\s+([\d.]+)(us|ms|s|m)\b")
    return {
        "rps": float(grab(r"Requests/sec:\s+([\d.]+)").group(1)),
        "p50_ms": _duration_ms(p50.group(1), p50.group(2)),
        "p99_ms": _duration_ms(p99.group(1), p99.group(2)),
        "requests": requests,
        "bytes_per_request": total_bytes / requests if requests else 0.0,
        "errors": errors,
        "non_2xx_3xx": int(non.group(1)) if non else 0,
    }


def wait_http(
    proc: subprocess.Popen[bytes], port: int, path: str, deadline_s: float = 30.0, want: int = 200
) -> None:
    deadline = time.monotonic() + deadline_s
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            if status == want:
                return
            last = status
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"127.0.0.1:{port}{path} did not answer {want} in {deadline_s}s (last: {last})")


def fetch(port: int, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", PATH, headers={**AUTH, **headers})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def validate(server: str, port: int, body: bytes) -> str:
    """Both servers must give the same answers before they are timed; returns the gzip ETag."""
    status, headers, raw = fetch(port, {"Accept-Encoding": "gzip"})
    if status != 200 or headers.get("content-encoding") != "gzip" or gzip.decompress(raw) != body:
        raise RuntimeError(f"{server}: 200+gzip answer is wrong: {status} {headers}")
    etag = headers["etag"]
    status, headers, raw = fetch(port, {"Accept-Encoding": "gzip", "If-None-Match": etag})
    if status != 304 or raw:
        raise RuntimeError(f"{server}: If-None-Match {etag} did not give an empty 304: {status}")
    return etag


def nginx_conf(prefix: Path, root: Path, port: int, workers: int, digest: str, signature: str) -> str:
    reuse = " reuseport" if workers > 1 else ""
    temp = "\n".join(
        f"  {kind}_temp_path {prefix / (kind + '_temp')};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
worker_processes {workers};
daemon off;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{temp}
  sendfile on;
  # Debian's default `tcp_nopush on` (TCP_CORK) meets delayed ACKs on loopback and puts nginx's
  # p99 at ~40 ms for the 100 KB answer; off is nginx's own default and its best p99 here.
  tcp_nopush off;
  tcp_nodelay on;
  keepalive_timeout 75s;
  keepalive_requests 100000000;
  open_file_cache max=16 inactive=60s;
  open_file_cache_valid 60s;
  server {{
    listen 127.0.0.1:{port}{reuse};
    root {root};
    location /configs/ {{
      default_type application/json;
      etag on;
      gzip_static on;
      add_header X-Config-Digest {digest};
      add_header X-Signature-SHA256 {signature};
      add_header Cache-Control no-cache;
    }}
  }}
}}
"""


@contextlib.contextmanager
def running(cmd: list[str], env: dict[str, str] | None, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def taskset(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []


def run_wrk(
    port: int, headers: dict[str, str], args: argparse.Namespace, cpu: int | None
) -> dict[str, float]:
    cmd = [
        *taskset(cpu),
        "wrk",
        "--latency",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--timeout",
        "10s",
    ]
    for key, value in headers.items():
        cmd += ["-H", f"{key}: {value}"]
    cmd.append(f"http://127.0.0.1:{port}{PATH}")
    output = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return parse_wrk(output)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=1, help="server processes, the same for both servers")
    parser.add_argument("--size", type=int, default=500_000, help="config size in bytes")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and wrk to CPUs")
    args = parser.parse_args()
    exit_on_sigterm()

    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(
                f"{tool} is missing: apt-get install -y nginx wrk (hack/setup.sh does this)", file=sys.stderr
            )
            return 2
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"

    machine = machine_info()  # before the servers start: the load average is then the background's
    cpus = os.cpu_count() or 1
    pin = not args.no_pin and cpus >= 2 and args.workers == 1
    server_cpu, wrk_cpu = (0, 1) if pin else (None, None)

    body = canonical_json(realistic_router_config(args.size))
    digest = content_digest(body)
    signature = sign(SIGNING_KEY.encode(), body)
    compressed = compress_body(body)
    revision = verify_revision(
        body, expected_digest=digest, signature=signature, signing_key=SIGNING_KEY.encode()
    )

    with tempfile.TemporaryDirectory(prefix="edgeroll-bench-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)  # nginx workers drop to an unprivileged user when started as root
        state = StateDir(tmp / "state", StateIdentity(NAMESPACE, CONFIG_NAME))
        state.prepare()
        state.store(revision)
        root = tmp / "www"
        (root / "configs" / NAMESPACE).mkdir(parents=True)
        (root / "configs" / NAMESPACE / CONFIG_NAME).write_bytes(body)
        (root / "configs" / NAMESPACE / f"{CONFIG_NAME}.gz").write_bytes(compressed)
        for path in root.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        prefix = tmp / "nginx"
        prefix.mkdir()
        nginx_port, cache_port = free_port(), free_port()
        (prefix / "nginx.conf").write_text(
            nginx_conf(prefix, root, nginx_port, args.workers, digest, signature)
        )

        env = {
            **os.environ,
            # The wanted digest is the seeded last-known-good: the cache never contacts S3.
            "EDGEROLL_S3_ENDPOINT": "http://127.0.0.1:9",
            "EDGEROLL_S3_BUCKET": "bench-unused",
            "AWS_ACCESS_KEY_ID": "unused",
            "AWS_SECRET_ACCESS_KEY": "unused",
            "AWS_DEFAULT_REGION": "us-east-1",
            "EDGEROLL_CONFIG_KEY": f"revisions/{NAMESPACE}/{CONFIG_NAME}/{digest_hex(digest)}.json",
            "EDGEROLL_CONFIG_DIGEST": digest,
            "EDGEROLL_SIGNING_KEY": SIGNING_KEY,
            "EDGEROLL_CONFIG_NAMESPACE": NAMESPACE,
            "EDGEROLL_CONFIG_NAME": CONFIG_NAME,
            "EDGEROLL_CACHE_PORT": str(cache_port),
            "EDGEROLL_STATE_DIR": str(state.root),
            "EDGEROLL_CACHE_WORKERS": str(args.workers),
        }
        cache_cmd = [
            *taskset(server_cpu),
            str(EDGEROLL),
            "cache",
            "--host",
            "127.0.0.1",
            "--log-level",
            "WARNING",
        ]
        nginx_cmd = [*taskset(server_cpu), nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e",
                     str(prefix / "error.log")]  # fmt: skip
        with (
            running(cache_cmd, env, tmp / "cache.log") as cache_proc,
            running(nginx_cmd, None, tmp / "nginx.out") as nginx_proc,
        ):
            try:
                wait_http(cache_proc, cache_port, "/readyz")
                wait_http(nginx_proc, nginx_port, PATH)
            except RuntimeError:
                for log in (tmp / "cache.log", tmp / "nginx.out", prefix / "error.log"):
                    if log.exists():
                        print(f"--- {log.name}\n{log.read_text()}", file=sys.stderr)
                raise
            servers = {"edge": cache_port, "nginx": nginx_port}
            etags = {name: validate(name, port, body) for name, port in servers.items()}

            def headers(case: str, server: str) -> dict[str, str]:
                # A router that holds the current revision revalidates; one that does not fetches.
                if case == "304":
                    return {**AUTH, "Accept-Encoding": "gzip", "If-None-Match": etags[server]}
                return {**AUTH, "Accept-Encoding": "gzip"}

            # Warm both up (page cache, allocator, first-connection costs); not recorded.
            warmup = argparse.Namespace(**{**vars(args), "duration": 1})
            for name, port in servers.items():
                for case in CASES:
                    run_wrk(port, headers(case, name), warmup, wrk_cpu)
            results: list[WrkResult] = []
            for rnd in range(args.rounds):
                order = ["edge", "nginx"] if rnd % 2 == 0 else ["nginx", "edge"]
                for case_name in CASES:
                    for name in order:
                        figures = run_wrk(servers[name], headers(case_name, name), args, wrk_cpu)
                        load1 = round(os.getloadavg()[0], 2)
                        result = WrkResult(server=name, case=case_name, round=rnd, load1=load1, **figures)  # type: ignore[arg-type]
                        results.append(result)
                        print(
                            f"round {rnd} {case_name} {name:5s} rps={result.rps:10.0f} "
                            f"p50={result.p50_ms:7.3f}ms p99={result.p99_ms:7.3f}ms "
                            f"bytes/req={result.bytes_per_request:8.0f} errors={result.errors} "
                            f"non2xx3xx={result.non_2xx_3xx} load1={load1}",
                            flush=True,
                        )
            if cache_proc.poll() is not None or nginx_proc.poll() is not None:
                raise RuntimeError("a server exited during the benchmark")

    def med(server: str, case: str, key: str) -> float:
        return median(getattr(r, key) for r in results if r.server == server and r.case == case)

    summary: dict[str, Any] = {}
    for case in CASES:
        for server in ("edge", "nginx"):
            summary[f"{server}_rps_{case}"] = round(med(server, case, "rps"), 1)
            summary[f"{server}_p99_ms_{case}"] = round(med(server, case, "p99_ms"), 3)
            summary[f"{server}_p50_ms_{case}"] = round(med(server, case, "p50_ms"), 3)
        summary[f"rps_ratio_{case}"] = ratio(summary[f"edge_rps_{case}"], summary[f"nginx_rps_{case}"])
        summary[f"p99_ratio_{case}"] = ratio(summary[f"edge_p99_ms_{case}"], summary[f"nginx_p99_ms_{case}"])
    # Rounds are paired (same moment, same background load): the median of per-round ratios
    # is a second, noise-robust view of the same comparison.
    paired: dict[str, float] = {}
    for case in CASES:
        for key, field in (("rps", "rps"), ("p99", "p99_ms")):
            ratios = []
            for rnd in range(args.rounds):
                edge, nginx_r = (
                    next(r for r in results if r.server == s and r.case == case and r.round == rnd)
                    for s in ("edge", "nginx")
                )
                ratios.append(getattr(edge, field) / getattr(nginx_r, field))
            paired[f"{key}_ratio_{case}"] = round(median(ratios), 3)
    bad = [r for r in results if r.errors or r.non_2xx_3xx]
    data = {
        **summary,
        "paired_round_ratios_median": paired,
        "config_bytes": len(body),
        "config_gzip_bytes": len(compressed),
        "settings": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "connections": args.connections,
            "wrk_threads": args.threads,
            "server_workers_each": args.workers,
            "pinned": {"server_cpu": server_cpu, "wrk_cpu": wrk_cpu} if pin else None,
        },
        "machine": machine,
        "rounds": [asdict(r) for r in results],
        "failed_requests": sum(r.errors + r.non_2xx_3xx for r in bad),
    }
    path = write_result(NAME, data)
    print(f"wrote {path.relative_to(REPO)}")
    for case in CASES:
        s = {k.removesuffix(f"_{case}"): v for k, v in summary.items() if k.endswith(f"_{case}")}
        print(
            f"{case}: edge {s['edge_rps']:.0f} rps p99 {s['edge_p99_ms']:.3f} ms | "
            f"nginx {s['nginx_rps']:.0f} rps p99 {s['nginx_p99_ms']:.3f} ms | "
            f"rps ratio {s['rps_ratio']} p99 ratio {s['p99_ratio']}"
        )
    if bad:
        print(f"WARNING: {len(bad)} runs saw socket errors or non-2xx/3xx answers", file=sys.stderr)
    busiest = max(r.load1 for r in results)
    if busiest > cpus:
        print(
            f"NOTE: load average reached {busiest} on {cpus} CPUs: other work competed with the servers; "
            "p99 is the first figure to suffer. Compare the per-round lines and paired ratios in the JSON.",
            file=sys.stderr,
        )
    print(
        bench_line(
            NAME,
            {
                "rps_ratio_200": summary["rps_ratio_200"],
                "rps_ratio_304": summary["rps_ratio_304"],
                "p99_ratio_200": summary["p99_ratio_200"],
                "p99_ratio_304": summary["p99_ratio_304"],
            },
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
