"""A fleet of attached gateways, soaked only (`pytest scenarios -m soak --fleet FILE -n N`):
what it refuses before any member starts (as one attached target would), its exit code, and
its one verdict. The real run is tests/test_fleet_attached_e2e.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.common.errors import ExitCode, InputError
from harness.fleet.ledger import Ledger, results
from harness.fleet.plan import load_fleet
from harness.fleet.soak_only import check_soak_only, soak_exit, soak_only
from harness.fleet.verdict import write_fleet_report
from harness.pytest.fleet import selected_families

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ROOT / "scenarios" / "targets"
ATTACHED = TARGETS / "staging-systemd-openclaw.toml"
EMBEDDED = TARGETS / "local-openclaw.toml"
PASS, SOAK_FAILED, UNREACHABLE, INTERRUPTED = (
    ExitCode.PASSED, ExitCode.SOAK_FAILED, ExitCode.GATEWAY_UNREACHABLE, ExitCode.INTERRUPTED)


def fleet_file(tmp_path: Path, *targets: Path, max_parallel: int = 1) -> Path:
    body = f'[fleet]\nname = "staging"\nmax_parallel = {max_parallel}\n'
    for i, target in enumerate(targets):
        name = "canary" if i == 0 else f"m{i}"
        body += f'[[members]]\nname = "{name}"\ntarget = "{target}"\n'
        body += "canary = true\n" if i == 0 else ""
    path = tmp_path / "staging.toml"
    path.write_text(body)
    return path


def test_a_fleet_of_attached_members_is_soaked_only(tmp_path: Path) -> None:
    plan = load_fleet(fleet_file(tmp_path, ATTACHED, ATTACHED, ATTACHED))
    assert soak_only(plan)
    assert [[m.name for m in w] for w in plan.waves] == [["canary"], ["m1"], ["m2"]]
    assert not soak_only(load_fleet(fleet_file(tmp_path, EMBEDDED, EMBEDDED)))


def test_a_fleet_that_mixes_attached_and_embedded_members_names_the_member(
        tmp_path: Path) -> None:
    path = fleet_file(tmp_path, ATTACHED, EMBEDDED)
    with pytest.raises(InputError) as caught:
        load_fleet(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: members[1].target: a fleet's members are all "
                              "attached"), message
    assert "local-openclaw.toml is embedded" in message and "\n" not in message
    assert "canary's staging-systemd-openclaw.toml is attached" in message


@pytest.mark.parametrize("markexpr, families", [
    ("soak", {"soak"}),
    ("", {"upgrade", "soak", "fleet", "rollback"}),
    ("soak or rollback", {"soak", "rollback"}),
    ("not upgrade and not rollback", {"soak", "fleet"}),
    ("upgrade", {"upgrade"}),
    ("e2e", set()),
])
def test_what_minus_m_selects_is_read_as_pytest_reads_it(markexpr: str,
                                                        families: set[str]) -> None:
    assert selected_families(markexpr) == families


def test_a_bad_marker_expression_is_bad_input() -> None:
    with pytest.raises(InputError, match=r"^-m: not a marker expression"):
        selected_families("soak and (")


@pytest.mark.parametrize("markexpr, options, words", [
    ("", [], "without -m soak the run selects upgrade, fleet, rollback tests"),
    ("soak or rollback", [], "-m 'soak or rollback' selects rollback tests"),
    ("not upgrade and not rollback", [], "selects fleet tests"),
    ("e2e", [], "-m 'e2e' selects no soak test"),
    ("soak", ["--soak", "--candidate"], "--candidate given"),
    ("soak", ["--known-good", "--candidate-config"], "--known-good and --candidate-config given"),
])
def test_an_upgrade_of_attached_members_is_refused_naming_file_key_and_option(
        tmp_path: Path, markexpr: str, options: list[str], words: str) -> None:
    plan = load_fleet(fleet_file(tmp_path, ATTACHED, ATTACHED))
    with pytest.raises(InputError) as caught:
        check_soak_only(plan, selected_families(markexpr), options, markexpr)
    message = str(caught.value)
    assert message.startswith(f"{plan.path}: members[0].target: "), message
    assert words in message and "never upgraded" in message and "\n" not in message


def test_a_soak_is_what_an_attached_fleet_may_run(tmp_path: Path) -> None:
    plan = load_fleet(fleet_file(tmp_path, ATTACHED, ATTACHED))
    check_soak_only(plan, selected_families("soak"), ["--soak", "--scenarios"], "soak")


@pytest.mark.parametrize("codes, expected", [
    ({"canary": PASS, "m1": PASS}, PASS),
    ({"canary": PASS, "m1": SOAK_FAILED}, SOAK_FAILED),  # one member failed: the fleet did
    ({"canary": SOAK_FAILED, "m1": PASS}, SOAK_FAILED),  # a failed canary stops nobody
    ({"canary": SOAK_FAILED, "m1": UNREACHABLE}, UNREACHABLE),
    ({"canary": UNREACHABLE, "m1": INTERRUPTED}, INTERRUPTED),
    ({"canary": PASS}, INTERRUPTED),  # a member that never ended: no pass
])
def test_the_fleets_exit_is_a_soaks(tmp_path: Path, codes: dict[str, int],
                                    expected: ExitCode) -> None:
    plan = load_fleet(fleet_file(tmp_path, ATTACHED, ATTACHED))
    assert soak_exit(plan, codes) == expected


def test_a_member_run_that_ended_without_a_verdict_of_the_harness_is_no_pass(
        tmp_path: Path) -> None:
    plan = load_fleet(fleet_file(tmp_path, ATTACHED, ATTACHED))
    ledger = Ledger.create(tmp_path / "ledger.json", plan)
    ledger.update("canary", state="ended", exit=0)
    ledger.update("m1", state="ended", exit=1)  # pytest's own: tests failed, no verdict
    assert soak_exit(plan, results(ledger.read()["members"])) == INTERRUPTED


def member_run(run: Path, name: str, outcome: str, left: bool, version: str = "2026.3.28"
               ) -> None:
    folder = run / "members" / name
    (folder / "allure-results").mkdir(parents=True)
    found = {"version": version, "main_pid": 4242}
    verdict = {"outcome": outcome, "lock": {"attached": {"unit": "gw"}}, "phases": [
        {"name": "soak_policy", "outcome": "passed" if outcome == "passed" else "failed"}],
        "attached": {"before": found, "after": {**found, "main_pid": 4242 if left else 5151},
                     "changes": [] if left else ["MainPID 4242 -> 5151"], "left_as_found": left},
        "final_state": {"version": version}}
    (folder / "verdict.json").write_text(json.dumps(verdict))
    (folder / "summary.md").write_text(f"# {name}'s own summary\n")
    (folder / "allure-results" / f"{name}-result.json").write_text(json.dumps(
        {"name": "test_soak_policy", "labels": [{"name": "parentSuite", "value": "scenarios"}]}))


def test_one_verdict_a_failing_member_fails_alone_and_nothing_is_rolled_back(
        tmp_path: Path) -> None:
    plan = load_fleet(fleet_file(tmp_path, ATTACHED, ATTACHED, ATTACHED))
    run = tmp_path / "run"
    ledger = Ledger.create(run / "ledger.json", plan)
    for name, code in (("canary", 13), ("m1", 0), ("m2", 13)):
        ledger.update(name, state="ended", exit=code)
    member_run(run, "canary", "soak_failed", left=True)
    member_run(run, "m1", "passed", left=True)
    member_run(run, "m2", "soak_failed", left=False)  # it restarted on its own while soaked

    verdict = write_fleet_report(plan, ledger.read(), run)

    assert (verdict["outcome"], verdict["exit_code"], verdict["soak_only"]) == \
        ("soak_failed", 13, True)
    assert verdict["not_reached"] == [] and verdict["fleet_rollbacks"] == {}
    rows = {r["member"]: r for r in verdict["members"]}
    assert [r["member"] for r in verdict["members"]] == ["canary", "m1", "m2"]
    assert rows["m1"]["observed"] and not rows["m1"]["failed_itself"]  # after a failed canary
    assert rows["canary"]["failed_itself"] and rows["canary"]["fleet_word"] is None
    assert rows["canary"]["failed_phases"] == ["soak_policy"]
    assert (rows["m1"]["version_before"], rows["m1"]["version_after"]) == \
        ("2026.3.28", "2026.3.28")
    assert rows["m1"]["left_as_found"] is True and rows["m2"]["left_as_found"] is False
    assert rows["m1"]["what_happened"].startswith("soaked, passed; left as found")
    assert rows["m2"]["what_happened"] == "soaked, soak_failed; NOT as found: MainPID 4242 -> 5151"
    assert verdict["claim"] == (
        "Fleet staging, soaked only: soak_failed. Passed: m1. Failed: canary (soak_failed), "
        "m2 (soak_failed). Nothing was installed, stopped, restarted or rolled back; not as "
        "found: m2.")
    summary = (run / "summary.md").read_text()
    assert summary.startswith("# Fleet staging: soak_failed (exit 13)")
    assert "| m1 | 1 | 2026.3.28 | 2026.3.28 | passed | - | - | - | soaked, passed; left as found" \
        in summary
    assert summary.index("| m2 |") < summary.index("## Member canary")
    for name in ("canary", "m1", "m2"):
        result = json.loads((run / "allure-results" / f"{name}-result.json").read_text())
        assert {"name": "parentSuite", "value": name} in result["labels"]


def test_a_member_never_started_or_without_verdict_is_reported_so(tmp_path: Path) -> None:
    plan = load_fleet(fleet_file(tmp_path, ATTACHED, ATTACHED))
    run = tmp_path / "run"
    ledger = Ledger.create(run / "ledger.json", plan)
    ledger.update("canary", state="ended", exit=22)  # its gateway did not answer: no verdict
    verdict = write_fleet_report(plan, ledger.read(), run)
    assert (verdict["outcome"], verdict["exit_code"]) == ("interrupted", 17)
    rows = {r["member"]: r for r in verdict["members"]}
    assert rows["canary"]["what_happened"] == "ended without a verdict (exit 22); see its run dir"
    assert rows["m1"]["outcome"] == "not_started" and not rows["m1"]["observed"]
    assert "its run never ended" in rows["m1"]["what_happened"]


def suite(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "scenarios", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, words", [
    ((), "members[0].target: without -m soak the run selects upgrade"),
    (("-m", "soak", "--candidate", "2026.4.1"), "members[0].target: --candidate given"),
    (("-m", "soak or (",), "-m: not a marker expression"),
])
def test_the_suite_refuses_an_upgrade_of_attached_members_before_anything_starts(
        tmp_path: Path, args: tuple[str, ...], words: str) -> None:
    fleet = fleet_file(tmp_path, ATTACHED, ATTACHED)
    done = suite("--fleet", str(fleet), "-n", "2", "--run-dir", str(tmp_path / "run"), *args)
    assert done.returncode == ExitCode.BAD_INPUT, (done.stdout + done.stderr)[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1 and words in errors[0], done.stderr[-2000:]
    assert "-m" in errors[0] or "--candidate" in errors[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "run" / "members").exists()  # no member started


def test_members_that_do_not_answer_each_fail_alone_and_nothing_waits_on_the_canary(
        tmp_path: Path) -> None:
    """The whole path without a gateway: -m soak reaches every member's run through the xdist
    workers, both run (the second does not wait on the canary's verdict), each ends 22."""
    down = tmp_path / "down.toml"
    down.write_text(
        '[target]\nname = "down"\nkind = "openclaw"\ndriver = "url"\nprovision = "attached"\n'
        'host = "local://"\n[package]\nname = "openclaw"\n[attached]\n'
        'url = "http://127.0.0.1:9"\ntoken_env = "GRH_TEST_TOKEN"\n'
        '[api]\nhealth_agent = "quick"\nagents = ["quick"]\n'
        f'[logs]\nsource = "file"\nfile = "{tmp_path / "gateway.log"}"\n')
    fleet = fleet_file(tmp_path, down, down)
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios", "-q", "-m", "soak", "--fleet", str(fleet),
         "-n", "2", "--run-dir", str(run), "--scenarios",
         str(ROOT / "scenarios" / "soak" / "reply-quick.toml")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "GRH_TEST_TOKEN": "not-a-secret"})
    assert done.returncode == UNREACHABLE, (done.stdout + done.stderr)[-3000:]
    verdict = json.loads((run / "verdict.json").read_text())
    assert verdict["outcome"] == "unreachable" and verdict["soak_only"]
    for row in verdict["members"]:
        assert (row["exit_code"], row["fleet_word"]) == (22, None), row
        assert row["what_happened"].startswith("not soaked (exit 22): "), row
        assert "http://127.0.0.1:9" in row["what_happened"], row
    ledger = json.loads((run / "ledger.json").read_text())["members"]
    assert {e["state"] for e in ledger.values()} == {"ended"}
