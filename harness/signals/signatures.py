"""Log signatures: the lines in a gateway's own log that mean something went wrong.

Each signature has a name and a class (timeout, failover, fallback, error, warning); policies
count classes or names. A line matches at most one signature (the first in catalogue order), so
one log line is never counted twice. Catalogues are per target kind, each a data file
of the kind (harness.targets.kinds: `signatures.toml`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from harness.common.patterns import Pattern

CLASSES = ("timeout", "failover", "fallback", "error", "warning")

_RUN_ID = re.compile(r"\brunId=([\w:.-]+)")
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))")
# journald's (and syslog's) own short formats: `Apr 02 10:14:03 host node[1234]: ...`, with
# microseconds under `-o short-precise`; no year and no zone: the host's local time
_SYSLOG = re.compile(r"^([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)(\.\d+)? \S+ ")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Signature:
    name: str
    klass: str
    pattern: Pattern  # RE2: a match is linear in the line, so no line can hang the watcher

    def matches(self, line: str) -> bool:
        return self.pattern.search(line) is not None


def catalogue(kind: str) -> tuple[Signature, ...]:
    """The signature catalogue of a gateway kind: a data file in the kind's folder
    (harness.targets.kinds). KeyError for a kind nobody registered."""
    from harness.targets.kinds import kind as find_kind

    return find_kind(kind).signatures


def __getattr__(name: str) -> tuple[Signature, ...]:
    """`OPENCLAW`: the built-in OpenClaw catalogue, read from its kind's folder."""
    if name == "OPENCLAW":
        return catalogue("openclaw")
    raise AttributeError(name)


def classify(line: str, signatures: tuple[Signature, ...]) -> Signature | None:
    for signature in signatures:
        if signature.matches(line):
            return signature
    return None


def run_id(line: str) -> str | None:
    match = _RUN_ID.search(line)
    return match.group(1) if match else None


def line_timestamp(line: str, now: datetime | None = None) -> str | None:
    """The line's own timestamp as ISO 8601: a leading ISO one, or journald's short format
    (given the year that does not put it in the future, in the host's zone)."""
    match = _TIMESTAMP.match(line)
    if match:
        return match.group(1)
    found = _SYSLOG.match(line)
    if found is None or found[1] not in _MONTHS:
        return None
    now = now or datetime.now().astimezone()
    month, day, hour, minute, second = _MONTHS.index(found[1]) + 1, *map(int, found.groups()[1:5])
    micro = int((found[6] or ".0")[1:].ljust(6, "0")[:6])
    try:
        stamp = now.replace(month=month, day=day, hour=hour, minute=minute, second=second,
                            microsecond=micro)
        if stamp - now > timedelta(days=1):  # December's lines read in January
            stamp = stamp.replace(year=now.year - 1)
    except ValueError:  # Feb 30, or Feb 29 in another year
        return None
    return stamp.isoformat(timespec="microseconds" if found[6] else "seconds")


def timestamp_seconds(stamp: str | None) -> float | None:
    """An ISO 8601 timestamp (as line_timestamp gives it) in unix seconds, or None."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
