"""Which log a soak watches, whether a file log can be trusted, and the config lint.

    stdout   the local driver's console file (the gateway's own stdout and stderr)
    journal  the systemd unit's journal: the default of a systemd target
    docker   `docker logs` of an attached container: the default of a docker target
    file     a log file the gateway writes itself (OpenClaw: /tmp/openclaw/openclaw-*.log);
             the only log of a gateway known by its URL
The first three are the driver's own console (harness.targets.driver: `console_watcher`); the
log source never asks which driver it is.

A file log is checked for staleness after the soak (harness.signals.journal.file_log_staleness):
a file whose newest entry is older than the soak's start, or lagging the journal, is flagged in
the report and never counts as the evidence of a clean soak. With the journal as the source, a
profile's `[logs] file` is checked beside it and flagged the same way, for a person to see.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.signals.journal import file_log_staleness
from harness.signals.logwatch import Following, LogWatcher
from harness.signals.records import RecordReader
from harness.targets.kinds import kind
from harness.targets.profile import TargetProfile

MAX_LAG_S = 30.0


def watcher_for(gateway: Any, signatures: tuple) -> Following:
    watcher = _watcher(gateway, signatures)
    watcher.records = records_for(gateway.profile.kind)
    return watcher


def records_for(kind_name: str) -> RecordReader | None:
    """How the kind's log lines read as records (colours, tracebacks, a clock-only time)."""
    log = kind(kind_name).log
    if log.record_start is None and not log.strip_ansi and log.clock == "iso":
        return None  # one line, one record, as it always was
    return RecordReader(log.record_start, log.strip_ansi, log.clock)


def _watcher(gateway: Any, signatures: tuple) -> Following:
    if gateway.profile.log_source == "file":
        path = newest_file(gateway, gateway.profile.log_file)
        return LogWatcher.from_end(Path(path) if path else Path(gateway.profile.log_file),
                                   signatures)
    return gateway.driver.console_watcher(signatures)  # stdout, the journal, docker logs


def newest_file(gateway: Any, pattern: str) -> str | None:
    """The newest file matching the glob, where the gateway runs."""
    return gateway.driver.newest_file(pattern)


def report_for(gateway: Any, watcher: Any, since: float) -> dict[str, Any]:
    profile: TargetProfile = gateway.profile
    report: dict[str, Any] = {"source": profile.log_source, "trusted": True, "reasons": []}
    journal_newest = None
    if profile.log_source in ("journal", "docker"):  # read by a command: it can fail
        journal_newest = watcher.newest_timestamp()
        report[profile.log_source] = {**watcher.origin, "lines": watcher.line_count,
                                      "newest": journal_newest, "errors": watcher.errors[-3:]}
        if watcher.errors:
            report["trusted"] = False
            tool = "journalctl" if profile.log_source == "journal" else "docker logs"
            report["reasons"].append(f"{tool} failed while watching: {watcher.errors[-1]}")
    if profile.log_file:
        path = newest_file(gateway, profile.log_file)
        runner = gateway.driver.runner
        stale = file_log_staleness(path or profile.log_file, since, journal_newest=journal_newest,
                                   max_lag_s=MAX_LAG_S, runner=runner)
        report["file"] = {"glob": profile.log_file, "path": path, "stale": stale.stale,
                          "newest": stale.newest, "reason": stale.reason,
                          "used_for_verdict": profile.log_source == "file"}
        if stale.stale:
            if profile.log_source == "file":
                report["trusted"] = False
                report["reasons"].append(f"the soak's log is stale, so it cannot show a clean "
                                         f"soak: {stale.reason}")
            else:
                report["reasons"].append(f"flagged, not used: {stale.reason}")
    if not report["reasons"]:
        report["reasons"].append(f"{profile.log_source} watched from the soak's start")
    return report


def lint_config(profile: TargetProfile, config_path: Path) -> list[dict[str, Any]]:
    """Each [[preflight.config]] row: the value found in the config against the expected one.

    A required row that does not hold fails preflight (the gateway would, say, update itself
    behind the harness's back); an advisory one is reported and passes."""
    if not profile.config_lint:
        return []
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        return [{"check": f"config {config_path.name} readable for the lint", "ok": False,
                 "observed": str(exc), "expected": "JSON"}]
    rows = []
    for lint in profile.config_lint:
        value: Any = config
        for part in lint.key.split("."):
            value = value.get(part, _UNSET) if isinstance(value, dict) else _UNSET
        observed = "unset" if value is _UNSET else value
        holds = value == lint.expect
        word = "required" if lint.required else "advisory"
        state = "holds" if holds else "does NOT hold"
        why = f" ({lint.why})" if lint.why else ""
        rows.append({"check": f"config {lint.key} = {json.dumps(lint.expect)} [{word}, "
                              f"{state}]{why}",
                     "ok": holds or not lint.required, "observed": observed,
                     "expected": lint.expect})
    return rows


_UNSET = object()
