"""The fleet's decisions, from its members' results: whether a wave may start, who goes back,
and the one exit code of the release.

Pure functions over the plan and a map of member name -> exit code (a member absent from the
map has not ended yet). The line stops at the first member that does not pass: no later wave
starts, its members stay as they were ("not reached"), and the members that had passed are
rolled back as `on_failure` says: `rollback-wave` the failing member's own wave, `rollback-all`
every wave up to it.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.common.errors import ExitCode
from harness.fleet.plan import FleetPlan

# the worst first: a member whose known-good is not proven needs a person now
_SEVERITY = (ExitCode.ROLLBACK_FAILED, ExitCode.INTERRUPTED)


def failed_wave(plan: FleetPlan, results: Mapping[str, int]) -> int | None:
    """The first wave with a member that ended without passing, or None."""
    failing = [plan.wave_of(name) for name, code in results.items() if code != ExitCode.PASSED]
    return min(failing) if failing else None


def may_start(plan: FleetPlan, wave: int, results: Mapping[str, int]) -> bool | None:
    """True when every member of the waves before passed; False when the line stopped before
    this wave (its members are not reached); None while an earlier member is still running."""
    stopped = failed_wave(plan, results)
    if stopped is not None and stopped < wave:
        return False
    earlier = [m.name for w in plan.waves[:wave] for m in w]
    if all(results.get(name) == ExitCode.PASSED for name in earlier):
        return True
    return None


def to_roll_back(plan: FleetPlan, results: Mapping[str, int]) -> list[str]:
    """Members that passed and go back to the known-good because the line stopped."""
    stopped = failed_wave(plan, results)
    if stopped is None:
        return []
    first = stopped if plan.on_failure == "rollback-wave" else 0
    return [m.name for w in plan.waves[first:stopped + 1] for m in w
            if results.get(m.name) == ExitCode.PASSED]


def not_reached(plan: FleetPlan, results: Mapping[str, int]) -> list[str]:
    stopped = failed_wave(plan, results)
    if stopped is None:
        return []
    return [m.name for w in plan.waves[stopped + 1:] for m in w if m.name not in results]


def fleet_exit(plan: FleetPlan, results: Mapping[str, int],
               fleet_rollbacks: Mapping[str, int]) -> ExitCode:
    """One exit code for the release. `fleet_rollbacks`: the exit code of each rollback the
    fleet made of a member that had passed (10 when its known-good was proven)."""
    codes = [ExitCode(results[m.name]) for m in plan.members if m.name in results]
    codes += [ExitCode(c) for c in fleet_rollbacks.values()]
    for worst in _SEVERITY:
        if worst in codes:
            return worst
    others = [c for c in codes if c not in (ExitCode.PASSED, ExitCode.ROLLED_BACK)]
    if others:
        return others[0]
    ended = all(m.name in results for m in plan.members) or failed_wave(plan, results) is not None
    if not ended:
        return ExitCode.INTERRUPTED  # a member never ended and the line did not stop: not a pass
    return ExitCode.ROLLED_BACK if ExitCode.ROLLED_BACK in codes else ExitCode.PASSED
