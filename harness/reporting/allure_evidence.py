"""The procedure's evidence port (harness.procedure.evidence) written to Allure.

Everything goes through `allure.attach` and `allure.step`, so through allure's plugin manager
and the redacting writer registered on it (harness.reporting.allure_writer): the one choke point
where secrets are taken out, for the procedure's evidence as for anything else.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from typing import Any

import allure

from harness.reporting.soak import report_soak


class AllureEvidence:
    def step(self, title: str) -> AbstractContextManager[Any]:
        return allure.step(title)

    def attach_json(self, name: str, payload: Any) -> None:
        allure.attach(json.dumps(payload, indent=2, default=str), name=name,
                      attachment_type=allure.attachment_type.JSON)

    def attach_text(self, name: str, text: str) -> None:
        allure.attach(text, name=name, attachment_type=allure.attachment_type.TEXT)

    def label(self, name: str, value: str) -> None:
        allure.dynamic.label(name, value)

    def soak(self, run: Any, baseline: Any | None = None) -> None:
        report_soak(run, baseline)
