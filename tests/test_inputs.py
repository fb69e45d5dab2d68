"""The three input files checked against each other, and what the run says about its inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from harness.cli import main as cli
from harness.common.errors import ExitCode, InputError
from harness.judge.policy import load_policy
from harness.procedure.inputs import check_signatures, load_inputs
from harness.procedure.run import resolved
from harness.signals.signatures import OPENCLAW

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "scenarios" / "policy.toml"
TARGET = ROOT / "scenarios" / "targets" / "local-openclaw.toml"
SOAK = ROOT / "scenarios" / "soak"


def test_the_shipped_inputs_load_together() -> None:
    inputs = load_inputs(TARGET, POLICY, SOAK)
    assert set(inputs.scenarios.scenarios[0].agents) <= set(inputs.target.api.agents)


def test_a_class_no_signature_has_could_never_fire() -> None:
    """The catalogue of another kind may lack a class: a trigger on it is refused."""
    policy = load_policy(POLICY)
    without_fallback = tuple(s for s in OPENCLAW if s.klass != "fallback")
    check_signatures(policy, OPENCLAW, "openclaw")
    burst = next(t for t in policy.triggers if t.kind == "log")
    odd = replace(policy, triggers=(replace(burst, classes=("fallback",)),))
    with pytest.raises(InputError) as caught:
        check_signatures(odd, without_fallback, "other")
    assert caught.value.key == "triggers[0].classes" and "could never fire" in str(caught.value)


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_bytes(b"\xef\xbb\xbf" + POLICY.read_bytes())
    assert load_policy(policy).name == load_policy(POLICY).name


def test_a_resolved_range_is_said_with_what_it_resolved_to() -> None:
    assert resolved({"spec": "2026.3", "version": "2026.3.31"}) == "2026.3 -> 2026.3.31"
    assert resolved({"spec": "latest", "version": "2026.4.1"}) == "latest -> 2026.4.1"
    assert resolved({"spec": "2026.4.1", "version": "2026.4.1"}) == "2026.4.1"


def test_harness_help_lists_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli(["--help"])
    out = capsys.readouterr().out
    assert "exit codes:" in out
    for code in ExitCode:
        assert f"  {int(code):>3}  " in out, code


@pytest.mark.e2e
def test_a_range_is_resolved_out_loud_and_locked_with_its_spec(tmp_path: Path) -> None:
    """Against the real registry, collecting only: nothing is installed."""
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "pytest", "scenarios", "--collect-only", "-q",
                           "--run-dir", str(run), "--candidate", ">=2026.3.28 <2026.4.1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lock = json.loads((run / "release.lock.json").read_text())
    version = lock["candidate"]["version"]
    assert lock["candidate"]["spec"] == ">=2026.3.28 <2026.4.1" and version.startswith("2026.3.")
    assert f"harness: --candidate '>=2026.3.28 <2026.4.1' resolved to {version} in the " \
           "registry" in done.stdout
