"""A gateway's log lines as records: colour codes stripped, continuation lines (a Python
traceback, say) folded into the line that starts them, and a clock-only timestamp given the
date it arrived on. How a kind's log reads is data (harness.targets.kinds: `[log]`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CLOCK = re.compile(r"^(\d\d):(\d\d):(\d\d)(?:[.,](\d{1,6}))?\b")
FOLDED_MAX = 64 * 1024  # a runaway record is cut, never held without bound


def strip_ansi(line: str) -> str:
    return ANSI.sub("", line)


def clock_stamp(line: str, arrived: float) -> str | None:
    """`HH:MM:SS` at the start of `line` as ISO 8601 in the host's zone, on the day the line
    arrived (the day before when that would put it more than an hour after its arrival: a
    line logged just before midnight and read just after)."""
    found = _CLOCK.match(line)
    if found is None:
        return None
    now = datetime.fromtimestamp(arrived).astimezone()
    hour, minute, second = int(found[1]), int(found[2]), int(found[3])
    if hour > 23 or minute > 59 or second > 59:
        return None
    micro = int((found[4] or "0").ljust(6, "0"))
    stamp = now.replace(hour=hour, minute=minute, second=second, microsecond=micro)
    if stamp - now > timedelta(hours=1):
        stamp -= timedelta(days=1)
    return stamp.isoformat(timespec="microseconds" if found[4] else "seconds")


@dataclass
class RecordReader:
    """Feed lines in, get whole records out: (text, its own timestamp or None, arrival)."""

    record_start: re.Pattern[str] | None = None  # None: every line is a record
    strip: bool = False
    clock: str = "iso"
    _pending: list[str] = field(default_factory=list)
    _arrived: float = 0.0

    def feed(self, line: str, arrived: float) -> list[tuple[str, str | None, float]]:
        if self.strip:
            line = strip_ansi(line)
        if self.record_start is None:
            return [self._record([line], arrived)]
        if self.record_start.search(line) is None and self._pending:
            if sum(map(len, self._pending)) < FOLDED_MAX:
                self._pending.append(line)
            return []
        done = self.flush()
        self._pending, self._arrived = [line], arrived
        return done

    def flush(self) -> list[tuple[str, str | None, float]]:
        """The record held open for its continuation lines, when no more are coming."""
        if not self._pending:
            return []
        record, self._pending = self._record(self._pending, self._arrived), []
        return [record]

    def _record(self, lines: list[str], arrived: float) -> tuple[str, str | None, float]:
        text = " \u21b5 ".join(line.rstrip() for line in lines if line.strip()) or lines[0]
        stamp = clock_stamp(text, arrived) if self.clock == "hh:mm:ss" else None
        return text, stamp, arrived
