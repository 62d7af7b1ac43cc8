"""`spec.rollout` (the policy) and `status.rollout` (the persisted rollout state) of a RouterConfig.

Models only. The wave split and int-or-percent arithmetic are in
`edgeroll.rollout.policy`; every decision over these models is made by the pure
planner (`edgeroll.rollout.planner`). Each rule pydantic enforces here is also
a CEL rule in the CRD, so the apiserver refuses what the operator would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from edgeroll.api.common import DNS1123_LABEL, HTTP_URL, ApiModel, LabelSelector, _cel_string, _kx
from edgeroll.api.expressions import check_condition, check_query

PERCENT = r"^(100|[1-9]?[0-9])%$"
_PERCENT = re.compile(PERCENT)


def _check_int_or_percent(value: int | str) -> int | str:
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must not be negative: {value}")
        return value
    if not _PERCENT.match(value):
        raise ValueError(f'must be an integer or a percentage such as "25%": {value!r}')
    return value


IntOrPercent = Annotated[int | str, AfterValidator(_check_int_or_percent)]
"""An int, or "N%" (0-100) of some total; the CRD renders it as x-kubernetes-int-or-string."""


def _int_or_percent_rule(minimum: int, field: str) -> dict[str, Any]:
    """CEL for an int-or-string field: an int >= minimum, or a percentage. The maxLength (strings only)
    bounds the CEL cost estimate of `matches`."""
    return _kx(
        maxLength=4,
        **{
            "x-kubernetes-validations": [
                {
                    "rule": f"type(self) == int ? self >= {minimum} : self.matches('{_cel_string(PERCENT)}')",
                    "message": f'{field} must be an integer >= {minimum} or a percentage such as "25%"',
                }
            ]
        },
    )


Strategy = Literal["AllAtOnce", "Progressive"]
UnreachablePolicy = Literal["Skip", "Block"]
RolloutPhase = Literal["Progressing", "Paused", "Soaking", "Waiting", "Completed", "Failed", "RolledBack"]
WindowKind = Literal["Allow", "Deny"]

# Standard 5-field cron (minute hour day-of-month month day-of-week), or a macro. The same language
# is a CEL rule in the CRD, so `kubectl apply` refuses what the operator would; croniter then checks
# what a regular expression cannot (a step of 0, say).
_NAME = "[A-Za-z]{3}"


def _cron_field(value: str) -> str:
    term = rf"(\*|({value})(-({value}))?)(/[0-9]{{1,2}})?"
    return rf"{term}(,{term})*"


CRON = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|"
    + " +".join(
        _cron_field(v)
        for v in ("[0-5]?[0-9]", "[01]?[0-9]|2[0-3]", "0?[1-9]|[12][0-9]|3[01]", f"0?[1-9]|1[0-2]|{_NAME}")
    )
    + rf" +{_cron_field(f'[0-7]|{_NAME}')})$"
)
_CRON = re.compile(CRON)
TIME_ZONE = r"^[A-Za-z][-A-Za-z0-9_+]*(/[-A-Za-z0-9_+]+){0,2}$"
_TIME_ZONE = re.compile(TIME_ZONE)


# ---- spec.rollout ---------------------------------------------------------------------------------


class RolloutStep(ApiModel):
    """One wave of a progressive rollout: the clusters its selector matches, at most maxParallel at once."""

    name: str = Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)
    cluster_selector: LabelSelector | None = Field(
        default=None,
        description="Which targets this step takes; unset or empty matches every target not taken yet.",
    )
    max_parallel: IntOrPercent | None = Field(
        default=None,
        description="Clusters of this wave updating at once: an int or a percentage of the wave "
        "(rounded down, at least 1). Unset: the whole wave.",
        json_schema_extra=_int_or_percent_rule(1, "maxParallel"),
    )

    @model_validator(mode="after")
    def _positive_parallel(self) -> Self:
        if isinstance(self.max_parallel, int) and self.max_parallel < 1:
            raise ValueError("maxParallel must be at least 1")
        return self


# ---- spec.rollout.analysis ------------------------------------------------------------------------

# The apiserver refuses unknown references in a query too (`findAll` is Kubernetes's CEL regex library;
# `$${` is a literal, which the optional leading `$` lets through).
_QUERY_REFERENCES_RULE = {
    "rule": "self.findAll('[$]?[$][{][^}]*[}]').all(r, r.startsWith('$$') || r == '${cluster.name}' "
    "|| r == '${revision.digest}' "
    "|| (r.startsWith('${cluster.labels.') && size(r) > 18))",
    "message": "query references must be ${cluster.name}, ${cluster.labels.<key>} or ${revision.digest}",
}
ANALYSIS_REASON_FAILED = "AnalysisFailed"
ANALYSIS_REASON_INCONCLUSIVE = "AnalysisInconclusive"


class PrometheusQuery(ApiModel):
    """Where and what to ask Prometheus (an instant query, `/api/v1/query`)."""

    address: str | None = Field(
        default=None,
        max_length=2048,
        pattern=HTTP_URL,
        description="Prometheus's base URL, e.g. http://prometheus.monitoring:9090. Unset: the "
        "EdgeCluster's spec.prometheus.address.",
    )
    query: str = Field(
        min_length=1,
        max_length=4096,
        description="PromQL. ${cluster.name}, ${cluster.labels.<key>} and ${revision.digest} are replaced, "
        "escaped for a string literal (write them inside quotes); $${ is a literal ${. It must give one "
        "number: a scalar or a one-sample vector.",
        json_schema_extra=_kx(**{"x-kubernetes-validations": [_QUERY_REFERENCES_RULE]}),
    )

    @field_validator("query")
    @classmethod
    def _known_references(cls, value: str) -> str:
        return check_query(value)


class AnalysisMetric(ApiModel):
    """One metric, measured `count` times per cluster while a wave soaks, each measurement judged by CEL
    over `result` (the number the query gives)."""

    model_config = ConfigDict(
        json_schema_extra=_kx(
            **{
                "x-kubernetes-validations": [
                    {
                        "rule": "(has(self.failureLimit) ? self.failureLimit : 0) < "
                        "(has(self.count) ? self.count : 1)",
                        "message": "failureLimit must be below count, or the metric passes with every "
                        "measurement failed",
                    }
                ]
            }
        )
    )

    name: str = Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)
    prometheus: PrometheusQuery
    success_condition: str = Field(
        min_length=1,
        max_length=1024,
        description="CEL over `result` (a double), e.g. `result < 0.05`: true is a successful measurement.",
    )
    failure_condition: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="CEL over `result`: true is a failed measurement. When set, a measurement neither "
        "condition holds for is inconclusive; when unset, one that fails successCondition has failed.",
    )
    failure_limit: int = Field(
        default=0, ge=0, le=1000, description="More failed measurements than this fail the wave."
    )
    inconclusive_limit: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="More inconclusive measurements in a row than this (no answer, an empty result, NaN) "
        "pause the rollout until a measurement is conclusive again.",
    )
    count: int = Field(
        default=1, ge=1, le=1000, description="Conclusive measurements per cluster for the metric to pass."
    )

    @model_validator(mode="after")
    def _can_fail(self) -> Self:
        if self.failure_limit >= self.count:
            raise ValueError(
                f"failureLimit ({self.failure_limit}) must be below count ({self.count}), or the metric "
                "passes with every measurement failed"
            )
        return self

    @field_validator("success_condition", "failure_condition")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return None if value is None else check_condition(value)


class RolloutAnalysis(ApiModel):
    """Metric analysis of every wave while it soaks (the canary included): a wave promotes only once
    every metric has passed on every cluster of it. docs/rollout.md, Analysis."""

    interval_seconds: int = Field(
        default=60, ge=1, le=86400, description="Time between two measurements of a metric on a cluster."
    )
    metrics: list[AnalysisMetric] = Field(
        min_length=1,
        max_length=16,
        json_schema_extra=_kx(**{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}),
    )

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [m.name for m in self.metrics]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"metric names must be unique: {', '.join(duplicates)}")
        return self


_POLICY_RULES = [
    {
        "rule": "self.strategy == 'Progressive' || "
        "((!has(self.steps) || size(self.steps) == 0) && !has(self.canary) && !has(self.batchSize))",
        "message": "steps, canary and batchSize need strategy Progressive",
    },
    {
        "rule": "!has(self.steps) || size(self.steps) == 0 || (!has(self.canary) && !has(self.batchSize))",
        "message": "use either steps or canary/batchSize, not both",
    },
]


class DeploymentWindow(ApiModel):
    """A recurring window of time in which new waves may (Allow) or may not (Deny) start.

    Each time `schedule` fires (in `timeZone`), the window is open for `durationSeconds`. As Argo CD's
    sync windows: a Deny window wins over an Allow window; when Allow windows apply to a cluster, a wave
    with that cluster starts only inside one. `edgeroll.rollout.windows` decides; docs/rollout.md explains.
    """

    kind: WindowKind = Field(description="Allow: waves start only inside it. Deny: no wave starts inside it.")
    schedule: str = Field(
        max_length=128,
        description='When the window opens: a 5-field cron expression ("0 22 * * 1-5") or a macro '
        "(@daily, @hourly, ...), in timeZone.",
        json_schema_extra=_kx(
            **{
                "x-kubernetes-validations": [
                    {
                        "rule": f"self.matches('{_cel_string(CRON)}')",
                        "message": "schedule must be a cron expression of 5 fields (minute hour "
                        "day-of-month month day-of-week) or a macro such as @daily",
                    }
                ]
            }
        ),
    )
    duration_seconds: int = Field(
        ge=1, le=2678400, description="How long the window stays open each time it opens (at most 31 days)."
    )
    time_zone: str = Field(
        default="UTC",
        min_length=1,
        max_length=64,
        pattern=TIME_ZONE,
        description="IANA time zone the schedule is read in (Europe/Berlin). An unknown zone stalls the "
        "RouterConfig, naming the field.",
    )
    cluster_selector: LabelSelector | None = Field(
        default=None,
        description="The clusters this window constrains (unset: every target). A wave starts only when "
        "every one of its clusters may start.",
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        text = " ".join(value.split())
        if not _CRON.match(text) or not croniter.is_valid(text):
            raise ValueError(
                f"not a cron expression of 5 fields (minute hour day-of-month month day-of-week): {value!r}"
            )
        return text

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone: {value!r}") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


class RolloutPolicy(ApiModel):
    """How a new revision reaches the target clusters (`spec.rollout`). docs/rollout.md explains each knob."""

    model_config = ConfigDict(json_schema_extra=_kx(**{"x-kubernetes-validations": _POLICY_RULES}))

    strategy: Strategy = Field(
        default="AllAtOnce",
        description="AllAtOnce: one wave with every target, no soak. Progressive: waves (steps, or "
        "canary then batchSize batches), each soaked before the next starts.",
    )
    steps: list[RolloutStep] = Field(
        default_factory=list,
        max_length=32,
        description="Ordered waves (Progressive). A cluster matching several steps joins the first; "
        "targets no step selects form a last implicit wave.",
        json_schema_extra=_kx(**{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}),
    )
    canary: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="Without steps: the first N targets (by name) form the first wave.",
    )
    batch_size: IntOrPercent | None = Field(
        default=None,
        description="Without steps: the remaining targets go in waves of this many (or this percentage "
        "of all targets, at least 1). Unset: one wave.",
        json_schema_extra=_int_or_percent_rule(1, "batchSize"),
    )
    max_unavailable: IntOrPercent = Field(
        default=0,
        description="Failure budget across the whole rollout: an int or a percentage of the targets "
        "(rounded down). More failed clusters than this fails the rollout.",
        json_schema_extra=_int_or_percent_rule(0, "maxUnavailable"),
    )
    soak_seconds: int = Field(
        default=0,
        ge=0,
        le=604800,
        description="How long a wave must stay healthy before the next one starts (Progressive).",
    )
    progress_deadline_seconds: int = Field(
        default=600,
        ge=1,
        le=86400,
        description="A cluster not healthy this long after it was moved to the new digest has failed.",
    )
    auto_rollback: bool = Field(
        default=True, description="On failure, send every moved cluster back to its last-good digest."
    )
    unreachable_policy: UnreachablePolicy = Field(
        default="Skip",
        description="Skip: an unreachable cluster is reported Stale and never holds the rollout. "
        "Block: the rollout waits for it.",
    )
    paused: bool = Field(default=False, description="Hold: no cluster is moved and no wave starts.")
    windows: list[DeploymentWindow] = Field(
        default_factory=list,
        max_length=16,
        description="Deployment windows: when waves may start. Deny wins over Allow; with Allow windows, "
        "only inside one. A wave that started finishes (and soaks) but the next waits.",
    )
    analysis: RolloutAnalysis | None = Field(
        default=None,
        description="Prometheus metrics each wave must pass while it soaks before the next one starts.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.strategy == "AllAtOnce" and (self.steps or self.canary is not None or self.batch_size):
            raise ValueError("steps, canary and batchSize need strategy Progressive")
        if self.steps and (self.canary is not None or self.batch_size is not None):
            raise ValueError("use either steps or canary/batchSize, not both")
        names = [s.name for s in self.steps]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"step names must be unique: {', '.join(duplicates)}")
        if isinstance(self.batch_size, int) and self.batch_size < 1:
            raise ValueError("batchSize must be at least 1")
        return self

    @property
    def effective_soak_seconds(self) -> int:
        """AllAtOnce has a single wave and nothing to gate, so it never soaks."""
        return self.soak_seconds if self.strategy == "Progressive" else 0


# ---- status.rollout -------------------------------------------------------------------------------


class WaveRecord(ApiModel):
    """One wave of the rollout of `RolloutState.revision`. Membership is ClusterRecord.wave."""

    name: str
    max_parallel: int | None = Field(default=None, description="Resolved when the revision started.")
    started_at: datetime | None = Field(default=None, description="When the wave's gate opened.")
    healthy_at: datetime | None = Field(
        default=None, description="Start of the current healthy streak; cleared when health is lost."
    )
    completed_at: datetime | None = Field(
        default=None, description="Soaked (or promoted), or healthy for the last wave: the gate passed."
    )
    promoted: bool = False
    ignore_windows: bool = Field(
        default=False,
        description="promote --ignore-windows: this wave starts even outside its windows, once.",
    )


class ClusterRecord(ApiModel):
    """What the rollout knows about one target cluster."""

    name: str
    wave: int = Field(description="Index of the cluster's wave in `waves`.")
    target: str = Field(description="The digest this revision wants on the cluster.")
    last_good: str | None = Field(
        default=None, description="Known-good digest when the revision started: what rollback restores."
    )
    verified: str | None = Field(
        default=None, description="Newest digest verified healthy at the end of a completed rollout."
    )
    moved_at: datetime | None = Field(default=None, description="When this rollout moved it to the target.")
    since: datetime | None = Field(default=None, description="Start of the progress-deadline clock.")
    ready_at: datetime | None = Field(default=None, description="When it became healthy on the target.")
    stale: bool = Field(default=False, description="Unreachable or paused at the last plan.")
    failed_at: datetime | None = None
    failure_reason: str | None = Field(
        default=None, description="HealthDeadlineExceeded or ProgressDeadlineExceeded."
    )
    failure: str | None = Field(default=None, description="Why it failed.")
    rollback_to: str | None = Field(default=None, description="The digest it is being sent back to.")


Verdict = Literal["Successful", "Failed", "Inconclusive"]
AnalysisPhase = Literal["Running", "Successful", "Failed", "Inconclusive"]
MEASUREMENTS_KEPT = 10  # per metric per wave in status.rollout.analysis


class Measurement(ApiModel):
    """One measurement of a metric on one cluster."""

    cluster: str
    time: datetime
    value: float | None = Field(default=None, description="What the query gave; unset when it gave nothing.")
    verdict: Verdict
    message: str | None = Field(default=None, description="Why it is inconclusive or failed.")


class MetricTally(ApiModel):
    """One metric on one cluster of a wave: its counts so far and what they come to."""

    cluster: str
    phase: AnalysisPhase = "Running"
    successful: int = 0
    failed: int = 0
    inconclusive: int = Field(default=0, description="Inconclusive measurements in a row.")
    last_time: datetime | None = None
    last_value: float | None = None


class MetricAnalysis(ApiModel):
    """One metric of `spec.rollout.analysis` in one wave: a tally per cluster, the latest measurements."""

    wave: int
    metric: str
    phase: AnalysisPhase = "Running"
    tallies: list[MetricTally] = Field(default_factory=list)
    measurements: list[Measurement] = Field(
        default_factory=list, description=f"The last {MEASUREMENTS_KEPT}, oldest first."
    )


class HandledCommands(ApiModel):
    """Id of the last handled command of each kind (`edgeroll.io/rollout-<kind>` annotations)."""

    promote: str | None = None
    abort: str | None = None
    undo: str | None = None
    retry: str | None = None


class WindowHold(ApiModel):
    """`status.rollout.window`: a wave that is due but may not start, because of deployment windows."""

    wave: int = Field(description="Index of the wave that waits.")
    since: datetime = Field(description="When it started waiting.")
    next_open_at: datetime | None = Field(
        default=None,
        description="The earliest time every cluster of the wave is inside its windows (unset: none "
        "found within a year, or the next 256 window boundaries).",
    )
    message: str = Field(default="", description="Which clusters the windows keep, and until when.")


class RolloutState(ApiModel):
    """`status.rollout`: everything the planner needs to continue after a restart."""

    revision: str | None = Field(
        default=None, description="Content id of the revision being rolled out (base digest and overlays)."
    )
    phase: RolloutPhase = Field(
        default="Progressing",
        description="Progressing, Soaking (the current wave is healthy, counting soakSeconds), Paused, "
        "Waiting (the next wave is due, outside its deployment windows: see window), Completed, Failed "
        "(halted, autoRollback off) or RolledBack.",
    )
    wave: int = Field(default=0, description="Index of the current wave; len(waves) once all passed.")
    wave_progress: str = Field(default="0/0", description="i/n, for the WAVE printer column.")
    started_at: datetime | None = Field(default=None, description="When this revision's rollout started.")
    completed_at: datetime | None = Field(
        default=None, description="When it completed, failed, or started rolling back."
    )
    reason: str | None = Field(
        default=None,
        description="Why it halted (HealthDeadlineExceeded, ProgressDeadlineExceeded, AnalysisFailed, "
        "Aborted, Undone) or why analysis paused it (AnalysisInconclusive).",
    )
    message: str | None = Field(default=None, description="What happened, naming the clusters and wave.")
    paused: bool = Field(default=False, description="spec.rollout.paused as last seen (for events).")
    rollback_started_at: datetime | None = None
    rolled_back_at: datetime | None = Field(
        default=None, description="When every cluster sent back was healthy on its rollback digest."
    )
    window: WindowHold | None = Field(
        default=None, description="Set while deployment windows keep the next wave from starting."
    )
    waves: list[WaveRecord] = Field(default_factory=list)
    clusters: list[ClusterRecord] = Field(default_factory=list)
    handled: HandledCommands = Field(default_factory=HandledCommands)
    analysis: list[MetricAnalysis] = Field(
        default_factory=list, description="Metric analysis per wave and metric (spec.rollout.analysis)."
    )

    def to_status(self) -> dict[str, Any]:
        """JSON for `status.rollout`. Top-level and nested-object nulls are kept, so a JSON merge patch
        of the whole object clears fields that went back to unset; list items (replaced wholesale by a
        merge patch) carry no nulls."""
        data: dict[str, Any] = json.loads(self.model_dump_json(by_alias=True))
        for key in ("waves", "clusters"):
            data[key] = [{k: v for k, v in item.items() if v is not None} for item in data[key]]
        for item in data["analysis"]:
            for key in ("tallies", "measurements"):
                item[key] = [{k: v for k, v in row.items() if v is not None} for row in item[key]]
        return data

    @classmethod
    def from_status(cls, data: Mapping[str, Any] | None) -> RolloutState:
        """Parse `status.rollout` (None or {} gives a fresh state)."""
        return cls.model_validate(dict(data or {}))

    def record(self, name: str) -> ClusterRecord | None:
        return next((r for r in self.clusters if r.name == name), None)
