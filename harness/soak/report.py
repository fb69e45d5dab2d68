"""What a soak puts into the report: numbers, decisions, the evidence lines, every request."""

from __future__ import annotations

import json

import allure

from harness.soak.assess import Judgement, summary
from harness.soak.driver import SoakRun


def report_judgement(judgement: Judgement, story: str) -> None:
    allure.dynamic.story(story)
    allure.attach(json.dumps(judgement.numbers, indent=2, default=str), name="numbers",
                  attachment_type=allure.attachment_type.JSON)
    assert judgement.ok, judgement.summary


def report_soak(run: SoakRun) -> None:
    allure.attach(json.dumps(summary(run), indent=2, default=str), name=f"{run.label} summary",
                  attachment_type=allure.attachment_type.JSON)
    for decision in run.decisions:
        if decision.fired:
            allure.attach("\n".join(decision.evidence), name=f"trigger {decision.trigger.name} "
                          "evidence", attachment_type=allure.attachment_type.TEXT)
    if run.matches:
        allure.attach("\n".join(f"{m.signature:<24} {m.line}" for m in run.matches),
                      name=f"{run.label} log signature matches",
                      attachment_type=allure.attachment_type.TEXT)
    allure.attach("\n".join(json.dumps(x.as_dict()) for x in run.exchanges()),
                  name=f"{run.label} requests (JSON lines)",
                  attachment_type=allure.attachment_type.TEXT)
