"""Representative workflows against the live gateway while its own log is watched."""

import pytest

from harness.judge import assess
from harness.procedure.phases import Procedure
from harness.procedure.run import RunSettings
from harness.reporting.soak import report_judgement, report_soak
from harness.soak.driver import SoakRun
from harness.soak.scenarios import Scenario

pytestmark = pytest.mark.soak


def test_soak(soak_run: SoakRun, soak_baseline: SoakRun | None, scenario: Scenario,
              run_settings: RunSettings, procedure: Procedure) -> None:
    judgement = assess.scenario(soak_run, scenario.id, run_settings.min_samples()[scenario.id],
                                soak_baseline)
    report_judgement(judgement, story=scenario.id,
                     on_inconclusive=procedure.inconclusive_mode(soak_run))


def test_soak_policy(soak_run: SoakRun, soak_baseline: SoakRun | None,
                     procedure: Procedure) -> None:
    report_soak(soak_run, soak_baseline)
    report_judgement(assess.policy(soak_run), story="policy",
                     on_inconclusive=procedure.inconclusive_mode(soak_run))
