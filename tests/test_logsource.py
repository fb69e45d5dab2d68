"""Which log a soak trusted: a stale file log is flagged and never the evidence of a clean soak."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from harness.signals.logwatch import LogWatcher
from harness.target.logsource import report_for, watcher_for
from harness.target.profile import load_target

ROOT = Path(__file__).resolve().parents[1]
PROFILE = load_target(ROOT / "scenarios" / "targets" / "local-openclaw.toml")


def entry(at: float) -> str:
    stamp = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    return json.dumps({"time": stamp, "0": "gateway line"})


def gateway(source: str, pattern: str) -> SimpleNamespace:
    profile = replace(PROFILE, log_source=source, log_file=pattern)
    return SimpleNamespace(profile=profile, driver=SimpleNamespace(log_path=Path("/nonexistent")))


def test_a_stale_file_source_is_not_trusted(tmp_path: Path) -> None:
    log = tmp_path / "openclaw-2026-11-23.log"
    log.write_text(entry(time.time() - 3600) + "\n")  # its newest entry: an hour ago
    gw = gateway("file", str(tmp_path / "openclaw-*.log"))
    watcher = watcher_for(gw, ())
    assert isinstance(watcher, LogWatcher) and watcher.path == log
    report = report_for(gw, watcher, since=time.time() - 60)
    assert report["trusted"] is False and report["file"]["stale"] is True
    assert report["file"]["used_for_verdict"] is True
    assert "cannot show a clean soak" in report["reasons"][0]
    assert "older than the soak start" in report["reasons"][0]


def test_a_fresh_file_source_is_trusted(tmp_path: Path) -> None:
    log = tmp_path / "openclaw-2026-11-23.log"
    log.write_text(entry(time.time()) + "\n")
    gw = gateway("file", str(tmp_path / "openclaw-*.log"))
    report = report_for(gw, watcher_for(gw, ()), since=time.time() - 60)
    assert report["trusted"] is True and report["file"]["stale"] is False


def test_a_missing_file_log_is_stale(tmp_path: Path) -> None:
    gw = gateway("file", str(tmp_path / "openclaw-*.log"))
    report = report_for(gw, watcher_for(gw, ()), since=time.time())
    assert report["trusted"] is False and "no such file" in report["file"]["reason"]


def test_beside_another_source_a_stale_file_is_flagged_only(tmp_path: Path) -> None:
    (tmp_path / "openclaw-x.log").write_text(entry(time.time() - 600) + "\n")
    gw = gateway("stdout", str(tmp_path / "openclaw-*.log"))
    report = report_for(gw, SimpleNamespace(), since=time.time() - 60)
    assert report["trusted"] is True and report["file"]["stale"] is True
    assert report["reasons"][0].startswith("flagged, not used: ")
