"""The verdict as the report's headline: its name, and a result Allure's quality gate judges.

A person opening the report decides on the release, so its first screen says the verdict:
- the report's name carries target, versions, outcome and exit code
  (`local-openclaw 2026.3.28 -> 2026.4.1: rolled back (exit 10)`);
- the run's decision is a test result of its own, "release verdict" (failed unless the outcome
  is `passed`, the claim as its description, summary.md attached, in the target's "verdict"
  group), and the quality gate `release-accepted` selects it by its tag and fails when it
  failed or is missing. Allure itself evaluates that gate (`allure run`,
  harness/reporting/render.py),
  so the gate in the report and the job's exit code say the same thing.

The verdict result is written by the renderer from the run's verdict.json and summary.md,
which the run redacted when it wrote them. A run folder without a verdict.json (the run died
before its end) gets a failed verdict that says so: no verdict, no acceptance.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from harness.common.errors import InputError

VERDICT_TAG = "release-verdict"  # the tag the gate's filter selects the verdict result by
GATE_ID = "release-accepted"
RUN_LABEL = "run"  # the run a verdict result (and so a history entry) belongs to
# constant names: rendering again (or a copy of an already rendered run) overwrites them
RESULT_FILE = "release-verdict-result.json"
SUMMARY_FILE = "release-verdict-summary-attachment.md"

OUTCOME_WORDS = {
    "passed": "passed", "rolled_back": "rolled back", "rollback_failed": "rollback failed",
    "aborted": "aborted", "soak_failed": "soak failed", "stale_lock": "stale lock",
    "backup_no_go": "backup no-go", "no_approval": "no approval",
}


def read_verdict(run_dir: Path) -> dict[str, Any] | None:
    """The run's verdict.json; None when the run wrote none. A file that is not a verdict
    is refused with one line naming it and the key."""
    path = run_dir / "verdict.json"
    try:
        verdict = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(str(path), "", f"not a readable verdict: {exc}") from None
    if not isinstance(verdict, dict):
        raise InputError(str(path), "", "not a verdict (expected a JSON object)")
    if not isinstance(verdict.get("outcome"), str):
        raise InputError(str(path), "outcome", "missing or not a string")
    if not isinstance(verdict.get("exit_code"), int):
        raise InputError(str(path), "exit_code", "missing or not an integer")
    if not isinstance(verdict.get("lock"), dict | None):
        raise InputError(str(path), "lock", "not an object")
    return verdict


def accepted(verdict: dict[str, Any] | None) -> bool:
    """Whether the run accepted the release: only the outcome `passed` does."""
    return verdict is not None and verdict["outcome"] == "passed"


def outcome_line(verdict: dict[str, Any] | None) -> str:
    if verdict is None:
        return "no verdict (the run did not finish)"
    words = OUTCOME_WORDS.get(verdict["outcome"], verdict["outcome"].replace("_", " "))
    return f"{words} (exit {verdict['exit_code']})"


def subject(verdict: dict[str, Any] | None, run_id: str) -> str:
    """What the run judged: target and versions, or the deployment soaked as found."""
    lock = (verdict or {}).get("lock") or {}
    target = (lock.get("target") or {}).get("name")
    if not target:
        return run_id
    attached = lock.get("attached")
    if attached:
        found = ((verdict or {}).get("attached") or {}).get("before") or {}
        return (f"{target} {attached.get('package', '')} "
                f"{found.get('version') or '(version unknown)'} (attached)").replace("  ", " ")
    known_good = (lock.get("known_good") or {}).get("version", "?")
    candidate = (lock.get("candidate") or {}).get("version", "?")
    return f"{target} {known_good} -> {candidate}"


def report_name(verdict: dict[str, Any] | None, run_id: str) -> str:
    """The report's name, its first line: `local-openclaw 2026.3.28 -> 2026.4.1: rolled back
    (exit 10)`."""
    return f"{subject(verdict, run_id)}: {outcome_line(verdict)}"


def verdict_result(verdict: dict[str, Any] | None, run_id: str,
                   summary: str | None = None) -> dict[str, Any]:
    """The run's verdict as an Allure result (Allure's result-file format)."""
    lock = (verdict or {}).get("lock") or {}
    target = (lock.get("target") or {}).get("name") or "release"
    ok = accepted(verdict)
    decision = "release accepted" if ok else "release not accepted"
    if verdict is None:
        claim = ("No claim: the run folder holds no verdict.json, so the run did not finish "
                 "(it was stopped or died) and nothing was judged.")
        start = stop = 0
    else:
        claim = str(verdict.get("claim") or "No claim was written.")
        start = int(float(verdict.get("started") or 0) * 1000)
        stop = int(float(verdict.get("ended") or verdict.get("started") or 0) * 1000)
    result: dict[str, Any] = {
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"release-verdict:{run_id}")),
        "historyId": "harness.release_verdict", "testCaseId": "harness.release_verdict",
        "name": "release verdict", "fullName": "harness.release_verdict",
        "status": "passed" if ok else "failed",
        "statusDetails": {"message": f"{decision}: "
                          + (f"{verdict['outcome']} (exit {verdict['exit_code']})"
                             if verdict is not None else outcome_line(None))},
        "description": f"**{report_name(verdict, run_id)}**: {decision}.\n\n{claim}",
        "start": start, "stop": stop,
        "labels": [{"name": "epic", "value": target}, {"name": "feature", "value": "verdict"},
                   {"name": "tag", "value": VERDICT_TAG}, {"name": RUN_LABEL, "value": run_id},
                   {"name": "severity", "value": "blocker"}],
        "attachments": [],
    }
    if summary is not None:
        result["attachments"].append({"name": "summary.md", "source": SUMMARY_FILE,
                                      "type": "text/markdown"})
    return result


def write_verdict_result(results: Path, verdict: dict[str, Any] | None, run_id: str,
                         summary: Path | None = None) -> Path:
    """Write the verdict result (and summary.md as its attachment) into `results`."""
    text = summary.read_text() if summary is not None and summary.is_file() else None
    if text is not None:
        (results / SUMMARY_FILE).write_text(text)
    else:
        (results / SUMMARY_FILE).unlink(missing_ok=True)
    path = results / RESULT_FILE
    path.write_text(json.dumps(verdict_result(verdict, run_id, text), indent=2))
    return path


def run_of(entry: Any) -> str | None:
    """The run an Allure history entry belongs to: its verdict result's run label."""
    if not isinstance(entry, dict) or not isinstance(entry.get("testResults"), dict):
        return None
    for item in entry["testResults"].values():
        labels = item.get("labels") if isinstance(item, dict) else None
        if not isinstance(labels, list):
            continue
        pairs = {(label.get("name"), label.get("value")) for label in labels
                 if isinstance(label, dict)}
        if ("tag", VERDICT_TAG) in pairs:
            return next((value for name, value in pairs if name == RUN_LABEL), None)
    return None


# The gate's filter is a function, so Allure 3 needs the config as a JS module.
GATE_JS = """config.qualityGate = {
  rules: [{
    id: %(gate)s,
    // the run's own verdict result, selected by its tag
    filter: (tr) => (tr.labels || []).some((l) => l.name === "tag" && l.value === %(tag)s),
    minTestsCount: 1,  // no verdict result, no acceptance
    maxFailures: 0,    // a failed verdict (any outcome but passed) fails the gate
  }],
};
"""


def config_module(config: dict[str, Any]) -> str:
    """Allure 3's config (`allurerc.mjs`): `config` and the quality gate `release-accepted`."""
    return ("// Allure 3's config for this run's report, written by the harness "
            "(harness/reporting/render.py).\n"
            f"const config = {json.dumps(config, indent=2)};\n"
            + GATE_JS % {"gate": json.dumps(GATE_ID), "tag": json.dumps(VERDICT_TAG)}
            + "export default config;\n")


def gate_results(html: Path) -> list[dict[str, Any]]:
    """The results of the gate `release-accepted` as Allure wrote them into the report."""
    path = html / "quality-gate.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(results, list):
        return []
    return [r for r in results
            if isinstance(r, dict) and str(r.get("rule", "")).startswith(f"{GATE_ID}/")]
