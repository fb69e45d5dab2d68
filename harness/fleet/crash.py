"""A member whose xdist worker died: what the fleet records, and how it learns how it ended.

A member's run is a subprocess of its worker that gets SIGTERM when the worker dies, however
it dies (harness.fleet.member starts it with `die_with_parent`). That is an interruption of
its own run like any other: its teardown puts the known-good back and proves it, or, should
the run die too, its guard does; either writes the member's verdict (`interrupted`). What
the worker would have written into the ledger (the run's exit code) nobody writes then, so the
controller, told by xdist which item crashed:

- notes the death in the ledger at once (`worker_died`): the member counts as interrupted, the
  line stops (no later wave starts; held members hear their word) and, as xdist hands the
  crashed item to a new worker, that worker does not start the member a second time;
- at the end of the release waits for the member's run to end (its PID), then for its verdict
  (its own, or its guard's), and records its exit code, so the fleet's verdict says what serves
  on the member and whether it was proven.

A worker's death is never a pass of the fleet: a member whose own run passed still counts as
interrupted (its worker did not see its end); a worse code of its own (11) stays its code.
A worker that died while its member only waited for its wave left nothing to put back: xdist's
new worker takes the member up as if nothing happened.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.common import commands, waits
from harness.fleet.ledger import ENDED, WAITING, Ledger

MEMBER_ITEM = re.compile(r"::test_member\[(?P<name>[A-Za-z0-9._-]+)\]$")
RUN_END_S = 600.0  # its teardown's restore, start and proof, under load
GUARD_VERDICT_S = 180.0  # a run that died too: its guard's lease lapses, then restore and proof


def member_of(nodeid: str) -> str | None:
    """The member a fleet item runs (`...::test_member[NAME]`), or None for any other item."""
    found = MEMBER_ITEM.search(nodeid)
    return found["name"] if found else None


def note_worker_death(ledger: Ledger, name: str, worker: str) -> str:
    """On the controller, as xdist reports the crashed item: the ledger says what happened.
    Returns the reason written (for xdist's report of the item)."""
    said = ""

    def choose(data: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal said
        entry = data["members"][name]
        if entry["state"] == WAITING:  # nothing started: xdist's new worker takes it up
            said = f"its worker {worker} died while it waited for its wave; nothing of it " \
                   "had started, a new worker takes it up"
            return {"reason": said}
        if entry.get("worker_died"):
            return None
        said = f"its worker died ({worker} crashed) while its run was {entry['state']}"
        return {"worker_died": said,
                "run_start_time": commands.start_time(entry["pid"]) if entry.get("pid")
                else None}

    ledger.decide(name, choose)
    return said


def already_started(ledger: Ledger, name: str) -> str:
    """Why a member must not start (again): its run started on a worker that died (xdist
    hands the crashed item to a new worker). Empty when it may go to its wave's gate."""
    entry = ledger.read()["members"][name]
    if entry["state"] == WAITING:
        return ""
    why = entry.get("worker_died") or f"its run already started (state {entry['state']})"
    return f"not started again: {why}; the fleet's verdict says how it ended"


def settle(ledger: Ledger, run_dir: Path, run_end_s: float = RUN_END_S,
           guard_s: float = GUARD_VERDICT_S, sleep: Callable[[float], None] = time.sleep
           ) -> list[str]:
    """At the end of the release, on the controller: for each member whose worker died, wait
    for its run to end and for its verdict, and record its exit code. Returns their names."""
    members = ledger.read()["members"]
    settled = []
    for name, entry in members.items():
        if not entry.get("worker_died") or entry["state"] == ENDED:
            continue
        fields = _how_it_ended(entry, run_dir / "members" / name, run_end_s, guard_s, sleep)
        ledger.update(name, **fields)
        settled.append(name)
    return settled


def _how_it_ended(entry: dict[str, Any], member_dir: Path, run_end_s: float, guard_s: float,
                  sleep: Callable[[float], None]) -> dict[str, Any]:
    pid, started = entry.get("pid"), entry.get("run_start_time")
    def ended() -> bool:
        return not (pid and started is not None and commands.start_time(pid) == started
                    and commands.alive(pid))

    if not _wait(ended, run_end_s, sleep):
        return {"reason": f"its run (PID {pid}) was still going {run_end_s:g} s after its "
                          "worker died: see its run dir"}
    verdict = _verdict(member_dir)
    owner = _read(member_dir / "run.json")
    if verdict is None and owner is not None and owner.get("ended") is None:
        # its run died without a verdict: its guard (if it was armed) writes one
        _wait(lambda: _verdict(member_dir) is not None, guard_s, sleep)
        verdict = _verdict(member_dir)
    if verdict is None:
        return {"state": ENDED, "exit": None, "outcome": None,
                "reason": "its run ended without a verdict: see its run dir"}
    return {"state": ENDED, "exit": verdict.get("exit_code"), "outcome": verdict.get("outcome")}


def _wait(done: Callable[[], bool], timeout_s: float, sleep: Callable[[float], None]) -> bool:
    return bool(waits.poll(done, timeout_s=timeout_s, interval_s=0.5, sleep=sleep))


def _verdict(member_dir: Path) -> dict[str, Any] | None:
    verdict = _read(member_dir / "verdict.json")
    return verdict if verdict and verdict.get("outcome") else None


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
