"""Follow a gateway's own log while it works, and keep every signature match with its context.

The watcher tails a file from a given offset in a background thread (a context manager, so it
always stops). Each match records when the line was read, the line's own timestamp, the run it
belongs to (if the line names one), and the lines around it as evidence.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.signals.records import RecordReader
from harness.signals.signatures import (
    Signature,
    classify,
    line_timestamp,
    run_id,
    timestamp_seconds,
)

# A failing request logs several lines, not all naming its run (OpenClaw's "Profile ... timed
# out. Trying next account..." names none): a run-less line this close to one with a run id is
# that run's.
SAME_RUN_S = 2.0


@dataclass(frozen=True, slots=True)
class Match:
    seen: float  # unix time the watcher read the line
    line_no: int  # within the watched stream
    signature: str
    klass: str
    run_id: str | None
    line: str
    logged_at: str | None

    def as_dict(self) -> dict[str, object]:
        return {"seen": round(self.seen, 3), "line_no": self.line_no, "signature": self.signature,
                "class": self.klass, "run_id": self.run_id, "logged_at": self.logged_at,
                "line": self.line}


def run_keys(matches: list[Match], within_s: float = SAME_RUN_S) -> list[str]:
    """What makes two matches the same gateway run, for counting distinct runs: the run id a
    line names; else that of the nearest line naming one, logged within `within_s` of it (the
    same request's other lines); else the line itself, counted apart. So one failing request
    is never counted twice, and a run-less line far from any run still counts once."""
    def at(match: Match) -> float:
        return timestamp_seconds(match.logged_at) or match.seen

    named = sorted((at(m), m.run_id) for m in matches if m.run_id)
    times = [t for t, _ in named]
    keys = []
    for match in matches:
        if match.run_id:
            keys.append(match.run_id)
            continue
        t = at(match)
        i = bisect.bisect_left(times, t)
        near = [named[j] for j in (i - 1, i) if 0 <= j < len(named)]
        best = min(near, key=lambda n: abs(n[0] - t), default=None)
        keys.append(best[1] if best and abs(best[0] - t) <= within_s
                    else f"line-{match.line_no}")
    return keys


# What a watcher keeps of the lines it read: the newest TAIL_LINES (a person's look at the end,
# and a tool waiting for a line), and the CONTEXT_LINES either side of every signature match
# (the evidence a decision shows). A soak of a night keeps no more than that.
TAIL_LINES = 1000
CONTEXT_LINES = 3


class Following:
    """What every log source shares: a polling thread (a context manager, so it always stops),
    the count of lines read, the newest of them, their signature matches, and the lines around
    each match as evidence. A source implements `poll()` and sets up `_following()` in its own
    initialiser; it needs `signatures`, `lines`, `matches` and `poll_s`."""

    signatures: tuple[Signature, ...]
    lines: list[str]  # the newest lines read (at most 2 x TAIL_LINES)
    matches: list[Match]
    poll_s: float
    thread_name = "logwatch"
    join_s = 5.0
    records: RecordReader | None = None  # the kind's way of reading lines (None: as they are)

    def _following(self) -> None:
        self._lock = threading.RLock()  # guards what poll() adds and readers read
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.line_count = 0  # lines read in all; `lines` holds the newest of them
        self._first_kept = 1  # the line number of lines[0]
        self._context: dict[int, str] = {}  # line number -> line, near a match
        self._context_until = 0  # the lines up to this number follow a match

    def poll(self) -> object:
        raise NotImplementedError

    def __enter__(self):  # noqa: ANN204 - the subclass
        self._thread = threading.Thread(target=self._follow, name=self.thread_name,
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.join_s)
        self.poll()  # whatever was logged up to the stop is part of the watch
        with self._lock:
            self._flush_records()

    def _follow(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll()

    def _take(self, line: str, now: float, logged: str | None = None) -> None:
        """One line read (the lock held): through the kind's record reader, if it has one
        (a record is kept when the next one starts, or when the log goes quiet)."""
        if self.records is None:
            self._keep(line, now, logged)
            return
        for text, stamp, arrived in self.records.feed(line, now):
            self._keep(text, arrived, stamp or logged)

    def _flush_records(self) -> None:
        if self.records is not None:
            for text, stamp, arrived in self.records.flush():
                self._keep(text, arrived, stamp)

    def _keep(self, line: str, now: float, logged: str | None = None) -> None:
        """One record (the lock held): keep it among the newest, and its match if it has
        one, with the lines before it; the lines after a match are kept as they come."""
        self.line_count += 1
        number = self.line_count
        self.lines.append(line)
        if len(self.lines) >= 2 * TAIL_LINES:
            drop = len(self.lines) - TAIL_LINES
            del self.lines[:drop]
            self._first_kept += drop
        if number <= self._context_until:
            self._context[number] = line
        signature = classify(line, self.signatures)
        if signature is not None:
            self.matches.append(Match(now, number, signature.name, signature.klass,
                                      run_id(line), line, line_timestamp(line) or logged))
            for n in range(max(self._first_kept, number - CONTEXT_LINES), number + 1):
                self._context[n] = self.lines[n - self._first_kept]
            self._context_until = number + CONTEXT_LINES

    def _line(self, number: int) -> str | None:
        if number >= self._first_kept:
            return self.lines[number - self._first_kept]
        return self._context.get(number)

    def snapshot(self) -> list[Match]:
        with self._lock:
            return list(self.matches)

    def count(self) -> int:
        return len(self.matches)

    def since(self, count: int) -> list[Match]:
        """The matches after the first `count`: a reader that keeps up pays for what is new.
        A match read at or before a time taken before this call is in it (its time is taken
        under the lock that adds it)."""
        with self._lock:
            return self.matches[count:]

    def context(self, match: Match, before: int = CONTEXT_LINES,
                after: int = CONTEXT_LINES) -> list[str]:
        """The lines around a match, numbered, as evidence a person can read (up to
        CONTEXT_LINES either side once they have left the tail)."""
        with self._lock:
            start = max(1, match.line_no - before)
            stop = min(self.line_count, match.line_no + after)
            lines = ((n, self._line(n)) for n in range(start, stop + 1))
            return [f"{n:>6}  {line}" for n, line in lines if line is not None]


@dataclass
class LogWatcher(Following):
    path: Path
    signatures: tuple[Signature, ...]
    offset: int = 0
    poll_s: float = 0.2
    lines: list[str] = field(default_factory=list)
    matches: list[Match] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._following()
        self._partial = b""

    @classmethod
    def from_end(cls, path: Path, signatures: tuple[Signature, ...]) -> LogWatcher:
        """Watch only what is written from now on."""
        offset = path.stat().st_size if path.exists() else 0
        return cls(path, signatures, offset)

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return
        if not chunk:
            with self._lock:  # quiet for a poll: a record's traceback has all come
                self._flush_records()
            return
        with self._lock:
            now = time.time()
            self.offset += len(chunk)
            data = self._partial + chunk
            *complete, self._partial = data.split(b"\n")
            for raw in complete:
                self._take(raw.decode("utf-8", errors="replace").rstrip("\r"), now)
