"""The model lab as a context manager: a subprocess on loopback that cannot outlive its `with`.

    with ModelLab(time_scale=0.01) as lab:
        ...  # point the gateway at lab.base_url
        lab.stats()["models"]["slow-reasoner"]["client_aborted"]
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import harness
from harness.common import http
from harness.common.commands import die_with_parent
from harness.common.errors import InfrastructureError

READY_PREFIX = b"modellab listening on "
# The directory holding the `harness` package: the child imports the very code the parent runs,
# whatever the parent's cwd and however the package got onto its sys.path.
_PACKAGE_ROOT = str(Path(harness.__file__).resolve().parent.parent)


class ModelLab:
    def __init__(self, models_file: Path | None = None, *, time_scale: float = 1.0,
                 log_path: Path | None = None, startup_timeout_s: float = 15.0,
                 adoptable_by: Path | None = None) -> None:
        self.models_file = models_file
        # a run's guard folder: should the harness die, the lab serves on while that guard
        # runs (it proves the known-good with a real reply, then stops the lab)
        self.adoptable_by = adoptable_by
        self.time_scale = time_scale
        self.log_path = log_path
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._url: str | None = None

    @property
    def pid(self) -> int | None:
        """PID of the lab process (kept after exit, so a caller can check it is gone)."""
        return self._pid

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        if self._url is None:
            raise RuntimeError("the model lab is not running (use it as a context manager)")
        return self._url

    @property
    def base_url(self) -> str:
        """The OpenAI base URL a gateway's provider config takes: http://127.0.0.1:PORT/v1"""
        return f"{self.url}/v1"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def __enter__(self) -> ModelLab:
        if self._proc is not None:
            raise RuntimeError("this model lab is already running")
        argv = [sys.executable, "-m", "harness.modellab", "--host", "127.0.0.1", "--port", "0",
                "--time-scale", repr(float(self.time_scale))]
        if self.models_file is not None:
            argv += ["--models", str(Path(self.models_file).resolve())]
        if self.adoptable_by is not None:
            argv += ["--adoptable-by", str(Path(self.adoptable_by).resolve())]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH"))
                                            if p)
        log: IO[bytes] | int = subprocess.DEVNULL
        log_offset = 0
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(self.log_path, "ab")  # noqa: SIM115 (closed once the child has it)
            log_offset = log.tell()
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=log, env=env, start_new_session=True,
                                          # even after SIGKILL; SIGHUP when a guard may adopt it
                                          preexec_fn=die_with_parent(
                                              signal.SIGHUP if self.adoptable_by
                                              else signal.SIGTERM))
        except OSError as exc:
            raise InfrastructureError(f"cannot start the model lab: {exc}") from None
        finally:
            if not isinstance(log, int):
                log.close()
        self._pid = self._proc.pid
        try:
            self._url = self._wait_for_listening(log_offset)
        except BaseException:  # including KeyboardInterrupt: never leave the child behind
            self._stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop()

    def _wait_for_listening(self, log_offset: int) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + self.startup_timeout_s
        buffer = b""
        # Raw reads on the fd: select() and a buffered readline() disagree about what is left.
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise InfrastructureError(
                    f"model lab not listening within {self.startup_timeout_s:g} s")
            ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
            if not ready:
                continue
            data = os.read(fd, 4096)
            if not data:  # stdout closed: the child is exiting
                break
            buffer += data
        line = buffer.split(b"\n", 1)[0]
        if line.startswith(READY_PREFIX):
            return line[len(READY_PREFIX):].decode().strip()
        try:
            code: int | None = self._proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        reason = self._log_tail(log_offset) or line.decode(errors="replace").strip()
        raise InfrastructureError(f"model lab did not start (exit code {code})"
                                  + (f": {reason}" if reason else ""))

    def _log_tail(self, offset: int) -> str:
        """The child's last stderr line, which says why it stopped (only with a log_path)."""
        if self.log_path is None:
            return ""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                lines = log.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1].strip() if lines else ""

    def _stop(self) -> None:
        proc, self._proc, self._url = self._proc, None, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                # send_signal/kill check returncode first: no signal to a reaped, reused PID.
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        finally:
            if proc.poll() is None:  # interrupted while waiting: still never leak it
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Records of the calls after id `since` (all by default), oldest first."""
        with http.sync_client(timeout=10, trust_env=False) as client:  # loopback: never a proxy
            response = client.get(f"{self.url}/lab/requests", params={"since": since})
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        """{"models": {id: {requests, in_flight, completed, client_aborted, faults}},
        "requests", "in_flight", "peak_in_flight"}"""
        with http.sync_client(timeout=10, trust_env=False) as client:
            response = client.get(f"{self.url}/lab/stats")
        response.raise_for_status()
        return response.json()
