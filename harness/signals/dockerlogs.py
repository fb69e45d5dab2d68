"""Follow a container's log as `docker logs` gives it: LogWatcher's twin for a gateway that
Docker runs (the same surface as JournalWatcher: context manager, poll(), snapshot(), context(),
`lines`, `matches`, `errors`, newest_timestamp()).

Each poll runs `docker logs --timestamps --since T NAME 2>&1` through a command runner (on
this host or where `target.host` says), so stdout and stderr are both read, as the container
writes them; every line carries the engine's RFC 3339 timestamp, which dates it and moves `T`
on (`cursor`). A line the previous poll already read (same timestamp and text, at the
boundary) is not read twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from harness.signals.logwatch import Following, Match
from harness.signals.signatures import Signature
from harness.targets.runner import CommandRunner

LOGS = 'exec "$1" logs --timestamps --since "$2" "$3" 2>&1'


@dataclass
class DockerLogsWatcher(Following):
    runner: CommandRunner
    container: str
    signatures: tuple[Signature, ...]
    cursor: str = ""  # RFC 3339 (or unix seconds): read lines logged from then on
    docker: str = "docker"
    poll_s: float = 0.5
    lines: list[str] = field(default_factory=list)
    matches: list[Match] = field(default_factory=list)
    newest: float | None = None  # unix time of the newest line read
    errors: list[str] = field(default_factory=list)

    thread_name = "docker-logs"
    join_s = 30.0

    def __post_init__(self) -> None:
        self._following()
        self._polling = threading.Lock()
        self._boundary: set[str] = set()  # the lines read at the newest timestamp, `cursor`

    @classmethod
    def from_now(cls, runner: CommandRunner, container: str, signatures: tuple[Signature, ...],
                 *, docker: str = "docker", poll_s: float = 0.5) -> DockerLogsWatcher:
        return cls(runner, container, signatures, cursor=f"{time.time():.6f}", docker=docker,
                   poll_s=poll_s)

    @property
    def origin(self) -> dict[str, str]:
        return {"container": self.container}

    def poll(self) -> int:
        with self._polling:
            done = self.runner.run(["sh", "-c", LOGS, "sh", self.docker, self.cursor,
                                    self.container], timeout=30)
            if done.returncode != 0:
                with self._lock:
                    self.errors.append(f"exit {done.returncode}: {done.tail(2) or 'no output'}")
                return 0
            return self._read(done.stdout.splitlines())

    def _read(self, raw_lines: Sequence[str]) -> int:
        read = 0
        with self._lock:
            now = time.time()
            for raw in raw_lines:
                stamp, _, line = raw.partition(" ")
                at = rfc3339(stamp)
                if at is None:  # not a line of the container's (the CLI's own word)
                    continue
                if stamp == self.cursor and raw in self._boundary:
                    continue
                if stamp != self.cursor:
                    self.cursor, self._boundary = stamp, set()
                self._boundary.add(raw)
                self.newest = at
                read += 1
                self._take(line.rstrip("\r"), now, stamp)
            if not read:  # quiet for a poll: a folded record (a traceback) is whole
                self._flush_records()
        return read

    def newest_timestamp(self) -> float | None:
        with self._lock:
            return self.newest


def rfc3339(stamp: str) -> float | None:
    """`2026-12-01T03:40:01.123456789Z` as unix seconds (Python reads microseconds)."""
    if not stamp or not stamp[:4].isdigit() or "T" not in stamp:
        return None
    text = stamp.rstrip("Z")
    head, dot, fraction = text.partition(".")
    zone = ""
    for sign in ("+", "-"):
        if sign in fraction:
            fraction, _, rest = fraction.partition(sign)
            zone = sign + rest
    try:
        parsed = datetime.fromisoformat(f"{head}{dot}{fraction[:6]}{zone or '+00:00'}"
                                        if dot else f"{head}{zone or '+00:00'}")
    except ValueError:
        return None
    return parsed.timestamp()
