"""A member's seat in its fleet, inside the member's own run: its name, the ledger, the plan;
its hold (the phase table's `fleet_hold`) says its own result and waits for the fleet's word."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from harness.common.errors import InputError
from harness.fleet.ledger import ROLL_BACK, Ledger
from harness.fleet.plan import FleetPlan, load_fleet
from harness.fleet.waves import hold
from harness.procedure.phases import PhaseResult
from harness.procedure.run import RunRecord


@dataclass(frozen=True)
class FleetSeat:
    member: str
    ledger: Ledger
    plan: FleetPlan

    @classmethod
    def take(cls, member: str, ledger_path: Path) -> FleetSeat:
        ledger = Ledger(ledger_path)
        try:
            fleet_file = Path(ledger.read()["fleet"])
        except (OSError, ValueError, KeyError) as exc:
            raise InputError("--fleet-ledger", "", f"no fleet ledger at {ledger_path}: "
                             f"{exc}") from None
        plan = load_fleet(fleet_file)
        if member not in {m.name for m in plan.members}:
            raise InputError("--fleet-member", "", f"{member!r} is no member of "
                             f"{fleet_file.name}")
        return cls(member, ledger, plan)

    def hold(self, record: RunRecord) -> PhaseResult:
        """After the member's own verdict: a member that passed waits for the fleet's word
        (keep, or roll back because the line stopped); one that failed stops the line."""
        started = time.time()
        passed = record.changed and not record.failures("upgrade", "soak") \
            and record.proven() == "candidate"
        word, reason = hold(self.ledger, self.plan, self.member, passed)
        summary = f"the fleet's word: {word} ({reason})"
        if word == ROLL_BACK and passed:
            summary = f"the fleet rolls this member back: {reason}"
        return PhaseResult("fleet_hold", True, summary,
                           {"member": self.member, "word": word, "reason": reason,
                            "passed_so_far": passed},
                           round(time.time() - started, 3), started)
