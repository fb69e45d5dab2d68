"""The report's verdict headline with the real Allure CLI (Allure 3 from the registry): the
name, and the quality gate `release-accepted` that Allure itself evaluates on the run's verdict.

The run folders here are small on purpose: a verdict.json and one phase's result in the shape
the harness writes them, so the renderer's contract is checked in seconds for each outcome;
the real runs' reports are checked in test_acceptance_e2e.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.reporting.browser import look_at_verdict
from harness.reporting.headline import run_of
from harness.targets.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]


def run_folder(reports: Path, name: str, outcome: str | None, exit_code: int = 0) -> Path:
    """A run folder as a run leaves it: its Allure results (one phase), and its verdict.json
    unless `outcome` is None (a run that died before writing one)."""
    run = reports / name
    results = run / "allure-results"
    results.mkdir(parents=True)
    (results / "phase-health-result.json").write_text(json.dumps({
        "uuid": f"health-{name}", "historyId": "health", "testCaseId": "health",
        "name": "test_health", "fullName": "scenarios.test_upgrade#test_health",
        "status": "passed", "start": 1_000, "stop": 2_000,
        "labels": [{"name": "epic", "value": "local-openclaw"},
                   {"name": "feature", "value": "upgrade"}, {"name": "story", "value": "health"}],
    }))
    if outcome is not None:
        lock = {"run_id": name, "target": {"name": "local-openclaw", "kind": "openclaw"},
                "known_good": {"version": "2026.3.28"}, "candidate": {"version": "2026.4.1"}}
        (run / "verdict.json").write_text(json.dumps({
            "outcome": outcome, "exit_code": exit_code, "started": 1.0, "ended": 2.0,
            "lock": lock, "phases": [], "claim": f"a claim of {name}"}))
        (run / "summary.md").write_text(f"## {outcome}\n")
    return run


def render(run: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", "report", str(run)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def gate(run: Path) -> dict[str, bool]:
    return {r["rule"]: r["success"]
            for r in json.loads((run / "html" / "quality-gate.json").read_text())}


@pytest.mark.e2e
@pytest.mark.xdist_group("report-gate")
def test_the_quality_gate_fails_exactly_when_the_release_was_not_accepted(
        tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    cases = {"1-rolled-back": ("rolled_back", 10), "2-passed": ("passed", 0),
             "3-died": (None, 0)}
    for name, (outcome, code) in cases.items():
        run = run_folder(reports, name, outcome, code)
        done = render(run)
        assert done.returncode == 0, done.stderr[-2000:]
        accepted = outcome == "passed"
        # Allure's own gate: both rules of release-accepted, as Allure evaluated them
        assert gate(run) == {"release-accepted/minTestsCount": True,
                             "release-accepted/maxFailures": accepted}, name
        summary = json.loads((run / "html" / "summary.json").read_text())
        verdict = "no verdict (the run did not finish)" if outcome is None else \
            f"{outcome.replace('_', ' ')} (exit {code})"
        subject = "3-died" if outcome is None else "local-openclaw 2026.3.28 -> 2026.4.1"
        assert summary["name"] == f"{subject}: {verdict}"
        assert summary["stats"] == {**summary["stats"], "total": 2,
                                    "passed": 2 if accepted else 1}
    # and a person sees it: the title, the gate tab's colour, each rule passed or failed
    for name, status in (("1-rolled-back", "failed"), ("2-passed", "passed")):
        seen = look_at_verdict(reports / name / "html", reports / name / "screenshots",
                               Runtime(ROOT / ".cache" / "runtime"))
        assert seen["title"].endswith("rolled back (exit 10)" if status == "failed"
                                      else "passed (exit 0)"), seen
        assert seen["gateTabStatus"] == status, seen
        assert {g["rule"]: g["status"] for g in seen["gates"]}[
            "release-accepted/maxFailures"] == status, seen
        # Allure's line under the title: its own exit code (the gate's), the run's beside it
        assert seen["under"].endswith(f"with exit code {0 if status == 'passed' else 1} "
                                      f"(original {0 if status == 'passed' else 10})"), seen


@pytest.mark.e2e
@pytest.mark.xdist_group("report-gate")
def test_runs_that_share_a_name_keep_their_own_points_in_the_history(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    for name in ("a", "b"):  # the same target, versions and outcome: the same report name
        run_folder(reports, name, "rolled_back", 10)
    for name in ("a", "b", "a"):  # rendering a again replaces its point
        assert render(reports / name).returncode == 0
    entries = [json.loads(line) for line in (reports / "history.jsonl").read_text().splitlines()]
    assert [run_of(e) for e in entries] == ["b", "a"]
    assert {e["name"] for e in entries} == {
        "local-openclaw 2026.3.28 -> 2026.4.1: rolled back (exit 10)"}
