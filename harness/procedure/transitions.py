"""Every state transition of a run as a structured record, and the alert hook.

preflight -> backup -> baseline -> stop -> install -> restart_gate -> start -> health -> soak ->
verdict -> rollback -> outcome (and the guard's steps, state `guard`, written by the guard
itself: harness.procedure.guardian): each step's entry and result is one JSON object per line in
<run dir>/transitions.jsonl, written as it happens (so a run that is killed leaves the states
it reached), and, where the target has a journal, one journal entry with the same fields
(`logger --journald` through the target's command runner: SYSLOG_IDENTIFIER=
gateway-release-harness, HARNESS_RUN_ID, HARNESS_STATE, HARNESS_EVENT, HARNESS_RECORD as JSON).
Under the systemd driver that is the service user's journal, beside the gateway's own lines:
`journalctl --user SYSLOG_IDENTIFIER=gateway-release-harness`.

The alert hook of the target profile (`[alert] command = [...]` and/or `webhook = "http..."`)
fires when a rollback starts and when the run ends in anything but `passed` (rolled_back,
rollback_failed, aborted, soak_failed, interrupted, error), with the record as JSON (on the
command's stdin, or POSTed). Each delivery, and its failure, is itself a record.

This is a pytest plugin object registered by harness.pytest.plugin for runs of the acceptance suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.common import http
from harness.procedure.records import Records
from harness.procedure.table import FAMILIES
from harness.targets.profile import AlertSpec, TargetProfile
from harness.targets.runner import runner_for, systemd_user_env

IDENTIFIER = "gateway-release-harness"


def state_of(family: str, name: str) -> str:
    """The state a test belongs to: a phase's own name; every soak test is `soak`, every
    rollback step `rollback`."""
    if family in ("soak", "rollback"):
        return family
    return name


class JournalSink:
    """`logger --journald` on the target, as the gateway's service user where there is one."""

    def __init__(self, profile: TargetProfile) -> None:
        kwargs = {"docker_host": os.environ["DOCKER_HOST"]} if "DOCKER_HOST" in os.environ \
            and profile.host.startswith("docker://") else {}
        self.runner = runner_for(profile.host, **kwargs)
        self.user: str | None = profile.systemd.user if profile.systemd else None
        self.env: dict[str, str] | None = None
        self.available: bool | None = None
        self.why = ""

    def _probe(self) -> None:
        done = self.runner.run(["sh", "-c", "test -S /run/systemd/journal/socket && "
                                "command -v logger"], timeout=30)
        self.available = done.returncode == 0
        if not self.available:
            self.why = "no journal on the target"
            return
        if self.user is not None:
            uid = self.runner.run(["id", "-u", self.user], timeout=30).stdout.strip()
            self.env = systemd_user_env(int(uid)) if uid.isdigit() else None

    def send(self, record: dict[str, Any]) -> bool:
        if self.available is None:
            self._probe()
        if not self.available:
            return False
        priority = 3 if record.get("event") in ("failed", "error", "alert_failed") else 6
        message = f"harness {record['state']} {record['event']}"
        if record.get("summary"):
            message += f": {record['summary']}"
        fields = {"MESSAGE": message, "SYSLOG_IDENTIFIER": IDENTIFIER, "PRIORITY": str(priority),
                  "HARNESS_RUN_ID": record["run_id"], "HARNESS_STATE": record["state"],
                  "HARNESS_EVENT": record["event"],
                  "HARNESS_RECORD": json.dumps(record, default=str)}
        text = "".join(f"{k}={' '.join(str(v).splitlines())}\n" for k, v in fields.items())
        done = self.runner.run(["logger", "--journald"], user=self.user, env=self.env,
                               input=text, timeout=30)
        if done.returncode != 0:
            self.why = done.tail(1)
        return done.returncode == 0


class Transitions:
    def __init__(self, run_id: str, run_dir: Path, profile: TargetProfile | None = None,
                 record: Records | None = None) -> None:
        self.run_id = run_id
        self.path = run_dir / "transitions.jsonl"
        self.record = record if record is not None else Records()  # the run's, for the verdict
        self.profile: TargetProfile | None = None
        self.journal: JournalSink | None = None
        self.alert_spec = AlertSpec()
        self.entered: set[str] = set()
        self.family: str | None = None
        self.alerted: set[str] = set()
        self.records: list[dict[str, Any]] = []
        self.member: str | None = None  # a fleet's member: its name on every record and alert
        self._setup_s: dict[str, float] = {}
        self._lock = threading.Lock()
        if profile is not None:
            self.use(profile)

    def use(self, profile: TargetProfile) -> None:
        """The run's target, once its settings are resolved."""
        self.profile = profile
        self.journal = JournalSink(profile)
        self.alert_spec = profile.alert

    # -- records --------------------------------------------------------------------------
    def emit(self, state: str, event: str, **fields: Any) -> dict[str, Any]:
        now = time.time()
        record = {"at": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
                  "ts": round(now, 3), "run_id": self.run_id, "state": state, "event": event,
                  **({"member": self.member} if self.member else {}), **fields}
        if self.journal is not None:  # first, so the line says whether the journal has it
            try:
                record["journal"] = self.journal.send(record)
            except Exception:  # noqa: BLE001 - a journal that fails must never stop the run
                record["journal"] = False
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record, default=str) + "\n")
            self.records.append(record)
        return record

    # -- the alert hook -------------------------------------------------------------------
    def alert(self, kind: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """Deliver to every hook the profile declares; each result is a record too."""
        if kind in self.alerted:
            return []
        self.alerted.add(kind)
        body = {"alert": kind, "run_id": self.run_id, "at": time.time(),
                "target": self.profile.name if self.profile else None,
                **({"member": self.member} if self.member else {}), **payload}
        results = []
        for delivery in deliver(self.alert_spec, body):
            ok = delivery.pop("ok")
            results.append(self.emit("alert", "alert_sent" if ok else "alert_failed",
                                     kind=kind, **delivery))
        return results

    # -- pytest hooks ---------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        family = next((f for f in FAMILIES if item.get_closest_marker(f)), None)
        if family is None:
            return
        if self.family == "soak" and family != "soak":
            self._soak_verdict()
        self.family = family
        state = state_of(family, item.name.removeprefix("test_"))
        if state not in self.entered:
            self.entered.add(state)
            self.emit(state, "enter", step=item.name.removeprefix("test_"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]):  # noqa: ANN201
        report = yield
        try:
            self._report(item, report)
        except Exception:  # noqa: BLE001 - a record that cannot be written never fails a test
            pass
        return report

    def _report(self, item: pytest.Item, report: pytest.TestReport) -> None:
        family = next((f for f in FAMILIES if item.get_closest_marker(f)), None)
        if family is None:
            return
        if report.when == "setup":
            self._setup_s[item.nodeid] = report.duration  # a phase runs in its fixture
        if not (report.when == "call" or (report.when == "setup" and not report.passed)):
            return
        name = item.name.removeprefix("test_")
        reason = ""
        if report.failed and getattr(report.longrepr, "reprcrash", None) is not None:
            reason = report.longrepr.reprcrash.message  # type: ignore[union-attr]
        elif report.skipped and isinstance(report.longrepr, tuple):
            reason = report.longrepr[2]
        else:  # a phase's own one-line summary, when its fixture returned a PhaseResult
            result = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            reason = str(getattr(result, "summary", "") or "")
        seconds = self._setup_s.pop(item.nodeid, 0.0) + (report.duration
                                                          if report.when == "call" else 0.0)
        self.emit(state_of(family, name), report.outcome, step=name,
                  seconds=round(seconds, 3), summary=reason[:500])
        if family == "rollback" and not report.skipped:
            self.alert("rollback", {"summary": "the candidate failed; rolling back to the "
                                    "known-good", "failed": self._failed()})

    def _failed(self) -> list[str]:
        return [r["step"] for r in self.records if r.get("event") == "failed"]

    def _soak_verdict(self) -> None:
        soak = self.record.soak_of("soak")
        self.emit("verdict", str(soak.verdict.get("verdict", "none")), stopped_by=soak.stopped_by,
                  summary="; ".join(soak.reasons)[:1000], log_source=soak.log_source)

    def finish(self, verdict: dict[str, Any]) -> None:
        """The run's outcome as the last record, and the alert when it is not a pass (called
        by harness.pytest.plugin once the verdict is written, after the session's teardown)."""
        if self.family == "soak" and self.record.soak_of("soak").verdict:
            self._soak_verdict()  # a soak cut short by an interruption gave none: no record
        outcome = verdict.get("outcome")
        self.emit("outcome", str(outcome), exit_code=verdict.get("exit_code"),
                  summary=verdict.get("claim", ""), final_state=verdict.get("final_state"))
        if outcome not in ("passed", "no_tests", None):
            kind = outcome if outcome in ("rolled_back", "interrupted") else "failure"
            self.alert(kind, {
                "outcome": outcome, "exit_code": verdict.get("exit_code"),
                "summary": verdict.get("claim"), "error": verdict.get("error"),
                "failed": [p["name"] for p in verdict.get("phases", [])
                           if p.get("outcome") == "failed"],
                "final_state": verdict.get("final_state"),
                "verdict": str(self.path.parent / "verdict.json")})


def deliver(spec: AlertSpec, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Send one alert (`body`, with its `alert` kind) to every hook of a profile: the command
    gets it as JSON on stdin (and HARNESS_* variables), the webhook as a JSON POST. One result
    per hook: {hook, ok, detail, command|url}; a hook that fails never raises."""
    text = json.dumps(body, default=str)
    results: list[dict[str, Any]] = []
    if spec.command:
        env = {**os.environ, "HARNESS_ALERT": str(body.get("alert", "")),
               "HARNESS_RUN_ID": str(body.get("run_id") or ""),
               "HARNESS_OUTCOME": str(body.get("outcome", "")),
               "HARNESS_SUMMARY": str(body.get("summary", ""))}
        try:
            done = subprocess.run(list(spec.command), input=text, env=env,
                                  capture_output=True, text=True, timeout=60)
            ok, detail = done.returncode == 0, f"exit {done.returncode}: " \
                f"{(done.stderr or done.stdout).strip()[-200:]}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        results.append({"hook": "command", "ok": ok, "command": list(spec.command),
                        "detail": detail})
    if spec.webhook:
        try:
            with http.sync_client(timeout=10, trust_env=False) as client:
                response = client.post(spec.webhook, content=text,
                                       headers={"content-type": "application/json"})
            ok, detail = response.is_success, f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        results.append({"hook": "webhook", "ok": ok, "url": spec.webhook, "detail": detail})
    return results
