"""kstatus conditions: set one without moving lastTransitionTime unless its status changes."""

from __future__ import annotations

from collections.abc import Sequence

from edgeroll.api.common import Condition, ConditionStatus


def find_condition(conditions: Sequence[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: str,
    generation: int | None = None,
) -> list[Condition]:
    """A new list with `type_` set; the transition time only moves when the status does."""
    old = find_condition(conditions, type_)
    since = old.last_transition_time if old is not None and old.status == status else now
    new = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    if old is None:
        return [*conditions, new]
    return [new if c.type == type_ else c for c in conditions]  # keep positions stable


def remove_condition(conditions: Sequence[Condition], type_: str) -> list[Condition]:
    return [c for c in conditions if c.type != type_]


def is_true(conditions: Sequence[Condition], type_: str) -> bool:
    c = find_condition(conditions, type_)
    return c is not None and c.status == "True"
