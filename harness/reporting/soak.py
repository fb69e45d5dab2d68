"""What a soak puts into the report: verdicts with reasons, decisions, evidence, every request."""

from __future__ import annotations

import json
from typing import Any

import allure
import pytest

from harness.common.numbers import num
from harness.judge.assess import Judgement, compare, summary
from harness.reporting import evidence
from harness.reporting.charts import soak_charts
from harness.soak.driver import SoakRun


def report_judgement(judgement: Judgement, story: str, on_inconclusive: str = "fail") -> None:
    """The test body of a judgement: pass passes, fail fails, and inconclusive fails closed
    unless the run accepted it (then the test is skipped: not judged, and said so)."""
    allure.dynamic.story(story)
    # why, on the test's page whatever the outcome: a pass must say what it rests on
    allure.dynamic.description(f"**{judgement.verdict}**: {judgement.summary}")
    allure.attach(json.dumps(judgement.numbers, indent=2, default=str), name="numbers",
                  attachment_type=allure.attachment_type.JSON)
    if judgement.verdict == "inconclusive":
        if on_inconclusive == "pass":
            pytest.skip(f"inconclusive, accepted for this run: {judgement.summary}")
        pytest.fail(f"inconclusive, failing closed: {judgement.summary}", pytrace=False)
    if not judgement.ok:
        pytest.fail(judgement.summary, pytrace=False)  # the reasons, not a traceback of them


def report_soak(run: SoakRun, baseline: SoakRun | None = None) -> None:
    allure.attach(json.dumps(summary(run), indent=2, default=str), name=f"{run.label} summary",
                  attachment_type=allure.attachment_type.JSON)
    if baseline is not None:
        allure.attach(baseline_comparison_markdown(compare(baseline, run)),
                      name=f"{run.label} against the baseline",
                      attachment_type=allure.attachment_type.TEXT)
    for name, svg in soak_charts(run).items():
        allure.attach(svg, name=name, attachment_type=allure.attachment_type.SVG)
    for decision in run.decisions:
        if decision.fired:
            allure.attach(evidence.decision_text(run, decision),
                          name=f"trigger {decision.label} evidence",
                          attachment_type=allure.attachment_type.TEXT)
    if run.matches:
        allure.attach("\n".join(f"{m.signature:<24} {m.line}" for m in run.matches),
                      name=f"{run.label} log signature matches",
                      attachment_type=allure.attachment_type.TEXT)
    allure.attach("\n".join(json.dumps(x) for x in run.requests()),
                  name=f"{run.label} requests (JSON lines)",
                  attachment_type=allure.attachment_type.TEXT)


def baseline_comparison_markdown(comparison: dict[str, Any]) -> str:
    """The candidate's soak beside the known-good's baseline, per scenario and signature class."""
    lines = ["| scenario | finished | bad | error ratio | p50 s | p95 s |",
             "|---|---|---|---|---|---|"]
    for sid, row in comparison["scenarios"].items():
        cells = [f"{num(row[k]['baseline'])} -> {num(row[k]['candidate'])}"
                 for k in ("finished", "bad", "error_ratio", "p50_s", "p95_s")]
        lines.append(f"| {sid} | " + " | ".join(cells) + " |")
    lines += ["", "| signature class | baseline | candidate | per 100 requests | |",
              "|---|---|---|---|---|"]
    for klass, row in comparison["classes"].items():
        lines.append(f"| {klass} | {row['baseline']} | {row['candidate']} | "
                     f"{num(row['baseline_per_100_requests'])} -> "
                     f"{num(row['candidate_per_100_requests'])} | "
                     f"{'NEW (none in the baseline)' if row['new'] else ''} |")
    return "\n".join(lines) + "\n"
