"""The suite's tests as phases of the procedure (harness.procedure.table): which run, in what
order, with which time limit and Allure labels; and each outcome into the run record."""

from __future__ import annotations

import allure
import pytest

from harness.common.errors import HarnessError, InputError
from harness.procedure.run import PhaseOutcome, RunSettings
from harness.procedure.table import ATTACHED, ATTACHED_ONLY, FAMILIES, applies, time_limit
from harness.pytest.session import ATTACHED as FOUND
from harness.pytest.session import RECORD, SETTINGS, fail_input
from harness.targets.attached import attach


def family_of(item: pytest.Item) -> str | None:
    for family in FAMILIES:
        if item.get_closest_marker(family) is not None:
            return family
    return None


def stage(config: pytest.Config, items: list[pytest.Item], settings: RunSettings) -> None:
    """Deselect what does not apply to an embedded run, put the families in procedure order
    (the suite's own order inside each), label each test and give it its time limit."""
    if settings.target.attached is None:  # checks of an attached deployment: not this run's
        dropped = [item for item in items
                   if getattr(item, "originalname", item.name) in ATTACHED_ONLY]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [item for item in items if item not in dropped]
    order = {family: i for i, family in enumerate(FAMILIES)}
    items.sort(key=lambda item: order.get(family_of(item) or "", -1))  # stable
    for item in items:
        family = family_of(item)
        if family is None:
            continue
        label(item, family, settings)
        limit = time_limit(item.name, family, settings)
        if limit and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(limit))
    settings.run_dir.mkdir(parents=True, exist_ok=True)


def label(item: pytest.Item, family: str, settings: RunSettings) -> None:
    # an epic per target (history and trends follow a target across versions); the versions
    # of this run are a tag
    item.add_marker(allure.epic(settings.target.name))
    if settings.known_good is not None and settings.candidate is not None:
        item.add_marker(allure.tag(f"{settings.known_good.version} -> "
                                   f"{settings.candidate.version}"))
    else:
        item.add_marker(allure.tag(f"attached {settings.target.gateway.unit}"))
    item.add_marker(allure.feature(family))


def check_attached(session: pytest.Session) -> None:
    """An attached deployment, once `-m` and `-k` have settled what runs: only what applies
    to it may run (its soak), and it must be running and answering before any test starts."""
    config = session.config
    settings = config.stash.get(SETTINGS, None)
    if settings is None or settings.target.attached is None:
        return
    selected = [(item, family_of(item)) for item in session.items]
    if not any(family for _, family in selected):
        return
    refused = {family for item, family in selected
               if family and not applies(item.name, family, ATTACHED)}
    if refused:
        fail_input(config, InputError(
            str(settings.target.path), "target.provision",
            "\"attached\" deployments are only soaked, but this run selects "
            f"{' and '.join(f for f in FAMILIES if f in refused)} tests (they would install, "
            "stop and restart it): run `pytest scenarios -m soak "
            f"--target {settings.target.path}`"))
    try:
        found = attach(settings.target)
    except HarnessError as exc:
        fail_input(config, exc)
    config.stash[FOUND] = found
    config.stash[RECORD].attached_deployment(settings.lock()["attached"]).before = \
        found.found.as_dict()


def record_outcome(item: pytest.Item, report: pytest.TestReport) -> None:
    """A phase's outcome (its call, or a setup that did not pass) into the run record."""
    family = family_of(item)
    if not family or not (report.when == "call"
                          or (report.when == "setup" and not report.passed)):
        return
    record = item.config.stash[RECORD]
    reason = ""
    if report.failed:
        reason = str(report.longrepr.reprcrash.message) if hasattr(
            report.longrepr, "reprcrash") and report.longrepr.reprcrash else str(
            report.longrepr)[-400:]
    elif report.skipped and isinstance(report.longrepr, tuple):
        reason = report.longrepr[2]
    name = item.name.removeprefix("test_")
    if report.passed:  # a phase's own summary, when its fixture returned a PhaseResult
        result = getattr(item, "funcargs", {}).get(name)
        reason = str(getattr(result, "summary", "") or "")
    outcome = "failed" if report.failed else ("skipped" if report.skipped else "passed")
    record.phases.append(PhaseOutcome(family, name, outcome, round(report.duration, 3),
                                      reason))
    which = record.proven() if record.changed else None
    if which is not None and record.on_proven is not None:
        record.on_proven(which)  # the guard restores nothing from now on
