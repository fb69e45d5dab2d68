"""Which log a soak trusted: a stale file log is flagged and never the evidence of a clean soak."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from harness.signals.logwatch import CONTEXT_LINES, TAIL_LINES, LogWatcher
from harness.signals.signatures import OPENCLAW
from harness.targets.logsource import report_for, watcher_for
from harness.targets.profile import load_target
from tests.fake_driver import InMemoryDriver

ROOT = Path(__file__).resolve().parents[1]
PROFILE = load_target(ROOT / "scenarios" / "targets" / "local-openclaw.toml")


def entry(at: float) -> str:
    stamp = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    return json.dumps({"time": stamp, "0": "gateway line"})


def gateway(source: str, pattern: str, tmp_path: Path) -> SimpleNamespace:
    profile = replace(PROFILE, log_source=source, log_file=pattern)
    return SimpleNamespace(profile=profile, driver=InMemoryDriver(tmp_path / "deployment"))


def test_a_stale_file_source_is_not_trusted(tmp_path: Path) -> None:
    log = tmp_path / "openclaw-2026-11-23.log"
    log.write_text(entry(time.time() - 3600) + "\n")  # its newest entry: an hour ago
    gw = gateway("file", str(tmp_path / "openclaw-*.log"), tmp_path)
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
    gw = gateway("file", str(tmp_path / "openclaw-*.log"), tmp_path)
    report = report_for(gw, watcher_for(gw, ()), since=time.time() - 60)
    assert report["trusted"] is True and report["file"]["stale"] is False


def test_a_missing_file_log_is_stale(tmp_path: Path) -> None:
    gw = gateway("file", str(tmp_path / "openclaw-*.log"), tmp_path)
    report = report_for(gw, watcher_for(gw, ()), since=time.time())
    assert report["trusted"] is False and "no such file" in report["file"]["reason"]


def test_beside_another_source_a_stale_file_is_flagged_only(tmp_path: Path) -> None:
    (tmp_path / "openclaw-x.log").write_text(entry(time.time() - 600) + "\n")
    gw = gateway("stdout", str(tmp_path / "openclaw-*.log"), tmp_path)
    report = report_for(gw, SimpleNamespace(), since=time.time() - 60)
    assert report["trusted"] is True and report["file"]["stale"] is True
    assert report["reasons"][0].startswith("flagged, not used: ")


def test_a_long_watch_keeps_the_tail_and_each_match_with_its_context(tmp_path: Path) -> None:
    """Memory stays bounded over a soak of a night: the watcher keeps its newest lines and the
    lines around each signature match (the evidence), not every line it read."""
    log = tmp_path / "gateway.log"
    failover = ("2026-04-02T10:11:12.345+00:00 [agent/embedded] embedded run failover decision: "
                "runId=r-{n} stage=assistant decision=surface_error reason=timeout "
                "provider=lab/slow-reasoner profile=-")
    lines = [f"ordinary line {n}" for n in range(1, 20 * TAIL_LINES + 1)]
    lines[99] = failover.format(n=100)  # line 100: long gone from the tail by the end
    log.write_text("\n".join(lines) + "\n")
    watcher = LogWatcher(log, OPENCLAW)
    watcher.poll()
    assert watcher.line_count == len(lines) and len(watcher.lines) < 2 * TAIL_LINES
    assert watcher.lines[-1] == lines[-1]
    (match,) = watcher.matches
    assert match.line_no == 100
    assert watcher.context(match) == [f"{n:>6}  {lines[n - 1]}" for n in
                                      range(100 - CONTEXT_LINES, 100 + CONTEXT_LINES + 1)]
    assert len(watcher._context) == 2 * CONTEXT_LINES + 1
