"""Counters in a flat int64 array, so the hot path is one indexed add and workers can share them.

Each process owns one row of the array and is the only writer of that row;
`/metrics` sums the rows. With one process the array is private memory; with
several it is a shared memfd mapping created by the supervisor (see
`edgeroll.cache.workers`). Row 0 belongs to the process that fetches from the
origin; rows 1..N to the serving workers (row 0 again in single-process mode).
"""

from __future__ import annotations

import mmap
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# Writes one metric family: name, type, help, and (labels, value) samples.
Family = Callable[[str, str, str, Iterable[tuple[str, float | int]]], None]

ROUTES: tuple[str, ...] = (
    "configs",
    "cosmo",
    "manifest",
    "operations",
    "healthz",
    "readyz",
    "metrics",
    "revision",  # /-/revision: in-place switching (edgeroll.cache.switching)
    "other",
)
CODES: tuple[int, ...] = (200, 304, 400, 401, 403, 404, 405, 408, 413, 414, 422, 431, 500, 501, 503, 505)
# Where a revision came from: S3, or a sibling pod of the same Deployment (peer fill).
FETCH_SOURCES: tuple[str, ...] = ("origin", "peer")
FETCH_REASONS: tuple[str, ...] = ("unreachable", "not_found", "denied", "too_large", "error")
VERIFY_SOURCES: tuple[str, ...] = ("origin", "state", "peer")
VERIFY_REASONS: tuple[str, ...] = ("digest_mismatch", "missing_signature", "bad_signature", "malformed")
# What a `POST /-/revision` switch came to (one per switch: POSTs that share one count once).
SWITCH_OUTCOMES: tuple[str, ...] = ("switched", "unchanged", "refused", "unavailable")

ROUTE_INDEX = {route: i for i, route in enumerate(ROUTES)}
CODE_INDEX = {code: i for i, code in enumerate(CODES)}

_N_REQ = len(ROUTES) * len(CODES)
_BYTES_BASE = _N_REQ
_FETCH_FAIL_BASE = _BYTES_BASE + len(ROUTES)
_FETCH_OK_BASE = _FETCH_FAIL_BASE + len(FETCH_SOURCES) * len(FETCH_REASONS)
_VERIFY_BASE = _FETCH_OK_BASE + len(FETCH_SOURCES)
_SWITCH_BASE = _VERIFY_BASE + len(VERIFY_SOURCES) * len(VERIFY_REASONS)
_ROW_SLOTS = _SWITCH_BASE + len(SWITCH_OUTCOMES)
ROW_BYTES = _ROW_SLOTS * 8


def request_slot(route: str, code: int) -> int:
    return ROUTE_INDEX[route] * len(CODES) + CODE_INDEX[code]


def bytes_slot(route: str) -> int:
    return _BYTES_BASE + ROUTE_INDEX[route]


def _fetch_fail_slot(source: str, reason: str) -> int:
    return _FETCH_FAIL_BASE + FETCH_SOURCES.index(source) * len(FETCH_REASONS) + FETCH_REASONS.index(reason)


def _fetch_ok_slot(source: str) -> int:
    return _FETCH_OK_BASE + FETCH_SOURCES.index(source)


def _verify_slot(source: str, reason: str) -> int:
    return _VERIFY_BASE + VERIFY_SOURCES.index(source) * len(VERIFY_REASONS) + VERIFY_REASONS.index(reason)


def _switch_slot(outcome: str) -> int:
    return _SWITCH_BASE + SWITCH_OUTCOMES.index(outcome)


def shared_size(rows: int) -> int:
    return max(ROW_BYTES * rows, mmap.PAGESIZE)


@dataclass
class ServingStatus:
    """What the process answering /metrics serves and wants; filled in by the server."""

    namespace: str
    name: str
    wanted_digest: str
    served_digest: str | None = None
    served_published_at: float | None = None
    served_loaded_at: float | None = None

    @property
    def ready(self) -> bool:
        return self.served_digest == self.wanted_digest


class Metrics:
    def __init__(self, buffer: mmap.mmap | None = None, rows: int = 1, row: int = 0) -> None:
        self._mmap = buffer if buffer is not None else mmap.mmap(-1, shared_size(rows))
        self.rows = rows
        view = memoryview(self._mmap).cast("q")
        self._all = view
        # This process's row: the hot path indexes it directly.
        self.row = view[row * _ROW_SLOTS : (row + 1) * _ROW_SLOTS]

    def count_response(self, route: str, code: int, nbytes: int) -> None:
        row = self.row
        row[request_slot(route, code if code in CODE_INDEX else 500)] += 1
        row[bytes_slot(route)] += nbytes

    def count_fetch_failure(self, source: str, reason: str) -> None:
        self.row[_fetch_fail_slot(source, reason)] += 1

    def count_fetch_success(self, source: str) -> None:
        self.row[_fetch_ok_slot(source)] += 1

    def count_verify_failure(self, source: str, reason: str) -> None:
        self.row[_verify_slot(source, reason)] += 1

    def count_switch(self, outcome: str) -> None:
        self.row[_switch_slot(outcome)] += 1

    def total(self, slot: int) -> int:
        return sum(self._all[r * _ROW_SLOTS + slot] for r in range(self.rows))

    def total_fetches(self, source: str) -> int:
        return self.total(_fetch_ok_slot(source))

    def fetch_failures(self, source: str, reason: str) -> int:
        return self.total(_fetch_fail_slot(source, reason))

    def verify_failures(self, source: str, reason: str) -> int:
        return self.total(_verify_slot(source, reason))

    def switches(self, outcome: str) -> int:
        return self.total(_switch_slot(outcome))

    def render(self, status: ServingStatus, now: float | None = None) -> bytes:
        now = time.time() if now is None else now
        out: list[str] = []

        def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float | int]]) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                out.append(f"{name}{labels} {value}")

        self._counters(family)
        _gauges(status, now, family)
        out.append("")
        return "\n".join(out).encode("utf-8")

    def _counters(self, family: Family) -> None:
        family(
            "edgeroll_cache_requests_total",
            "counter",
            "HTTP requests answered, by route and status code.",
            (
                (f'{{route="{route}",code="{code}"}}', self.total(request_slot(route, code)))
                for route in ROUTES
                for code in CODES
                if self.total(request_slot(route, code))
            ),
        )
        family(
            "edgeroll_cache_response_bytes_total",
            "counter",
            "Bytes written to clients (headers and body, after compression), by route.",
            ((f'{{route="{route}"}}', self.total(bytes_slot(route))) for route in ROUTES),
        )
        family(
            "edgeroll_cache_fetches_total",
            "counter",
            "Successful fetches of the wanted revision, by source (origin: S3; peer: a sibling pod).",
            ((f'{{source="{source}"}}', self.total_fetches(source)) for source in FETCH_SOURCES),
        )
        family(
            "edgeroll_cache_fetch_failures_total",
            "counter",
            "Failed fetches of the wanted revision, by source and reason.",
            (
                (f'{{source="{source}",reason="{reason}"}}', self.fetch_failures(source, reason))
                for source in FETCH_SOURCES
                for reason in FETCH_REASONS
            ),
        )
        family(
            "edgeroll_cache_verify_failures_total",
            "counter",
            "Revisions refused because the digest or HMAC signature did not verify, by source and reason.",
            (
                (f'{{source="{source}",reason="{reason}"}}', self.verify_failures(source, reason))
                for source in VERIFY_SOURCES
                for reason in VERIFY_REASONS
            ),
        )
        family(
            "edgeroll_cache_switches_total",
            "counter",
            "In-place switches (POST /-/revision), by outcome: switched, unchanged, refused, unavailable.",
            ((f'{{outcome="{outcome}"}}', self.switches(outcome)) for outcome in SWITCH_OUTCOMES),
        )


def _gauges(status: ServingStatus, now: float, family: Family) -> None:
    ident = f'namespace="{_esc(status.namespace)}",name="{_esc(status.name)}"'
    family(
        "edgeroll_cache_served_config_info",
        "gauge",
        "The revision being served (1); absent while nothing verified is loaded.",
        [(f'{{{ident},digest="{status.served_digest}"}}', 1)] if status.served_digest else [],
    )
    family(
        "edgeroll_cache_wanted_config_info",
        "gauge",
        "The revision the operator asked for.",
        [(f'{{{ident},digest="{status.wanted_digest}"}}', 1)],
    )
    family(
        "edgeroll_cache_ready",
        "gauge",
        "1 once the wanted revision is loaded and verified.",
        [("", 1 if status.ready else 0)],
    )
    age_from = status.served_published_at or status.served_loaded_at
    family(
        "edgeroll_cache_served_config_age_seconds",
        "gauge",
        "Seconds since the served revision was published to S3 (or loaded, if unknown).",
        [("", round(max(0.0, now - age_from), 3))] if age_from is not None else [],
    )


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
