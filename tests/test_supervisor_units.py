"""The supervisor's units as systemd will read them (the container test runs them for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InfrastructureError
from harness.supervisor import render


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
    assert set(units.files()) == {f"{units.name}.service", f"{units.name}.timer"}


def test_odd_arguments_are_quoted_for_systemd() -> None:
    units = render(Path("/t/a b.toml"), Path("/p"), on_calendar=None, on_active_s=2,
                   pytest_args=["--candidate-config", "/x/100%.json"], python="/py")
    start = next(line for line in units.service.splitlines() if line.startswith("ExecStart="))
    assert '"/t/a b.toml"' in start and "/x/100%%.json" in start
    assert "OnActiveSec=2s" in units.timer and "OnCalendar" not in units.timer


def test_a_timer_needs_a_time() -> None:
    with pytest.raises(InfrastructureError):
        render(Path("/t.toml"), Path("/p"), on_calendar=None, on_active_s=None)
