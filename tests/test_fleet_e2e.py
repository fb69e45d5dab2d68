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
@pytest.mark.soaks
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


@pytest.mark.e2e
@pytest.mark.soaks
def test_a_member_that_passed_rolls_back_when_the_fleet_says_so(tmp_path: Path) -> None:
    """One member's own run, as its worker starts it, in a rollback-all fleet whose later
    member has already failed: it passes, holds, hears `roll back`, and proves its known-good."""
    from harness.fleet.ledger import Ledger
    from harness.fleet.plan import load_fleet

    fleet = fleet_file(tmp_path, "rollback-all")
    ledger = Ledger.create(tmp_path / "run" / "ledger.json", load_fleet(fleet))
    ledger.update("team-a", state="held", so_far=10, word="roll back")
    member_dir = tmp_path / "run" / "members" / "canary"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios", "-q", "-p", "no:xdist", "--target",
         str(OPENCLAW), "--run-dir", str(member_dir), "--fleet-member", "canary",
         "--fleet-ledger", str(ledger.path), *QUICK],
        cwd=ROOT, capture_output=True, text=True, timeout=1500)
    print(f"member wall time: {time.monotonic() - started:.0f} s")
    output = proc.stdout + proc.stderr
    verdict = json.loads((member_dir / "verdict.json").read_text())
    assert proc.returncode == 10, output[-3000:]
    outcomes = {p["name"]: p["outcome"] for p in verdict["phases"]}
    assert outcomes["soak_policy"] == "passed"  # it passed its own soak
    assert outcomes["fleet_hold"] == "passed"
    hold = next(p for p in verdict["phases"] if p["name"] == "fleet_hold")
    assert "the fleet rolls this member back" in hold["reason"]
    assert "the line stopped at team-a" in hold["reason"]
    assert outcomes["rollback_restore"] == "passed" and outcomes["rollback_watch"] == "passed"
    assert verdict["outcome"] == "rolled_back"
    assert verdict["lock"]["candidate"]["version"] == "2026.4.1"  # a real way back
    assert verdict["final_state"]["proven"] and verdict["final_state"]["version"] == "2026.3.28"
    entry = ledger.read()["members"]["canary"]
    assert entry["so_far"] == 0 and entry["word"] == "roll back"
