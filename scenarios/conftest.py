"""The upgrade procedure as ordered session fixtures.

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

from harness.judge import assess
from harness.procedure.phases import PhaseResult, Procedure
from harness.procedure.run import RunRecord, RunSettings
from harness.soak.driver import SoakRun


def after(previous: PhaseResult) -> None:
    if not previous.ok:
        pytest.skip(f"not run: {previous.name} failed ({previous.summary})")


@pytest.fixture(scope="session")
def preflight(procedure: Procedure) -> PhaseResult:
    return procedure.preflight()


@pytest.fixture(scope="session")
def backup(procedure: Procedure, preflight: PhaseResult) -> PhaseResult:
    after(preflight)
    return procedure.backup()


@pytest.fixture(scope="session")
def baseline(procedure: Procedure, backup: PhaseResult) -> PhaseResult:
    after(backup)
    return procedure.baseline()


@pytest.fixture(scope="session")
def install(procedure: Procedure, baseline: PhaseResult) -> PhaseResult:
    after(baseline)
    return procedure.install()


@pytest.fixture(scope="session")
def restart_gate(procedure: Procedure, install: PhaseResult) -> PhaseResult:
    after(install)
    return procedure.restart_gate("stop the known-good and start the candidate")


@pytest.fixture(scope="session")
def stop(procedure: Procedure, restart_gate: PhaseResult) -> PhaseResult:
    after(restart_gate)
    return procedure.stop()


@pytest.fixture(scope="session")
def start(procedure: Procedure, stop: PhaseResult) -> PhaseResult:
    after(stop)
    return procedure.start()


@pytest.fixture(scope="session")
def health(procedure: Procedure, start: PhaseResult) -> PhaseResult:
    after(start)
    return procedure.health()


@pytest.fixture(scope="session")
def soak_run(request: pytest.FixtureRequest, procedure: Procedure,
             run_settings: RunSettings) -> SoakRun:
    # After an upgrade the soak needs a healthy candidate; alone (`-m soak`) it soaks what runs.
    if any(item.get_closest_marker("upgrade") for item in request.session.items):
        after(request.getfixturevalue("health"))
    return procedure.soak("soak", run_settings.soak)


@pytest.fixture(scope="session")
def soak_baseline(procedure: Procedure) -> SoakRun | None:
    """The known-good's baseline soak of this run, if one ran."""
    return procedure.soaks.get("baseline")


@pytest.fixture(scope="session")
def rollback_needed(run_record: RunRecord) -> None:
    if run_record.needs_rollback():
        return
    if run_record.failures("upgrade", "soak"):
        pytest.skip("not needed: nothing was changed before the failure; known-good untouched")
    pytest.skip("not needed: the candidate passed every phase and the soak")


@pytest.fixture(scope="session")
def rollback_backup(procedure: Procedure, rollback_needed: None) -> PhaseResult:
    return procedure.rollback_backup()


@pytest.fixture(scope="session")
def rollback_prepare(procedure: Procedure, rollback_backup: PhaseResult) -> PhaseResult:
    # a failed fresh backup is reported, but never keeps service from being restored
    return procedure.rollback_prepare()


@pytest.fixture(scope="session")
def rollback_restart_gate(procedure: Procedure, rollback_prepare: PhaseResult) -> PhaseResult:
    after(rollback_prepare)
    return procedure.restart_gate("stop the candidate and start the known-good version")


@pytest.fixture(scope="session")
def rollback_restore(procedure: Procedure, rollback_restart_gate: PhaseResult) -> PhaseResult:
    after(rollback_restart_gate)
    return procedure.rollback_restore()


@pytest.fixture(scope="session")
def rollback_start(procedure: Procedure, rollback_restore: PhaseResult) -> PhaseResult:
    after(rollback_restore)
    return procedure.start()


@pytest.fixture(scope="session")
def rollback_smoke(procedure: Procedure, rollback_start: PhaseResult) -> SoakRun:
    after(rollback_start)
    return procedure.smoke()


@pytest.fixture(scope="session")
def rollback_watch(procedure: Procedure, rollback_smoke: SoakRun,
                   run_settings: RunSettings) -> SoakRun:
    return procedure.soak("watch", run_settings.watch)


@pytest.fixture(scope="session")
def rollback_late_watch(procedure: Procedure, rollback_watch: SoakRun,
                        run_settings: RunSettings) -> SoakRun:
    window = run_settings.late_watch
    if window is None:
        pytest.skip("no later watch declared (policy [late_watch], or --late-watch 0)")
    early = assess.watch(rollback_watch)
    if not early.ok:  # the rollback already did not prove healthy: alert now, not later
        pytest.skip(f"not run: the early watch failed ({early.summary}); a person must look "
                    "now, not after another watch")
    return procedure.soak("late_watch", window)
