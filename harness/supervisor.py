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

`harness supervisor install --target T [--on-calendar SPEC | --on-active S] [-- PYTEST ARGS]`
writes both units into /etc/systemd/system (or --units-dir), reloads systemd and enables the
timer; `harness supervisor remove` undoes that; `status` shows both units.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.commands import Completed
from harness.errors import InfrastructureError
from harness.target.runner import CommandRunner, LocalRunner

DEFAULT_NAME = "gateway-release-harness-update"
UNITS_DIR = "/etc/systemd/system"


@dataclass(frozen=True)
class SupervisorUnits:
    name: str
    service: str
    timer: str

    def files(self) -> dict[str, str]:
        return {f"{self.name}.service": self.service, f"{self.name}.timer": self.timer}


def _q(word: str) -> str:
    """One ExecStart argument (systemd's own quoting: % and $ doubled, quoted if needed)."""
    word = word.replace("%", "%%").replace("$", "$$")
    if word and all(c.isalnum() or c in "-_./:=@+," for c in word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(target: Path, project: Path, *, name: str = DEFAULT_NAME,
           on_calendar: str | None = "daily", on_active_s: float | None = None,
           pytest_args: list[str] | None = None, python: str = sys.executable,
           timeout_h: float = 6.0, env: dict[str, str] | None = None) -> SupervisorUnits:
    argv = [python, "-m", "pytest", "scenarios", "--target", str(target), *(pytest_args or [])]
    service = "\n".join([
        "# Written by `harness supervisor install`: the update runs here, never in the gateway.",
        "[Unit]",
        f"Description=gateway-release-harness: upgrade, soak, judge, roll back ({target.name})",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        f"WorkingDirectory={str(project).replace('%', '%%')}",
        "ExecStart=" + " ".join(_q(w) for w in argv),
        "Environment=PYTHONUNBUFFERED=1",
        *(f"Environment={_q(f'{k}={v}')}" for k, v in (env or {}).items()),
        f"TimeoutStartSec={int(timeout_h * 3600)}",
        "# the run's exit code is its verdict (0 passed, 10 rolled back, ...): only 0 succeeds",
        "SuccessExitStatus=0",
        "",
    ])
    when = []
    if on_active_s is not None:
        when.append(f"OnActiveSec={on_active_s:g}s")
    if on_calendar:
        when += [f"OnCalendar={on_calendar}", "Persistent=true"]
    if not when:
        raise InfrastructureError("the supervisor's timer needs --on-calendar or --on-active")
    timer = "\n".join([
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
    return SupervisorUnits(name, service, timer)


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
    runner.run(["systemctl", "stop", f"{name}.service"], timeout=120)
    runner.run(["rm", "-f", f"{units_dir}/{name}.service", f"{units_dir}/{name}.timer"],
               timeout=30)
    runner.run(["systemctl", "daemon-reload"], timeout=60)
    runner.run(["systemctl", "reset-failed", f"{name}.service"], timeout=30)


def status(name: str = DEFAULT_NAME, runner: CommandRunner | None = None) -> str:
    runner = runner or LocalRunner()
    done = runner.run(["systemctl", "show", "-p", "Id,ActiveState,Result,ExecMainStatus,"
                       "LastTriggerUSec,NextElapseUSecRealtime", f"{name}.timer",
                       f"{name}.service"], timeout=30)
    return done.stdout
