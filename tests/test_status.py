"""`harness status RUN_DIR`: a run that died, what its guard did, and what serves now (a real
process answering on a real port, found by the deployment's PID file)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from harness.cli import main
from harness.targets.gateway import _free_port
from harness.targets.runtime import MARKER


def dead_run(tmp_path: Path, port: int) -> tuple[Path, Path]:
    run_dir, deployment = tmp_path / "run", tmp_path / "deployment"
    prefix = tmp_path / "prefix"
    for folder in (run_dir, deployment / "guard", prefix):
        folder.mkdir(parents=True)
    (prefix / MARKER).write_text(json.dumps({"version": "2026.3.28"}))
    (deployment / "current").symlink_to(prefix)
    (deployment / "guard" / "state.json").write_text(json.dumps({"api": {
        "base_url": f"http://127.0.0.1:{port}", "ready": "/"}}))
    (run_dir / "run.json").write_text(json.dumps({
        "run_id": "r1", "pid": 999999, "started": time.time() - 60, "ended": None,
        "processes": [], "deployments": [str(deployment)]}))
    (run_dir / "verdict.json").write_text(json.dumps({
        "outcome": "interrupted", "exit_code": 17, "written_by": "guard",
        "claim": "Interrupted: the harness died during soak (enter).",
        "final_state": {"serving": True, "version": "2026.3.28", "proven": True}}))
    (run_dir / "transitions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"run_id": "r1", "state": "soak", "event": "enter", "at": "t1"},
        {"run_id": "r1", "state": "guard", "event": "took_over", "by": "guard", "at": "t2",
         "summary": "the harness (PID 999999) is gone"},
        {"run_id": "r1", "state": "guard", "event": "proven", "by": "guard", "at": "t3",
         "summary": "restored: 2026.3.28 serving (PID 5), proven by a real reply"}]))
    return run_dir, deployment


def test_status_of_a_dead_run_says_what_its_guard_did_and_what_serves(
        tmp_path: Path, capsys) -> None:
    port = _free_port()
    run_dir, deployment = dead_run(tmp_path, port)
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                               "127.0.0.1"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", trust_env=False)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        (deployment / "gateway.pid").write_text(str(server.pid))
        assert main(["status", str(run_dir)]) == 0
        out = capsys.readouterr().out
    finally:
        server.kill()
        server.wait()
    assert "DIED without ending" in out
    assert "verdict: interrupted (exit 17), written by its guard" in out
    assert "last step of the harness: soak enter" in out
    assert "guard took_over (by the guard) at t2: the harness (PID 999999) is gone" in out
    assert "guard proven (by the guard) at t3" in out
    assert f"2026.3.28 running as PID {server.pid} (/ 200)" in out
    assert "refused (exit 19) unless --resume-cleanup" in out
    # once the gateway is gone, it says so
    assert main(["status", str(run_dir)]) == 0
    assert "nothing serving (active install 2026.3.28)" in capsys.readouterr().out


def test_status_of_a_folder_that_is_no_run_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["status", str(tmp_path)]) == 20
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run.json" in err
