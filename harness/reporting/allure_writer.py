"""The one choke point for everything Allure writes: results, containers and attachments.

allure-pytest hands every item it writes to the `report_*` hooks of allure's own plugin
manager. A wrapper around those hooks redacts a result or container in place before any
writer sees it (test names, parameters, step names, status messages and tracebacks, which
pytest fills with the reprs of a test's arguments), and redacts each attachment file right
after the file writer put it into the results folder. Anything that calls `allure.attach`,
in this harness or in a suite built on it, goes through here.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import allure_commons
import attr

from harness.reporting.redact import Redactor


def redact_item(item: Any, redactor: Redactor) -> Any:
    """Redact every string of an attrs object (and the lists and objects it holds) in place."""
    if isinstance(item, str):
        return redactor.redact(item)
    if isinstance(item, list):
        for i, value in enumerate(item):
            item[i] = redact_item(value, redactor)
        return item
    if isinstance(item, dict):
        for key, value in list(item.items()):
            item[key] = redact_item(value, redactor)
        return item
    if attr.has(type(item)):
        for field in attr.fields(type(item)):
            setattr(item, field.name, redact_item(getattr(item, field.name), redactor))
    return item


class RedactingWriter:
    """Registered with allure's plugin manager beside allure-pytest's file writer."""

    def __init__(self, results_dir: Path, redactor: Redactor) -> None:
        self.results_dir = results_dir
        self.redactor = redactor

    @allure_commons.hookimpl(hookwrapper=True)
    def report_result(self, result: Any) -> Generator[None, None, None]:
        redact_item(result, self.redactor)
        yield

    @allure_commons.hookimpl(hookwrapper=True)
    def report_container(self, container: Any) -> Generator[None, None, None]:
        redact_item(container, self.redactor)
        yield

    @allure_commons.hookimpl(hookwrapper=True)
    def report_globals(self, globals_item: Any) -> Generator[None, None, None]:
        redact_item(globals_item, self.redactor)
        yield

    @allure_commons.hookimpl(hookwrapper=True)
    def report_attached_data(self, body: Any, file_name: str) -> Generator[None, None, None]:
        yield
        self.redactor.redact_file(self.results_dir / file_name)

    @allure_commons.hookimpl(hookwrapper=True)
    def report_attached_file(self, source: Any, file_name: str) -> Generator[None, None, None]:
        yield
        self.redactor.redact_file(self.results_dir / file_name)


def install(results_dir: Path, redactor: Redactor) -> RedactingWriter:
    writer = RedactingWriter(results_dir, redactor)
    allure_commons.plugin_manager.register(writer)
    return writer


def uninstall(writer: RedactingWriter) -> None:
    if allure_commons.plugin_manager.is_registered(writer):
        allure_commons.plugin_manager.unregister(writer)
