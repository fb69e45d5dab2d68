"""The model lab as a context manager: a subprocess on loopback that cannot outlive its `with`."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from harness.errors import InfrastructureError

READY_PREFIX = "modellab listening on "


class ModelLab:
    def __init__(self, models_file: Path | None = None, *, time_scale: float = 1.0,
                 log_path: Path | None = None, startup_timeout_s: float = 15.0) -> None:
        self.models_file = models_file
        self.time_scale = time_scale
        self.log_path = log_path
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def __enter__(self) -> ModelLab:
        argv = [sys.executable, "-m", "harness.modellab", "--host", "127.0.0.1", "--port", "0",
                "--time-scale", str(self.time_scale)]
        if self.models_file is not None:
            argv += ["--models", str(self.models_file)]
        stderr: Any = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            stderr = open(self.log_path, "a")  # noqa: SIM115 (closed once the child has it)
        try:
            self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            if stderr is not subprocess.DEVNULL:
                stderr.close()
        try:
            self.url = self._wait_for_listening()
        except BaseException:
            self._stop()
            raise
        return self

    def _wait_for_listening(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._proc.stdout], [], [], 0.2)
            if ready:
                line = self._proc.stdout.readline()
                if line.startswith(READY_PREFIX):
                    return line[len(READY_PREFIX):].strip()
                if not line and self._proc.poll() is not None:
                    break
        code = self._proc.poll()
        raise InfrastructureError(f"model lab did not start (exit code {code})" if code is not None
                                  else f"model lab not listening within {self.startup_timeout_s} s")

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()

    def requests(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.url}/lab/requests", timeout=10).json()

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/lab/stats", timeout=10).json()
