"""The safety steps on a state dir of their own: backups retaken when the state moved, the lock
refusing, and what a refusal before any change does to the run's outcome and claim."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from harness.common.errors import ExitCode
from harness.judge.policy import load_policy
from harness.procedure.gate import RestartGate
from harness.procedure.records import RollbackPath
from harness.procedure.run import RunRecord, RunSettings, build_verdict
from harness.procedure.safety import Safety
from harness.soak.scenarios import load_scenarios
from harness.targets.profile import load_target
from harness.targets.registry import Release
from harness.targets.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
CANDIDATE = Release("openclaw", "latest", "2026.4.1", "sha512-AAAA", None)
KNOWN = Release("openclaw", "2026.3.28", "2026.3.28", "sha512-BBBB", None)


def safety(tmp_path: Path, resolve=None) -> tuple[Safety, RunRecord, Path]:
    state = tmp_path / "state"
    for rel, text in {"openclaw.json": "{}", "agents/main/sessions/s.jsonl": "one\n",
                      "agents/main/agent/auth-profiles.json": "{}"}.items():
        (state / rel).parent.mkdir(parents=True, exist_ok=True)
        (state / rel).write_text(text)
    policy = load_policy(ROOT / "scenarios" / "policy.toml")
    settings = RunSettings(
        run_id="t", run_dir=tmp_path / "run", cache_dir=tmp_path / "cache",
        target=load_target(ROOT / "scenarios" / "targets" / "local-openclaw.toml"),
        policy=policy, scenarios=load_scenarios(ROOT / "scenarios" / "soak"),
        known_good=KNOWN, candidate=CANDIDATE, soak=policy.soak, watch=policy.watch,
        restart_gate="auto")
    record = RunRecord()
    # no target CLI here: the harness archives the state dir itself
    gateway = SimpleNamespace(state_dir=state, run_cli=None)
    made = Safety(settings, record, Runtime(tmp_path / "runtime"), None,  # type: ignore[arg-type]
                  gateway, tmp_path / "backups", RestartGate("auto", tmp_path / "run", 5),  # type: ignore[arg-type]
                  resolve)
    return made, record, state


def test_a_backup_the_state_outgrew_is_taken_again_before_the_interruption(
        tmp_path: Path) -> None:
    steps, record, state = safety(tmp_path)
    assert steps.backup("pre-upgrade", decides=True).posture == "full"
    assert steps.refresh("pre-upgrade").retaken is False
    (state / "agents/main/sessions/s.jsonl").write_text("one\ntwo, while a person decided\n")
    again = steps.refresh("pre-upgrade")
    assert again.retaken and again.kept_posture
    assert again.changed == {"changed": ["agents/main/sessions/s.jsonl"]}
    backup = steps.backup_of("pre-upgrade")
    assert backup is not None and steps.refresh("pre-upgrade").retaken is False
    assert [r["retaken"] for r in record.as_dict()["backup_refreshes"]] == [False, True, False]


def test_a_moved_candidate_halts_the_run_before_any_change(tmp_path: Path) -> None:
    moved = replace(CANDIDATE, version="2026.4.2", integrity="sha512-CCCC")
    steps, record, _ = safety(tmp_path, lambda p, spec, o: moved if spec == "latest" else KNOWN)
    assert not steps.lock_holds("stop").ok
    assert record.outcome() == ("stale_lock", ExitCode.STALE_LOCK)
    verdict = build_verdict(record, steps.settings.lock())
    assert verdict["claim"].startswith("Backup posture: none taken (no backup phase ran). No "
                                       "claim about latest -> 2026.4.1: review is stale")
    assert verdict["claim"].endswith("Stopped before any change; 2026.3.28 was left serving.")


def test_a_refusal_after_a_change_does_not_hide_the_rollback(tmp_path: Path) -> None:
    moved = replace(CANDIDATE, version="2026.4.2", integrity="sha512-CCCC")
    steps, record, _ = safety(tmp_path, lambda p, spec, o: moved if spec == "latest" else KNOWN)
    record.changed = True
    assert not steps.lock_holds("rollback", refuse=False).ok
    assert record.halted is None  # a rollback is never refused, and never halts
    steps.record.halt("no_approval", ExitCode.NO_APPROVAL, "x")
    assert record.halted is None  # after a change a halt cannot replace the real outcome


def test_a_posture_below_full_halts_unless_accepted(tmp_path: Path) -> None:
    steps, record, _ = safety(tmp_path)
    target = replace(steps.settings.target, state=replace(steps.settings.target.state,
                                                          paths={"config": ["openclaw.json"]}))
    steps.taker.spec = target.state
    assessed = steps.backup("pre-upgrade", decides=True)
    assert assessed.posture == "config-only"
    assert record.outcome()[:2] == ("backup_no_go", ExitCode.BACKUP_NO_GO)
    assert build_verdict(record, steps.settings.lock())["claim"].startswith(
        "Backup posture config-only (degraded): harness archive, 3 files, every SHA-256")


def not_approved_rollback(tmp_path: Path, deny: bool) -> dict:
    """A run whose candidate failed its soak and whose rollback gate got no approval: a real
    manual gate, left unanswered (or refused by a person)."""
    import threading
    import time

    from harness.procedure.gate import REQUEST, answer
    from harness.procedure.run import PhaseOutcome

    def refuse() -> None:
        deadline = time.monotonic() + 10
        while not (tmp_path / REQUEST).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        answer(tmp_path, "ops-carol", deny=True, reason="peak hours")

    if deny:
        threading.Thread(target=refuse, daemon=True).start()
    decision = RestartGate("manual", tmp_path, 10 if deny else 0.3, poll_s=0.05).ask(
        "stop the candidate and start the known-good version", {})
    record = RunRecord(changed=True, rollback_started=True)
    record.phases = [PhaseOutcome(f, n, o, 1.0) for f, n, o in (
        ("upgrade", "health", "passed"), ("soak", "soak_policy", "failed"),
        ("rollback", "rollback_backup", "passed"), ("rollback", "rollback_prepare", "passed"),
        ("rollback", "rollback_restart_gate", "failed"),
        ("rollback", "rollback_restore", "skipped"))]
    approved = RestartGate("auto", tmp_path, 1).ask("stop the known-good", {})
    record.restarts = [approved, decision]
    record.rollback.path = RollbackPath({}, "kept prefix", "prefix switch: the kept known-good "
                                        "prefix, no download")
    record.final_state = {"serving": True, "version": "2026.4.1"}
    lock = {"candidate": {"version": "2026.4.1"}, "known_good": {"version": "2026.3.28"},
            "policy": {"name": "p"}, "scenarios": {"ids": ["reply-plain"]},
            "gate_timeout_s": 10 if deny else 0.3}
    return build_verdict(record, lock)


def test_a_rollback_gate_without_approval_leaves_the_candidate_and_says_who_must_decide(
        tmp_path: Path) -> None:
    verdict = not_approved_rollback(tmp_path, deny=False)
    assert (verdict["outcome"], verdict["exit_code"]) == ("rollback_failed", 11)
    assert ("2026.4.1 failed soak_policy on this host under policy 'p'; its rollback to "
            "2026.3.28 was prepared (prefix switch: the kept known-good prefix, no download) "
            "but not done: nobody approved its restart within 0.3 s at the manual restart "
            "gate, and without an approval the harness interrupts nothing. The failed 2026.4.1 "
            "kept serving until the run ended. The person who holds this run's restart gate "
            "must decide now: roll back to 2026.3.28, or keep the failed 2026.4.1 knowingly."
            ) in verdict["claim"]
    refused = not_approved_rollback(tmp_path, deny=True)
    assert "but not done: ops-carol refused its restart via harness approve (refused: peak " \
           "hours) at the manual restart gate" in refused["claim"]
