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
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness.commands import alive
from harness.errors import ExitCode
from tests.test_safety_e2e import CANDIDATE, KNOWN_GOOD, finish, start_suite

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
