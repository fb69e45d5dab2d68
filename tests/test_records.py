"""The run's typed records: each serialises under the verdict.json key the facts dict had, the
claim read from fields says what the claim read from strings said, and the procedure shows its
evidence through the port alone (here one that keeps it in memory)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.judge.policy import load_policy
from harness.procedure.backup import Backup
from harness.procedure.evidence import KeptEvidence
from harness.procedure.gate import Decision, RestartGate
from harness.procedure.lock import LockCheck
from harness.procedure.phases import PhaseResult, Procedure, report_phase
from harness.procedure.posture import Assessment, Attempt
from harness.procedure.records import (
    AttachedRecord,
    NodeFit,
    Refresh,
    RollbackPath,
    SoakRecord,
    UpdaterRecord,
)
from harness.procedure.run import PhaseOutcome, RunRecord, RunSettings, build_verdict
from harness.soak.scenarios import load_scenarios
from harness.targets.groundtruth import InstallFindings, ReportedPath, ReportJudgement
from harness.targets.profile import load_target
from harness.targets.registry import Release
from harness.targets.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
# verdicts the code before the typed records wrote (its facts dict), for the cases below
BEFORE = json.loads((ROOT / "tests" / "data" / "verdicts-from-facts.json").read_text())
LOCK = {"candidate": {"version": "2026.4.1", "spec": "latest"},
        "known_good": {"version": "2026.3.28", "spec": "2026.3.28"}, "policy": {"name": "p"},
        "scenarios": {"ids": ["reply-plain", "reply-quick"]}, "gate_timeout_s": 30}
ATTACHED = {"unit": "openclaw-gateway.service", "host": "staging-1", "package": "openclaw",
            "url": "http://127.0.0.1:18789"}
REFUSED = Decision("stop the candidate", "manual", False, "ops-carol", "harness approve", "ab12",
                   100.0, 112.5, "refused: peak hours", {})
JUDGED = ReportJudgement("openclaw", "2026.3.28", [ReportedPath(
    "dist/x.js", "missing dist/x.js", True, True, True, "benign", "identical")], 40)


def posture() -> Assessment:
    backup = Backup("pre-upgrade", Path("/b/pre-upgrade.tar.gz"),
                    {"openclaw.json": "aa", "agents/main/sessions/s.jsonl": "bb"}, "cc", 1.0)
    return Assessment("pre-upgrade", "full", backup, [Attempt(
        "full", "harness archive", True, "test restore matched every SHA-256",
        "pre-upgrade.tar.gz", 2, 0.1)], {
        "config": {"declared": ["openclaw.json"], "covered": True, "files": 1, "archived": 1,
                   "why": ""},
        "channels": {"declared": [], "covered": True, "applies": False, "files": 0,
                     "archived": 0, "why": "does not apply: none"}})


def rec(*phases: tuple[str, str, str, str], changed: bool = True,
        rollback: bool = False) -> RunRecord:
    made = RunRecord(changed=changed, rollback_started=rollback)
    made.phases = [PhaseOutcome(f, n, o, 1.0, why) for f, n, o, why in phases]
    return made


def inconclusive(*paths: str, passed: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"verdict": "inconclusive", "scenarios": {
        **{p: {"verdict": "inconclusive"} for p in paths},
        **{p: {"verdict": "pass"} for p in passed}}}


SOAKED = (("upgrade", "health", "passed", ""), ("soak", "soak_policy", "failed", "x"))


def passed_inconclusive_accepted_by_a_person() -> tuple[RunRecord, dict]:
    r = rec(("upgrade", "health", "passed", ""), ("soak", "soak_policy", "passed", ""))
    r.backups.posture = posture()
    r.soaks["soak"] = SoakRecord("soak", verdict=inconclusive("reply-plain",
                                                              passed=("reply-quick",)),
                                 inconclusive_decision={"by": "ops-dana", "approved": True})
    return r, LOCK


def rolled_back_by_the_updater() -> tuple[RunRecord, dict]:
    r = rec(*SOAKED, ("rollback", "rollback_watch", "passed", ""),
            ("rollback", "rollback_late_watch", "passed", ""), rollback=True)
    r.backups.posture = posture()
    r.installs.updater = UpdaterRecord(True, "s", verifier=JUDGED)
    r.soaks["watch"] = SoakRecord("watch", {"delay_s": 0.0}, {"verdict": "pass"})
    r.soaks["late_watch"] = SoakRecord("late_watch", {"delay_s": 20.0}, {"verdict": "pass"})
    return r, LOCK


def rollback_watch_failed() -> tuple[RunRecord, dict]:
    r = rec(*SOAKED, ("rollback", "rollback_watch", "failed", "reply-plain: 1 bad"),
            rollback=True)
    r.installs.updater = UpdaterRecord(True, "s", verifier=ReportJudgement(
        "openclaw", "2026.3.28", [], 3))
    r.restarts = [REFUSED]  # refused, but the gate was not the step that failed
    return r, LOCK


def rollback_refused() -> tuple[RunRecord, dict]:
    r = rec(*SOAKED, ("rollback", "rollback_restart_gate", "failed", "not approved"),
            rollback=True)
    r.backups.posture = posture()
    r.restarts = [REFUSED]
    r.rollback.path = RollbackPath({}, "download", "reinstall from the registry (download, "
                                                   "12 s)")
    r.final_state = {"serving": False, "version": "2026.4.1"}
    return r, LOCK


def attached_left_as_found() -> tuple[RunRecord, dict]:
    r = rec(("soak", "soak_policy", "passed", ""), changed=False)
    r.attached = AttachedRecord(ATTACHED, {
        "version": "2026.3.28", "main_pid": 42, "active_since": "Tue 2026-12-01",
        "notes": ["the unit names 2026.3.27"]}, {"version": "2026.3.28"}, [],
        left_as_found=True)
    r.soaks["soak"] = SoakRecord("soak", verdict=inconclusive("reply-plain"))
    return r, {**LOCK, "attached": ATTACHED}


def attached_changed() -> tuple[RunRecord, dict]:
    r = rec(("soak", "soak_policy", "failed", "x"), changed=False)
    r.attached = AttachedRecord(ATTACHED, {"version": None, "main_pid": 42,
                                           "active_since": "Tue"},
                                changes=["MainPID 42 -> 43"], left_as_found=False)
    return r, {**LOCK, "attached": ATTACHED}


def attached_not_read_again() -> tuple[RunRecord, dict]:
    r = rec(("soak", "soak_policy", "passed", ""), changed=False)
    r.attached = AttachedRecord(ATTACHED, {"version": "2026.3.28", "main_pid": 42,
                                           "active_since": "Tue"},
                                after_error="unreachable", left_as_found=False)
    return r, {**LOCK, "attached": ATTACHED}


def interrupted_guard() -> tuple[RunRecord, dict]:
    r = rec(("upgrade", "start", "passed", ""))
    r.interruption = {"by": "lease lost", "during": "test_health",
                      "signals": [{"signal": "SIGTERM"}]}
    r.after_interruption.guard = {"proven": True, "summary": "restored 2026.3.28"}
    r.final_state = {"serving": True, "version": "2026.3.28", "proven": True,
                     "after_run": "then stopped with the run"}
    return r, LOCK


def interrupted_after_the_candidate_was_proven() -> tuple[RunRecord, dict]:
    r = rec(("upgrade", "health", "passed", ""), ("soak", "soak_policy", "passed", ""))
    r.interruption = {"by": "SIGINT", "during": "test_rollback_backup", "signals": []}
    r.final_state = {"serving": True, "version": "2026.4.1", "proven": True}
    return r, LOCK


def aborted() -> tuple[RunRecord, dict]:
    r = rec(("upgrade", "preflight", "failed", "x"), changed=False)
    r.installs.node["candidate"] = NodeFit("2026.4.1", ">=22", "22.1.0", True)
    return r, LOCK


def error_before_a_backup() -> tuple[RunRecord, dict]:
    r = rec()
    r.error = "npm exploded"
    return r, LOCK


def error_after_a_backup() -> tuple[RunRecord, dict]:
    r = rec(("upgrade", "backup", "passed", ""))
    r.error = "npm exploded"
    r.backups.posture = posture()
    return r, LOCK


CASES = [passed_inconclusive_accepted_by_a_person, rolled_back_by_the_updater,
         rollback_watch_failed, rollback_refused, attached_left_as_found, attached_changed,
         attached_not_read_again, interrupted_guard, interrupted_after_the_candidate_was_proven,
         aborted, error_before_a_backup, error_after_a_backup]
# written in full from the same objects before and now (the two others were partial there)
COMPARED = ("backup_posture", "soak", "watch", "late_watch", "restart_decisions", "attached",
            "interruption", "node", "lock", "phases", "final_state", "error")


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_the_claim_from_typed_records_is_the_claim_the_facts_gave(case: Any) -> None:
    record, lock = case()
    now = json.loads(json.dumps(build_verdict(record, lock), default=str))
    before = BEFORE[case.__name__]
    assert (now["outcome"], now["exit_code"]) == (before["outcome"], before["exit_code"])
    assert now["claim"] == before["claim"]
    assert set(now) - {"started", "ended"} == set(before)
    for key in COMPARED:
        assert now.get(key) == before.get(key), key


def test_a_container_is_named_by_its_own_identity_in_the_claim() -> None:
    from harness.targets.docker import DOCKER_LABELS

    record, lock = attached_left_as_found()
    record.attached.before = {"version": "2026.3.28", "container_id": "3f2a", "main_pid": 7,
                              "active_since": "2026-12-01T03:00:00Z", "labels": DOCKER_LABELS}
    claim = build_verdict(record, lock)["claim"]
    assert "container id 3f2a, PID 7, started 2026-12-01T03:00:00Z" in claim
    assert "left as found (same container id, PID and start time, serving)" in claim
    assert "MainPID" not in claim


def test_the_cases_cover_every_claim_before() -> None:
    assert {c.__name__ for c in CASES} == set(BEFORE)


def findings(version: str = "2026.3.28") -> InstallFindings:
    return InstallFindings("openclaw", version, "sha512-A", "/p", version, 10,
                           extra=["x"], unchanged=4)


def test_each_record_is_written_under_its_old_key_in_its_old_shape() -> None:
    record = RunRecord()
    assert build_verdict(record, None).keys() == {
        "outcome", "exit_code", "error", "started", "ended", "lock", "phases", "final_state",
        "claim"}  # nothing recorded, no key
    check = LockCheck("stop", 10.0, ["candidate moved"])
    record.locks.release = {"file": "release.lock.json", "locked_at": 1.0, "reused": False}
    record.locks.checks.append(check)
    record.backups.taken["pre-upgrade"] = record.backups.posture = posture()
    record.backups.refreshes += [Refresh("pre-upgrade"), Refresh(
        "pre-upgrade", True, {"changed": ["s.jsonl"]}, True, "full", True)]
    record.installs.ground_truth["known-good (preflight)"] = findings()
    record.installs.updater = UpdaterRecord(False, "could not run", error="OSError: gone")
    record.restarts.append(REFUSED)
    record.soaks["soak"] = SoakRecord("soak", {"window_s": 90, "stopped_by": None},
                                      {"verdict": "pass", "reasons": []}, {"trusted": True},
                                      {"requests": {}}, {"by": "ops-dana"})
    record.rollback.state_diff = {"missing": [], "added": [], "changed": []}
    record.guard.log = []
    facts = record.as_dict(None)
    assert facts == {
        "release_lock": {"file": "release.lock.json", "locked_at": 1.0, "reused": False},
        "lock_checks": [{"before": "stop", "at": 10.0, "ok": False,
                         "moved": ["candidate moved"], "error": None}],
        "ground_truth": {"known-good (preflight)": findings().as_dict()},
        "updater": {"used": False, "error": "OSError: gone", "summary": "could not run"},
        "backups": {"pre-upgrade": posture().as_dict()},
        "backup_posture": posture().as_dict(),
        "backup_refreshes": [
            {"label": "pre-upgrade", "checked": True, "changed": {}, "retaken": False},
            {"label": "pre-upgrade", "checked": True, "changed": {"changed": ["s.jsonl"]},
             "retaken": True, "posture": "full", "kept_posture": True}],
        "restart_decisions": [REFUSED.as_dict()],
        "soak": {"window_s": 90, "stopped_by": None, "log_source": {"trusted": True},
                 "verdict": {"verdict": "pass", "reasons": []},
                 "comparison": {"requests": {}}, "inconclusive_decision": {"by": "ops-dana"}},
        "rollback_state_diff": {"missing": [], "added": [], "changed": []},
        "guard": []}  # an empty guard log is still the guard's answer
    assert list(facts["soak"]) == ["window_s", "stopped_by", "log_source", "verdict",
                                   "comparison", "inconclusive_decision"]


def test_the_updater_its_run_and_the_interruption_keep_their_old_shape() -> None:
    used = UpdaterRecord(True, "benign", {"command": ["tool", "update"], "exit_code": 1},
                         JUDGED, findings())
    assert list(used.as_dict()) == ["command", "exit_code", "verifier", "ground_truth", "used",
                                    "summary"]
    assert used.as_dict()["verifier"] == JUDGED.as_dict() and used.named == 1
    path = RollbackPath({"path": "kept prefix", "prefix": "/p"}, "kept prefix",
                        "prefix switch: the kept known-good prefix, no download")
    assert path.as_dict() == {"path": "prefix switch: the kept known-good prefix, no download",
                              "prefix": "/p", "how": "kept prefix"}
    record = RunRecord()
    record.after_interruption.restore = {"proven": False}
    assert record.as_dict(None)["interruption"] == {"restore": {"proven": False}}
    signal = {"by": "SIGINT", "during": "test_soak_policy", "signals": []}
    assert record.as_dict(signal)["interruption"] == {**signal, "restore": {"proven": False}}
    assert "interruption" not in RunRecord().as_dict(None)


KNOWN = Release("openclaw", "2026.3.28", "2026.3.28", "sha512-BBBB", None)
CANDIDATE = Release("openclaw", "latest", "2026.4.1", "sha512-AAAA", None)


def procedure(tmp_path: Path, shown: KeptEvidence) -> Procedure:
    """A procedure on a real state dir and a real restart gate; the gateway is only asked
    where it serves (nothing here starts one)."""
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
    gateway = SimpleNamespace(state_dir=state, run_cli=None, pid=4242, is_serving=lambda: True,
                              endpoint=SimpleNamespace(base_url="http://127.0.0.1:18789"))
    return Procedure(settings, RunRecord(), Runtime(tmp_path / "runtime"), None,
                     gateway,  # type: ignore[arg-type]
                     gate=RestartGate("auto", tmp_path / "run", 5), evidence=shown)


def test_the_procedure_shows_its_evidence_through_the_port_it_was_given(
        tmp_path: Path) -> None:
    shown = KeptEvidence()
    steps = procedure(tmp_path, shown)
    backup = steps.backup()
    gate = steps.restart_gate("stop the known-good and start the candidate")
    assert backup.ok and gate.ok, (backup.summary, gate.summary)
    assert shown.steps() == [
        "phase backup", "back up the state (pre-upgrade): full first, test restore, posture",
        "phase restart gate (stop the known-good and start the candidate)",
        "restart gate (auto): stop the known-good and start the candidate"]
    [manifest] = shown.named("backup manifest (pre-upgrade)")
    assert manifest.steps == ("phase backup",) and manifest.kind == "json"
    assert set(manifest.body["manifest"]) == {"openclaw.json", "agents/main/sessions/s.jsonl",
                                              "agents/main/agent/auth-profiles.json"}
    [decision] = shown.named("restart decision (stop the known-good and start the candidate)")
    assert decision.body["by"] == "--restart-gate auto"
    assert decision.body["plan"]["backup"].startswith("backup posture full")
    assert [k.body["ok"] for k in shown.items if k.name.endswith(" result")] == [True, True]
    # what the port was shown, the records hold as fields
    record = steps.record
    assert record.backups.posture is not None and record.backups.posture.posture == "full"
    assert record.restarts[-1].approved and record.restarts[-1].channel == "auto"
    assert build_verdict(record, steps.safety.lock)["restart_decisions"][0]["approved"]


def test_a_phase_that_breaks_attaches_its_traceback_and_its_story_to_the_port(
        tmp_path: Path) -> None:
    shown = KeptEvidence()
    steps = procedure(tmp_path, shown)

    def broken() -> PhaseResult:
        raise FileNotFoundError("state/agents/quick/sessions/sessions.json.lock")

    result = steps._timed("rollback backup", broken)
    assert not result.ok and result.details == {"error": "FileNotFoundError"}
    [trace] = shown.named("rollback backup error")
    assert trace.kind == "text" and "FileNotFoundError" in trace.body
    assert trace.steps == ("phase rollback backup",)
    with pytest.raises(Exception, match="harness error in phase rollback backup"):
        report_phase(result, shown)
    assert [(k.kind, k.name, k.body) for k in shown.items if k.kind == "label"] == [
        ("label", "story", "rollback backup")]


# the keys of a real rolled-back run's verdict.json, as the facts dict wrote them (in order)
ROLLED_BACK_KEYS = [
    "outcome", "exit_code", "error", "started", "ended", "lock", "phases", "release_lock",
    "node", "ground_truth", "backups", "backup_posture", "baseline", "lock_checks",
    "restart_decisions", "backup_refreshes", "soak", "rollback_path", "rollback_state_diff",
    "smoke", "recovery", "watch", "late_watch", "guard", "final_state", "claim"]


def test_a_rolled_back_runs_keys_come_in_the_order_the_run_wrote_them() -> None:
    record = RunRecord(changed=True, rollback_started=True)
    record.guard.log = []  # recorded last of all, given first here: the order is the run's
    for label in ("late_watch", "watch", "smoke", "soak", "baseline"):
        record.soaks[label] = SoakRecord(label, verdict={"verdict": "pass"})
    record.rollback.recovery = {"seconds": 3.0}
    record.rollback.state_diff = {"missing": [], "added": [], "changed": []}
    record.rollback.path = RollbackPath({}, "kept prefix", "prefix switch")
    record.backups.refreshes.append(Refresh("pre-upgrade"))
    record.restarts.append(REFUSED)
    record.locks.checks.append(LockCheck("install", 1.0))
    record.backups.taken["pre-upgrade"] = record.backups.posture = posture()
    record.installs.ground_truth["known-good (preflight)"] = findings()
    record.installs.node["candidate"] = NodeFit("2026.4.1", None, "22.1.0", True)
    record.locks.release = {"file": "release.lock.json", "locked_at": 1.0, "reused": False}
    assert list(build_verdict(record, LOCK)) == ROLLED_BACK_KEYS
