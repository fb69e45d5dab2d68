"""The one port the procedure writes its evidence to: steps, attachments, labels, soaks.

The procedure decides; what it shows a person goes through `Evidence` and nothing else. The
Allure adapter (harness.reporting.allure_evidence) is the run's listener, installed by the
pytest wiring; `KeptEvidence` keeps what it got in memory (tests, tools that read it back);
without a listener the evidence is dropped, as Allure drops it outside a test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol


class Evidence(Protocol):
    def step(self, title: str) -> AbstractContextManager[Any]:
        """A block of work, as the report shows it (steps nest)."""

    def attach_json(self, name: str, payload: Any) -> None: ...

    def attach_text(self, name: str, text: str) -> None: ...

    def label(self, name: str, value: str) -> None:
        """A label of the current test (e.g. its story: the phase's name)."""

    def soak(self, run: Any, baseline: Any | None = None) -> None:
        """A soak's own evidence (harness.soak.driver.SoakRun): numbers, charts, requests."""


@dataclass
class Kept:
    """One piece of evidence: its kind, name, body, and the steps it was given under."""

    kind: str  # step | json | text | label | soak
    name: str
    body: Any = None
    steps: tuple[str, ...] = ()


@dataclass
class KeptEvidence:
    """Evidence kept in memory, in the order it came."""

    items: list[Kept] = field(default_factory=list)
    _open: list[str] = field(default_factory=list)

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.items.append(Kept("step", title, steps=tuple(self._open)))
        self._open.append(title)
        try:
            yield
        finally:
            self._open.pop()

    def attach_json(self, name: str, payload: Any) -> None:
        # as the report holds it: JSON text, read back
        self._keep("json", name, json.loads(json.dumps(payload, default=str)))

    def attach_text(self, name: str, text: str) -> None:
        self._keep("text", name, text)

    def label(self, name: str, value: str) -> None:
        self._keep("label", name, value)

    def soak(self, run: Any, baseline: Any | None = None) -> None:
        self._keep("soak", run.label, run)

    def _keep(self, kind: str, name: str, body: Any) -> None:
        self.items.append(Kept(kind, name, body, tuple(self._open)))

    def named(self, name: str) -> list[Kept]:
        return [item for item in self.items if item.name == name]

    def steps(self) -> list[str]:
        return [item.name for item in self.items if item.kind == "step"]


class Dropped:
    """No listener: evidence goes nowhere (a tool run outside a test)."""

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        yield

    def attach_json(self, name: str, payload: Any) -> None:
        return None

    def attach_text(self, name: str, text: str) -> None:
        return None

    def label(self, name: str, value: str) -> None:
        return None

    def soak(self, run: Any, baseline: Any | None = None) -> None:
        return None


_listener: Evidence = Dropped()


def current() -> Evidence:
    """The run's evidence listener (the Allure adapter in a run of the suite)."""
    return _listener


def use(listener: Evidence) -> Evidence:
    """Make `listener` the run's; returns the one it replaces."""
    global _listener
    previous, _listener = _listener, listener
    return previous
