"""A run dir belongs to one run; what a dead run left is stopped by its PIDs; children die
with the harness; half installs of dead processes go away."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.common.commands import start_time
from harness.common.errors import ExitCode, RunDirError
from harness.procedure.rundir import RunDirOwner
from harness.targets.runtime import remove_dead_partials

ROOT = Path(__file__).resolve().parents[1]


def gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_a_run_dir_held_by_a_live_run_is_refused(tmp_path: Path) -> None:
    first, _ = RunDirOwner.take(tmp_path, "run-1")
    with pytest.raises(RunDirError) as refused:
        RunDirOwner.take(tmp_path, "run-2")
    assert refused.value.exit_code == ExitCode.RUN_DIR_BUSY
    assert "held by run run-1" in str(refused.value) and "still running" in str(refused.value)
    first.ended()
    second, cleanup = RunDirOwner.take(tmp_path, "run-2")  # ended on its own feet: free
    assert cleanup is None and json.loads((tmp_path / "run.json").read_text())["run_id"] == \
        "run-2"
    second.ended()


def test_a_run_after_one_that_ended_keeps_its_results_apart_and_the_same_review(
        tmp_path: Path) -> None:
    """Two runs' verdicts, transitions and Allure results never mix in one run dir: the
    earlier run's files go into previous-<run-id>/, its release lock stays (the same review)."""
    first, _ = RunDirOwner.take(tmp_path, "run-1")
    (tmp_path / "allure-results").mkdir()
    (tmp_path / "allure-results" / "a-result.json").write_text("{}")
    (tmp_path / "transitions.jsonl").write_text('{"run_id": "run-1"}\n')
    (tmp_path / "verdict.json").write_text('{"outcome": "passed"}')
    (tmp_path / "release.lock.json").write_text('{"run_id": "run-1"}')
    first.ended()
    second, cleanup = RunDirOwner.take(tmp_path, "run-2")
    kept = tmp_path / "previous-run-1"
    assert cleanup is None and second.record["previous"] == {"run_id": "run-1",
                                                             "moved_to": str(kept)}
    assert (kept / "verdict.json").exists() and (kept / "transitions.jsonl").exists()
    assert (kept / "allure-results" / "a-result.json").exists()
    assert list((tmp_path / "allure-results").iterdir()) == []  # folder kept, emptied
    assert not (tmp_path / "verdict.json").exists()
    assert not (tmp_path / "transitions.jsonl").exists()
    assert (tmp_path / "release.lock.json").read_text() == '{"run_id": "run-1"}'
    assert json.loads((tmp_path / "run.json").read_text())["run_id"] == "run-2"
    second.ended()
    third, _ = RunDirOwner.take(tmp_path, "run-3")  # and again: each run its own folder
    assert (tmp_path / "previous-run-2" / "run.json").exists()
    assert (tmp_path / "previous-run-1" / "verdict.json").exists()  # untouched
    third.ended()


def test_the_lock_dies_with_its_process(tmp_path: Path) -> None:
    """No file a crash leaves behind holds the dir: a killed holder frees it, and the next
    run is told that run died."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from harness.procedure.rundir import RunDirOwner; "
         "RunDirOwner.take(Path(sys.argv[1]), 'dead'); "
         "print('held', flush=True); time.sleep(60)", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirError) as busy:
            RunDirOwner.take(tmp_path, "next")
        assert busy.value.exit_code == ExitCode.RUN_DIR_BUSY
    finally:
        holder.kill()
        holder.wait()
    (tmp_path / "transitions.jsonl").write_text(json.dumps(
        {"run_id": "dead", "state": "soak", "event": "enter"}) + "\n")
    with pytest.raises(RunDirError) as dead:
        RunDirOwner.take(tmp_path, "next")
    assert dead.value.exit_code == ExitCode.RUN_DIR_DEAD
    assert "run dead (PID" in str(dead.value) and "died without a verdict (its last " \
        "transition: soak enter)" in str(dead.value) and "--resume-cleanup" in str(dead.value)


def test_resume_cleanup_stops_what_the_dead_run_left_and_starts_fresh(tmp_path: Path) -> None:
    run_dir, deployment = tmp_path / "run", tmp_path / "deployment"
    (deployment / "guard").mkdir(parents=True)
    run_dir.mkdir()
    lab = subprocess.Popen(["sleep", "60"], start_new_session=True)
    gateway = subprocess.Popen(["sleep", "61"], cwd=deployment, start_new_session=True)
    stranger = subprocess.Popen(["sleep", "62"], start_new_session=True)  # not that run's
    try:
        (deployment / "gateway.pid").write_text(str(gateway.pid))
        (deployment / "guard" / "guard.pid").write_text(str(stranger.pid))
        (run_dir / "run.json").write_text(json.dumps({
            "run_id": "dead", "pid": 999999, "ended": None, "deployments": [str(deployment)],
            "processes": [{"role": "model lab", "pid": lab.pid,
                           "start_time": start_time(lab.pid)},
                          {"role": "reused PID", "pid": stranger.pid, "start_time": 1}]}))
        (run_dir / "verdict.json").write_text("{}")
        (run_dir / "allure-results").mkdir()
        (run_dir / "allure-results" / "x-result.json").write_text("{}")
        owner, cleanup = RunDirOwner.take(run_dir, "fresh", resume_cleanup=True)
        assert sorted((s["role"], s["pid"]) for s in cleanup["stopped"]) == sorted(
            [("gateway", gateway.pid), ("model lab", lab.pid)])
        assert lab.wait(timeout=5) is not None and gateway.wait(timeout=5) is not None
        assert stranger.poll() is None  # a PID that is not what that run started: left alone
        aside = run_dir / "dead-dead"
        assert (aside / "verdict.json").exists() and not (run_dir / "verdict.json").exists()
        assert (aside / "allure-results" / "x-result.json").exists()
        assert list((run_dir / "allure-results").iterdir()) == []
        fresh = json.loads((run_dir / "run.json").read_text())
        assert fresh["run_id"] == "fresh" and fresh["resumed_cleanup"]["run_id"] == "dead"
        owner.ended()
    finally:
        for proc in (lab, gateway, stranger):
            proc.kill()
            proc.wait()


def test_children_die_with_the_harness_even_on_sigkill(tmp_path: Path) -> None:
    """A real parent started through commands.die_with_parent, killed with SIGKILL."""
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, time; "
         "from harness.common.commands import die_with_parent; "
         "child = subprocess.Popen(['sleep', '60'], preexec_fn=die_with_parent()); "
         "print(child.pid, flush=True); time.sleep(60)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        assert not gone(child, within_s=0.2)
        parent.kill()
        parent.wait()
        assert gone(child), f"PID {child} outlived its parent"
    finally:
        if not gone(child, within_s=0):
            os.kill(child, 9)


def test_half_installs_of_dead_processes_are_removed(tmp_path: Path) -> None:
    prefix = tmp_path / "openclaw" / "2026.4.1"
    prefix.parent.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    for pid in (dead.pid, os.getpid(), 1):  # dead; this process; alive and not ours
        (prefix.parent / f".2026.4.1.partial-{pid}").mkdir()
    (prefix.parent / ".2026.3.28.partial-1").mkdir()  # another version: not this install's
    removed = remove_dead_partials(prefix)
    assert [p.name for p in removed] == [f".2026.4.1.partial-{dead.pid}"]
    assert sorted(p.name for p in prefix.parent.iterdir()) == sorted(
        [f".2026.4.1.partial-{os.getpid()}", ".2026.4.1.partial-1", ".2026.3.28.partial-1"])


@pytest.mark.e2e
def test_an_install_through_a_linked_cache_records_its_integrity(tmp_path: Path) -> None:
    """A cache shared by a symlink (as worktrees share one): npm must be given the real path,
    or its lock file is keyed '../../.../.partial-PID/node_modules/x' and the install's
    recorded integrity is not found (every `install` phase then fails)."""
    from harness.targets.packages.npm import installed_integrity
    from harness.targets.runtime import Runtime

    (tmp_path / "real").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "real")
    runtime = Runtime(tmp_path / "linked" / "runtime")
    release = runtime.registry.resolve("is-number", "7.0.0", "test")
    installation = runtime.install(release, node=None)
    assert installed_integrity(installation)["matches"], installed_integrity(installation)


def test_a_dead_run_whose_guard_wrote_the_verdict_is_said_so(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"run_id": "dead", "pid": 999999,
                                                   "ended": None}))
    (tmp_path / "verdict.json").write_text(json.dumps({
        "outcome": "interrupted", "written_by": "guard",
        "final_state": {"version": "2026.3.28", "proven": True}}))
    with pytest.raises(RunDirError) as dead:
        RunDirOwner.take(tmp_path, "next")
    assert dead.value.exit_code == ExitCode.RUN_DIR_DEAD
    assert "died (its guard wrote the verdict: interrupted, 2026.3.28 proven)" in \
        str(dead.value) and "harness status" in str(dead.value)
