"""Interruptions of a run: Ctrl-C, SIGTERM and a phase past its time limit end the same way.

Until the session's teardown begins (collection and resolving the versions included: a
supervisor's TimeoutStartSec may send SIGTERM that early), the first SIGINT or SIGTERM (a CI
job's timeout sends SIGTERM) and a pytest-timeout that fires on one of the suite's tests raise
KeyboardInterrupt in the main thread: pytest stops, tears the session fixtures down (the
procedure's teardown puts the known-good back when no version was proven yet:
harness.procedure.recovery) and the verdict says `interrupted`. Once the teardown has begun
a signal is only recorded: raising there would skip the finalisers after the one it hit, and
with them the restore.
A later signal cuts only what `skippable()` wraps (the proof of the restored known-good),
never the restore.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import pytest

SIGNALS = (signal.SIGINT, signal.SIGTERM)


INTERRUPTION: pytest.StashKey[Interruption] = pytest.StashKey()


class Skipped(Exception):  # noqa: N818 - what happened to the step, not an error of it
    """A step wrapped in `skippable()` was cut short by a later signal."""


def _interrupt_main_thread(message: str) -> None:
    """KeyboardInterrupt in the main thread, where nothing swallows it. A signal handler runs
    in whatever Python code the main thread is in; in a soak that is often the event loop's
    callback of a transport (uvloop's stream read), which takes any exception raised there for
    a fatal error of that one connection, logs it, and goes on: the soak ran to its end.
    While a loop runs, the interrupt is raised from a callback of its own, which the loop lets
    out of `run`."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise KeyboardInterrupt(message) from None

    def interrupt() -> None:
        raise KeyboardInterrupt(message)

    loop.call_soon_threadsafe(interrupt)


@dataclass
class Interruption:
    """What interrupted the run, and every signal after it."""

    signals: list[dict[str, Any]] = field(default_factory=list)
    during: str | None = None  # the test whose phase was running (or being set up)
    testing: bool = False  # inside pytest's test loop
    finishing: bool = False  # the session's teardown has begun: a signal is only recorded
    _skippable: int = 0
    _lease_why: str = ""
    _previous: dict[int, Any] = field(default_factory=dict)

    @property
    def interrupted(self) -> bool:
        return bool(self.signals)

    @property
    def first(self) -> dict[str, Any] | None:
        return self.signals[0] if self.signals else None

    def as_dict(self) -> dict[str, Any]:
        return {"by": self.first["signal"] if self.first else None,
                "during": self.first.get("during") if self.first else None,
                "signals": list(self.signals)}

    # -- signals ---------------------------------------------------------------------------
    def install(self) -> None:
        """SIGINT and SIGTERM take the same path (only in the main thread: signal's rule)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        self._previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, self._on_lease)

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.note(signal.Signals(signum).name)

    def lease_lost(self, why: str) -> None:
        """Called from the guard's lease thread: this harness stalled past its lease and the
        guard took the gateway over. The main thread is interrupted as by a signal (SIGUSR1
        carries it there), and the run ends `interrupted` without acting on the gateway."""
        self._lease_why = why
        if threading.current_thread() is threading.main_thread():
            self.note(f"lease lost ({why})")
        elif self._previous:  # our handlers are installed: hand it to the main thread
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)

    def _on_lease(self, signum: int, frame: FrameType | None) -> None:
        self.note(f"lease lost ({self._lease_why})")

    def note(self, what: str) -> None:
        """Record an interruption (a signal's name, or `timeout of <test>`) and act on it."""
        first = not self.signals
        self.signals.append({"signal": what, "at": round(time.time(), 3),
                             "during": self.during})
        if first and not self.finishing:
            _interrupt_main_thread(f"harness: interrupted by {what}")
        if not first and self._skippable:
            raise Skipped(f"cut short by {what}")

    @contextmanager
    def skippable(self) -> Iterator[None]:
        """A step a later signal may cut short (raising Skipped inside it)."""
        self._skippable += 1
        try:
            yield
        finally:
            self._skippable -= 1

    # -- pytest hooks ------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        self.testing = True
        try:
            return (yield)
        finally:
            self.testing, self.finishing = False, True

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.during = item.name

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        if nextitem is None:  # the session's fixtures tear down now: no signal may cut them
            self.testing, self.finishing = False, True

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_timeout_set_timer(self, item: pytest.Item, settings: Any) -> bool | None:
        """A suite test past its time limit interrupts the run (pytest-timeout's own signal
        method would only fail that test and go on to the next phase)."""
        if threading.current_thread() is not threading.main_thread():
            return None

        def fire(signum: int, frame: FrameType | None) -> None:
            self.note(f"timeout of {item.name} after {settings.timeout:g} s")

        def cancel() -> None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)

        item.cancel_timeout = cancel  # type: ignore[attr-defined] - pytest-timeout calls it
        signal.signal(signal.SIGALRM, fire)
        signal.setitimer(signal.ITIMER_REAL, settings.timeout)
        return True
