"""The manual restart gate waits, bounded, for a person; only an answer to its own request opens
it. Approvals come from another thread or process here, as they would from a person."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.procedure.gate import APPROVE, LEDGER, REQUEST, RestartGate, Terminal, pending

ROOT = Path(__file__).resolve().parents[1]
PLAN = {"stop": "openclaw@2026.3.28", "start": "openclaw@2026.4.1"}


def answer_when_open(run_dir: Path, write) -> threading.Thread:
    def go() -> None:
        deadline = time.monotonic() + 10
        while not (run_dir / REQUEST).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        write()
    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


def test_auto_approves_and_says_so(tmp_path: Path) -> None:
    decision = RestartGate("auto", tmp_path, 5).ask("start the candidate", PLAN)
    assert decision.approved and decision.by == "--restart-gate auto"
    assert json.loads((tmp_path / LEDGER).read_text())["channel"] == "auto"


def test_manual_waits_and_proceeds_on_an_approval_file(tmp_path: Path) -> None:
    gate = RestartGate("manual", tmp_path, 10, poll_s=0.05)
    thread = answer_when_open(tmp_path, lambda: (tmp_path / APPROVE).write_text("alice\n"))
    decision = gate.ask("stop 2026.3.28 and start 2026.4.1", PLAN)
    thread.join()
    assert decision.approved and decision.by == "alice" and decision.channel == "approval file"
    assert not (tmp_path / REQUEST).exists() and not (tmp_path / APPROVE).exists()
    assert "restart approved by alice via approval file at " in decision.summary()


def test_manual_times_out_safely_without_an_answer(tmp_path: Path) -> None:
    decision = RestartGate("manual", tmp_path, 0.5, poll_s=0.05).ask("start it", PLAN)
    assert not decision.approved and decision.channel == "timeout"
    assert decision.reason == "no approval within 0.5 s; nothing was interrupted"
    assert 0.5 <= decision.waited_s < 2


def test_an_answer_from_before_the_gate_opened_does_not_open_it(tmp_path: Path) -> None:
    (tmp_path / APPROVE).write_text("stale approval from yesterday")
    decision = RestartGate("manual", tmp_path, 0.3, poll_s=0.05).ask("start it", PLAN)
    assert not decision.approved


def test_an_answer_to_another_request_is_ignored(tmp_path: Path) -> None:
    def other() -> None:
        (tmp_path / APPROVE).write_text(json.dumps({"request": "0000", "by": "mallory"}))
    thread = answer_when_open(tmp_path, other)
    decision = RestartGate("manual", tmp_path, 0.6, poll_s=0.05).ask("start it", PLAN)
    thread.join()
    assert not decision.approved and decision.channel == "timeout"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_harness_approve_answers_the_waiting_request(tmp_path: Path) -> None:
    results = []
    thread = answer_when_open(tmp_path, lambda: results.append(
        cli("approve", str(tmp_path), "--by", "bob")))
    decision = RestartGate("manual", tmp_path, 20, poll_s=0.05).ask("start it", PLAN)
    thread.join()
    assert results[0].returncode == 0, results[0].stderr
    assert results[0].stdout.startswith("harness: approved by bob: start it (request ")
    assert decision.approved and decision.by == "bob" and decision.channel == "harness approve"


def test_harness_approve_deny_refuses(tmp_path: Path) -> None:
    thread = answer_when_open(tmp_path, lambda: cli("approve", str(tmp_path), "--by", "carol",
                                                    "--deny", "--reason", "peak hours"))
    decision = RestartGate("manual", tmp_path, 20, poll_s=0.05).ask("start it", PLAN)
    thread.join()
    assert not decision.approved and decision.by == "carol"
    assert decision.reason == "refused: peak hours"


def test_harness_approve_with_nothing_waiting_says_so(tmp_path: Path) -> None:
    done = cli("approve", str(tmp_path))
    assert done.returncode == 12 and "no restart is waiting for approval" in done.stderr
    assert pending(tmp_path) is None


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_a_name_typed_at_the_terminal_approves(tmp_path: Path) -> None:
    leader, follower = os.openpty()
    stream = os.fdopen(follower, "r")
    prompts: list[str] = []
    terminal = Terminal(stream, prompts.append)
    gate = RestartGate("manual", tmp_path, 10, terminal=terminal, poll_s=0.05)
    thread = answer_when_open(tmp_path, lambda: os.write(leader, b"dana\n"))
    decision = gate.ask("start it", PLAN)
    thread.join()
    stream.close()
    os.close(leader)
    assert decision.approved and decision.channel == "tty" and decision.by.startswith("dana")
    assert prompts and "Type your name to approve" in prompts[0]
