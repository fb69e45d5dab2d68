"""The acceptance suite run as a user runs it, against the real OpenClaw packages.

Each test starts `pytest scenarios` in a subprocess (the real command line, exit code and
verdict.json), which installs Node.js and both gateway versions into the project's cache on
first use, runs the model lab, and provisions a gateway on loopback of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_suite(run_dir: Path, *args: str, timeout: float = 1500) -> tuple[int, str, dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios", "-q", "--run-dir", str(run_dir), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )
    verdict_path = run_dir / "verdict.json"
    verdict = json.loads(verdict_path.read_text()) if verdict_path.exists() else {}
    return proc.returncode, proc.stdout + proc.stderr, verdict


def target_variant(tmp_path: Path, name: str, *replacements: tuple[str, str]) -> Path:
    """A copy of the shipped target file with some text replaced, beside its config template."""
    source = ROOT / "scenarios" / "targets"
    target = tmp_path / "targets" / f"{name}.toml"
    target.parent.mkdir()
    (target.parent / "openclaw").symlink_to(source / "openclaw")
    text = (source / "local-openclaw.toml").read_text()
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    target.write_text(text)
    return target


def phase(verdict: dict, name: str) -> dict:
    return next(p for p in verdict["phases"] if p["name"] == name)


@pytest.mark.e2e
def test_regressing_candidate_is_caught_by_the_soak_and_rolled_back(tmp_path: Path) -> None:
    # the window outlasts the first slow replies (about 60 s), so a trigger stops it early
    code, output, verdict = run_suite(tmp_path / "run", "--soak", "90", "--watch", "20",
                                      "--baseline", "20")
    assert code == 10, output[-3000:]
    assert verdict["outcome"] == "rolled_back"
    assert verdict["lock"]["candidate"]["version"] == "2026.4.1"
    assert verdict["lock"]["candidate"]["integrity"].startswith("sha512-")
    # green startup checks on the candidate were not enough
    assert phase(verdict, "health")["outcome"] == "passed"
    assert phase(verdict, "soak_policy")["outcome"] == "failed"
    soak = verdict["soak"]
    # The deciding triggers see the same failures at about the same second (a timed-out run
    # logs its failover line as its empty reply arrives); whichever decides first stops the soak.
    deciding = {d["trigger"] for d in soak["decisions"] if d["decides"]}
    assert soak["stopped_by"] in deciding
    assert {"timeout-failover-burst", "new-timeouts-vs-baseline"} & deciding
    assert soak["seconds"] < 90  # stopped early, not at the end of the window and drain
    logged = next(d for d in soak["decisions"] if d["trigger"] == "timeout-failover-burst")
    # the evidence is the real gateway's own failover lines for the slow model
    assert logged["observed"] >= 1
    assert all("decision=surface_error reason=timeout provider=lab/slow-reasoner" in line
               for line in logged["evidence"]), logged["evidence"]
    assert soak["signature_counts"]["failover-decision"] >= 1
    assert soak["scenarios"]["reply-streaming"]["good"] == 0
    assert soak["scenarios"]["reply-plain"]["good"] == 0
    assert soak["scenarios"]["reply-quick"]["good"] > 0  # fast replies stayed fine on 4.1
    # the verdict says why, against the known-good's own baseline under the same mix
    assert phase(verdict, "baseline")["outcome"] == "passed"
    baseline = verdict["baseline"]
    assert baseline["class_counts"]["failover"] == 0
    assert baseline["scenarios"]["reply-streaming"]["good"] >= 1
    assert soak["comparison"]["classes"]["failover"]["new"] is True
    assert soak["verdict"]["verdict"] == "fail"
    paths = soak["verdict"]["scenarios"]
    assert paths["reply-plain"]["verdict"] == "fail"
    assert paths["panel-3-reviewers"]["verdict"] == "fail"
    # a streamed slow reply may still be open when the soak stops: not judged, and said so
    assert paths["reply-streaming"]["verdict"] in ("fail", "inconclusive")
    assert paths["reply-quick"]["verdict"] == "pass"  # fast replies stayed fine on 4.1
    versus = next(d for d in soak["decisions"] if d["trigger"] == "new-timeouts-vs-baseline")
    assert versus["observed"] >= 1 and "the baseline had none" in versus["note"]
    assert all(d["policy_sha256"] == verdict["lock"]["policy"]["sha256"]
               for d in soak["decisions"])
    # rollback: every step passed, state equals the pre-upgrade backup
    rollback = [p for p in verdict["phases"] if p["family"] == "rollback"]
    assert rollback and all(p["outcome"] == "passed" for p in rollback), rollback
    assert verdict["rollback_state_diff"] == {"missing": [], "added": [], "changed": []}
    # the watch saw slow-reasoner replies succeed through 2026.3.28, not just a live process
    watch = verdict["watch"]["scenarios"]
    assert watch["reply-streaming"]["good"] >= 1 and watch["reply-streaming"]["max_s"] > 60
    assert watch["panel-3-reviewers"]["good"] >= 1
    assert verdict["final_state"]["serving"] is True
    assert verdict["final_state"]["version"] == "2026.3.28"
    # the run's Allure results render to HTML with the real Allure CLI
    render = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(tmp_path / "run")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert render.returncode == 0, render.stderr
    summary = json.loads((tmp_path / "run" / "html" / "summary.json").read_text())
    assert summary["stats"]["failed"] >= 1 and summary["stats"]["passed"] >= 13
    # the run's gateway token reaches no file of the report (results, HTML, verdict)
    state = ROOT / ".cache" / "runs" / verdict["lock"]["run_id"] / "deployment" / "state"
    token = json.loads((state / "openclaw.json").read_text())["gateway"]["auth"]["token"]
    leaks = [p for p in (tmp_path / "run").rglob("*")
             if p.is_file() and token in p.read_text(errors="ignore")]
    assert leaks == []


@pytest.mark.e2e
def test_a_candidate_that_does_not_regress_passes_without_rollback(tmp_path: Path) -> None:
    code, output, verdict = run_suite(tmp_path / "run", "--candidate", "2026.3.28",
                                      "--soak", "30", "--watch", "20", "--baseline", "20")
    assert code == 0, output[-3000:]
    assert verdict["outcome"] == "passed"
    assert all(p["outcome"] == "skipped" for p in verdict["phases"]
               if p["family"] == "rollback")
    soak = verdict["soak"]
    assert soak["stopped_by"] is None
    assert not any(d["fired"] for d in soak["decisions"])
    # the soak waited for the slow reasoner and saw it answer correctly
    assert soak["scenarios"]["reply-streaming"]["good"] >= 1
    assert soak["scenarios"]["reply-streaming"]["max_s"] > 60
    assert soak["scenarios"]["panel-3-reviewers"]["good"] >= 1
    # a pass says why: every path's numbers, against the baseline, and every trigger's peak
    assert soak["verdict"]["verdict"] == "pass", soak["verdict"]["reasons"]
    for sid, stats in soak["scenarios"].items():
        assert stats["finished"] >= 2 and stats["bad"] == 0, (sid, stats)
        assert any(r.startswith(f"{sid}: pass: {stats['good']} good") and "baseline p95" in r
                   for r in soak["verdict"]["reasons"]), soak["verdict"]["reasons"]
    assert soak["comparison"]["classes"]["failover"] == {**soak["comparison"]["classes"][
        "failover"], "baseline": 0, "candidate": 0, "new": False}
    assert verdict["final_state"] == {**verdict["final_state"], "serving": True,
                                      "version": "2026.3.28"}


def test_a_malformed_policy_stops_before_anything_starts(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text((ROOT / "scenarios" / "policy.toml").read_text().replace(
        "count = 3", "count = 0", 1))
    code, output, verdict = run_suite(tmp_path / "run", "--policy", str(policy), timeout=120)
    assert code == 20
    errors = [line for line in output.splitlines() if line.startswith("harness: error: ")]
    assert errors == [f"harness: error: {policy}: triggers[0].count: expected an integer of "
                      "at least 1, got 0"]
    assert verdict["outcome"] == "error" and verdict["phases"] == []
    assert not (ROOT / ".cache" / "runs" / verdict.get("run_id", "none")).exists()


def test_an_unknown_version_is_refused_before_anything_starts(tmp_path: Path) -> None:
    code, output, verdict = run_suite(tmp_path / "run", "--candidate", "2099.1.1", timeout=120)
    assert code == 21
    assert "harness: error: --candidate: openclaw@2099.1.1 is not a version the registry " \
           "knows" in output
    assert verdict["outcome"] == "error" and verdict["phases"] == []


def test_a_malformed_target_file_names_file_and_key(tmp_path: Path) -> None:
    target = target_variant(tmp_path, "broken", ('driver = "local"', 'driver = "ssh-someday"'))
    code, output, _ = run_suite(tmp_path / "run", "--target", str(target), timeout=120)
    assert code == 20
    assert f"harness: error: {target}: target.driver: expected one of local" in output


@pytest.mark.e2e
def test_a_gateway_that_never_becomes_healthy_is_a_distinct_error(tmp_path: Path) -> None:
    target = target_variant(tmp_path, "unbootable",
                            ('"--bind", "loopback"', '"--bind", "no-such-bind-mode"'),
                            ("ready_timeout_s = 90", "ready_timeout_s = 30"))
    code, output, verdict = run_suite(tmp_path / "run", "--target", str(target), timeout=600)
    assert code == 22, output[-2000:]
    errors = [line for line in output.splitlines() if line.startswith("harness: error: ")]
    assert len(errors) == 1 and "never became ready" in errors[0], errors
    assert verdict["outcome"] == "error"
    assert verdict["final_state"]["serving"] is False  # nothing left running either


@pytest.mark.e2e
def test_a_candidate_that_never_becomes_healthy_is_rolled_back(tmp_path: Path) -> None:
    # The upgrade carries 2026.4.1's fix (agents.defaults.llm.idleTimeoutSeconds = 0) to a
    # 2026.3.28 candidate, which rejects the unknown key and never boots. Rollback must restore
    # the pre-upgrade config from the backup, or the known-good would not boot either.
    patch = ROOT / "scenarios" / "targets" / "openclaw" / "idle-timeout-off.json"
    code, output, verdict = run_suite(tmp_path / "run", "--candidate", "2026.3.28",
                                      "--candidate-config", str(patch), "--watch", "10",
                                      "--baseline", "0")
    assert code == 10, output[-3000:]
    start = phase(verdict, "start")
    assert start["outcome"] == "failed" and "exited" in start["reason"], start
    assert phase(verdict, "health")["outcome"] == "skipped"
    assert all(p["outcome"] == "skipped" for p in verdict["phases"] if p["family"] == "soak")
    assert all(p["outcome"] == "passed" for p in verdict["phases"] if p["family"] == "rollback")
    assert verdict["rollback_state_diff"] == {"missing": [], "added": [], "changed": []}
    assert verdict["final_state"]["serving"] is True
