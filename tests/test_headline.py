"""The verdict as the report's headline: the report's name, the verdict as an Allure result,
the config that makes it Allure's quality gate, and the history that knows each run.

Allure itself evaluating the gate is checked with the real CLI in test_report_gate_e2e.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main as cli
from harness.common.errors import InputError
from harness.reporting.categories import categorize
from harness.reporting.headline import (
    OUTCOME_WORDS,
    RESULT_FILE,
    SUMMARY_FILE,
    accepted,
    config_module,
    gate_results,
    read_verdict,
    report_name,
    run_of,
    verdict_result,
    write_verdict_result,
)
from harness.reporting.render import forget_run

LOCK = {"run_id": "r1", "target": {"name": "local-openclaw", "kind": "openclaw"},
        "known_good": {"version": "2026.3.28"}, "candidate": {"version": "2026.4.1"}}


def verdict(outcome: str, code: int, lock: dict[str, Any] | None = LOCK,
            **more: Any) -> dict[str, Any]:
    return {"outcome": outcome, "exit_code": code, "started": 100.0, "ended": 160.5,
            "lock": lock, "claim": f"the claim of a {outcome} run", **more}


@pytest.mark.parametrize(("given", "name"), [
    (verdict("rolled_back", 10), "local-openclaw 2026.3.28 -> 2026.4.1: rolled back (exit 10)"),
    (verdict("passed", 0), "local-openclaw 2026.3.28 -> 2026.4.1: passed (exit 0)"),
    (verdict("backup_no_go", 15), "local-openclaw 2026.3.28 -> 2026.4.1: backup no-go (exit 15)"),
    (verdict("soak_failed", 13, {**LOCK, "attached": {"package": "openclaw"}},
             attached={"before": {"version": "2026.3.28"}}),
     "local-openclaw openclaw 2026.3.28 (attached): soak failed (exit 13)"),
    (verdict("aborted", 12, None), "run-7: aborted (exit 12)"),  # stopped before its lock
    (verdict("a_new_outcome", 3), "local-openclaw 2026.3.28 -> 2026.4.1: a new outcome (exit 3)"),
    (None, "run-7: no verdict (the run did not finish)"),
])
def test_the_reports_name_says_target_versions_and_outcome(
        given: dict[str, Any] | None, name: str) -> None:
    assert report_name(given, "run-7") == name


@pytest.mark.parametrize("outcome", [*OUTCOME_WORDS, None])
def test_the_verdict_result_fails_unless_the_release_was_accepted(outcome: str | None) -> None:
    given = None if outcome is None else verdict(outcome, 0 if outcome == "passed" else 10)
    result = verdict_result(given, "run-7", summary="## summary")
    assert result["status"] == ("passed" if outcome == "passed" else "failed")
    assert accepted(given) is (outcome == "passed")
    message = result["statusDetails"]["message"]
    if outcome == "passed":
        assert message == "release accepted: passed (exit 0)"
        assert categorize("passed", message) is None
    else:
        assert message.startswith("release not accepted: ")
        # filed as the verdict, never as one of the failures it sums up
        assert categorize("failed", message) == "Release not accepted"
    labels = {(label["name"], label["value"]) for label in result["labels"]}
    assert {("tag", "release-verdict"), ("run", "run-7"), ("feature", "verdict")} <= labels
    assert result["description"].startswith(f"**{report_name(given, 'run-7')}**: release ")
    claim = "No claim: the run folder holds no verdict.json" if outcome is None \
        else f"the claim of a {outcome} run"
    assert claim in result["description"]
    assert result["attachments"] == [{"name": "summary.md", "source": SUMMARY_FILE,
                                      "type": "text/markdown"}]
    # the same test in every run (its own history), a result of its own in each
    assert result["historyId"] == verdict_result(None, "run-8")["historyId"]
    assert result["uuid"] != verdict_result(given, "run-8")["uuid"]


def test_the_verdict_result_spans_the_run_and_replaces_an_earlier_one(tmp_path: Path) -> None:
    (tmp_path / "summary.md").write_text("## the summary\n")
    write_verdict_result(tmp_path, verdict("rolled_back", 10), "copied-from", tmp_path / "none")
    path = write_verdict_result(tmp_path, verdict("rolled_back", 10), "r1",
                                tmp_path / "summary.md")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [RESULT_FILE, SUMMARY_FILE, "summary.md"])
    result = json.loads(path.read_text())
    assert ("run", "r1") in {(label["name"], label["value"]) for label in result["labels"]}
    assert (result["start"], result["stop"]) == (100_000, 160_500)
    assert (tmp_path / SUMMARY_FILE).read_text() == "## the summary\n"
    write_verdict_result(tmp_path, verdict("rolled_back", 10), "r1", tmp_path / "gone.md")
    assert not (tmp_path / SUMMARY_FILE).exists()
    assert json.loads(path.read_text())["attachments"] == []


@pytest.mark.parametrize(("text", "where"), [
    ("{not json", "verdict.json: not a readable verdict"),
    ("[]", "verdict.json: not a verdict (expected a JSON object)"),
    ('{"exit_code": 10}', "verdict.json: outcome: missing or not a string"),
    ('{"outcome": "rolled_back"}', "verdict.json: exit_code: missing or not an integer"),
    ('{"outcome": "passed", "exit_code": 0, "lock": "x"}', "verdict.json: lock: not an object"),
])
def test_a_malformed_verdict_is_refused_naming_file_and_key(
        tmp_path: Path, text: str, where: str, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "verdict.json").write_text(text)
    with pytest.raises(InputError, match="^" + re.escape(f"{tmp_path}/{where}")):
        read_verdict(tmp_path)
    (tmp_path / "allure-results").mkdir()
    assert cli(["--cache", str(tmp_path / "cache"), "report", str(tmp_path)]) == 20
    err = capsys.readouterr().err
    assert err.startswith(f"harness: error: {tmp_path}/{where}") and err.count("\n") == 1


def test_a_run_without_a_verdict_has_none_and_is_not_accepted(tmp_path: Path) -> None:
    assert read_verdict(tmp_path) is None and not accepted(None)


def entry(name: str, run: str | None, timestamp: int) -> str:
    """A history line as Allure writes it: the run's test results, the verdict's among them."""
    results: dict[str, Any] = {"h-health": {"labels": [{"name": "epic", "value": "t"}]}}
    if run is not None:
        results["h-verdict"] = {"labels": [{"name": "tag", "value": "release-verdict"},
                                           {"name": "run", "value": run}]}
    return json.dumps({"uuid": f"u{timestamp}", "name": name, "timestamp": timestamp,
                       "testResults": results})


def test_a_run_is_known_in_the_history_by_its_verdict_not_by_its_shared_name(
        tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    assert forget_run(history, "a") == 0  # no history yet: nothing to do
    same = "local-openclaw 2026.3.28 -> 2026.4.1: rolled back (exit 10)"
    lines = [entry(same, "a", 1), "not json, left as it was", entry(same, "b", 2),
             entry("Release acceptance a", None, 3),  # written before the verdict result
             entry("Release acceptance c", None, 4), entry(same, "a", 5)]
    assert [run_of(json.loads(line)) for line in lines if line[0] == "{"] == [
        "a", "b", None, None, "a"]
    history.write_text("\n".join(lines) + "\n")
    assert forget_run(history, "a") == 3
    assert history.read_text().splitlines() == [lines[1], lines[2], lines[4]]
    assert forget_run(history, "d") == 0
    assert history.read_text().splitlines() == [lines[1], lines[2], lines[4]]


def test_the_config_module_is_the_config_and_the_release_gate() -> None:
    config = {"name": "local-openclaw 2026.3.28 -> 2026.4.1: rolled back (exit 10)",
              "historyPath": "/reports/history.jsonl"}
    module = config_module(config)
    body = module.split("const config = ", 1)[1].split(";\nconfig.qualityGate", 1)[0]
    assert json.loads(body) == config
    assert 'id: "release-accepted"' in module
    assert 'l.name === "tag" && l.value === "release-verdict"' in module
    assert "minTestsCount: 1," in module and "maxFailures: 0," in module
    assert module.endswith("export default config;\n")


def test_the_gate_is_read_from_what_allure_wrote(tmp_path: Path) -> None:
    assert gate_results(tmp_path) == []  # nothing rendered
    rules = [{"rule": "release-accepted/maxFailures", "success": False},
             {"rule": "other/maxFailures", "success": True}, "not a rule"]
    (tmp_path / "quality-gate.json").write_text(json.dumps(rules))
    assert gate_results(tmp_path) == rules[:1]
