"""The fleet's ledger: one JSON file in the fleet's run dir that every process of the release
reads and writes under an exclusive flock (the xdist workers that wait for their wave, the
member runs that hold after their own verdict, the controller that writes the verdict).

Per member: its wave, its state (waiting, running, held, ended, not_reached), what it said of
itself at its hold (`so_far`: 0 passed so far, else the provisional code of a failing member),
the fleet's word to it (keep or roll back), its exit code once its run ended, and the reason.
The decisions themselves are harness.fleet.outcome's, over `results()`.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.common.errors import ExitCode
from harness.fleet.plan import FleetPlan

KEEP, ROLL_BACK = "keep", "roll back"
WAITING, RUNNING, HELD, ENDED, NOT_REACHED = "waiting", "running", "held", "ended", "not_reached"

Entries = dict[str, dict[str, Any]]


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")

    @classmethod
    def create(cls, path: Path, plan: FleetPlan) -> Ledger:
        """A fresh ledger for a release of this plan (every member waiting)."""
        ledger = cls(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        members = {m.name: {"wave": plan.wave_of(m.name), "canary": m.canary,
                            "state": WAITING, "so_far": None, "word": None, "exit": None,
                            "reason": "", "updated": round(time.time(), 3)}
                   for m in plan.members}
        with ledger._locked():
            ledger._write({"fleet": str(plan.path), "sha256": plan.sha256, "name": plan.name,
                           "on_failure": plan.on_failure, "members": members})
        return ledger

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write(self, data: dict[str, Any]) -> None:
        part = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        part.write_text(json.dumps(data, indent=2))
        os.replace(part, self.path)  # a reader never sees half a ledger

    def read(self) -> dict[str, Any]:
        with self._locked():
            return json.loads(self.path.read_text())

    def update(self, name: str, **fields: Any) -> dict[str, Any]:
        """Set fields of one member's entry; returns the whole ledger as written."""
        with self._locked():
            data = json.loads(self.path.read_text())
            data["members"][name].update(fields, updated=round(time.time(), 3))
            self._write(data)
            return data

    def decide(self, name: str, choose: Callable[[dict[str, Any]], dict[str, Any] | None]
               ) -> dict[str, Any] | None:
        """Read, decide and write as one step: `choose` sees the ledger and returns the fields
        to set on member `name` (None: nothing yet)."""
        with self._locked():
            data = json.loads(self.path.read_text())
            fields = choose(data)
            if fields is None:
                return None
            data["members"][name].update(fields, updated=round(time.time(), 3))
            self._write(data)
            return fields


def results(members: Entries) -> dict[str, int]:
    """Each member's result as the fleet's decisions read it: a member that passed and that
    the fleet rolled back still passed (its rollback is the fleet's: `fleet_rollbacks`); an
    ended member its exit code; a held or failing one what it said at its hold; one whose
    worker died while its run went on interrupted at least."""
    out: dict[str, int] = {}
    for name, entry in members.items():
        if entry["so_far"] == ExitCode.PASSED and entry["word"] == ROLL_BACK:
            out[name] = int(ExitCode.PASSED)
        elif entry.get("worker_died"):  # never a pass (harness.fleet.crash)
            out[name] = _known(entry["exit"]) if entry["exit"] not in (None, ExitCode.PASSED) \
                else int(ExitCode.INTERRUPTED)
        elif entry["exit"] is not None:
            out[name] = _known(entry["exit"])
        elif entry["so_far"] is not None:
            out[name] = int(entry["so_far"])
    return out


def fleet_rollbacks(members: Entries) -> dict[str, int]:
    """The exit code of every rollback the fleet ordered of a member that had passed (an
    ordered rollback whose run has not ended counts as not proven)."""
    return {name: _known(entry["exit"]) if entry["exit"] is not None
            else int(ExitCode.ROLLBACK_FAILED)
            for name, entry in members.items()
            if entry["so_far"] == ExitCode.PASSED and entry["word"] == ROLL_BACK}


def _known(code: int) -> int:
    """A member's exit code as the fleet reads it: pytest's own codes (1 to 5: tests failed
    without a verdict, an internal error, a usage error, no tests) are no verdict of the
    harness, so the member's state is not known: interrupted, never a pass (its row keeps the
    real code)."""
    return int(code) if code in {int(c) for c in ExitCode} else int(ExitCode.INTERRUPTED)
