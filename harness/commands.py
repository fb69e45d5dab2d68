"""The one place the harness runs other programs: a seam that tests and drivers share."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None]:
    """A preexec_fn: the child gets `sig` when the process that started it dies, however it
    dies (SIGKILL included), so nothing the harness starts outlives it unless it is meant to
    (the guard, the gateway a guard watches over: those are not started through this)."""
    parent = os.getpid()

    def in_the_child() -> None:
        if _LIBC is not None:
            _LIBC.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took: go now
            os.kill(os.getpid(), sig)

    return in_the_child


def alive(pid: int) -> bool:
    """Whether a process with this PID exists (one we may not signal counts: it exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def tail(self, lines: int = 5) -> str:
        text = (self.stderr or self.stdout).strip().splitlines()
        return " | ".join(line.strip() for line in text[-lines:])


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 600.0) -> Completed:
    """Run a command to completion, capturing output; never raises on a non-zero exit."""
    full_env = {**os.environ, **(env or {})}
    try:
        proc = subprocess.run(
            list(argv), env=full_env, cwd=cwd, capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent(),
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return Completed(list(argv), 124, out, f"timed out after {timeout:g} s")
    except FileNotFoundError:
        return Completed(list(argv), 127, "", f"command not found: {argv[0]}")
    return Completed(list(argv), proc.returncode, proc.stdout, proc.stderr)
