"""pytest wiring of the reports: redaction from the first result on, and at the end of a run
the categories, summary.md (with a comparison when asked) and a redaction pass over every file
the run wrote (verdict.json, JUnit XML, the model lab's log, the Allure results).

Loaded by `harness.pytest.plugin` (`pytest_plugins`); `finish_reports` is called by the
finisher (harness.pytest.finisher) once the verdict is written. Acts only on a session that ran
the acceptance suite (it wrote a verdict.json).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from harness.common.errors import HarnessError
from harness.procedure import evidence
from harness.pytest.session import RUN_DIR
from harness.reporting import allure_writer, redact
from harness.reporting.allure_evidence import AllureEvidence
from harness.reporting.categories import write_categories
from harness.reporting.compare import compare_paths
from harness.reporting.summary import summary_markdown

WRITER = pytest.StashKey[allure_writer.RedactingWriter]()
_STARTED = pytest.StashKey[float]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness")
    group.addoption("--compare-with", metavar="RUN",
                    help="another run (its folder or verdict.json): summary.md compares this "
                         "run's soak with it, per scenario and signature class")


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    redactor = redact.reset()
    previous = evidence.use(AllureEvidence())  # the procedure's evidence, into the report
    config.add_cleanup(lambda: evidence.use(previous))
    results = getattr(config.option, "allure_report_dir", None)
    if results:
        writer = allure_writer.install(Path(results).resolve(), redactor)
        config.stash[WRITER] = writer
        config.add_cleanup(lambda: allure_writer.uninstall(writer))


def finish_reports(config: pytest.Config) -> None:
    """Called by the finisher once the verdict (and JUnit XML) are written."""
    if RUN_DIR not in config.stash:
        return
    run_dir = config.stash[RUN_DIR][1]
    verdict_path = run_dir / "verdict.json"
    if not verdict_path.exists() or verdict_path.stat().st_mtime < _session_start(config):
        return
    redactor = redact.active()
    redactor.refresh()
    results = getattr(config.option, "allure_report_dir", None)
    if results and Path(results).is_dir():
        write_categories(Path(results))
    verdict = json.loads(verdict_path.read_text())
    comparison = None
    other = config.getoption("compare_with", None)
    if other:
        try:
            comparison = compare_paths(Path(other), run_dir)
        except HarnessError as exc:
            comparison = f"No comparison with {other}: {exc}"
        (run_dir / "comparison.md").write_text(redactor.redact(comparison))
    (run_dir / "summary.md").write_text(redactor.redact(summary_markdown(verdict, comparison)))
    # everything the run wrote, whoever wrote it (pytest's JUnit XML, the model lab's log)
    redactor.redact_tree(run_dir)
    leaks = redact.scan(run_dir, redactor)
    if leaks:  # a binary file the text redaction cannot touch: say so, loudly
        sys.stderr.write("harness: warning: secrets of this run remain in its report: "
                         + "; ".join(str(leak) for leak in leaks) + "\n")



@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_STARTED] = time.time() - 1


def _session_start(config: pytest.Config) -> float:
    return config.stash.get(_STARTED, 0.0)
