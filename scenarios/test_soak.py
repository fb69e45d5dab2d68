"""Representative workflows against the live gateway while its own log is watched."""

import pytest

from harness.run import RunSettings
from harness.soak import assess
from harness.soak.driver import SoakRun
from harness.soak.report import report_judgement, report_soak
from harness.soak.scenarios import Scenario

pytestmark = pytest.mark.soak


def test_soak(soak_run: SoakRun, soak_baseline: SoakRun | None, scenario: Scenario,
              run_settings: RunSettings) -> None:
    judgement = assess.scenario(soak_run, scenario.id, run_settings.min_samples()[scenario.id],
                                soak_baseline)
    report_judgement(judgement, story=scenario.id, on_inconclusive=run_settings.on_inconclusive)


def test_soak_policy(soak_run: SoakRun, soak_baseline: SoakRun | None,
                     run_settings: RunSettings) -> None:
    report_soak(soak_run, soak_baseline)
    report_judgement(assess.policy(soak_run), story="policy",
                     on_inconclusive=run_settings.on_inconclusive)
