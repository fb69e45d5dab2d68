"""The two waits of a fleet member, both on the ledger: before it starts (its wave's gate,
on its xdist worker) and after its own verdict (its hold, in its own run, until the fleet says
keep or roll back). Neither schedules anything: xdist hands out the members in wave order,
and a member only ever waits on members before it or beside it in its wave.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from harness.common.errors import ExitCode
from harness.fleet.ledger import (
    HELD,
    KEEP,
    NOT_REACHED,
    ROLL_BACK,
    RUNNING,
    Ledger,
    results,
)
from harness.fleet.outcome import failed_wave, may_start, to_roll_back
from harness.fleet.plan import FleetPlan

POLL_S = 0.5


def stopped_at(plan: FleetPlan, done: dict[str, int]) -> str:
    """The first member (in wave order) that did not pass, for the reasons."""
    wave = failed_wave(plan, done)
    if wave is None:
        return ""
    return next(m.name for m in plan.waves[wave]
                if m.name in done and done[m.name] != ExitCode.PASSED)


def wait_to_start(ledger: Ledger, plan: FleetPlan, name: str, poll_s: float = POLL_S,
                  sleep: Callable[[float], None] = time.sleep) -> tuple[bool, str]:
    """Wait until this member's wave may start: (True, "") and it is marked running, or
    (False, reason) and it is marked not reached (left untouched)."""
    wave = plan.wave_of(name)

    def choose(data: dict[str, Any]) -> dict[str, Any] | None:
        done = results(data["members"])
        ok = may_start(plan, wave, done)
        if ok is None:
            return None
        if ok:
            return {"state": RUNNING, "reason": ""}
        return {"state": NOT_REACHED,
                "reason": f"not reached: the line stopped at {stopped_at(plan, done)} "
                          f"(wave {failed_wave(plan, done)}); left untouched"}

    while True:
        fields = ledger.decide(name, choose)
        if fields is not None:
            return fields["state"] == RUNNING, fields["reason"]
        sleep(poll_s)


def word_for(plan: FleetPlan, done: dict[str, int], name: str) -> str | None:
    """The fleet's word to a member that passed and holds: roll back (the line stopped and
    `on_failure` takes it back), keep (every member whose failure could still take it back
    passed), or None (not yet known)."""
    if name in to_roll_back(plan, done):
        return ROLL_BACK
    scope = plan.waves[plan.wave_of(name)] if plan.on_failure == "rollback-wave" \
        else plan.members
    if all(done.get(m.name) == ExitCode.PASSED for m in scope):
        return KEEP
    return None


def hold(ledger: Ledger, plan: FleetPlan, name: str, passed: bool, poll_s: float = POLL_S,
         sleep: Callable[[float], None] = time.sleep) -> tuple[str, str]:
    """A member's hold after its own verdict: says it in the ledger, then waits for the
    fleet's word. A member that failed does not wait: it rolls back now and stops the line."""
    so_far = int(ExitCode.PASSED) if passed else int(ExitCode.ROLLED_BACK)
    if not passed:
        ledger.update(name, state=HELD, so_far=so_far, word=ROLL_BACK,
                      reason="failed: the line stops here; rolled back by its own run")
        return ROLL_BACK, "this member failed: the line stops here and it rolls back now"
    ledger.update(name, state=HELD, so_far=so_far)

    def choose(data: dict[str, Any]) -> dict[str, Any] | None:
        done = results(data["members"])
        word = word_for(plan, done, name)
        if word is None:
            return None
        if word == KEEP:
            return {"word": KEEP, "reason": "passed; kept on the candidate"}
        return {"word": ROLL_BACK, "reason": f"passed; rolled back by the fleet ({plan.on_failure}"
                                             f"): the line stopped at {stopped_at(plan, done)}"}

    while True:
        fields = ledger.decide(name, choose)
        if fields is not None:
            return fields["word"], fields["reason"]
        sleep(poll_s)
