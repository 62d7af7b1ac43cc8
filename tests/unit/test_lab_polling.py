"""tests.polling.wait_until and the lab's session lock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.polling import WaitTimeout, wait_until

from edgeroll.lab.locks import SharedUse

pytestmark = pytest.mark.unit


def test_wait_until_returns_the_first_truthy_value() -> None:
    values: Iterator[object] = iter([None, 0, [], {"ready": True}])
    assert wait_until(lambda: next(values), timeout=5, interval=0) == {"ready": True}


def test_wait_until_treats_exceptions_as_not_yet() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("apiserver restarting")
        return "up"

    assert wait_until(flaky, timeout=5, interval=0) == "up"


def test_wait_until_times_out_naming_what_and_the_last_value() -> None:
    with pytest.raises(WaitTimeout, match=r"0.05s .* waiting for S3 to answer; last: ConnectionRefusedError"):
        wait_until(_refuse, timeout=0.05, interval=0.01, message="S3 to answer")


def test_wait_until_message_can_describe_the_state_at_timeout() -> None:
    with pytest.raises(AssertionError, match="replicas=1"):
        wait_until(lambda: False, timeout=0.01, interval=0.01, message=lambda: "rollout, now replicas=1")


def _refuse() -> bool:
    raise ConnectionRefusedError


def test_the_last_session_using_the_lab_may_tear_it_down(tmp_path: Path) -> None:
    lock = tmp_path / "users.lock"
    starter, other = SharedUse(lock), SharedUse(lock)
    try:
        assert not starter.release_if_last()  # `other` still uses the lab
    finally:
        starter.close()
    try:
        assert other.release_if_last()
    finally:
        other.close()
