"""The end of a fleet release, on the controller: the fleet's verdict.json, summary.md and
Allure results (harness.fleet.verdict), `reports/latest` and Allure's environment panel as a
run of one gateway leaves them (harness.reporting.landing), the outcome line, and the fleet's
exit code."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from harness.fleet.verdict import fleet_environment, write_fleet_report
from harness.reporting.landing import link_latest, write_environment

if TYPE_CHECKING:
    from harness.pytest.fleet import FleetRun


class FleetFinisher:
    def __init__(self, config: pytest.Config, fleet: FleetRun) -> None:
        self.config = config
        self.fleet = fleet

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session,
                             exitstatus: int) -> Iterator[None]:
        try:
            return (yield)
        finally:
            self.finish(session)

    def finish(self, session: pytest.Session) -> None:
        fleet = self.fleet
        from harness.pytest.fleet import REFUSAL

        verdict = write_fleet_report(fleet.plan, fleet.ledger.read(), fleet.run_dir,
                                     self.config.stash.get(REFUSAL, None))
        # the same landing as a run of one gateway: reports/latest, the environment panel
        link_latest(self.config.rootpath / "reports", fleet.run_dir)
        write_environment(fleet.run_dir / "allure-results", fleet_environment(verdict))
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line("")
            terminal.write_line(f"harness: fleet {verdict['outcome']} (exit "
                                f"{verdict['exit_code']}): {verdict['claim']}", bold=True)
            terminal.write_line(f"harness: verdict written to {fleet.run_dir / 'verdict.json'}")
        session.exitstatus = verdict["exit_code"]
