"""The end of a run: the verdict, the Allure environment panel, `reports/latest`, the exit
status, the outcome's transition and alert, then the report files.

A pytest plugin object, registered by harness.pytest.plugin as `harness-finisher` (as the
transitions are). The verdict comes last: pytest's runner tears the session fixtures down in its
own pytest_sessionfinish (the deployment's final state is observed there, and after an
interruption the known-good put back), so the finisher wraps every other implementation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.common.errors import ExitCode
from harness.procedure.interrupt import INTERRUPTION
from harness.procedure.run import RunRecord, RunSettings, allure_environment, posture_line
from harness.procedure.run import write_verdict as write_verdict_file
from harness.procedure.rundir import RUN_DIR_OWNER
from harness.procedure.table import FAMILIES
from harness.pytest.session import RECORD, RUN_DIR, SETTINGS, runs_the_suite
from harness.reporting.landing import link_latest, write_environment


class Finisher:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session,
                             exitstatus: int) -> Iterator[None]:
        # loaded by pytest itself (pytest_plugins), after this module: imported late, so that
        # pytest still prepares it as a plugin
        from harness.pytest.reports import finish_reports

        try:
            return (yield)
        finally:
            self.finish(session)
            finish_reports(self.config)  # summary.md, a redaction pass over the run's files

    def finish(self, session: pytest.Session) -> None:
        config = self.config
        record = config.stash[RECORD]
        settings = config.stash.get(SETTINGS, None)
        self.note_interruption(record, settings)
        if not self.has_verdict(record, settings):
            return
        run_dir = settings.run_dir if settings else config.stash[RUN_DIR][1]
        verdict = write_verdict_file(run_dir / "verdict.json", record,
                                     settings.lock() if settings else None)
        if settings:
            self.environment_panel(record, settings)
            link_latest(self.config.rootpath / "reports", run_dir)
        self.say(verdict, run_dir)
        session.exitstatus = self.exit_status(record, session.exitstatus, verdict)
        transitions = config.pluginmanager.get_plugin("harness-transitions")
        if transitions is not None:  # the outcome as a transition, and the alert hook
            transitions.finish(verdict)
        owner = config.stash.get(RUN_DIR_OWNER, None)
        if owner is not None:
            owner.record["outcome"] = verdict["outcome"]

    def note_interruption(self, record: RunRecord, settings: RunSettings | None) -> None:
        interruption = self.config.stash.get(INTERRUPTION, None)
        if interruption is None:
            return
        interruption.uninstall()
        if interruption.interrupted and (settings is not None or runs_the_suite(self.config)):
            record.interruption = interruption.as_dict()  # leads the verdict's `interruption`

    @staticmethod
    def has_verdict(record: RunRecord, settings: RunSettings | None) -> bool:
        """A run of the suite gives a verdict: a refusal, an interruption, or phases that
        ran; the harness's own tests give none."""
        if record.error is not None or record.interruption is not None:
            return True
        return settings is not None and any(p.family in FAMILIES for p in record.phases)

    def environment_panel(self, record: RunRecord, settings: RunSettings) -> None:
        write_environment(getattr(self.config.option, "allure_report_dir", None),
                          f"backup_posture={posture_line(record)}\n"
                          + allure_environment(settings.lock(), record))

    def say(self, verdict: dict[str, Any], run_dir: Path) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is None:
            return
        if getattr(terminal._tw, "width_of_current_line", 0):  # after pytest's "[100%]"
            terminal._tw.line()
        terminal.write_line(f"harness: {verdict['outcome']} (exit {verdict['exit_code']}): "
                            f"{verdict['claim']}", bold=True)
        terminal.write_line(f"harness: verdict written to {run_dir / 'verdict.json'}")

    @staticmethod
    def exit_status(record: RunRecord, status: int, verdict: dict[str, Any]) -> int:
        if record.interruption is not None:
            return int(ExitCode.INTERRUPTED)
        if record.error_code is not None:
            return int(record.error_code)
        if status in (0, 1):
            return verdict["exit_code"]
        return status
