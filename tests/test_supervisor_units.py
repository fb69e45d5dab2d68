"""The supervisor's units as systemd will read them (the container test runs them for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli.supervisor import failure_alert, render, why_failed
from harness.common.commands import Completed
from harness.common.errors import InfrastructureError
from harness.targets.profile import load_target

ROOT = Path(__file__).resolve().parents[1]


def test_a_oneshot_service_runs_the_suite_and_a_timer_starts_it() -> None:
    units = render(Path("/srv/t/systemd-openclaw.toml"), Path("/opt/harness"),
                   on_calendar="Sun 03:00", pytest_args=["--soak", "600"],
                   python="/opt/harness/.venv/bin/python", env={"PATH": "/n/bin:/usr/bin"})
    service = units.service.splitlines()
    assert "Type=oneshot" in service and "WorkingDirectory=/opt/harness" in service
    assert ("ExecStart=/opt/harness/.venv/bin/python -m pytest scenarios --target "
            "/srv/t/systemd-openclaw.toml --soak 600") in service
    assert "Environment=PATH=/n/bin:/usr/bin" in service
    assert not any(line.startswith("Restart=") for line in service)  # one run per firing
    timer = units.timer.splitlines()
    assert "OnCalendar=Sun 03:00" in timer and "Persistent=true" in timer
    assert f"Unit={units.name}.service" in timer and "WantedBy=timers.target" in timer
    assert set(units.files()) == {f"{units.name}.service", f"{units.name}.timer",
                                  f"{units.name}-alert.service"}
    assert f"OnFailure={units.name}-alert.service" in service
    assert "TimeoutStartSec=21600" in service


def test_odd_arguments_are_quoted_for_systemd() -> None:
    units = render(Path("/t/a b.toml"), Path("/p"), on_calendar=None, on_active_s=2,
                   pytest_args=["--candidate-config", "/x/100%.json"], python="/py")
    start = next(line for line in units.service.splitlines() if line.startswith("ExecStart="))
    assert '"/t/a b.toml"' in start and "/x/100%%.json" in start
    assert "OnActiveSec=2s" in units.timer and "OnCalendar" not in units.timer


def test_a_timer_needs_a_time() -> None:
    with pytest.raises(InfrastructureError):
        render(Path("/t.toml"), Path("/p"), on_calendar=None, on_active_s=None)


def test_the_failure_unit_runs_the_alert_with_the_same_profile_and_environment() -> None:
    units = render(Path("/srv/t/systemd-openclaw.toml"), Path("/opt/harness"), name="upd",
                   on_calendar="daily", python="/opt/harness/.venv/bin/python",
                   env={"PATH": "/n/bin:/usr/bin"}, timeout_s=900)
    alert = units.alert.splitlines()
    assert "Type=oneshot" in alert and "WorkingDirectory=/opt/harness" in alert
    assert ("ExecStart=/opt/harness/.venv/bin/python -m harness.cli supervisor alert --name upd "
            "--target /srv/t/systemd-openclaw.toml") in alert
    assert "Environment=PATH=/n/bin:/usr/bin" in alert
    assert not any(line.startswith("OnFailure=") for line in alert)  # no alert of the alert
    assert "OnFailure=upd-alert.service" in units.service.splitlines()
    assert "TimeoutStartSec=900" in units.service.splitlines()
    assert "[Install]" not in units.alert  # started by OnFailure= only


@pytest.mark.parametrize(("shown", "why"), [
    ({"Result": "exit-code", "ExecMainCode": "1", "ExecMainStatus": "12"}, None),
    ({"Result": "exit-code", "ExecMainCode": "1", "ExecMainStatus": "10"}, None),
    ({"Result": "exit-code", "ExecMainCode": "1", "ExecMainStatus": "22"}, None),
    ({"Result": "signal", "ExecMainCode": "2", "ExecMainStatus": "9"},
     "its main process was killed by SIGKILL"),
    ({"Result": "core-dump", "ExecMainCode": "3", "ExecMainStatus": "6"},
     "its main process dumped core on SIGABRT"),
    ({"Result": "timeout", "ExecMainCode": "2", "ExecMainStatus": "15"},
     "it ran out of time (TimeoutStartSec) and systemd stopped it"),
    # systemd's SIGTERM at the timeout, handled: the run ended interrupted and alerted itself
    ({"Result": "timeout", "ExecMainCode": "1", "ExecMainStatus": "17"}, None),
    # a timeout whose run exited with pytest's own code (no verdict) is still the unit's to say
    ({"Result": "timeout", "ExecMainCode": "1", "ExecMainStatus": "2"},
     "it ran out of time (TimeoutStartSec) and systemd stopped it"),
    ({"Result": "exit-code", "ExecMainCode": "1", "ExecMainStatus": "3"},
     "it exited with 3, no verdict of the harness"),
])
def test_a_run_that_died_is_told_from_one_that_judged(shown: dict[str, str],
                                                      why: str | None) -> None:
    found = why_failed(shown)
    assert found is None if why is None else found is not None and found.startswith(why)


class ShownBy:
    """A command runner that answers `systemctl show` as systemd 252 does."""

    name = "fixed"

    def __init__(self, text: str) -> None:
        self.text = text
        self.argv: list[str] = []

    def run(self, argv, **kwargs) -> Completed:  # noqa: ANN001, ANN003
        self.argv = list(argv)
        return Completed(self.argv, 0, self.text, "")


def test_the_failure_alert_names_the_unit_why_and_where_its_journal_is() -> None:
    profile = load_target(ROOT / "scenarios" / "targets" / "systemd-openclaw.toml")
    runner = ShownBy("Result=signal\nExecMainCode=2\nExecMainStatus=9\nExecMainStartTimestamp="
                     "Mon 2026-11-23 16:00:00 UTC\nExecMainExitTimestamp=Mon 2026-11-23 16:00:09 "
                     "UTC\nInvocationID=abc\n")
    body, why = failure_alert("upd", profile, runner, monitor={"MONITOR_INVOCATION_ID": "def"})
    assert runner.argv[:3] == ["systemctl", "show", "upd.service"]
    assert body is not None and why == "its main process was killed by SIGKILL"
    assert body["alert"] == "supervisor_failed" and body["unit"] == "upd.service"
    assert body["target"] == "systemd-openclaw" and body["result"] == "signal"
    assert body["journal"] == "journalctl -u upd.service _SYSTEMD_INVOCATION_ID=def"
    assert "killed by SIGKILL" in body["summary"] and "guard" in body["summary"]
    quiet, reason = failure_alert("upd", profile, ShownBy(
        "Result=exit-code\nExecMainCode=1\nExecMainStatus=10\n"))
    assert quiet is None and "its own alert hook" in reason
