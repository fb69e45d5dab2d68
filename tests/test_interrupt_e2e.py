"""Real runs of the acceptance suite interrupted by a signal: a true verdict, the known-good
back and proven, nothing left running.

Each run upgrades real OpenClaw 2026.3.28 -> 2026.4.1 on loopback and is interrupted before the
candidate is proven: SIGINT (Ctrl-C) in the soak, SIGTERM (a CI job's timeout) in `health`.
Embedded mode: the deployment is the run's own, so the verdict's final state is observed
after the harness restored and proved the known-good, and then the run stops it with itself
(`after_run`); no process of the run may be left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.common.commands import alive
from harness.common.errors import ExitCode
from tests.test_safety_e2e import CANDIDATE, KNOWN_GOOD, ROOT, finish, start_suite

pytestmark = pytest.mark.e2e
SHORT = ("--soak", "60", "--baseline", "0", "--watch", "20", "--late-watch", "0")


def wait_for(run_dir: Path, state: str, event: str, proc, timeout: float = 900) -> dict:
    """The run's transition `state event`, once it is written (the run still going). A phase
    that failed on the way means the run is not where the test means to interrupt it."""
    path = run_dir / "transitions.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended before {state} {event}"
        try:
            for line in path.read_text().splitlines():
                record = json.loads(line)
                assert record["event"] != "failed", f"before {state} {event}: {record}"
                if record["state"] == state and record["event"] == event:
                    return record
        except (OSError, ValueError):
            pass
        time.sleep(0.25)
    raise AssertionError(f"no transition {state} {event} within {timeout:g} s")


def processes_in(folder: Path) -> list[str]:
    """Every process working in `folder` (the gateway, whoever started it), as 'PID args'."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = Path(proc / "cwd").resolve(strict=True)
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if cwd == folder or folder in cwd.parents:
            found.append(f"{proc.name} {args}")
    return found


@pytest.mark.parametrize(("sig", "state"), [
    pytest.param(signal.SIGINT, "soak", marks=pytest.mark.soaks, id="sigint-in-soak"),
    pytest.param(signal.SIGTERM, "health", id="sigterm-in-health")])  # stopped before traffic
def test_an_interrupted_upgrade_ends_interrupted_with_the_known_good_back_and_proven(
        tmp_path: Path, sig: signal.Signals, state: str) -> None:
    run_dir = tmp_path / "run"
    proc = start_suite(run_dir, *SHORT)
    try:
        wait_for(run_dir, "start", "passed", proc)  # the candidate is up, not yet proven
        if state == "soak":
            wait_for(run_dir, "health", "passed", proc)
        wait_for(run_dir, state, "enter", proc)
        if state == "soak":
            time.sleep(10)  # well inside the soak window: the candidate serves traffic
        proc.send_signal(sig)
        code, output, verdict = finish(proc, run_dir, timeout=400)
    finally:
        if proc.poll() is None:  # the test failed on the way: let the run clean up after itself
            proc.terminate()
            try:
                proc.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert code == ExitCode.INTERRUPTED, output[-3000:]
    assert verdict["outcome"] == "interrupted" and verdict["exit_code"] == 17
    interruption = verdict["interruption"]
    assert interruption["by"] == sig.name
    assert interruption["during"].startswith(f"test_{state}"), interruption
    restore = interruption["restore"]
    assert restore["from"] == CANDIDATE and restore["to"] == KNOWN_GOOD, restore
    assert restore["restored"] and restore["ready"] and restore["proven"], restore
    assert restore["state_diff"] == {"missing": [], "added": [], "changed": []}
    final = verdict["final_state"]
    assert final["serving"] is True and final["version"] == KNOWN_GOOD, final
    assert final["proven"] is True and final["proven_version"] == KNOWN_GOOD, final
    assert verdict["claim"].split(". ", 1)[1].startswith(
        f"Interrupted by {sig.name} during test_{state}"), verdict["claim"]
    assert f"{CANDIDATE} was not proven, so the harness put {KNOWN_GOOD} back" in \
        verdict["claim"]
    assert "harness: interrupted (exit 17): " in output
    # no phase after the interruption passed or was judged: nothing claims the candidate
    assert not any(p["name"] == "soak_policy" for p in verdict["phases"])
    # the last transition is the outcome, after the restore's own records
    records = [json.loads(line) for line in
               (run_dir / "transitions.jsonl").read_text().splitlines()]
    assert [(r["state"], r["event"]) for r in records][-3:] == [
        ("interrupted", "restore"), ("interrupted", "restored"), ("outcome", "interrupted")]
    # nothing of the run is left: the model lab by its recorded PID, and every process in
    # the run's deployment (the gateway, whoever started it)
    owner = json.loads((run_dir / "run.json").read_text())
    assert owner["ended"] is not None and owner["outcome"] == "interrupted"
    for recorded in owner["processes"]:
        assert not alive(recorded["pid"]), f"{recorded['role']} PID {recorded['pid']} left"
    for deployment in owner["deployments"]:
        assert processes_in(Path(deployment)) == []


def kill_and_reap(proc: subprocess.Popen[str]) -> None:
    proc.kill()  # SIGKILL: no teardown, no verdict of its own
    proc.communicate(timeout=60)


def wait_file(path: Path, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.25)
    raise AssertionError(f"no {path.name} within {timeout:g} s")


@pytest.mark.soaks
def test_a_run_killed_in_its_soak_is_ended_by_its_guard(tmp_path: Path) -> None:
    """SIGKILL of the harness while the unproven candidate serves the soak: the guard takes
    the lapsed lease, puts the known-good back with its state, proves it with a real reply,
    writes the verdict (the last one alive) and, embedded, stops everything of the run."""
    run_dir = tmp_path / "run"
    proc = start_suite(run_dir, *SHORT)
    try:
        wait_for(run_dir, "health", "passed", proc)
        wait_for(run_dir, "soak", "enter", proc)
        time.sleep(8)
        owner = json.loads((run_dir / "run.json").read_text())
        kill_and_reap(proc)
        killed = time.time()
        verdict = wait_file(run_dir / "verdict.json", timeout=120)
    finally:
        if proc.poll() is None:
            kill_and_reap(proc)
    assert verdict["outcome"] == "interrupted" and verdict["exit_code"] == 17
    assert verdict["written_by"] == "guard"
    trip = verdict["guard_trips"][0]
    assert "the harness (PID" in trip["why"] and "is gone" in trip["why"], trip
    assert trip["action"] == "restored" and trip["proven"] is True, trip
    assert trip["state_diff"] == {"missing": [], "added": [], "changed": []}
    final = verdict["final_state"]
    assert final["version"] == KNOWN_GOOD and final["serving"] and final["proven"], final
    assert verdict["interruption"]["during"].startswith("soak"), verdict["interruption"]
    assert f"no claim about {CANDIDATE}" in verdict["claim"]
    records = [json.loads(line) for line in
               (run_dir / "transitions.jsonl").read_text().splitlines()]
    guard = [(r["state"], r["event"]) for r in records if r.get("by") == "guard"]
    assert guard[:5] == [("guard", "took_over"), ("guard", "restore"), ("guard", "proven"),
                         ("guard", "stopped"), ("outcome", "interrupted")], guard
    proven = next(r for r in records if (r["state"], r["event"]) == ("guard", "proven"))
    print(f"\n[guard] {KNOWN_GOOD} proven {proven['ts'] - killed:.1f} s after SIGKILL")
    assert proven["ts"] - killed < 60
    # nothing of the run is left: the guard stopped the gateway and the model lab it kept
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(p["pid"]) for p in owner["processes"]):
        time.sleep(0.5)
    for recorded in owner["processes"]:
        assert not alive(recorded["pid"]), f"{recorded['role']} PID {recorded['pid']} left"
    for deployment in owner["deployments"]:
        assert processes_in(Path(deployment)) == []
    status = subprocess.run([sys.executable, "-m", "harness.cli", "status", str(run_dir)],
                            capture_output=True, text=True, cwd=ROOT)
    assert "DIED without ending" in status.stdout and "written by its guard" in status.stdout
    assert "nothing serving" in status.stdout, status.stdout


def test_resume_cleanup_after_a_real_kill_stops_what_the_dead_run_left(tmp_path: Path) -> None:
    """SIGKILL before the first change (no guard is armed yet): the known-good gateway the run
    started is left running. The next run into the dir is refused in one line (exit 19); with
    --resume-cleanup it stops that gateway by the PID the dead run recorded, moves the dead
    run's files aside and starts fresh."""
    run_dir = tmp_path / "run"
    proc = start_suite(run_dir, *SHORT)
    try:
        wait_for(run_dir, "backup", "enter", proc)
        owner = json.loads((run_dir / "run.json").read_text())
        deployment = Path(owner["deployments"][0])
        gateway = int((deployment / "gateway.pid").read_text())
        kill_and_reap(proc)
    finally:
        if proc.poll() is None:
            kill_and_reap(proc)
    assert alive(gateway)  # left behind: nothing guards the deployment before a change
    try:
        refused = subprocess.run([sys.executable, "-m", "pytest", "scenarios", "-q",
                                  "--run-dir", str(run_dir), *SHORT], cwd=ROOT,
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode == ExitCode.RUN_DIR_DEAD, refused.stdout + refused.stderr
        line = [x for x in refused.stderr.splitlines() if x.startswith("harness: error: ")]
        assert len(line) == 1 and "died without a verdict" in line[0], refused.stderr
        assert alive(gateway)  # a refusal touches nothing
        resumed = subprocess.run([sys.executable, "-m", "pytest", "scenarios", "-q",
                                  "--collect-only", "--run-dir", str(run_dir),
                                  "--resume-cleanup", *SHORT], cwd=ROOT,
                                 capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert f"gateway PID {gateway} (SIGTERM)" in resumed.stderr, resumed.stderr
        assert not alive(gateway)
        aside = run_dir / f"dead-{owner['run_id']}"
        assert (aside / "run.json").exists() and (aside / "transitions.jsonl").exists()
        fresh = json.loads((run_dir / "run.json").read_text())
        assert fresh["run_id"] != owner["run_id"]
        assert fresh["resumed_cleanup"]["run_id"] == owner["run_id"]
    finally:
        if alive(gateway):
            os.killpg(gateway, signal.SIGKILL)
