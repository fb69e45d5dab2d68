"""The wait helper: asked at once, then every interval, a last time at the deadline."""

from __future__ import annotations

import threading

import pytest

from harness.common.errors import ExitCode, InfrastructureError
from harness.common.waits import WaitTimeout, poll, wait_until


class FakeTime:
    """A clock that moves only when the helper sleeps: the asks and sleeps, exactly."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def asks(answers: list[object], fake: FakeTime, at: list[float]):  # noqa: ANN201
    def predicate() -> object:
        at.append(round(fake.now - 100.0, 6))
        return answers.pop(0) if answers else None
    return predicate


def test_the_first_truthy_value_is_returned_without_a_sleep_when_it_is_there_at_once() -> None:
    fake, at = FakeTime(), []
    value = poll(asks([1234], fake, at), timeout_s=5, interval_s=0.5, clock=fake.clock,
                 sleep=fake.sleep)
    assert value == 1234
    assert at == [0.0] and fake.sleeps == []


def test_it_asks_every_interval_until_a_value_comes() -> None:
    fake, at = FakeTime(), []
    value = poll(asks([None, False, 0, "ready"], fake, at), timeout_s=5, interval_s=0.25,
                 clock=fake.clock, sleep=fake.sleep)
    assert value == "ready"
    assert at == [0.0, 0.25, 0.5, 0.75]
    assert fake.sleeps == [0.25, 0.25, 0.25]


def test_at_the_deadline_it_asks_a_last_time_then_gives_none() -> None:
    fake, at = FakeTime(), []
    assert poll(asks([], fake, at), timeout_s=1.0, interval_s=0.4, clock=fake.clock,
                sleep=fake.sleep) is None
    assert at == [0.0, 0.4, 0.8, 1.0]  # the last sleep is cut to the deadline, not past it
    assert fake.sleeps == [0.4, 0.4, 0.2]


def test_a_zero_timeout_asks_once() -> None:
    fake, at = FakeTime(), []
    assert poll(asks([], fake, at), timeout_s=0, interval_s=1, clock=fake.clock,
                sleep=fake.sleep) is None
    assert at == [0.0] and fake.sleeps == []


def test_an_interval_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="interval_s must be positive"):
        poll(lambda: None, timeout_s=1, interval_s=0)


def test_the_timeout_error_says_what_did_not_happen_within_how_long_and_what_was_seen() -> None:
    fake, details = FakeTime(), []

    def detail() -> str:
        details.append(fake.now)
        return "guard.log: no such file"

    with pytest.raises(WaitTimeout) as caught:
        wait_until(lambda: None, timeout_s=1.5, interval_s=0.5, what="the guard did not start",
                   detail=detail, clock=fake.clock, sleep=fake.sleep)
    error = caught.value
    assert str(error) == "the guard did not start within 1.5 s: guard.log: no such file"
    assert details == [101.5]  # asked once, at the end
    assert error.what == "the guard did not start" and error.timeout_s == 1.5
    assert error.where == f"{__name__}.test_the_timeout_error_says_what_did_not_happen_" \
        "within_how_long_and_what_was_seen"  # the function that waited
    assert isinstance(error, InfrastructureError) and error.exit_code == ExitCode.ABORTED


def test_without_a_detail_the_message_ends_at_the_deadline() -> None:
    fake = FakeTime()
    with pytest.raises(WaitTimeout, match=r"^dockerd did not answer within 2 s$"):
        wait_until(lambda: False, timeout_s=2, interval_s=1, what="dockerd did not answer",
                   clock=fake.clock, sleep=fake.sleep)


def test_wait_until_returns_the_value_and_never_asks_for_the_detail() -> None:
    fake, at = FakeTime(), []

    def detail() -> str:
        raise AssertionError("asked for a detail without a timeout")

    assert wait_until(asks([None, 4321], fake, at), timeout_s=5, interval_s=0.1,
                      what="x", detail=detail, clock=fake.clock, sleep=fake.sleep) == 4321


def test_an_error_of_the_predicate_passes_through_at_once() -> None:
    fake = FakeTime()

    def exited() -> None:
        raise InfrastructureError("dockerd exited with 1 at start")

    with pytest.raises(InfrastructureError, match="exited with 1"):
        wait_until(exited, timeout_s=60, interval_s=0.2, what="dockerd did not answer",
                   clock=fake.clock, sleep=fake.sleep)
    assert fake.sleeps == []


def test_on_the_real_clock_it_sees_what_another_thread_does() -> None:
    done = threading.Event()
    timer = threading.Timer(0.05, done.set)
    timer.start()
    try:
        assert wait_until(done.is_set, timeout_s=30, interval_s=0.01, what="the event") is True
    finally:
        timer.cancel()
