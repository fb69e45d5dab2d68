"""LiteLLM proxy from PyPI, run as a user runs it: `pytest scenarios --target
scenarios/targets/local-litellm.toml`, real 1.79.3 and 1.80.0 in virtualenvs of their own, the
model lab as every model. 1.80.0 applies stream_timeout to the whole stream (BerriAI/litellm
#19184): the long answer is cut, its router and proxy log each cut, and the run rolls back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.reporting import redact
from tests.test_acceptance_e2e import phase, run_suite

ROOT = Path(__file__).resolve().parents[1]
TARGET = "scenarios/targets/local-litellm.toml"
SHORT = ("--watch", "20", "--late-watch", "10", "--late-watch-delay", "5", "--baseline", "20")


def _secrets_are_redacted(run_dir: Path, verdict: dict, output: str) -> None:
    """The report-wide scan: the master key and every api key of the deployment's YAML config
    reach no file of the report."""
    state = ROOT / ".cache" / "runs" / verdict["lock"]["run_id"] / "deployment" / "state"
    secrets = dict(redact.kind_config_secrets("litellm", state / "config.yaml"))
    assert set(secrets.values()) == {"config:master_key", "config:api_key"}, secrets
    assert redact.scan(run_dir, secrets) == []
    assert "secrets of this run remain" not in output


@pytest.mark.e2e
@pytest.mark.soaks(minutes=3.5)  # held in CI, for the order (tests/conftest.py)
def test_litellm_stream_timeout_regression_is_caught_and_rolled_back(tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, output, verdict = run_suite(run, "--target", TARGET, "--soak", "40", *SHORT,
                                      timeout=1200)
    assert code == 10, output[-3000:]
    assert verdict["outcome"] == "rolled_back"
    lock = verdict["lock"]
    assert lock["candidate"]["version"] == "1.80.0" and lock["candidate"]["ecosystem"] == "pypi"
    assert lock["candidate"]["integrity"].startswith("sha256-set:")
    resolved = {d["name"]: d for d in lock["candidate"]["resolved"]}
    assert resolved["litellm"]["version"] == "1.80.0" and len(resolved) > 50
    assert all(len(d["sha256"]) == 64 for d in resolved.values())
    assert phase(verdict, "health")["outcome"] == "passed"
    soak = verdict["soak"]
    # LiteLLM's own log lines, colours stripped and tracebacks folded, are the evidence
    assert soak["signature_counts"].get("router-fallback-timeout", 0) >= 1, soak
    assert soak["signature_counts"].get("stream-generator-exception", 0) >= 1, soak
    deciding = {d["trigger"] for d in soak["decisions"] if d["decides"]}
    assert soak["stopped_by"] in deciding
    evidence = [line for d in soak["decisions"] for line in d.get("evidence") or []]
    assert not any("\x1b" in line for line in evidence)  # colours stripped
    assert any(re.match(r"\d\d:\d\d:\d\d - LiteLLM Router:ERROR: .*Fallback also failed: .*"
                        "Timeout", line) for line in evidence), evidence
    # the proxy's line with its traceback folded in: one record, counted once
    assert any("LiteLLM Proxy:ERROR" in line and "async_data_generator(): Exception occured" in
               line and "Traceback (most recent call last)" in line for line in evidence)
    # and the cut replies themselves are bad: no [DONE], an in-band error
    assert soak["scenarios"]["reply-long"]["bad"] >= 1
    assert "without a finish reason or [DONE]; in-band error" in phase(
        verdict, "soak[reply-long]")["reason"]
    assert soak["scenarios"]["reply-quick"]["good"] > 0  # quick replies were fine on 1.80.0
    # back on 1.79.3, whose long answers stream whole: both watches pass
    assert phase(verdict, "rollback_watch")["outcome"] == "passed"
    assert phase(verdict, "rollback_late_watch")["outcome"] == "passed"
    assert verdict["final_state"] == {**verdict["final_state"], "serving": True,
                                      "version": "1.79.3"}
    line = verdict["backup_posture"]["line"]
    assert line.startswith("backup posture full") and line.endswith(
        "not applicable (the target keeps none): credentials, sessions, state"), line
    _secrets_are_redacted(run, verdict, output)


@pytest.mark.e2e
@pytest.mark.soaks(minutes=2)
def test_litellm_same_version_upgrade_passes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, output, verdict = run_suite(run, "--target", TARGET, "--candidate", "1.79.3",
                                      "--soak", "40", *SHORT, timeout=1200)
    assert code == 0, output[-3000:]
    assert verdict["outcome"] == "passed"
    soak = verdict["soak"]
    assert soak["verdict"]["verdict"] == "pass", soak["verdict"]["reasons"]
    assert not soak["signature_counts"].get("router-fallback-timeout")
    for sid in ("reply-long", "reply-quick", "panel-3-reviewers"):
        stats = soak["scenarios"][sid]
        assert stats["good"] >= 1 and stats["bad"] == 0, (sid, stats)
    assert soak["scenarios"]["reply-long"]["max_s"] > 6  # the long answer streamed whole
    _secrets_are_redacted(run, verdict, output)
