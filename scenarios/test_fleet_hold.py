"""A fleet member's hold (collected only in a member's run, --fleet-member): after its own
verdict, it waits for the fleet's word (keep, or roll back because the line stopped)."""

import pytest

from harness.procedure.phases import PhaseResult, report_phase

pytestmark = pytest.mark.fleet


def test_fleet_hold(fleet_hold: PhaseResult) -> None:
    report_phase(fleet_hold)
