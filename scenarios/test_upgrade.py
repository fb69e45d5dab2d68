"""The upgrade phases, in order. Startup health is only the entry ticket to the soak."""

import pytest

from harness.procedure.phases import PhaseResult, report_phase

pytestmark = pytest.mark.upgrade


def test_preflight(preflight: PhaseResult) -> None:
    report_phase(preflight)


def test_backup(backup: PhaseResult) -> None:
    report_phase(backup)


def test_baseline(baseline: PhaseResult) -> None:
    report_phase(baseline)


def test_install(install: PhaseResult) -> None:
    report_phase(install)


def test_restart_gate(restart_gate: PhaseResult) -> None:
    report_phase(restart_gate)


def test_stop(stop: PhaseResult) -> None:
    report_phase(stop)


def test_start(start: PhaseResult) -> None:
    report_phase(start)


def test_health(health: PhaseResult) -> None:
    report_phase(health)
