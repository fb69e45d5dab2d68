"""A fleet whose member's xdist worker is killed while the member upgrades: real OpenClaw
members on loopback, a real `pytest scenarios --fleet FILE -n 2`, a real SIGKILL of the worker.

The member's run dies with its worker's death signal (SIGTERM, `die_with_parent`): its own
interruption handling puts the known-good back and proves it. The fleet says so for the member
(interrupted, what serves, proven), stops the line (the next wave is never touched), ends
with 17, and leaves nothing running. xdist hands the crashed item to a new worker, which does
not start the member a second time.
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
from tests.test_interrupt_e2e import processes_in, wait_for

ROOT = Path(__file__).resolve().parents[1]
OPENCLAW = ROOT / "scenarios" / "targets" / "local-openclaw.toml"
KNOWN_GOOD, CANDIDATE = "2026.3.28", "2026.4.1"
# the fast path only and short windows: the worker is killed 5 s into a 30 s soak
SHORT = ("--scenarios", str(ROOT / "scenarios" / "soak" / "reply-quick.toml"), "--soak", "30",
         "--watch", "10", "--late-watch", "0", "--baseline", "0")


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.e2e
@pytest.mark.soaks  # one gateway at a time: the canary, then nothing
def test_a_member_whose_worker_is_killed_mid_soak_is_put_back_proven_and_the_line_stops(
        tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('[fleet]\nname = "crash"\non_failure = "rollback-wave"\nmax_parallel = 1\n'
                     f'[[members]]\nname = "canary"\ntarget = "{OPENCLAW}"\ncanary = true\n'
                     f'[[members]]\nname = "team-a"\ntarget = "{OPENCLAW}"\n')
    run_dir = tmp_path / "run"
    member_dir = run_dir / "members" / "canary"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "scenarios", "-q", "-rs", "--fleet", str(fleet), "-n", "2",
         "--run-dir", str(run_dir), *SHORT],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(member_dir, "soak", "enter", proc)  # the candidate serves, not yet proven
        time.sleep(5)
        member = json.loads((run_dir / "ledger.json").read_text())["members"]["canary"]["pid"]
        worker = parent_of(member)
        assert parent_of(worker) == proc.pid  # fleet -> its xdist worker -> the member's run
        owner = json.loads((member_dir / "run.json").read_text())
        os.kill(worker, signal.SIGKILL)
        output, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.communicate(timeout=300)
    assert proc.returncode == 17, output[-3000:]
    assert "crashed while running 'scenarios/test_fleet.py::test_member[canary]'" in output
    assert "harness: fleet interrupted (exit 17)" in output
    # xdist gave the crashed item to a new worker, which did not start the member again
    assert "not started again: its worker died (gw" in output, output
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert (verdict["outcome"], verdict["exit_code"]) == ("interrupted", 17)
    rows = {r["member"]: r for r in verdict["members"]}
    canary = rows["canary"]
    assert canary["outcome"] == "interrupted" and canary["exit_code"] == 17, canary
    assert canary["worker_died"].startswith("its worker died (gw"), canary
    assert (canary["version_after"], canary["serving"], canary["proven"]) == (
        KNOWN_GOOD, True, True), canary
    assert canary["what_happened"].endswith(
        f"its own run ended it interrupted (exit 17): {KNOWN_GOOD} serving, proven"), canary
    assert f"Interrupted, its worker died: canary (on {KNOWN_GOOD}, proven)." in verdict["claim"]
    # the line stopped: the next wave never started, its member untouched
    assert verdict["not_reached"] == ["team-a"]
    assert rows["team-a"]["outcome"] == "not_reached" and not rows["team-a"]["observed"]
    assert not (run_dir / "members" / "team-a").exists()
    # the member's own run: its worker's death was a SIGTERM in its soak; it put the
    # known-good back, proved it with a real reply, and said so
    own = json.loads((member_dir / "verdict.json").read_text())
    assert own["interruption"]["by"] == "SIGTERM", own["interruption"]
    assert own["interruption"]["during"].startswith("test_soak"), own["interruption"]
    restore = own["interruption"]["restore"]
    assert (restore["from"], restore["to"]) == (CANDIDATE, KNOWN_GOOD), restore
    assert restore["restored"] and restore["proven"], restore
    # nothing left running: the member's run, its worker, its model lab, its gateway
    for pid in (member, worker, *(p["pid"] for p in owner["processes"])):
        assert not alive(pid), f"PID {pid} left running"
    for deployment in owner["deployments"]:
        assert processes_in(Path(deployment)) == []
