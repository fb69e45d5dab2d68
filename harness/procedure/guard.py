"""The harness's side of the detached guard (the guard itself is `harness/procedure/guardian.py`).

An updater that stops its gateway and then dies (or stalls) leaves the seed's "bad middle
state", or worse, an unsoaked candidate serving. So from the first change until the run has
proven a version, a guard that does not depend on the harness being alive is armed, and one
owner acts on the gateway at a time:

    prepare()  once, while the known-good serves: note its prefix and state, take the lease
               (<deployment>/guard/lease.json: owner, PID, expiry) and renew it every second
               from a thread
    arm()      before the first stop: snapshot the known-good's config, credentials and
               sessions (and, under systemd, its unit), write state.json (armed) and start the
               guardian, detached (systemd: `systemd-run --user`; local: a double-forked
               daemon). Later stops find it armed.
    disarm()   once the run has proven a version (the candidate passed the soak, or the
               known-good its watches), and at the end of the run
    close()    at the end of the run: disarm, stop renewing, end the guardian

If the lease lapses (the harness died, or stalled past `lease_s`) the guardian takes it and
puts the known-good back. A harness that wakes to find its lease taken stops acting on the
gateway (`owns()` is false, `on_lost` is called once) and reports it; `wait_trip()` gives the
guard's result once it is done.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.common import commands, waits
from harness.common.errors import InfrastructureError
from harness.procedure.guardian import lapsed, lease_locked, manifest, pid_namespace

GUARDIAN = Path(__file__).with_name("guardian.py")


@dataclass
class GuardEvent:
    at: float
    what: str
    details: dict[str, Any] = field(default_factory=dict)


class Guard:
    def __init__(self, folder: Path, *, current: Path, api: dict[str, Any], mode: str,
                 systemd_driver: Any = None, local_spec: dict[str, Any] | None = None,
                 lease_s: float = 15.0, max_down_s: float = 2400.0, renew_s: float = 1.0,
                 run: dict[str, Any] | None = None) -> None:
        if mode not in ("systemd", "local"):
            raise InfrastructureError(f"guard mode {mode!r}: expected systemd or local")
        self.folder = folder
        self.current = current
        self.api = api  # base_url, live, ready, chat, token, headers, model_prefix, agent
        self.mode = mode
        self.driver = systemd_driver
        self.local_spec = local_spec
        self.lease_s = lease_s
        self.max_down_s = max_down_s
        self.renew_s = renew_s
        self.run = run or {}  # what the guard needs to end a run whose harness died
        self.state_path = folder / "state.json"
        self.lease_path = folder / "lease.json"
        self.lease_lock = folder / "lease.lock"
        self.known_good: dict[str, str] | None = None
        self.state_spec: dict[str, Any] | None = None
        self.armed = False
        self.armed_at = 0.0
        self.unit: str | None = None  # the guardian's transient unit (systemd)
        self.pid: int | None = None  # the guardian's PID
        self.events: list[GuardEvent] = []
        self.lost: dict[str, Any] | None = None  # the lease, as found taken
        self.proven: dict[str, str] | None = None  # the version the run proved, once it did
        self.on_lost: Callable[[str], None] | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    # -- setup ---------------------------------------------------------------------------
    def prepare(self, prefix: Path, version: str, state_dir: Path, globs: list[str]) -> None:
        """The known-good, while it serves: where it is and which state is its own; the lease
        taken and renewed from now on."""
        self.folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(GUARDIAN, self.folder / "guardian.py")
        self.known_good = {"prefix": str(prefix), "version": version}
        self.state_spec = {"dir": str(state_dir), "globs": list(globs),
                           "saved": str(self.folder / "known-good" / "state"), "manifest": {}}
        fd = os.open(self.lease_lock, os.O_RDWR | os.O_CREAT, 0o666)
        os.close(fd)
        os.chmod(self.lease_lock, 0o666)
        self._renew()
        if self.mode == "systemd":
            self.driver.hand_over(self.folder)
        self._renewer = threading.Thread(target=self._renewing, name="guard-lease", daemon=True)
        self._renewer.start()
        self._event("prepared", known_good=version, lease_s=self.lease_s)

    def _lease(self) -> dict[str, Any]:
        now = time.time()
        return {"owner": "harness", "pid": os.getpid(), "start_time": commands.start_time(
            os.getpid()), "pid_ns": pid_namespace(), "renewed": now,
                "expires": now + self.lease_s, "lease_s": self.lease_s}

    def _renew(self) -> bool:
        """Extend the lease if it is still this harness's; else it is lost (once)."""
        if self.lost is not None:
            return False
        with lease_locked(self.lease_lock):
            held = _read(self.lease_path)
            if held is not None and not (held.get("owner") == "harness" and
                                         held.get("pid") == os.getpid()):
                self.lost = held
            else:
                _write(self.lease_path, self._lease())
                return True
        why = str(held.get("why") or f"taken by {held.get('owner')}")
        self._event("lease lost", holder=held.get("owner"), why=why)
        if self.on_lost is not None:
            self.on_lost(why)
        return False

    def _renewing(self) -> None:
        while not self._stop.wait(self.renew_s):
            try:
                if not self._renew():
                    return
            except OSError:
                pass

    def owns(self) -> bool:
        """Whether this harness may act on the gateway (its lease holds)."""
        return self.lost is None

    def _event(self, what: str, **details: Any) -> None:
        self.events.append(GuardEvent(time.time(), what, details))

    # -- arming --------------------------------------------------------------------------
    def _snapshot(self) -> None:
        """The known-good's state as it is right before the first stop (the refreshed
        pre-upgrade backup holds the same): what the guard gives back."""
        assert self.state_spec is not None, "prepare() first"
        live, saved = Path(self.state_spec["dir"]), Path(self.state_spec["saved"])
        if saved.exists():
            shutil.rmtree(saved)
        files = manifest(live, self.state_spec["globs"])
        for rel in files:
            (saved / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(live / rel, saved / rel)
        self.state_spec["manifest"] = files
        if self.mode == "systemd":
            (self.folder / "known-good" / "unit").write_text(self.driver.unit_text())

    def state(self, armed: bool, reason: str) -> dict[str, Any]:
        assert self.known_good is not None, "prepare() first"
        state: dict[str, Any] = {
            "armed": armed, "reason": reason, "armed_at": self.armed_at, "mode": self.mode,
            "lease": str(self.lease_path), "lease_lock": str(self.lease_lock),
            "lease_s": self.lease_s, "max_down_s": self.max_down_s, "poll_s": 0.5,
            "current": str(self.current), "known_good": self.known_good,
            "state": self.state_spec, "api": self.api, "ready_timeout_s": 120,
            "proof_timeout_s": 90, "run": self.run, "proven": self.proven,
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
        os.chmod(tmp, 0o600)  # it holds the gateway's token
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
        if not self.armed and not (self.state_spec or {}).get("manifest"):
            self._snapshot()
        self.armed_at = time.time()
        self._renew()
        self._write_state(self.state(True, reason))
        if self.mode == "systemd":
            self.driver.hand_over(self.folder)
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
                    "pid": self.pid, "lease_s": self.lease_s, "restores": self.known_good,
                    "state_files": len((self.state_spec or {}).get("manifest") or {})}
        self._event("armed", **evidence)
        return evidence

    def _wait_pid(self, timeout_s: float = 15.0) -> int:
        pid_file = self.folder / "guard.pid"

        def written() -> int | None:
            try:
                return int(pid_file.read_text().strip())
            except (OSError, ValueError):
                return None

        return waits.wait_until(written, timeout_s=timeout_s, interval_s=0.1,
                                what="the guard did not start", detail=self.log_tail)

    def running(self) -> bool:
        if self.mode == "systemd" and self.unit:
            done = self.driver.systemctl("is-active", self.unit, timeout=30)
            return done.stdout.strip() in ("active", "activating")
        return self.pid is not None and commands.alive(self.pid)

    def stand_down(self, which: str, version: str) -> None:
        """The run proved `version` (`which`: candidate or known_good): from now on the guard
        restores nothing; it only witnesses: should the harness die before its verdict, the
        guard observes what serves, writes the verdict and ends an embedded run."""
        if not self.armed or not self.owns() or self.proven is not None:
            return
        self.proven = {"which": which, "version": version}
        self._write_state(self.state(True, f"{which} {version} proven"))
        self._event("standing down", **self.proven)

    def disarm(self, reason: str, wait_s: float = 10.0) -> None:
        """The run ends on its own feet: the guardian exits."""
        if not self.armed or not self.owns():
            return
        self._write_state(self.state(False, reason))
        waits.poll(lambda: not self.running(), timeout_s=wait_s, interval_s=0.2)
        self.armed = False
        self._event("disarmed", reason=reason)

    def wait_trip(self, timeout_s: float = 240.0) -> dict[str, Any] | None:
        """After the lease was lost: the guard's result once it has one (or its guardian
        ended without one)."""
        waits.poll(lambda: self.collect_trip() or self._tripped() or not self.running(),
                   timeout_s=timeout_s, interval_s=0.5)
        return self.collect_trip() or self._tripped()  # it may have written it as it ended

    def _tripped(self) -> dict[str, Any] | None:
        return next((e.details for e in reversed(self.events) if e.what == "tripped"), None)

    def collect_trip(self) -> dict[str, Any] | None:
        """The guardian's result.json, once: it took over (the lease lapsed, or the gateway
        stayed down too long while armed) and put the known-good back. Kept as a `tripped` event for
        the verdict."""
        result = self.result()
        if result is None or any(e.what == "tripped" and e.details.get("tripped_at") ==
                                 result.get("tripped_at") for e in self.events):
            return None
        self._event("tripped", **result)
        return result

    def close(self) -> None:
        """End of the run: nothing of the guard is left running."""
        if self.lost is not None and self.running():
            self.wait_trip()  # never end a guardian in the middle of its restore
        self.collect_trip()
        if self.known_good is not None and self.armed:
            self.disarm("the run ended")
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        if self.mode == "systemd" and self.unit:
            self.driver.systemctl("stop", self.unit, timeout=30)
        elif self.pid is not None and self.running():
            os.kill(self.pid, 15)

    def result(self) -> dict[str, Any] | None:
        return _read(self.folder / "result.json")

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join((self.folder / "guard.log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no guard log)"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload))
    os.chmod(tmp, 0o666)
    os.replace(tmp, path)


__all__ = ["Guard", "GuardEvent", "lapsed"]
