"""The soak's log must have been watched for real: a stale file log shows nothing, so it can
never be the evidence of a clean soak (seed 002: OpenClaw's /tmp/openclaw log lags its console)."""

import json

import allure
import pytest

from harness.procedure.run import RunRecord
from harness.soak.driver import SoakRun

pytestmark = pytest.mark.soak


def test_soak_log_source(soak_run: SoakRun, run_record: RunRecord) -> None:
    report = run_record.soak_of("soak").log_source or {}
    allure.dynamic.story("log source")
    allure.attach(json.dumps(report, indent=2, default=str), name="log source",
                  attachment_type=allure.attachment_type.JSON)
    assert report, "the soak recorded no log source"
    assert report["trusted"], "; ".join(report["reasons"])
