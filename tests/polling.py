"""Poll with a deadline instead of sleeping: `from tests.polling import wait_until`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not hold before the deadline; an AssertionError, so pytest reports a failure."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.2,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Call `predicate` until it returns something truthy, and return that value.

    Raises WaitTimeout after `timeout` seconds; the message says what was awaited,
    how long, and the last value or exception seen. `message` may be a callable,
    evaluated only on timeout, to describe the state at that moment. Exceptions
    from `predicate` count as "not yet" (the apiserver may be restarting) and
    are reported if the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    attempts = 0
    while True:
        attempts += 1
        try:
            value = predicate()
        except Exception as exc:  # a failing probe means "not yet"
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            what = message() if callable(message) else message
            raise WaitTimeout(
                f"timed out after {timeout:g}s ({attempts} attempts) waiting for {what}; last: {last!r}"
            )
        time.sleep(interval)
