"""The fleet's one verdict from its ledger and its members' own run dirs (real files)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.fleet.ledger import Ledger
from harness.fleet.plan import load_fleet
from harness.fleet.verdict import write_fleet_report

ROOT = Path(__file__).resolve().parents[1]
OPENCLAW = ROOT / "scenarios" / "targets" / "local-openclaw.toml"


def fleet(tmp_path: Path, on_failure: str) -> Path:
    body = f'[fleet]\nname = "f"\non_failure = "{on_failure}"\nmax_parallel = 2\n'
    for i, name in enumerate(("canary", "a", "b", "c", "d")):
        body += f'[[members]]\nname = "{name}"\ntarget = "{OPENCLAW}"\n'
        body += "canary = true\n" if i == 0 else ""
    (tmp_path / "fleet.toml").write_text(body)
    return tmp_path / "fleet.toml"


def member_run(run: Path, name: str, outcome: str, after: str, **extra: object) -> None:
    folder = run / "members" / name
    (folder / "allure-results").mkdir(parents=True)
    verdict = {"outcome": outcome, "lock": {"known_good": {"version": "2026.3.28"}},
               "final_state": {"version": after}, "phases": [], **extra}
    (folder / "verdict.json").write_text(json.dumps(verdict))
    (folder / "summary.md").write_text(f"# {name}'s own summary\n")
    (folder / "allure-results" / f"{name}-result.json").write_text(json.dumps(
        {"name": "test_soak_policy", "labels": [{"name": "parentSuite", "value": "scenarios"}]}))


def test_a_stopped_line_in_the_second_wave(tmp_path: Path) -> None:
    plan = load_fleet(fleet(tmp_path, "rollback-wave"))
    run = tmp_path / "run"
    ledger = Ledger.create(run / "ledger.json", plan)
    ledger.update("canary", state="ended", so_far=0, word="keep", exit=0)
    ledger.update("a", state="ended", so_far=10, word="roll back", exit=10,
                  reason="failed: the line stops here; rolled back by its own run")
    ledger.update("b", state="ended", so_far=0, word="roll back", exit=10,
                  reason="passed; rolled back by the fleet (rollback-wave): the line stopped "
                         "at a")
    for name in ("c", "d"):
        ledger.update(name, state="not_reached", reason="not reached: the line stopped at a")
    member_run(run, "canary", "passed", "2026.4.1")
    member_run(run, "a", "rolled_back", "2026.3.28",
               phases=[{"name": "soak_policy", "outcome": "failed"}],
               soak={"stopped_by": "bad-replies", "decisions": [
                   {"trigger": "bad-replies", "fired": True},
                   {"trigger": "quick-path-latency", "fired": False}]},
               watch={"verdict": {"verdict": "pass"}})
    member_run(run, "b", "rolled_back", "2026.3.28", watch={"verdict": {"verdict": "pass"}})

    verdict = write_fleet_report(plan, ledger.read(), run)

    assert (verdict["outcome"], verdict["exit_code"]) == ("rolled_back", 10)
    assert verdict["not_reached"] == ["c", "d"] and verdict["fleet_rollbacks"] == {"b": 10}
    rows = {r["member"]: r for r in verdict["members"]}
    assert rows["canary"]["version_after"] == "2026.4.1" and rows["canary"]["fleet_word"] == "keep"
    assert rows["a"]["triggers"] == ["bad-replies"] and rows["a"]["failed_itself"]
    assert rows["a"]["failed_phases"] == ["soak_policy"]
    assert rows["b"]["watch"] == {"watch": "pass"} and not rows["b"]["failed_itself"]
    assert rows["c"]["outcome"] == "not_reached" and rows["c"]["version_after"] == "2026.3.28"
    assert json.loads((run / "verdict.json").read_text()) == verdict
    summary = (run / "summary.md").read_text()
    assert summary.startswith("# Fleet f: rolled_back (exit 10)")
    assert summary.index("| c | 2 | 2026.3.28 | 2026.3.28 (untouched) | not_reached") \
        < summary.index("## Member canary")
    for name in ("canary", "a", "b"):
        result = json.loads((run / "allure-results" / f"{name}-result.json").read_text())
        assert {"name": "parentSuite", "value": name} in result["labels"]
        assert {"name": "parentSuite", "value": "scenarios"} not in result["labels"]


def test_a_rollback_the_fleet_ordered_that_was_not_proven_is_exit_11(tmp_path: Path) -> None:
    plan = load_fleet(fleet(tmp_path, "rollback-all"))
    run = tmp_path / "run"
    ledger = Ledger.create(run / "ledger.json", plan)
    ledger.update("canary", state="ended", so_far=0, word="roll back", exit=11)
    ledger.update("a", state="ended", so_far=10, word="roll back", exit=10)
    verdict = write_fleet_report(plan, ledger.read(), run)
    assert (verdict["outcome"], verdict["exit_code"]) == ("rollback_failed", 11)


def test_a_member_that_never_ended_is_no_pass(tmp_path: Path) -> None:
    plan = load_fleet(fleet(tmp_path, "rollback-wave"))
    run = tmp_path / "run"
    ledger = Ledger.create(run / "ledger.json", plan)
    ledger.update("canary", state="running")  # its worker died with it
    verdict = write_fleet_report(plan, ledger.read(), run)
    assert (verdict["outcome"], verdict["exit_code"]) == ("interrupted", 17)


def test_an_interrupted_wave_is_said_to_be_interrupted_not_failed(tmp_path: Path) -> None:
    """Ctrl-C in a real fleet's second wave: the canary passed and was kept, both wave members
    were interrupted and put back on the known-good by their own runs. The claim named them
    "Failed"; the person reading it must see they were interrupted, and on what they ended."""
    plan = load_fleet(fleet(tmp_path, "rollback-wave"))
    run = tmp_path / "run"
    ledger = Ledger.create(run / "ledger.json", plan)
    ledger.update("canary", state="ended", so_far=0, word="keep", exit=0)
    for name in ("a", "b"):
        ledger.update(name, state="ended", exit=17)
        member_run(run, name, "interrupted", "2026.3.28")
    member_run(run, "canary", "passed", "2026.4.1")
    verdict = write_fleet_report(plan, ledger.read(), run)
    assert (verdict["outcome"], verdict["exit_code"]) == ("interrupted", 17)
    assert "Failed" not in verdict["claim"], verdict["claim"]
    assert "On the candidate: canary." in verdict["claim"]
    assert "Interrupted: a (on 2026.3.28), b (on 2026.3.28)." in verdict["claim"]
