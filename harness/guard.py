"""The harness's side of the detached guard (the guard itself is `harness/guardian.py`).

An updater that stops its gateway and then dies leaves the seed's "bad middle state": nothing
is running and nothing will start it (Restart=always ignores an intentional stop). So before
every stop the harness arms a guard that does not depend on the harness being alive:

    prepare()  once, while the known-good serves: snapshot its config (and, under systemd, its
               unit as written for the known-good) into <deployment>/guard/, start a heartbeat
               thread that touches <deployment>/guard/heartbeat every second
    arm()      before a stop: write state.json (armed) and start the guardian, detached
               (systemd: `systemd-run --user`, a transient unit of the user's manager;
               local: a double-forked daemon)
    disarm()   once the gateway is ready again (the candidate, or the restored known-good)
    close()    at the end of the run: disarm, stop the heartbeat, and end the guardian by its
               unit name or PID

If the harness is killed while armed, its heartbeat stops; after `stale_s` the guardian
switches `current` back to the known-good prefix, restores the snapshot and starts the gateway.
The folder must be visible at the same path to the harness and the target (the harness runs on
the staging host, or, in the container tests, the deployment folder is shared at its path).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import commands
from harness.errors import InfrastructureError

GUARDIAN = Path(__file__).with_name("guardian.py")


@dataclass
class GuardEvent:
    at: float
    what: str
    details: dict[str, Any] = field(default_factory=dict)


class Guard:
    def __init__(self, folder: Path, *, current: Path, health_url: str, mode: str,
                 systemd_driver: Any = None, local_spec: dict[str, Any] | None = None,
                 stale_s: float = 15.0, max_down_s: float = 2400.0,
                 heartbeat_s: float = 1.0) -> None:
        if mode not in ("systemd", "local"):
            raise InfrastructureError(f"guard mode {mode!r}: expected systemd or local")
        self.folder = folder
        self.current = current
        self.health_url = health_url
        self.mode = mode
        self.driver = systemd_driver
        self.local_spec = local_spec
        self.stale_s = stale_s
        self.max_down_s = max_down_s
        self.heartbeat_s = heartbeat_s
        self.state_path = folder / "state.json"
        self.heartbeat = folder / "heartbeat"
        self.known_good: dict[str, str] | None = None
        self.files: list[tuple[str, str]] = []
        self.armed = False
        self.unit: str | None = None  # the guardian's transient unit (systemd)
        self.pid: int | None = None  # the guardian's PID
        self.events: list[GuardEvent] = []
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # -- setup ---------------------------------------------------------------------------
    def prepare(self, prefix: Path, version: str, files: list[Path]) -> None:
        """Snapshot what the known-good needs to come back; start the heartbeat."""
        snap = self.folder / "known-good"
        snap.mkdir(parents=True, exist_ok=True)
        self.files = []
        for path in files:
            saved = snap / path.name
            shutil.copy2(path, saved)
            self.files.append((str(saved), str(path)))
        if self.mode == "systemd":
            (snap / "unit").write_text(self.driver.unit_text())
        shutil.copy2(GUARDIAN, self.folder / "guardian.py")
        self.known_good = {"prefix": str(prefix), "version": version}
        self._touch()
        if self.mode == "systemd":
            self.driver.hand_over(self.folder)
        self._beat = threading.Thread(target=self._beating, name="guard-heartbeat", daemon=True)
        self._beat.start()
        self._event("prepared", known_good=version, files=[d for _, d in self.files])

    def _touch(self) -> None:
        self.heartbeat.touch()
        os.utime(self.heartbeat)

    def _beating(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self._touch()
            except OSError:
                pass

    def _event(self, what: str, **details: Any) -> None:
        self.events.append(GuardEvent(time.time(), what, details))

    # -- arming --------------------------------------------------------------------------
    def state(self, armed: bool, reason: str) -> dict[str, Any]:
        assert self.known_good is not None, "prepare() first"
        state: dict[str, Any] = {
            "armed": armed, "reason": reason, "armed_at": time.time(), "mode": self.mode,
            "stale_s": self.stale_s, "max_down_s": self.max_down_s, "poll_s": 1.0,
            "heartbeat": str(self.heartbeat), "current": str(self.current),
            "known_good": self.known_good, "files": self.files,
            "health_url": self.health_url, "health_timeout_s": 120,
        }
        if self.mode == "systemd":
            state["systemd"] = {"unit": self.driver.unit, "unit_path": self.driver.unit_path,
                                "unit_text_file": str(self.folder / "known-good" / "unit")}
        else:
            state["local"] = self.local_spec
        return state

    def _write_state(self, state: dict[str, Any]) -> None:
        tmp = self.state_path.with_name("state.json.tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.chmod(tmp, 0o600)
        if self.mode == "systemd":
            self.driver.hand_over(tmp)
        os.replace(tmp, self.state_path)

    def arm(self, reason: str) -> dict[str, Any]:
        """Before a stop. Returns what was started, as evidence for the report."""
        if self.armed and self.running():
            self._event("still armed", reason=reason)
            return {"guard": "already armed", "unit": self.unit, "pid": self.pid}
        self.collect_trip()  # a trip of the guardian before this one is evidence: keep it
        (self.folder / "result.json").unlink(missing_ok=True)
        (self.folder / "guard.pid").unlink(missing_ok=True)  # each guardian writes its own
        self._touch()
        self._write_state(self.state(True, reason))
        if self.mode == "systemd":
            self.unit = f"grh-guard-{secrets.token_hex(4)}.service"
            guardian = str(self.folder / "guardian.py")
            done = self.driver._as_user(  # noqa: SLF001 - the driver's user, env and runner
                ["systemd-run", "--user", "--quiet", "--collect", f"--unit={self.unit}",
                 f"--description=gateway-release-harness guard of {self.driver.unit}",
                 "python3", guardian, str(self.state_path)], timeout=30)
            if done.returncode != 0:
                raise InfrastructureError(f"could not start the guard: {done.tail(2)}")
            self.pid = self._wait_pid()
        else:
            proc = subprocess.Popen([sys.executable, str(self.folder / "guardian.py"),
                                     str(self.state_path), "--daemonize"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            proc.wait(timeout=30)  # the first fork's parent: gone at once
            self.pid = self._wait_pid()
        self.armed = True
        evidence = {"guard": "armed", "reason": reason, "mode": self.mode, "unit": self.unit,
                    "pid": self.pid, "stale_s": self.stale_s,
                    "restores": self.known_good}
        self._event("armed", **evidence)
        return evidence

    def _wait_pid(self, timeout_s: float = 15.0) -> int:
        pid_file = self.folder / "guard.pid"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                return int(pid_file.read_text().strip())
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise InfrastructureError(f"the guard did not start within {timeout_s:g} s: "
                                  f"{self.log_tail()}")

    def running(self) -> bool:
        if self.mode == "systemd" and self.unit:
            done = self.driver.systemctl("is-active", self.unit, timeout=30)
            return done.stdout.strip() in ("active", "activating")
        return self.pid is not None and commands.alive(self.pid)

    def disarm(self, reason: str, wait_s: float = 10.0) -> None:
        if not self.armed:
            return
        self._write_state(self.state(False, reason))
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and self.running():
            time.sleep(0.2)
        self.armed = False
        self._event("disarmed", reason=reason)

    def collect_trip(self) -> dict[str, Any] | None:
        """The guardian's result.json, once: it tripped (the harness's heartbeat went stale,
        or the gateway stayed down too long) and put the known-good back. Kept as a
        `tripped` event for the verdict and transitions.jsonl."""
        result = self.result()
        if result is None or any(e.what == "tripped" and e.details.get("tripped_at") ==
                                 result.get("tripped_at") for e in self.events):
            return None
        self._event("tripped", **result)
        return result

    def close(self) -> None:
        """End of the run: nothing of the guard is left running."""
        self.collect_trip()
        if self.known_good is not None and self.armed:
            self.disarm("the run ended")
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        if self.mode == "systemd" and self.unit:
            self.driver.systemctl("stop", self.unit, timeout=30)
        elif self.pid is not None and self.running():
            os.kill(self.pid, 15)

    def result(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder / "result.json").read_text())
        except (OSError, ValueError):
            return None

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join((self.folder / "guard.log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no guard log)"
