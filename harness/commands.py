"""The one place the harness runs other programs: a seam that tests and drivers share."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


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
            timeout=timeout, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return Completed(list(argv), 124, out, f"timed out after {timeout:g} s")
    except FileNotFoundError:
        return Completed(list(argv), 127, "", f"command not found: {argv[0]}")
    return Completed(list(argv), proc.returncode, proc.stdout, proc.stderr)
