"""The upgrade procedure as ordered session fixtures, one per phase of the phase table
(harness.procedure.table: its rows, their order and what each waits for).

preflight -> backup -> baseline -> install -> restart_gate -> stop -> start -> health -> soak,
and when anything fails after the first change: rollback_backup -> rollback_prepare ->
rollback_restart_gate -> rollback_restore -> rollback_start -> rollback_smoke -> rollback_watch
-> rollback_late_watch (the early watch right after the restart, then, after a quiet delay
with the log still watched, a later short one; each with the whole scenario mix, the slow
reasoner's paths included, and each with its own verdict).
Everything that needs no interruption (backup, the baseline soak of the known-good, the new
version in its own prefix, its ground truth) is done before the restart gate; the interruption
starts at `stop` (or `rollback_restore`), after a person or CI approved it.
Each fixture runs its phase once and returns its result; a phase whose predecessor failed is
skipped with the reason. The library (`harness.procedure.phases`) does the work and writes the
evidence.
"""

from __future__ import annotations

import pytest

from harness.fleet.ledger import ROLL_BACK
from harness.procedure.phases import Procedure
from harness.procedure.run import RunRecord
from harness.pytest.fixtures import phase_fixtures
from harness.pytest.fleet import SEAT
from harness.soak.driver import SoakRun

# preflight, backup, ..., soak_run, rollback_backup, ..., rollback_late_watch
globals().update(phase_fixtures())


@pytest.fixture(scope="session")
def soak_baseline(procedure: Procedure) -> SoakRun | None:
    """The known-good's baseline soak of this run, if one ran."""
    return procedure.soaks.get("baseline")


@pytest.fixture(scope="session")
def rollback_needed(request: pytest.FixtureRequest, run_record: RunRecord) -> None:
    """The rollback runs only when the upgrade or the soak failed after something changed,
    or, for a fleet's member, when the fleet says so (its hold comes first: a member that
    failed stops the line before it rolls back)."""
    if request.config.stash.get(SEAT, None) is not None:
        hold = request.getfixturevalue("fleet_hold")
        if run_record.changed and hold.details.get("word") == ROLL_BACK:
            return
    if run_record.needs_rollback():
        return
    if run_record.failures("upgrade", "soak"):
        pytest.skip("not needed: nothing was changed before the failure; known-good untouched")
    pytest.skip("not needed: the candidate passed every phase and the soak")
