"""Rollback, run only when the upgrade or the soak failed after something was changed."""

import pytest

from harness.judge import assess
from harness.procedure.phases import PhaseResult, report_phase
from harness.reporting.soak import report_judgement, report_soak
from harness.soak.driver import SoakRun

pytestmark = pytest.mark.rollback


def test_rollback_backup(rollback_backup: PhaseResult) -> None:
    report_phase(rollback_backup)


def test_rollback_prepare(rollback_prepare: PhaseResult) -> None:
    report_phase(rollback_prepare)


def test_rollback_restart_gate(rollback_restart_gate: PhaseResult) -> None:
    report_phase(rollback_restart_gate)


def test_rollback_restore(rollback_restore: PhaseResult) -> None:
    report_phase(rollback_restore)


def test_rollback_start(rollback_start: PhaseResult) -> None:
    report_phase(rollback_start)


def test_rollback_smoke(rollback_smoke: SoakRun) -> None:
    report_soak(rollback_smoke)
    report_judgement(assess.watch(rollback_smoke), story="smoke")


def test_rollback_watch(rollback_watch: SoakRun) -> None:
    report_soak(rollback_watch)
    report_judgement(assess.watch(rollback_watch), story="watch")


def test_rollback_late_watch(rollback_late_watch: SoakRun) -> None:
    report_soak(rollback_late_watch)
    report_judgement(assess.watch(rollback_late_watch), story="late watch")
