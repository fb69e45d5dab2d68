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


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (which may hold spaces and ')')."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """Whether a process with this PID runs: not gone, and not a zombie waiting for its parent
    to reap it (a dead child we started still has a PID until then)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22): a PID
    with another start time is another process."""
    fields = _stat(pid)
    return int(fields[19]) if fields is not None else None


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
