"""A fleet release run as a user runs it: `pytest scenarios --fleet FILE -n N`, three embedded
OpenClaw gateways on loopback (a canary, then a wave of two), on pytest-xdist workers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPENCLAW = ROOT / "scenarios" / "targets" / "local-openclaw.toml"


# The fleet's mechanics, not the product's regression (test_acceptance_e2e.py and the canary
# case below judge that): the fast path only, which 3.28 and 4.1 both serve well, short windows
QUICK = ("--scenarios", str(ROOT / "scenarios" / "soak" / "reply-quick.toml"), "--soak", "20",
         "--watch", "10", "--late-watch", "0", "--baseline", "0")


def fleet_file(tmp_path: Path, on_failure: str = "rollback-wave") -> Path:
    body = f'[fleet]\nname = "loopback"\non_failure = "{on_failure}"\nmax_parallel = 2\n'
    for i, name in enumerate(("canary", "team-a", "team-b")):
        body += f'[[members]]\nname = "{name}"\ntarget = "{OPENCLAW}"\n'
        body += "canary = true\n" if i == 0 else ""
    path = tmp_path / "fleet.toml"
    path.write_text(body)
    return path


def run_fleet(fleet: Path, run_dir: Path, *args: str) -> tuple[int, str, dict, float]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios", "-q", "--fleet", str(fleet),
         "--run-dir", str(run_dir), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=1500)
    verdict_path = run_dir / "verdict.json"
    verdict = json.loads(verdict_path.read_text()) if verdict_path.exists() else {}
    return proc.returncode, proc.stdout + proc.stderr, verdict, time.monotonic() - started


@pytest.mark.e2e
@pytest.mark.soaks(minutes=4.5)  # held in CI, for the order (tests/conftest.py)
def test_a_canary_that_fails_stops_the_line_and_the_others_are_never_touched(
        tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # 3.28 -> 4.1 regresses: the canary's soak stops early on a trigger (the window outlasts
    # the first slow replies), it rolls back; the wave after it never starts
    code, output, verdict, wall_s = run_fleet(
        fleet_file(tmp_path), run_dir, "-n", "2", "--soak", "90", "--watch", "20",
        "--late-watch", "0", "--baseline", "0")
    print(f"fleet wall time: {wall_s:.0f} s")
    assert code == 10, output[-3000:]
    assert verdict["outcome"] == "rolled_back" and verdict["exit_code"] == 10
    rows = {r["member"]: r for r in verdict["members"]}
    assert list(rows) == ["canary", "team-a", "team-b"]
    canary = rows["canary"]
    assert canary["outcome"] == "rolled_back" and canary["exit_code"] == 10
    assert canary["version_before"] == "2026.3.28"
    assert canary["version_after"] == "2026.3.28"  # proven back on the known-good
    assert canary["triggers"] and canary["stopped_by"] in canary["triggers"]
    assert canary["watch"] == {"watch": "pass"}
    assert canary["failed_itself"] and canary["fleet_word"] == "roll back"
    for name in ("team-a", "team-b"):  # never reached: no run, no deployment, said so
        row = rows[name]
        assert row["outcome"] == "not_reached" and not row["observed"], row
        assert row["what_happened"].startswith("not reached: the line stopped at canary"), row
        assert not (run_dir / "members" / name).exists()
    assert verdict["not_reached"] == ["team-a", "team-b"]
    assert "harness: fleet rolled_back (exit 10)" in output
    # the member's own run: its transitions and alerts carry its name
    transitions = [json.loads(line) for line in
                   (run_dir / "members" / "canary" / "transitions.jsonl").read_text().splitlines()]
    assert transitions and all(t.get("member") == "canary" for t in transitions)
    hold = next(t for t in transitions if t["state"] == "fleet_hold" and t["event"] == "passed")
    assert "line stops here" in hold["summary"]
    # one report: the fleet table first, every member's Allure results under its name
    assert (run_dir / "summary.md").read_text().startswith("# Fleet loopback: rolled_back")
    results = [json.loads(p.read_text()) for p in (run_dir / "allure-results").glob(
        "*-result.json")]
    assert results
    assert all({"name": "parentSuite", "value": "canary"} in r["labels"] for r in results)
    assert {r["name"] for r in results} >= {"test_soak_policy", "test_fleet_hold",
                                             "test_rollback_watch"}


@pytest.mark.e2e
@pytest.mark.soaks(gateways=2)  # its wave of two soaks at once
def test_a_fleet_whose_members_all_pass_keeps_them_all_on_the_candidate(
        tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # the fast path only, which 4.1 serves well: nothing regresses; the wave of two runs at once
    code, output, verdict, wall_s = run_fleet(fleet_file(tmp_path), run_dir, "-n", "2", *QUICK)
    print(f"fleet wall time: {wall_s:.0f} s")
    assert code == 0, output[-3000:]
    assert verdict["outcome"] == "passed" and verdict["not_reached"] == []
    assert [r["member"] for r in verdict["members"]] == ["canary", "team-a", "team-b"]
    for row in verdict["members"]:
        assert row["outcome"] == "passed" and row["exit_code"] == 0, row
        assert row["fleet_word"] == "keep" and row["triggers"] == [], row
        assert row["what_happened"] == "upgraded, passed, kept on the candidate"
    ledger = json.loads((run_dir / "ledger.json").read_text())["members"]
    # the wave of two ran at once: each started before the other's run ended
    a, b = (json.loads((run_dir / "members" / n / "verdict.json").read_text())
            for n in ("team-a", "team-b"))
    assert a["started"] < b["ended"] and b["started"] < a["ended"]
    assert all(entry["state"] == "ended" for entry in ledger.values())


def member_target(tmp_path: Path, name: str, scenarios: Path) -> Path:
    """The shipped OpenClaw profile with its own soak scenarios (target.scenarios), beside
    its config template: what this member's traffic reaches is its own."""
    folder = tmp_path / "targets"
    if not folder.exists():
        folder.mkdir()
        (folder / "openclaw").symlink_to(OPENCLAW.parent / "openclaw")
    text = OPENCLAW.read_text()
    assert '\nprovision = "embedded"' in text
    path = folder / f"{name}.toml"
    path.write_text(text.replace('\nprovision = "embedded"',
                                 f'\nprovision = "embedded"\nscenarios = "{scenarios}"', 1))
    return path


@pytest.mark.e2e
@pytest.mark.soaks(gateways=2)  # the canary's rollback and the failed member's run at once
def test_a_second_wave_that_fails_takes_every_upgraded_member_back_with_rollback_all(
        tmp_path: Path) -> None:
    """The canary's own traffic is the fast path only, which 4.1 serves well: it passes and
    holds. The second wave's member soaks the whole mix, whose slow reasoner (70 s silent)
    4.1 cuts at 60 s (its idle-timeout regression): it fails, the line stops, and with
    rollback-all the fleet takes the canary back too. Both end proven on 3.28."""
    soak = ROOT / "scenarios" / "soak"
    quick = member_target(tmp_path, "canary", soak / "reply-quick.toml")
    # the team's own mix: the shipped fast path first (the smoke after a rollback without a
    # baseline takes the first reply path), then both of the main agent's slow-reasoner paths
    team_mix = tmp_path / "team-mix.toml"
    team_mix.write_text("\n".join((soak / f"{name}.toml").read_text()
                                  for name in ("reply-quick", "reply-plain", "reply-streaming")))
    whole_mix = member_target(tmp_path, "team", team_mix)
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        '[fleet]\nname = "loopback"\non_failure = "rollback-all"\nmax_parallel = 1\n'
        f'[[members]]\nname = "canary"\ntarget = "{quick}"\ncanary = true\n'
        f'[[members]]\nname = "team"\ntarget = "{whole_mix}"\n')
    run_dir = tmp_path / "run"
    # one window for every member: it outlasts the slow reasoner's first cut replies (60 s),
    # so the team's soak stops early on a trigger; the canary's fast path soaks it whole
    code, output, verdict, wall_s = run_fleet(fleet, run_dir, "-n", "2", "--soak", "75",
                                              "--watch", "20", "--late-watch", "0",
                                              "--baseline", "0")
    print(f"fleet wall time: {wall_s:.0f} s")
    assert code == 10, output[-3000:]
    assert verdict["outcome"] == "rolled_back" and verdict["exit_code"] == 10
    assert verdict["not_reached"] == [] and verdict["fleet_rollbacks"] == {"canary": 10}
    assert "harness: fleet rolled_back (exit 10)" in output
    failed, _, back = verdict["claim"].partition(" Rolled back: ")
    assert failed.startswith("Fleet loopback: rolled_back. Failed") and "team" in failed
    assert "canary" not in failed and back == "canary, team."
    rows = {r["member"]: r for r in verdict["members"]}
    assert list(rows) == ["canary", "team"]
    members = {name: json.loads((run_dir / "members" / name / "verdict.json").read_text())
               for name in rows}
    # one reviewed release for the fleet, and each member installed from it
    lock = json.loads((run_dir / "release.lock.json").read_text())
    assert lock["candidate"]["version"] == "2026.4.1" and lock["members"] == ["canary", "team"]
    for name, member in members.items():
        assert member["lock"]["candidate"] == lock["candidate"], name
        assert member["lock"]["fleet_lock"]["sha256"] == verdict["lock"]["sha256"], name
        assert rows[name]["fleet_lock"] == "matches", name
    # what each member's traffic reached: the canary's never the slow reasoner
    assert members["canary"]["lock"]["scenarios"]["ids"] == ["reply-quick"]
    assert members["team"]["lock"]["scenarios"]["ids"] == ["reply-quick", "reply-plain",
                                                           "reply-streaming"]
    # the second wave's member failed on the regression, stopped the line, rolled back
    team = rows["team"]
    assert team["wave"] == 1 and team["failed_itself"] and team["outcome"] == "rolled_back"
    assert team["triggers"] and team["stopped_by"] in team["triggers"]
    assert "soak_policy" in team["failed_phases"]
    logged = next(d for d in members["team"]["soak"]["decisions"]
                  if d["trigger"] == "timeout-failover-burst")
    assert logged["observed"] >= 1
    assert all("decision=surface_error reason=timeout provider=lab/slow-reasoner" in line
               for line in logged["evidence"]), logged["evidence"]
    assert members["team"]["soak"]["scenarios"]["reply-plain"]["good"] == 0
    assert members["team"]["soak"]["scenarios"]["reply-quick"]["good"] > 0
    # and 3.28 answers that slow path again, after the rollback: a real way back
    watched = members["team"]["watch"]["scenarios"]["reply-plain"]
    assert watched["good"] >= 1 and watched["bad"] == 0 and watched["max_s"] > 60, watched
    # the canary passed its own soak, held, and the fleet took it back (rollback-all)
    canary = rows["canary"]
    assert canary["wave"] == 0 and not canary["failed_itself"] and canary["triggers"] == []
    assert canary["fleet_word"] == "roll back"
    assert canary["what_happened"] == ("passed; rolled back by the fleet (rollback-all): the "
                                       "line stopped at team"), canary
    phases = {p["name"]: p for p in members["canary"]["phases"]}
    assert phases["soak_policy"]["outcome"] == "passed"
    assert phases["fleet_hold"]["outcome"] == "passed"
    assert "the fleet rolls this member back" in phases["fleet_hold"]["reason"]
    assert "the line stopped at team" in phases["fleet_hold"]["reason"]
    # every upgraded member proven back on the known-good, by its own rollback's watch
    for name in ("canary", "team"):
        row, member = rows[name], members[name]
        outcomes = {p["name"]: p["outcome"] for p in member["phases"]}
        assert outcomes["rollback_restore"] == "passed", name
        assert outcomes["rollback_watch"] == "passed", name
        assert (row["version_before"], row["version_after"]) == ("2026.3.28", "2026.3.28")
        assert member["final_state"]["proven"], name
        assert member["final_state"]["version"] == "2026.3.28", name
        assert row["watch"] == {"watch": "pass"}, name
        assert row["exit_code"] == 10 and row["fleet_word"] == "roll back", name
    ledger = json.loads((run_dir / "ledger.json").read_text())["members"]
    assert ledger["canary"]["so_far"] == 0 and ledger["canary"]["word"] == "roll back"
    assert ledger["team"]["so_far"] == 10
    # the report says so: the fleet table first, both members in Allure, the panel
    summary = (run_dir / "summary.md").read_text()
    assert summary.startswith("# Fleet loopback: rolled_back (exit 10)")
    assert "| canary (canary) | 0 | 2026.3.28 | 2026.3.28 | rolled_back |" in summary
    team_line = next(line for line in summary.splitlines() if line.startswith("| team |"))
    assert team_line.startswith("| team | 1 | 2026.3.28 | 2026.3.28 | rolled_back (failed: ")
    assert "soak_policy" in team_line and "timeout-failover-burst" in team_line
    results = [json.loads(p.read_text()) for p in (run_dir / "allure-results").glob(
        "*-result.json")]
    suites = {name: {r["name"] for r in results
                     if {"name": "parentSuite", "value": name} in r["labels"]}
              for name in ("canary", "team")}
    for name in ("canary", "team"):
        assert {"test_soak_policy", "test_fleet_hold", "test_rollback_watch"} <= suites[name]
    panel = (run_dir / "allure-results" / "environment.properties").read_text()
    assert "outcome=rolled_back (exit 10)\n" in panel
    assert "members=canary (wave 0: rolled_back), team (wave 1: rolled_back)\n" in panel
