"""A fleet member whose xdist worker died (harness.fleet.crash): what the ledger says at once,
what the fleet then decides, how the controller learns how the member's run ended, and what
the fleet's verdict says of it. Real ledger files and real processes for the member's run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.common.commands import alive
from harness.common.errors import ExitCode
from harness.fleet.crash import already_started, member_of, note_worker_death, settle
from harness.fleet.ledger import ROLL_BACK, Ledger, results
from harness.fleet.outcome import fleet_exit, may_start, not_reached
from harness.fleet.plan import FleetPlan, load_fleet
from harness.fleet.verdict import write_fleet_report
from harness.fleet.waves import word_for

ROOT = Path(__file__).resolve().parents[1]
OPENCLAW = ROOT / "scenarios" / "targets" / "local-openclaw.toml"


def plan_of(tmp_path: Path, names: tuple[str, ...] = ("canary", "a", "b", "c"),
            on_failure: str = "rollback-wave") -> FleetPlan:
    body = f'[fleet]\nname = "f"\non_failure = "{on_failure}"\nmax_parallel = 2\n'
    for i, name in enumerate(names):
        body += f'[[members]]\nname = "{name}"\ntarget = "{OPENCLAW}"\n'
        body += "canary = true\n" if i == 0 else ""
    (tmp_path / "fleet.toml").write_text(body)
    return load_fleet(tmp_path / "fleet.toml")


def member_run(seconds: float, member_dir: Path, outcome: str = "interrupted", code: int = 17,
               version: str = "2026.3.28") -> subprocess.Popen[str]:
    """A process standing in for the member's run as its worker leaves it: it goes on for
    `seconds` (its teardown), then writes its verdict and ends."""
    verdict = {"outcome": outcome, "exit_code": code, "claim": f"Run: {outcome}.",
               "final_state": {"version": version, "serving": True, "proven": True},
               "lock": {"known_good": {"version": "2026.3.28"}}, "phases": []}
    script = textwrap.dedent(f"""
        import json, time
        from pathlib import Path
        time.sleep({seconds})
        folder = Path({str(member_dir)!r})
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "verdict.json").write_text(json.dumps({verdict!r}))
    """)
    return subprocess.Popen([sys.executable, "-c", script], text=True)


def test_the_member_is_read_from_the_crashed_items_id() -> None:
    assert member_of("scenarios/test_fleet.py::test_member[team-a.1]") == "team-a.1"
    assert member_of("scenarios/test_soak.py::test_soak_policy") is None


@pytest.mark.parametrize(("own_exit", "counts_as"), [
    (None, ExitCode.INTERRUPTED),  # its run has not ended yet
    (0, ExitCode.INTERRUPTED),  # its run passed: its worker did not see it, no pass
    (17, ExitCode.INTERRUPTED),
    (10, ExitCode.ROLLED_BACK),  # it had failed and rolled back, proven, by itself
    (11, ExitCode.ROLLBACK_FAILED),  # worse stays worse
    (2, ExitCode.INTERRUPTED)])  # pytest's own code: no verdict of the harness
def test_a_member_whose_worker_died_is_never_a_pass(tmp_path: Path, own_exit: int | None,
                                                    counts_as: ExitCode) -> None:
    plan = plan_of(tmp_path)
    ledger = Ledger.create(tmp_path / "ledger.json", plan)
    ledger.update("canary", state="running", worker_died="its worker died", exit=own_exit)
    done = results(ledger.read()["members"])
    assert done == {"canary": counts_as}
    assert fleet_exit(plan, done, {}) == counts_as
    assert fleet_exit(plan, done, {}) != ExitCode.PASSED


def test_the_line_stops_at_a_member_whose_worker_died(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    ledger = Ledger.create(tmp_path / "ledger.json", plan)
    ledger.update("canary", state="ended", so_far=0, word="keep", exit=0)
    ledger.update("a", state="running", pid=1)
    ledger.update("b", state="held", so_far=0)  # passed its soak, waits for the word
    note_worker_death(ledger, "a", "gw1")
    done = results(ledger.read()["members"])
    assert done == {"canary": 0, "a": ExitCode.INTERRUPTED, "b": 0}
    assert may_start(plan, 2, done) is False and not_reached(plan, done) == ["c"]
    assert word_for(plan, done, "b") == ROLL_BACK  # its wave goes back with it
    assert fleet_exit(plan, done, {"b": 10}) == ExitCode.INTERRUPTED


def test_a_death_is_noted_once_and_its_rerun_does_not_start_the_member_again(
        tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    ledger = Ledger.create(tmp_path / "ledger.json", plan)
    run = member_run(30, tmp_path / "members" / "canary")
    try:
        ledger.update("canary", state="running", pid=run.pid)
        said = note_worker_death(ledger, "canary", "gw0")
        assert said == "its worker died (gw0 crashed) while its run was running"
        entry = ledger.read()["members"]["canary"]
        assert entry["worker_died"] == said and entry["run_start_time"] is not None
        assert note_worker_death(ledger, "canary", "gw2") == ""  # once
        assert ledger.read()["members"]["canary"]["worker_died"] == said
        assert already_started(ledger, "canary") == (
            f"not started again: {said}; the fleet's verdict says how it ended")
        assert already_started(ledger, "a") == ""
    finally:
        run.kill()
        run.wait()


def test_a_worker_that_died_while_its_member_waited_leaves_it_to_a_new_worker(
        tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    ledger = Ledger.create(tmp_path / "ledger.json", plan)
    said = note_worker_death(ledger, "a", "gw1")
    entry = ledger.read()["members"]["a"]
    assert "while it waited for its wave" in said and entry["reason"] == said
    assert not entry.get("worker_died") and entry["state"] == "waiting"
    assert already_started(ledger, "a") == "" and results(ledger.read()["members"]) == {}


def test_settle_waits_for_the_members_run_and_records_its_own_end(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    ledger = Ledger.create(tmp_path / "ledger.json", plan)
    run = member_run(1.5, tmp_path / "members" / "canary")
    ledger.update("canary", state="running", pid=run.pid)
    note_worker_death(ledger, "canary", "gw0")
    # the run is this test's child: once it ends it is a zombie until reaped, which counts
    # as gone (its worker, its parent, is dead in a real fleet)
    assert settle(ledger, tmp_path, run_end_s=30, guard_s=1) == ["canary"]
    assert not alive(run.pid)
    run.wait()
    entry = ledger.read()["members"]["canary"]
    assert (entry["state"], entry["exit"], entry["outcome"]) == ("ended", 17, "interrupted")
    assert settle(ledger, tmp_path) == []  # once


def test_a_run_still_going_at_the_deadline_is_said_so_and_stays_no_pass(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    ledger = Ledger.create(tmp_path / "ledger.json", plan)
    run = member_run(60, tmp_path / "members" / "canary")
    try:
        ledger.update("canary", state="running", pid=run.pid)
        note_worker_death(ledger, "canary", "gw0")
        settle(ledger, tmp_path, run_end_s=1, guard_s=1)
        entry = ledger.read()["members"]["canary"]
        assert entry["state"] == "running" and entry["exit"] is None
        assert f"its run (PID {run.pid}) was still going" in entry["reason"]
        assert results(ledger.read()["members"]) == {"canary": ExitCode.INTERRUPTED}
    finally:
        run.kill()
        run.wait()


def test_a_run_that_died_without_a_verdict_waits_for_its_guards(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    ledger = Ledger.create(tmp_path / "ledger.json", plan)
    member_dir = tmp_path / "members" / "canary"
    member_dir.mkdir(parents=True)
    (member_dir / "run.json").write_text(json.dumps({"pid": 1, "ended": None}))
    ledger.update("canary", state="running", pid=None, worker_died="its worker died")
    guard = member_run(1, member_dir, version="2026.3.28")  # the guard writes it later
    settle(ledger, tmp_path, run_end_s=1, guard_s=30)
    guard.wait()
    assert ledger.read()["members"]["canary"]["exit"] == 17
    ledger.update("a", state="running", pid=None, worker_died="its worker died")
    (tmp_path / "members" / "a").mkdir()
    settle(ledger, tmp_path, run_end_s=1, guard_s=1)  # no run.json: nothing had started
    entry = ledger.read()["members"]["a"]
    assert entry["state"] == "ended" and entry["exit"] is None
    assert entry["reason"] == "its run ended without a verdict: see its run dir"


def verdict_of(tmp_path: Path, own: dict) -> dict:
    plan = plan_of(tmp_path, ("canary", "a"))
    run = tmp_path / "run"
    ledger = Ledger.create(run / "ledger.json", plan)
    ledger.update("canary", state="ended", exit=own["exit_code"], outcome=own["outcome"],
                  worker_died="its worker died (gw0 crashed) while its run was running")
    ledger.update("a", state="not_reached",
                  reason="not reached: the line stopped at canary (wave 0); left untouched")
    (run / "members" / "canary").mkdir(parents=True)
    (run / "members" / "canary" / "verdict.json").write_text(json.dumps(own))
    return write_fleet_report(plan, ledger.read(), run)


def test_the_fleet_verdict_says_what_happened_to_a_member_whose_worker_died(
        tmp_path: Path) -> None:
    verdict = verdict_of(tmp_path, {
        "outcome": "interrupted", "exit_code": 17, "claim": "Run x: interrupted.",
        "lock": {"known_good": {"version": "2026.3.28"}},
        "final_state": {"version": "2026.3.28", "serving": True, "proven": True},
        "phases": [{"name": "soak", "outcome": "failed"}]})
    assert (verdict["outcome"], verdict["exit_code"]) == ("interrupted", 17)
    rows = {r["member"]: r for r in verdict["members"]}
    canary = rows["canary"]
    assert canary["outcome"] == "interrupted" and canary["exit_code"] == 17
    assert canary["worker_died"] == "its worker died (gw0 crashed) while its run was running"
    assert (canary["version_after"], canary["serving"], canary["proven"]) == (
        "2026.3.28", True, True)
    assert canary["what_happened"] == (
        "its worker died (gw0 crashed) while its run was running; its own run ended it "
        "interrupted (exit 17): 2026.3.28 serving, proven")
    assert rows["a"]["outcome"] == "not_reached" and verdict["not_reached"] == ["a"]
    assert "Interrupted, its worker died: canary (on 2026.3.28, proven)." in verdict["claim"]
    assert "| canary (canary) | 0 | 2026.3.28 | 2026.3.28 | interrupted (failed: soak) |" in \
        (tmp_path / "run" / "summary.md").read_text()


def test_a_member_whose_own_run_passed_but_whose_worker_died_is_not_reported_passed(
        tmp_path: Path) -> None:
    verdict = verdict_of(tmp_path, {
        "outcome": "passed", "exit_code": 0, "written_by": "guard",
        "final_state": {"version": "2026.4.1", "serving": True, "proven": False}})
    canary = verdict["members"][0]
    assert canary["outcome"] == "interrupted" and verdict["exit_code"] == 17
    assert canary["what_happened"].endswith(
        "its guard ended it passed (exit 0): 2026.4.1 serving, NOT proven")
