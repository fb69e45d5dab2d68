"""The suite runs its phases in procedure order, and the run's outcome follows from them."""

import subprocess
import sys
from pathlib import Path

import pytest

from harness.common.errors import ExitCode
from harness.procedure.records import SoakRecord
from harness.procedure.run import PhaseOutcome, RunRecord

ROOT = Path(__file__).resolve().parents[1]

UPGRADE = ["preflight", "backup", "baseline", "install", "restart_gate", "stop", "start",
           "health"]
ROLLBACK = ["rollback_backup", "rollback_prepare", "rollback_restart_gate", "rollback_restore",
            "rollback_start", "rollback_smoke", "rollback_watch", "rollback_late_watch"]


@pytest.mark.e2e  # collecting the suite resolves both versions in the real npm registry
def test_collected_order_is_upgrade_then_soak_then_rollback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios", "--collect-only", "-q",
         "--run-dir", str(tmp_path / "run")],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = [line.split("::")[1] for line in proc.stdout.splitlines() if "::" in line]
    expected = ([f"test_{p}" for p in UPGRADE]
                # one soak test per scenario file entry, files in name order
                + ["test_soak[panel-3-reviewers]", "test_soak[reply-plain]",
                   "test_soak[reply-quick]", "test_soak[reply-streaming]",
                   "test_soak[triage-then-answer]", "test_soak_policy",
                   "test_soak_log_source"]
                + [f"test_{p}" for p in ROLLBACK])
    assert names == expected


def record(*phases: tuple[str, str, str], changed: bool = True,
           rollback: bool = False) -> RunRecord:
    rec = RunRecord(changed=changed, rollback_started=rollback)
    rec.phases = [PhaseOutcome(family, name, outcome, 0.0) for family, name, outcome in phases]
    return rec


@pytest.mark.parametrize(("rec", "outcome", "code"), [
    (record(("upgrade", "health", "passed"), ("soak", "soak_policy", "passed")),
     "passed", ExitCode.PASSED),
    (record(("upgrade", "preflight", "failed"), changed=False), "aborted", ExitCode.ABORTED),
    (record(("soak", "soak_policy", "failed"), ("rollback", "rollback_watch", "passed"),
            rollback=True), "rolled_back", ExitCode.ROLLED_BACK),
    (record(("soak", "soak_policy", "failed"), ("rollback", "rollback_watch", "failed"),
            rollback=True), "rollback_failed", ExitCode.ROLLBACK_FAILED),
    (record(("upgrade", "start", "failed")), "rollback_failed", ExitCode.ROLLBACK_FAILED),
    (record(("soak", "soak_policy", "failed"), changed=False), "soak_failed",
     ExitCode.SOAK_FAILED),
])
def test_outcomes(rec: RunRecord, outcome: str, code: int) -> None:
    assert rec.outcome() == (outcome, code)


def test_rollback_is_needed_only_after_a_change() -> None:
    assert not record(("upgrade", "preflight", "failed"), changed=False).needs_rollback()
    assert record(("upgrade", "start", "failed")).needs_rollback()
    assert not record(("upgrade", "start", "passed")).needs_rollback()


def test_a_soak_alone_claims_nothing_about_the_candidate() -> None:
    from harness.procedure.run import build_verdict

    rec = record(("soak", "soak_policy", "passed"), changed=False)
    rec.final_state = {"serving": True, "version": "2026.3.28"}
    lock = {"candidate": {"version": "2026.4.1"}, "known_good": {"version": "2026.3.28"},
            "policy": {"name": "p"}}
    claim = build_verdict(rec, lock)["claim"]
    assert claim.startswith("Backup posture: none taken (no backup phase ran). The running "
                            "2026.3.28 passed the soak")
    assert "2026.4.1" not in claim


def test_an_accepted_inconclusive_soak_is_said_to_be_inconclusive() -> None:
    from harness.procedure.run import build_verdict

    rec = record(("upgrade", "health", "passed"), ("soak", "soak_policy", "passed"),
                 ("soak", "soak[reply-plain]", "skipped"))
    rec.soaks["soak"] = SoakRecord("soak", verdict={"verdict": "inconclusive", "scenarios": {
        "reply-plain": {"verdict": "inconclusive"}, "reply-quick": {"verdict": "pass"}}})
    lock = {"candidate": {"version": "2026.4.1"}, "known_good": {"version": "2026.3.28"},
            "policy": {"name": "p"}, "scenarios": {"ids": ["reply-plain", "reply-quick"]}}
    verdict = build_verdict(rec, lock)
    assert verdict["outcome"] == "passed"
    assert "inconclusive on reply-plain" in verdict["claim"]
    assert "accepted" in verdict["claim"]
