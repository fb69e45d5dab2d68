"""Representative workflows against the live gateway while its own log is watched."""

import pytest

from harness.soak import assess
from harness.soak.driver import SoakRun
from harness.soak.report import report_judgement, report_soak
from harness.soak.scenarios import Scenario

pytestmark = pytest.mark.soak


def test_soak(soak_run: SoakRun, scenario: Scenario) -> None:
    report_judgement(assess.scenario(soak_run, scenario.id), story=scenario.id)


def test_soak_policy(soak_run: SoakRun) -> None:
    report_soak(soak_run)
    report_judgement(assess.policy(soak_run), story="policy")
