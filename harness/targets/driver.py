"""The driver protocol: how one gateway is switched, started, stopped and read.

The gateway facade (harness.targets.gateway) speaks to its driver through this interface only,
and the phases speak only to the facade, so none of them knows which driver runs (testinfra's
`BaseBackend`, chosen by name, is the model). A profile's `target.driver` names the class:

    embedded (the run's own deployment)       attached (found running, left as found)
    local     LocalProcessDriver              systemd   AttachedUnit       (its journal)
    systemd   SystemdUserDriver               docker    AttachedContainer  (`docker logs`)
                                              url       AttachedUrl        (a file log)

An attached driver refuses every change (start, stop, activate, the gateway's own commands);
what it can do is `observe()` the deployment: whether it runs, what identifies the process
(a new one means it restarted), and which version it runs.
"""

from __future__ import annotations

import glob
import importlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness.common.errors import InfrastructureError, InputError

if TYPE_CHECKING:
    from harness.common.commands import Completed
    from harness.signals.logwatch import Following
    from harness.signals.signatures import Signature
    from harness.targets.runner import CommandRunner
    from harness.targets.runtime import Installation, NodeRuntime

# name -> "module:Class", imported on use (a driver module imports the profile, which validates
# names against these maps)
EMBEDDED = {"local": "harness.targets.local:LocalProcessDriver",
            "systemd": "harness.targets.systemd:SystemdUserDriver"}
ATTACHED = {"systemd": "harness.targets.attached:AttachedUnit",
            "docker": "harness.targets.docker:AttachedContainer",
            "url": "harness.targets.attached:AttachedUrl"}
# the log each driver's gateway writes its console to, without a file of its own ("": none)
CONSOLE = {("embedded", "local"): "stdout", ("embedded", "systemd"): "journal",
           ("attached", "systemd"): "journal", ("attached", "docker"): "docker",
           ("attached", "url"): ""}


def driver_class(provision: str, name: str) -> type[Driver]:
    """The class `target.driver = name` names for a deployment provisioned so."""
    table = ATTACHED if provision == "attached" else EMBEDDED
    if name not in table:
        raise InputError("", "target.driver", f"{name!r} (known for {provision}: "
                         f"{', '.join(table)})")
    module, _, cls = table[name].partition(":")
    return getattr(importlib.import_module(module), cls)


class Driver(ABC):
    """What the facade may ask of any driver."""

    name: ClassVar[str]
    # the gateway is the run's own process and ends with the run (the guard, when the harness
    # died, stops it and the model lab once the known-good is proven); else it keeps serving
    ends_with_the_run: ClassVar[bool] = False
    deployment: Path | None = None  # where the run's deployment lives (None: attached)
    env: dict[str, str]  # what the gateway process gets (the redactor reads it for secrets)
    log_path: Path | None = None  # its console as a file on this host, if it is one
    runner: CommandRunner | None = None  # where its commands run (None: this host, directly)

    # -- which install is active ----------------------------------------------------------
    @abstractmethod
    def active_prefix(self) -> Path | None: ...

    def active_version(self) -> str | None:
        """The version of the active install, from the marker the install wrote."""
        from harness.targets.runtime import MARKER

        prefix = self.active_prefix()
        if prefix is None:
            return None
        try:
            return json.loads((prefix / MARKER).read_text())["version"]
        except (OSError, KeyError, TypeError, json.JSONDecodeError):
            return None

    @abstractmethod
    def activate(self, install: Installation) -> None: ...

    # -- lifecycle ------------------------------------------------------------------------
    @property
    @abstractmethod
    def pid(self) -> int | None: ...

    @abstractmethod
    def start(self) -> int: ...

    @abstractmethod
    def stop(self, timeout_s: float) -> bool: ...

    @abstractmethod
    def is_running(self) -> bool: ...

    @abstractmethod
    def exit_code(self) -> int | None: ...

    def forget_child(self) -> None:  # noqa: B027 - most drivers have nothing to forget
        """The guard took over and started a gateway of its own: follow that one."""

    @abstractmethod
    def run_cli(self, args: list[str], timeout_s: float) -> Completed: ...

    def port_owner(self, port: int) -> str | None:
        """Who holds the gateway's port when it is not the process this driver started;
        None when it is ours, or when this host cannot tell."""
        return None

    # -- its log --------------------------------------------------------------------------
    @abstractmethod
    def console_watcher(self, signatures: tuple[Signature, ...]) -> Following:
        """A watcher of the gateway's console from now on (a context manager)."""

    @abstractmethod
    def log_tail(self, lines: int = 20) -> str: ...

    def newest_file(self, pattern: str) -> str | None:
        """The newest file matching a glob where the gateway runs."""
        if self.runner is not None:
            done = self.runner.run(["sh", "-c", f"ls -1t -- {pattern} 2>/dev/null | head -n 1"],
                                   timeout=30)
            return done.stdout.strip() or None
        found = sorted(glob.glob(pattern), key=lambda p: Path(p).stat().st_mtime, reverse=True)
        return found[0] if found else None

    # -- the guard ------------------------------------------------------------------------
    def guard_terms(self, installation: Installation, node: NodeRuntime | None
                    ) -> dict[str, Any]:
        """How the detached guard brings the known-good back under this driver
        (harness.procedure.guard.Guard's mode and what that mode needs)."""
        raise InfrastructureError(f"the {self.name} driver cannot be guarded")


@dataclass(frozen=True)
class Observation:
    """An attached deployment at one moment: whether it runs, what identifies its process, and
    the version it runs. The labels name each field as its source does (a container's
    StartedAt, a unit's ActiveEnterTimestamp)."""

    unit: str  # what runs it: a unit, a container, or the URL
    active: str  # active when it runs
    sub: str
    main_pid: int
    active_since: str  # a restart, even by Restart=always or docker's policy, changes it
    n_restarts: int
    version: str | None
    sources: dict[str, Any] = field(default_factory=dict)  # where the version was read
    notes: list[str] = field(default_factory=list)  # where those sources disagree
    container_id: str = ""  # docker: a replaced container is a new deployment
    image: str = ""  # docker: the image it runs
    labels: dict[str, str] = field(default_factory=lambda: dict(SYSTEMD_LABELS))

    @property
    def running(self) -> bool:
        """It runs: active, with a process when its source names one (a URL names none)."""
        return self.active == "active" and (self.main_pid != 0 or "main_pid" not in self.labels)

    def changes_since(self, before: Observation) -> list[str]:
        """What differs from an earlier observation, one phrase each (empty: as found)."""
        found = []
        for name in ("container_id", "main_pid", "active_since", "n_restarts", "active",
                     "version"):
            old, new = getattr(before, name), getattr(self, name)
            if old != new:
                found.append(f"{self.labels.get(name, name)} {old} -> {new}")
        return found

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SYSTEMD_LABELS = {"main_pid": "MainPID", "active_since": "ActiveEnterTimestamp",
                  "n_restarts": "NRestarts", "active": "ActiveState", "version": "version"}


class AttachedDriver(Driver):
    """A deployment that runs already: observed, soaked, never changed."""

    what: str  # how the verdict names it: the unit, the container, the URL
    version: str | None = None  # of the last observation

    def _refuse(self, what: str) -> InfrastructureError:
        return InfrastructureError(f"{self.what} is an attached deployment: the harness never "
                                   f"{what} it (it soaks it and leaves it as found)")

    def start(self) -> int:
        raise self._refuse("starts")

    def stop(self, timeout_s: float) -> bool:
        raise self._refuse("stops")

    def restart(self) -> int:
        raise self._refuse("restarts")

    def activate(self, install: Any) -> None:
        raise self._refuse("switches the version of")

    def active_prefix(self) -> None:
        return None  # no prefix of the harness's: observe() says what runs

    def active_version(self) -> str | None:
        return self.version

    def run_cli(self, args: list[str], timeout_s: float) -> Completed:
        raise self._refuse("runs the gateway's own commands against")

    def read_file(self, path: str) -> Completed:
        """A file where the gateway runs (its token file, its config), as its user."""
        raise self._refuse("reads files of")

    @abstractmethod
    def observe(self) -> Observation: ...

    def not_running(self) -> str | None:
        """Why it is seen not to run, before its token is read (a token file inside a stopped
        container cannot be read; that is not a bad setting); None when it may run."""
        return None
