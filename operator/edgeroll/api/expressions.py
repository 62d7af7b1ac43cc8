"""The two small languages of `spec.rollout.analysis`: CEL conditions and PromQL query templates.

Pure: no I/O. Conditions are CEL (`cel-python`, a maintained implementation of the spec; never
Python's eval) over one variable, `result`, the measured value as a double. They are compiled when
the spec is validated, so a condition that does not parse, or that does not give a boolean, is
refused with the field's path before any rollout starts; compiled programs are cached by text.

Query templates take `${cluster.name}`, `${cluster.labels.<key>}` and `${revision.digest}`, as
overlays take `${cluster.*}` (`$${` is a literal `${`). Values are escaped for a PromQL string
literal, so a label value can never end the literal it is placed in and change the query.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from typing import Any

# `$${` is an escaped literal `${`; any other `${...}` must be one of the references below.
_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_OPEN = re.compile(r"\$\{")
REFERENCES = ("cluster.name", "cluster.labels.<key>", "revision.digest")
# A probe value for the compile-time check: conditions are judged on doubles such as this one.
_PROBE = 1.0


class ExpressionError(ValueError):
    """A condition or query template that cannot be used; the message says why."""


# ---- CEL conditions ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _program(text: str) -> Any:
    # Imported here: cel-python and its parser cost about 0.2 s to load, paid only by RouterConfigs
    # that configure analysis (and not by `edgeroll cache`, which never reads a spec).
    import celpy
    from celpy.celparser import CELParseError

    environment = celpy.Environment()
    try:
        ast = environment.compile(text)
    except CELParseError as exc:
        raise ExpressionError(f"not valid CEL: {_one_line(exc)}") from None
    return environment.program(ast)


def _run(text: str, result: float) -> bool:
    from celpy.celtypes import BoolType, DoubleType
    from celpy.evaluation import CELEvalError

    try:
        value = _program(text).evaluate({"result": DoubleType(result)})
    except CELEvalError as exc:
        raise ExpressionError(f"evaluating {text!r} failed: {_one_line(exc)}") from None
    if not isinstance(value, BoolType):
        raise ExpressionError(f"{text!r} gives {type(value).__name__}, not a boolean")
    return bool(value)


def check_condition(text: str) -> str:
    """Compile `text` and try it on a sample value: it must parse, evaluate over `result` and give a
    boolean. Returns it unchanged; raises ExpressionError naming the problem."""
    if not text.strip():
        raise ExpressionError("must not be empty")
    _run(text, _PROBE)
    return text


def evaluate_condition(text: str, result: float) -> bool:
    """The condition's verdict on `result`. ExpressionError if it cannot be evaluated on this value
    (say, a division by an integer zero): the measurement then says nothing."""
    if math.isnan(result):
        raise ExpressionError("the value is NaN")
    return _run(text, result)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc.args[0] if exc.args else exc).split())
    return text.split(" (in activation")[0][:300]  # cel-python appends its whole environment


# ---- query templates --------------------------------------------------------------------------------


def _reference_problem(ref: str) -> str | None:
    if ref in ("cluster.name", "revision.digest"):
        return None
    if ref.startswith("cluster.labels.") and len(ref) > len("cluster.labels."):
        return None
    return f"unknown reference ${{{ref}}}; use " + ", ".join(f"${{{r}}}" for r in REFERENCES)


def check_query(template: str) -> str:
    """Every `${...}` in `template` must be a known reference (`$${` is a literal). Returns it."""
    for match in _TOKEN.finditer(template):
        if match.group(0) != "$${":
            problem = _reference_problem(match.group(1))
            if problem is not None:
                raise ExpressionError(problem)
    leftover = _TOKEN.sub("", template)
    if _OPEN.search(leftover):
        raise ExpressionError("an unterminated ${ (write $${ for a literal ${)")
    return template


def promql_string(value: str) -> str:
    """`value` escaped for the inside of a PromQL string literal ("..." or '...')."""
    out = []
    for ch in value:
        if ch in ('"', "'", "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "`" or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def substitute_query(template: str, cluster: str, labels: Mapping[str, str], digest: str) -> str:
    """The query for one cluster and revision. A label the cluster lacks is an ExpressionError."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        ref = match.group(1)
        if ref == "cluster.name":
            return promql_string(cluster)
        if ref == "revision.digest":
            return promql_string(digest)
        key = ref.removeprefix("cluster.labels.")
        if ref.startswith("cluster.labels.") and key:
            if key not in labels:
                raise ExpressionError(f"${{cluster.labels.{key}}}: cluster {cluster} has no label {key!r}")
            return promql_string(labels[key])
        raise ExpressionError(_reference_problem(ref) or ref)

    return _TOKEN.sub(replace, template)
