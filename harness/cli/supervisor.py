"""The external update supervisor: a systemd .timer and a oneshot .service that run the
acceptance suite as the upgrade procedure, outside the gateway's own unit.

Seed 002: when the gateway updates itself, the control plane and the workload are one process,
and an update that stops it removes the only thing that could start it again. So the gateway is
only the workload (its own auto-update off: the profile's preflight lints it), and the update is
driven from system units that do not live in the gateway's user session:

    <name>.timer     OnCalendar= (or OnActiveSec= for a one-off), Persistent=true
    <name>.service   Type=oneshot: `python -m pytest scenarios --target T ...` in the project
                     folder; the run's phases are preflight -> stop -> install -> start ->
                     health -> soak -> verdict -> rollback, with the detached guard around
                     every stop, transitions in the journal, and the profile's alert hook on
                     a rollback or failure. The unit's exit status is the run's (0, 10, 11...)

    <name>-alert.service
                     the service's OnFailure=: when the run itself dies (its main process
                     killed, a crash, or a timeout's SIGTERM it could not finish on) it can
                     neither judge nor call the alert hook, so this oneshot does (`harness
                     supervisor alert`), with the same profile's command and webhook. A run that
                     ended with one of the harness's own exit codes (10 rolled back, 12 aborted,
                     17 interrupted: TimeoutStartSec's SIGTERM handled, ...) has judged and
                     alerted itself: then it stays quiet, and says so in its journal.

`harness supervisor install --target T [--on-calendar SPEC | --on-active S] [-- PYTEST ARGS]`
writes the units into /etc/systemd/system (or --units-dir), reloads systemd and enables the
timer; `harness supervisor remove` undoes that; `status` shows them.
"""

from __future__ import annotations

import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.common.commands import Completed
from harness.common.errors import ExitCode, InfrastructureError
from harness.targets.profile import TargetProfile
from harness.targets.runner import CommandRunner, LocalRunner

DEFAULT_NAME = "gateway-release-harness-update"
UNITS_DIR = "/etc/systemd/system"


@dataclass(frozen=True)
class SupervisorUnits:
    name: str
    service: str
    timer: str
    alert: str  # <name>-alert.service, the service's OnFailure=

    def files(self) -> dict[str, str]:
        return {f"{self.name}.service": self.service, f"{self.name}.timer": self.timer,
                f"{self.name}-alert.service": self.alert}


def _q(word: str) -> str:
    """One ExecStart argument (systemd's own quoting: % and $ doubled, quoted if needed)."""
    word = word.replace("%", "%%").replace("$", "$$")
    if word and all(c.isalnum() or c in "-_./:=@+," for c in word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(target: Path, project: Path, *, name: str = DEFAULT_NAME,
           on_calendar: str | None = "daily", on_active_s: float | None = None,
           pytest_args: list[str] | None = None, python: str = sys.executable,
           timeout_s: float = 6 * 3600, env: dict[str, str] | None = None) -> SupervisorUnits:
    argv = [python, "-m", "pytest", "scenarios", "--target", str(target), *(pytest_args or [])]
    environment = ["Environment=PYTHONUNBUFFERED=1",
                   *(f"Environment={_q(f'{k}={v}')}" for k, v in (env or {}).items())]
    service = _service_unit(target, project, name, argv, environment, timeout_s)
    timer = _timer_unit(name, on_calendar, on_active_s)
    alert_argv = [python, "-m", "harness.cli", "supervisor", "alert", "--name", name,
                  "--target", str(target)]
    alert = _alert_unit(project, name, alert_argv, environment)
    return SupervisorUnits(name, service, timer, alert)


def _service_unit(target: Path, project: Path, name: str, argv: list[str],
                  environment: list[str], timeout_s: float) -> str:
    """The oneshot service that runs the suite; its exit code is the run's verdict."""
    return "\n".join([
        "# Written by `harness supervisor install`: the update runs here, never in the gateway.",
        "[Unit]",
        f"Description=gateway-release-harness: upgrade, soak, judge, roll back ({target.name})",
        "Wants=network-online.target",
        "After=network-online.target",
        "# a run that dies (killed, out of time) cannot alert: its failure unit does",
        f"OnFailure={name}-alert.service",
        "",
        "[Service]",
        "Type=oneshot",
        f"WorkingDirectory={str(project).replace('%', '%%')}",
        "ExecStart=" + " ".join(_q(w) for w in argv),
        *environment,
        f"TimeoutStartSec={int(timeout_s)}",
        "# the run's exit code is its verdict (0 passed, 10 rolled back, ...): only 0 succeeds",
        "SuccessExitStatus=0",
        "",
    ])


def _timer_unit(name: str, on_calendar: str | None, on_active_s: float | None) -> str:
    """When the service runs: once after the timer starts, on a calendar, or both."""
    when = []
    if on_active_s is not None:
        when.append(f"OnActiveSec={on_active_s:g}s")
    if on_calendar:
        when += [f"OnCalendar={on_calendar}", "Persistent=true"]
    if not when:
        raise InfrastructureError("the supervisor's timer needs --on-calendar or --on-active")
    return "\n".join([
        "# Written by `harness supervisor install`.",
        "[Unit]",
        f"Description=gateway-release-harness: when to run {name}.service",
        "",
        "[Timer]",
        *when,
        f"Unit={name}.service",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])


def _alert_unit(project: Path, name: str, argv: list[str], environment: list[str]) -> str:
    """The service's OnFailure=: says so when the update run itself died."""
    return "\n".join([
        "# Written by `harness supervisor install`: says so when the update run itself died.",
        "[Unit]",
        f"Description=gateway-release-harness: alert when {name}.service fails",
        "",
        "[Service]",
        "Type=oneshot",
        f"WorkingDirectory={str(project).replace('%', '%%')}",
        "ExecStart=" + " ".join(_q(w) for w in argv),
        *environment,
        "TimeoutStartSec=300",
        "",
    ])


def _ok(done: Completed, what: str) -> Completed:
    if done.returncode != 0:
        raise InfrastructureError(f"{what} failed: {done.tail(3)}")
    return done


def install(units: SupervisorUnits, *, units_dir: str = UNITS_DIR,
            runner: CommandRunner | None = None) -> list[str]:
    """Write both units, daemon-reload, enable and start the timer. Returns the paths written."""
    runner = runner or LocalRunner()
    written = []
    for filename, text in units.files().items():
        path = f"{units_dir}/{filename}"
        _ok(runner.run(["sh", "-c", f"mkdir -p {shlex.quote(units_dir)} && cat > "
                        f"{shlex.quote(path)}"], input=text, timeout=30), f"writing {path}")
        written.append(path)
    _ok(runner.run(["systemctl", "daemon-reload"], timeout=60), "systemctl daemon-reload")
    _ok(runner.run(["systemctl", "enable", "--now", f"{units.name}.timer"], timeout=60),
        f"systemctl enable --now {units.name}.timer")
    return written


def remove(name: str = DEFAULT_NAME, *, units_dir: str = UNITS_DIR,
           runner: CommandRunner | None = None) -> None:
    runner = runner or LocalRunner()
    runner.run(["systemctl", "disable", "--now", f"{name}.timer"], timeout=60)
    runner.run(["systemctl", "stop", f"{name}.service", f"{name}-alert.service"], timeout=120)
    runner.run(["rm", "-f", f"{units_dir}/{name}.service", f"{units_dir}/{name}.timer",
                f"{units_dir}/{name}-alert.service"], timeout=30)
    runner.run(["systemctl", "daemon-reload"], timeout=60)
    runner.run(["systemctl", "reset-failed", f"{name}.service", f"{name}-alert.service"],
               timeout=30)


def status(name: str = DEFAULT_NAME, runner: CommandRunner | None = None) -> str:
    runner = runner or LocalRunner()
    done = runner.run(["systemctl", "show", "-p", "Id,ActiveState,Result,ExecMainStatus,"
                       "LastTriggerUSec,NextElapseUSecRealtime", f"{name}.timer",
                       f"{name}.service", f"{name}-alert.service"], timeout=30)
    return done.stdout


# -- the failure unit: a run that died -----------------------------------------------------------
# exit codes with which a run ends itself, having judged and called the alert hook on its own
OWN_EXITS = {int(code) for code in ExitCode if code != ExitCode.PASSED}
_CLD_EXITED = 1  # ExecMainCode: how the main process ended (waitid's si_code)


def why_failed(shown: dict[str, str]) -> str | None:
    """Why the supervisor's service failed, for a person; None when the run ended itself with
    its own verdict (its alert hook has spoken)."""
    result = shown.get("Result", "")
    code, status = shown.get("ExecMainCode", ""), shown.get("ExecMainStatus", "")
    exited = code == str(_CLD_EXITED)
    # the run ended itself with its own exit code and alerted: a verdict, or the SIGTERM of a
    # timeout handled as an interruption (exit 17, the known-good put back first)
    if result in ("exit-code", "timeout") and exited and status.isdigit() \
            and int(status) in OWN_EXITS:
        return None
    if result == "timeout":
        return "it ran out of time (TimeoutStartSec) and systemd stopped it"
    if not exited and status.isdigit():
        try:
            name = signal.Signals(int(status)).name
        except ValueError:
            name = f"signal {status}"
        what = "dumped core on" if result == "core-dump" else "was killed by"
        return f"its main process {what} {name}"
    if result == "exit-code":
        return (f"it exited with {status}, no verdict of the harness (pytest: 2 interrupted, "
                "3 internal error, 4 usage error, 5 no tests collected)")
    return f"systemd gave up on it (result {result or 'unknown'})"


def failure_alert(name: str, profile: TargetProfile, runner: CommandRunner | None = None,
                  monitor: dict[str, str] | None = None) -> tuple[dict[str, Any] | None, str]:
    """What the failure unit sends: the alert body, or None (and why) when the run alerted
    itself. `monitor` is the MONITOR_* environment systemd gives an OnFailure= unit."""
    runner = runner or LocalRunner()
    unit = f"{name}.service"
    done = runner.run(["systemctl", "show", unit, "-p", "Result,ExecMainCode,ExecMainStatus,"
                       "ExecMainStartTimestamp,ExecMainExitTimestamp,InvocationID"], timeout=30)
    shown = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    invocation = (monitor or {}).get("MONITOR_INVOCATION_ID") or shown.get("InvocationID", "")
    why = why_failed(shown)
    if why is None:
        return None, (f"{unit} ended with exit {shown.get('ExecMainStatus')}, the run's own "
                      "verdict: its own alert hook has reported it")
    journal = f"journalctl -u {unit}" + (f" _SYSTEMD_INVOCATION_ID={invocation}"
                                        if invocation else "")
    body = {"alert": "supervisor_failed", "run_id": None, "at": time.time(),
            "target": profile.name, "unit": unit, "outcome": shown.get("Result") or "failed",
            "result": shown.get("Result"), "exit_code": shown.get("ExecMainCode"),
            "exit_status": shown.get("ExecMainStatus"),
            "started": shown.get("ExecMainStartTimestamp"),
            "ended": shown.get("ExecMainExitTimestamp"), "invocation": invocation or None,
            "journal": journal,
            "summary": (f"{unit} did not finish: {why}. The run could neither judge nor alert "
                        "on its own. If it died while the gateway was stopped, the detached guard "
                        f"brings the known-good back; check the gateway, and `{journal}`.")}
    return body, why
