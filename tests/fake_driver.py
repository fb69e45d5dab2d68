"""A gateway driver that keeps everything in memory: a real implementation of the driver
protocol (harness.targets.driver.Driver), not a mock. It keeps the installs it was switched to,
which version runs, a process that starts and stops (a PID, an exit code), and a console log
file of its own, into which a running version may write lines (say, the timeout lines of a
regressing release) while it runs. It can be told to fail any step, for any version:

    driver.fail("start", "2026.4.1")            start raises (the harness sees an error)
    driver.fail("ready", "2026.4.1")            starts, then its process exits with code 1
    driver.fail("activate", "2026.3.28")        the switch raises
    driver.logs("2026.4.1", "embedded run timeout: runId=r{n} ...")   logged while it runs

Its HTTP side is another process's: the facade's endpoint points at the model lab, which
serves the chat API, so replies are real; the driver decides whether "its" gateway runs.
Every step is appended to `transitions` as (step, version, outcome).
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

from harness.common.commands import Completed
from harness.common.errors import InfrastructureError
from harness.signals.logwatch import LogWatcher
from harness.signals.signatures import Signature
from harness.targets.driver import Driver
from harness.targets.runtime import Installation, NodeRuntime

_PIDS = itertools.count(4000)


class InMemoryDriver(Driver):
    name = "in-memory"

    def __init__(self, deployment: Path, log_every_s: float = 0.3) -> None:
        self.deployment = deployment
        self.env: dict[str, str] = {}
        self.log_path = deployment / "logs" / "gateway.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.touch()
        self.installs: dict[str, Installation] = {}  # version -> the install it was given
        self.active: Installation | None = None
        self.running: Installation | None = None  # what the process runs (None: no process)
        self._pid: int | None = None
        self._exit: int | None = None
        self.failing: dict[tuple[str, str], str] = {}
        self.lines: dict[str, str] = {}  # version -> a line it logs while it runs
        self.transitions: list[tuple[str, str, str]] = []
        self.log_every_s = log_every_s
        self._logger: threading.Thread | None = None
        self._stop_logging = threading.Event()

    # -- telling it what to do --------------------------------------------------------------
    def fail(self, step: str, version: str, why: str = "told to fail") -> InMemoryDriver:
        self.failing[(step, version)] = why
        return self

    def logs(self, version: str, line: str) -> InMemoryDriver:
        """While `version` runs it logs `line` every log_every_s ({n}: a running number)."""
        self.lines[version] = line
        return self

    def _check(self, step: str, version: str) -> None:
        why = self.failing.get((step, version))
        if why is not None and step != "ready":
            self.transitions.append((step, version, "failed"))
            raise InfrastructureError(f"{step} {version}: {why}")

    # -- the protocol -----------------------------------------------------------------------
    def active_prefix(self) -> Path | None:
        return self.active.prefix if self.active is not None else None

    def activate(self, install: Installation) -> None:
        version = install.release.version
        self._check("activate", version)
        self.installs[version] = install
        self.active = install
        self.transitions.append(("activate", version, "ok"))

    @property
    def pid(self) -> int | None:
        return self._pid if self.running is not None else None

    def start(self) -> int:
        if self.running is not None:
            raise InfrastructureError(f"already running as PID {self._pid}")
        if self.active is None:
            raise InfrastructureError("no active install to start")
        version = self.active.release.version
        self._check("start", version)
        self._pid, self._exit = next(_PIDS), None
        if ("ready", version) in self.failing:  # it starts, and its process dies at once
            self._exit = 1
            self._write(f"{version}: fatal: {self.failing[('ready', version)]}")
            self.transitions.append(("start", version, "exited"))
            return self._pid
        self.running = self.active
        self.transitions.append(("start", version, "ok"))
        self._write(f"{version}: listening")
        if version in self.lines:
            self._stop_logging.clear()
            self._logger = threading.Thread(target=self._logging, args=(version,), daemon=True)
            self._logger.start()
        return self._pid

    def stop(self, timeout_s: float) -> bool:
        if self.running is None:
            return False
        version = self.running.release.version
        self._check("stop", version)
        self._stop_logging.set()
        if self._logger is not None:
            self._logger.join(timeout=5)
        self.running, self._exit = None, 0
        self.transitions.append(("stop", version, "ok"))
        return True

    def is_running(self) -> bool:
        return self.running is not None

    def exit_code(self) -> int | None:
        return self._exit

    def run_cli(self, args: list[str], timeout_s: float) -> Completed:
        return Completed(["gateway", *args], 127, "", "the in-memory gateway has no CLI")

    def console_watcher(self, signatures: tuple[Signature, ...]) -> LogWatcher:
        return LogWatcher.from_end(self.log_path, signatures)

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text().splitlines()[-lines:])

    def guard_terms(self, installation: Installation, node: NodeRuntime | None
                    ) -> dict[str, Any]:
        raise InfrastructureError("the in-memory gateway is not guarded")

    # -- its console --------------------------------------------------------------------------
    def _write(self, line: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        with open(self.log_path, "a") as log:
            log.write(f"{stamp}.000Z {line}\n")

    def _logging(self, version: str) -> None:
        for n in itertools.count(1):
            if self._stop_logging.wait(self.log_every_s):
                return
            self._write(self.lines[version].format(n=n))
