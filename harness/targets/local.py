"""Local process driver: a gateway on this host's loopback, started and stopped by PID.

The deployment folder holds everything of one gateway instance, never the user's real home:
    current -> <versioned prefix>   the active install, switched atomically
    state/                          the gateway's state dir (config, sessions, credentials)
    home/                           HOME for the gateway process
    logs/gateway.log                the gateway's own stdout and stderr, appended across starts
    gateway.pid
The process is started in its own session, so it is detached from the harness's terminal and
the whole group can be signalled by the PID recorded at start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from harness.common import commands
from harness.common.errors import InfrastructureError
from harness.signals.logwatch import LogWatcher
from harness.signals.signatures import Signature
from harness.targets.driver import Driver
from harness.targets.packages import bin_path
from harness.targets.profile import TargetProfile
from harness.targets.runtime import Installation, NodeRuntime


class LocalProcessDriver(Driver):
    name = "local"
    ends_with_the_run = True

    def __init__(self, deployment: Path, bin_name: str, start_argv: list[str],
                 env: dict[str, str], node: NodeRuntime | None, ecosystem: str = "npm") -> None:
        self.deployment = deployment
        self.bin_name = bin_name
        self.start_argv = start_argv
        self.env = env
        self.node = node
        self.ecosystem = ecosystem
        self.current = deployment / "current"
        self.log_path = deployment / "logs" / "gateway.log"
        self.pid_path = deployment / "gateway.pid"
        self._proc: subprocess.Popen[bytes] | None = None
        for sub in ("state", "home", "logs"):
            (deployment / sub).mkdir(parents=True, exist_ok=True)

    @classmethod
    def for_profile(cls, profile: TargetProfile, deployment: Path, argv: list[str],
                    env: dict[str, str], node: NodeRuntime | None) -> LocalProcessDriver:
        return cls(deployment, profile.package.bin, argv, env, node, profile.package.ecosystem)

    # -- which install is active --------------------------------------------------------
    def active_prefix(self) -> Path | None:
        return self.current.resolve() if self.current.is_symlink() else None

    def activate(self, install: Installation) -> None:
        """Point `current` at an install with one rename, so there is never a half switch."""
        staging = self.deployment / f".current-{os.getpid()}"
        if staging.is_symlink() or staging.exists():
            staging.unlink()
        staging.symlink_to(install.prefix)
        os.replace(staging, self.current)
        if install.node is not None:  # the next start runs on the Node.js this version asks for
            self.node = install.node

    # -- process lifecycle --------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        if self._proc is not None:
            return self._proc.pid
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def is_running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        pid = self.pid
        return pid is not None and commands.alive(pid)

    def start(self) -> int:
        if self.is_running():
            raise InfrastructureError(f"gateway already running as PID {self.pid}")
        if self.active_prefix() is None:
            raise InfrastructureError(f"{self.deployment}: no active install to start")
        argv = [str(self.executable()), *self.start_argv]
        env = {**os.environ, **self.env, "PATH": self.path_env()}
        with open(self.log_path, "ab") as log:
            log.write(f"--- harness: starting {' '.join(argv[1:])} at {time.time():.3f}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                argv, env=env, cwd=self.deployment, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.pid_path.write_text(str(self._proc.pid))
        return self._proc.pid

    def run_cli(self, args: list[str], timeout_s: float) -> commands.Completed:
        """Run the active install's own CLI with the gateway's environment (its state dir)."""
        return commands.run([str(self.executable()), *args], env={**self.env,
                            "PATH": self.path_env()}, cwd=self.deployment, timeout=timeout_s)

    def executable(self) -> Path:
        """The active install's binary, through `current` (a rollback switches it)."""
        return bin_path(self.current, self.ecosystem, self.bin_name)

    def path_env(self) -> str:
        return self.node.path_env() if self.node is not None else os.environ.get("PATH", "")

    def exit_code(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def stop(self, timeout_s: float) -> bool:
        """Stop the gateway's process group by its PID: SIGTERM, then SIGKILL. True if it was up."""
        pid = self.pid
        if pid is None or not self.is_running():
            self._forget()
            return False
        self._signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.is_running():
            time.sleep(0.1)
        if self.is_running():
            self._signal_group(pid, signal.SIGKILL)
            if self._proc is not None:
                self._proc.wait(timeout=10)
        self._forget()
        return True

    def _signal_group(self, pid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig)  # the group we created at start: pgid == pid
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, sig)

    # -- its log, its port, its guard -----------------------------------------------------
    def console_watcher(self, signatures: tuple[Signature, ...]) -> LogWatcher:
        return LogWatcher.from_end(self.log_path, signatures)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def port_owner(self, port: int) -> str | None:
        """Readiness is that of the PID this driver started, never of whoever answers."""
        from harness.procedure.guardian import holds_port, port_holders

        if self.pid is not None and holds_port(self.pid, port) is False:
            return f"port {port} is held by PID {sorted(port_holders(port))}, not by {self.pid}"
        return None

    def guard_terms(self, installation: Installation, node: NodeRuntime | None
                    ) -> dict[str, Any]:
        """The guard starts the known-good itself, as this driver would (a double-forked
        daemon: harness.procedure.guard)."""
        runs_on = installation.node or node
        return {"mode": "local", "local_spec": {
            "argv": [str(self.executable()), *self.start_argv],
            "env": {**os.environ, **self.env,
                    "PATH": runs_on.path_env() if runs_on else self.path_env()},
            "cwd": str(self.deployment), "log": str(self.log_path),
            "pid_file": str(self.pid_path)}}

    def forget_child(self) -> None:
        """The gateway this driver started is no longer the one to follow (the guard took over
        and started its own, whose PID is in the PID file now): reap ours, keep the file."""
        if self._proc is not None and self._proc.poll() is None:
            return  # still ours and running: the guard has not replaced it
        self._proc = None

    def _forget(self) -> None:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        self._proc = None
        self.pid_path.unlink(missing_ok=True)
