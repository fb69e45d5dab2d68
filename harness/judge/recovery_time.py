"""How long a rollback took to give good replies again, step by step, from the decision.

decision (the live judge decided) -> grace (what was in flight landing or cut, the soak's
final judgement) -> backup -> prepare -> restart gate -> restore -> start -> first reply (the
smoke's first good reply). Every step is measured where it happened, so the parts plus the
time between them add up to the total.
"""

from __future__ import annotations

from typing import Any

from harness.soak.driver import SoakRun

# a rollback's phases by the names their results carry (or the step's name when one failed)
STEPS = (("backup", ("pre-rollback", "rollback backup")),
         ("prepare", ("rollback_prepare", "prepare known-good")),
         ("gate", ("restart_gate",)), ("restore", ("restore", "restore known-good")),
         ("start", ("start",)))


def recovery(soak: SoakRun | None, timeline: dict[str, Any], smoke: SoakRun) -> dict[str, Any]:
    out: dict[str, Any] = {"decided_by": soak.stopped_by if soak else None}
    begins = None
    if soak is not None and soak.decided_at is not None:
        out["decided_at"] = round(soak.decided_at, 3)
        out["grace_s"] = round(soak.ended - soak.decided_at, 3)
        out["cut_by_decision"] = sum(i.cut_by is not None for i in soak.iterations)
        begins = soak.decided_at
    elif soak is not None:
        begins = soak.ended  # failed at its end, not stopped by a trigger
    last_end = soak.ended if soak is not None else None
    for step, names in STEPS:
        result = next((timeline[n] for n in names if n in timeline), None)
        if result is None:
            continue
        out[f"{step}_s"] = result.seconds
        if last_end is not None:
            out[f"before_{step}_s"] = round(result.started_at - last_end, 3)
        last_end = result.started_at + result.seconds
    good = [t.first_good_end for t in smoke.tallies.values() if t.first_good_end is not None]
    if good and last_end is not None:
        out["first_reply_s"] = round(min(good) - last_end, 3)
    if good and begins is not None:
        out["total_s"] = round(min(good) - begins, 3)
    return out
