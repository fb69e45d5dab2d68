"""The fleet's ledger and its two waits (the wave gate, the hold), with real files and real
processes: each waiter is a Python process of its own, as a worker or a member run is."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.common.errors import ExitCode
from harness.fleet.ledger import HELD, ROLL_BACK, Ledger, fleet_rollbacks, results
from harness.fleet.plan import load_fleet
from harness.fleet.waves import word_for

ROOT = Path(__file__).resolve().parents[1]
OPENCLAW = ROOT / "scenarios" / "targets" / "local-openclaw.toml"


def plan_file(tmp_path: Path, on_failure: str = "rollback-wave") -> Path:
    body = f'[fleet]\nname = "f"\non_failure = "{on_failure}"\nmax_parallel = 2\n'
    for i, name in enumerate(("canary", "a", "b", "c")):
        body += f'[[members]]\nname = "{name}"\ntarget = "{OPENCLAW}"\n'
        body += "canary = true\n" if i == 0 else ""
    path = tmp_path / "fleet.toml"
    path.write_text(body)
    return path


def start(code: str, *args: str) -> subprocess.Popen[str]:
    """A process of its own that prints one JSON line when its wait ends."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


GATE = """
    import json, sys
    from pathlib import Path
    from harness.fleet.ledger import Ledger
    from harness.fleet.plan import load_fleet
    from harness.fleet.waves import wait_to_start
    plan = load_fleet(Path(sys.argv[1]))
    print(json.dumps(wait_to_start(Ledger(Path(sys.argv[2])), plan, sys.argv[3], poll_s=0.05)))
"""
HOLD = """
    import json, sys
    from pathlib import Path
    from harness.fleet.ledger import Ledger
    from harness.fleet.plan import load_fleet
    from harness.fleet.waves import hold
    plan = load_fleet(Path(sys.argv[1]))
    print(json.dumps(hold(Ledger(Path(sys.argv[2])), plan, sys.argv[3], sys.argv[4] == "passed",
                          poll_s=0.05)))
"""


def ended(proc: subprocess.Popen[str], timeout: float = 30) -> object:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out)


def still_waiting(proc: subprocess.Popen[str], seconds: float = 1.5) -> bool:
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return True
    return False


def test_updates_from_many_processes_at_once_are_never_lost(tmp_path: Path) -> None:
    plan = load_fleet(plan_file(tmp_path))
    ledger = Ledger.create(tmp_path / "ledger.json", plan)
    bump = """
        import sys
        from pathlib import Path
        from harness.fleet.ledger import Ledger
        ledger = Ledger(Path(sys.argv[1]))
        for _ in range(40):
            ledger.decide("canary", lambda d: {"count": d["members"]["canary"].get("count", 0) + 1})
        print("null")
    """
    procs = [start(bump, str(ledger.path)) for _ in range(4)]
    for proc in procs:
        ended(proc, timeout=60)
    assert ledger.read()["members"]["canary"]["count"] == 160


def test_a_wave_waits_for_the_canary_then_starts_when_it_passed(tmp_path: Path) -> None:
    fleet = plan_file(tmp_path)
    ledger = Ledger.create(tmp_path / "ledger.json", load_fleet(fleet))
    ledger.update("canary", state="running")
    waiter = start(GATE, str(fleet), str(ledger.path), "a")
    assert still_waiting(waiter)  # the canary has not said anything yet
    assert ledger.read()["members"]["a"]["state"] == "waiting"
    ledger.update("canary", state=HELD, so_far=0)  # passed so far, holding
    assert ended(waiter) == [True, ""]
    assert ledger.read()["members"]["a"]["state"] == "running"


def test_when_the_canary_fails_the_next_waves_are_not_reached(tmp_path: Path) -> None:
    fleet = plan_file(tmp_path)
    ledger = Ledger.create(tmp_path / "ledger.json", load_fleet(fleet))
    waiters = {name: start(GATE, str(fleet), str(ledger.path), name) for name in "abc"}
    assert still_waiting(waiters["c"])
    ledger.update("canary", state=HELD, so_far=int(ExitCode.ROLLED_BACK), word=ROLL_BACK)
    for name, proc in waiters.items():
        go, reason = ended(proc)
        assert go is False and reason.startswith("not reached: the line stopped at canary"), name
    states = {n: e["state"] for n, e in ledger.read()["members"].items()}
    assert states == {"canary": "held", "a": "not_reached", "b": "not_reached",
                      "c": "not_reached"}


def test_rollback_wave_keeps_a_wave_once_all_of_it_passed(tmp_path: Path) -> None:
    fleet = plan_file(tmp_path)
    ledger = Ledger.create(tmp_path / "ledger.json", load_fleet(fleet))
    ledger.update("canary", so_far=0, word="keep", exit=0)
    held = start(HOLD, str(fleet), str(ledger.path), "a", "passed")
    assert still_waiting(held)  # its wave mate b is still soaking
    ledger.update("b", so_far=0)
    word, reason = ended(held)
    assert (word, reason) == ("keep", "passed; kept on the candidate")
    assert ledger.read()["members"]["a"]["word"] == "keep"


def test_rollback_all_takes_back_every_member_that_passed_when_a_later_one_fails(
        tmp_path: Path) -> None:
    fleet = plan_file(tmp_path, "rollback-all")
    ledger = Ledger.create(tmp_path / "ledger.json", load_fleet(fleet))
    canary = start(HOLD, str(fleet), str(ledger.path), "canary", "passed")
    assert still_waiting(canary)  # rollback-all: it holds until the whole fleet passed
    failing = start(HOLD, str(fleet), str(ledger.path), "b", "failed")
    assert ended(failing)[0] == ROLL_BACK  # a member that failed never waits
    word, reason = ended(canary)
    assert word == ROLL_BACK and "the line stopped at b" in reason
    ledger.update("canary", exit=int(ExitCode.ROLLED_BACK))
    members = ledger.read()["members"]
    # the canary passed; its rollback is the fleet's
    assert results(members) == {"canary": 0, "b": int(ExitCode.ROLLED_BACK)}
    assert fleet_rollbacks(members) == {"canary": int(ExitCode.ROLLED_BACK)}


@pytest.mark.parametrize("on_failure, member, done, word", [
    ("rollback-wave", "canary", {"canary": 0}, "keep"),
    ("rollback-wave", "a", {"canary": 0, "a": 0}, None),
    ("rollback-wave", "a", {"canary": 0, "a": 0, "b": 10}, ROLL_BACK),
    ("rollback-wave", "canary", {"canary": 0, "a": 0, "b": 10}, "keep"),
    ("rollback-all", "a", {"canary": 0, "a": 0, "b": 0}, None),
    ("rollback-all", "canary", {"canary": 0, "a": 0, "b": 0, "c": 10}, ROLL_BACK),
    ("rollback-all", "a", {"canary": 0, "a": 0, "b": 0, "c": 0}, "keep"),
])
def test_the_word_to_a_member_that_passed(tmp_path: Path, on_failure: str, member: str,
                                          done: dict[str, int], word: str | None) -> None:
    assert word_for(load_fleet(plan_file(tmp_path, on_failure)), done, member) == word


def suite(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "scenarios", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_the_members_are_collected_in_wave_order_and_only_with_fleet(tmp_path: Path) -> None:
    fleet = plan_file(tmp_path)
    done = suite("--collect-only", "-q", "--fleet", str(fleet), "--run-dir",
                 str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    items = [line for line in done.stdout.splitlines() if "::" in line]
    assert items == [f"scenarios/test_fleet.py::test_member[{n}]" for n in
                     ("canary", "a", "b", "c")]
    alone = suite("--collect-only", "-q", "--run-dir", str(tmp_path / "alone"))
    assert alone.returncode == 0, alone.stderr
    assert "test_member" not in alone.stdout and "test_fleet_hold" not in alone.stdout
    assert "test_rollback_late_watch" in alone.stdout


@pytest.mark.parametrize("args, where", [
    (("-n", "1"), "-n: fleet.toml holds 2 member(s) at once"),
    ((), "-n: fleet.toml holds 2 member(s) at once"),
])
def test_too_few_workers_for_the_holds_is_bad_input(tmp_path: Path, args: tuple[str, ...],
                                                    where: str) -> None:
    done = suite("--fleet", str(plan_file(tmp_path)), "--run-dir", str(tmp_path / "run"), *args)
    assert done.returncode == ExitCode.BAD_INPUT, done.stdout[-2000:]
    assert f"harness: error: {where}" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_bad_fleet_file_is_bad_input_naming_file_and_key(tmp_path: Path) -> None:
    fleet = plan_file(tmp_path)
    fleet.write_text(fleet.read_text().replace("rollback-wave", "rollback-some"))
    done = suite("--fleet", str(fleet), "-n", "2", "--run-dir", str(tmp_path / "run"))
    assert done.returncode == ExitCode.BAD_INPUT
    assert f"harness: error: {fleet}: fleet.on_failure" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
