"""Where a finished run lands: `reports/latest` and Allure's environment panel, for a run of
one gateway and a fleet alike (harness.reporting.landing). Real folders and links; the fleet
as `pytest scenarios --fleet` runs it, on xdist workers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from harness.reporting.landing import link_latest, properties, write_environment

ROOT = Path(__file__).resolve().parents[1]
OPENCLAW = ROOT / "scenarios" / "targets" / "local-openclaw.toml"


def test_latest_points_at_the_newest_run_inside_reports_only(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    first, second = reports / "run-1", reports / "run-2"
    first.mkdir(parents=True)
    second.mkdir()
    assert link_latest(reports, first)
    assert link_latest(reports, second)  # the link moves on
    assert os.readlink(reports / "latest") == str(second)
    elsewhere = tmp_path / "ci-job" / "run"
    elsewhere.mkdir(parents=True)
    assert not link_latest(reports, elsewhere)  # someone's own folder is no one's latest run
    assert os.readlink(reports / "latest") == str(second)


def test_the_environment_panel_is_written_where_allure_results_are(tmp_path: Path) -> None:
    assert not write_environment(tmp_path / "no-results", "a=1\n")
    (tmp_path / "allure-results").mkdir()
    assert write_environment(tmp_path / "allure-results", properties({"a": 1, "b": "x y"}))
    assert (tmp_path / "allure-results" / "environment.properties").read_text() == "a=1\nb=x y\n"


def test_a_fleet_run_lands_in_reports_latest_with_its_environment_panel(tmp_path: Path) -> None:
    """A fleet whose review is refused (a bad --soak, found when the controller reviews the
    release): no member starts, and the fleet's verdict, its environment panel and
    reports/latest are there as after any fleet run."""
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('[fleet]\nname = "f"\non_failure = "rollback-all"\n'
                     f'[[members]]\nname = "canary"\ntarget = "{OPENCLAW}"\ncanary = true\n'
                     f'[[members]]\nname = "a"\ntarget = "{OPENCLAW}"\n')
    reports = ROOT / "reports"
    latest = reports / "latest"
    before = os.readlink(latest) if latest.is_symlink() else None
    run_dir = reports / f"test-landing-{uuid.uuid4().hex[:8]}"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "scenarios", "-q", "--fleet", str(fleet), "-n",
             "2", "--soak", "banana", "--run-dir", str(run_dir)],
            cwd=ROOT, capture_output=True, text=True, timeout=120)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 20, output[-2000:]
        assert "harness: error: --soak: expected seconds" in output
        assert os.readlink(latest) == str(run_dir)
        verdict = json.loads((latest / "verdict.json").read_text())
        assert (verdict["outcome"], verdict["not_reached"]) == ("bad_input", ["canary", "a"])
        assert not (run_dir / "members").exists()
        panel = (run_dir / "allure-results" / "environment.properties").read_text()
        assert panel.startswith("fleet=f (fleet.toml sha256:")
        assert "outcome=bad_input (exit 20)\n" in panel
        assert "members=canary (wave 0: not_reached), a (wave 1: not_reached)\n" in panel
    finally:
        if latest.is_symlink() and os.readlink(latest) == str(run_dir):
            latest.unlink()
            if before is not None:
                latest.symlink_to(before)
        shutil.rmtree(run_dir, ignore_errors=True)
