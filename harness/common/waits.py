"""Waiting with a deadline: the one way the harness waits for something to become true.

A predicate is asked at once, then every `interval_s`, and a last time at the deadline; its
first truthy value is the answer. `poll` gives None when the deadline passes, `wait_until`
raises `WaitTimeout`, whose message says what did not happen, within how long, and (from the
caller's `detail`) what was seen last. An exception the predicate raises passes through: a
process that died while it was waited for fails at once, not at the deadline.

As testcontainers' `waiting_for(strategy)`: the interval and the deadline stay the caller's
(they are part of its behaviour); the loop is written once. The model lab's own pauses are its
models' thinking time, not waits, and stay plain sleeps. `harness/procedure/guardian.py` runs
on the target with the standard library only and keeps its own loops.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TypeVar

from harness.common.errors import InfrastructureError

T = TypeVar("T")

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class WaitTimeout(InfrastructureError):
    """`what` did not happen within `timeout_s`; `where` is the function that waited."""

    def __init__(self, what: str, timeout_s: float, detail: str = "", where: str = "") -> None:
        message = f"{what} within {timeout_s:g} s" + (f": {detail}" if detail else "")
        super().__init__(message)
        self.what = what
        self.timeout_s = timeout_s
        self.detail = detail
        self.where = where


def poll(predicate: Callable[[], T | None], *, timeout_s: float, interval_s: float,
         clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> T | None:
    """The predicate's first truthy value, or None once `timeout_s` has passed."""
    if interval_s <= 0:
        raise ValueError(f"interval_s must be positive, got {interval_s!r}")
    deadline = clock() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - clock()
        if remaining <= 0:
            return None
        sleep(min(interval_s, remaining))


def wait_until(predicate: Callable[[], T | None], *, timeout_s: float, interval_s: float,
               what: str, detail: Callable[[], str] | None = None,
               clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> T:
    """The predicate's first truthy value; `WaitTimeout` once `timeout_s` has passed.

    `what` is said as it failed ("the guard did not start"); `detail`, asked only then, adds
    what was seen last (a log tail, a state)."""
    value = poll(predicate, timeout_s=timeout_s, interval_s=interval_s, clock=clock,
                 sleep=sleep)
    if value:
        return value
    caller = sys._getframe(1)  # noqa: SLF001 - the function that waited, for the record
    where = f"{caller.f_globals.get('__name__', '?')}.{caller.f_code.co_qualname}"
    raise WaitTimeout(what, timeout_s, detail() if detail is not None else "", where)
