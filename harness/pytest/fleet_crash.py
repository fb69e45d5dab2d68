"""A fleet member's xdist worker that died, on the controller (harness.fleet.crash): the death
noted in the ledger as xdist reports the crashed item, and, before the fleet's verdict is
written, the member's run waited for and its end recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from harness.fleet.crash import member_of, note_worker_death, settle

if TYPE_CHECKING:
    from harness.pytest.fleet import FleetRun


class WorkerDeaths:
    def __init__(self, fleet: FleetRun) -> None:
        self.fleet = fleet

    @pytest.hookimpl(optionalhook=True)  # xdist's, on its controller
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport,
                               sched: Any) -> None:
        name = member_of(crashitem)
        if name is None:
            return
        gateway = getattr(getattr(report, "node", None), "gateway", None)  # xdist's worker
        said = note_worker_death(self.fleet.ledger, name, str(getattr(gateway, "id", "?")))
        if said:
            report.longrepr = f"{report.longrepr}\nharness: member {name}: {said}"

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Before the fleet's verdict (harness.pytest.fleet_finish writes it after every
        other sessionfinish): the runs of members whose worker died have ended."""
        terminal = session.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None and _pending(self.fleet):
            terminal.write_line("harness: waiting for the runs of members whose worker died "
                                "to end (their own teardown, or their guard)")
        settle(self.fleet.ledger, self.fleet.run_dir)


def _pending(fleet: FleetRun) -> list[str]:
    return [name for name, entry in fleet.ledger.read()["members"].items()
            if entry.get("worker_died") and entry["state"] != "ended"]
