"""Follow a systemd unit's journal, and tell whether a file log is stale.

JournalWatcher is LogWatcher's twin for a gateway that systemd runs: the same public surface
(context manager, poll(), snapshot(), context(match), `lines`, `matches`) and the same Match
records, so a soak judge can take either. It polls
    journalctl --user -u UNIT -o json --after-cursor CURSOR
through a command runner (so it works on the host, over ssh, or in a container) in a background
thread; each entry's MESSAGE (a string, or a list of byte values when it is not UTF-8) is split
into lines, and __REALTIME_TIMESTAMP (microseconds) dates each line.

file_log_staleness() answers the incident's warning: OpenClaw's file log under /tmp/openclaw/
can be far behind its console (the journal). Given the soak's start, a file whose newest entry
is older is stale; given the journal's newest timestamp, a file lagging it is stale too.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from harness.common import waits
from harness.signals.logwatch import Following, Match
from harness.signals.signatures import Signature, line_timestamp
from harness.targets.runner import CommandRunner, systemd_user_env


@dataclass
class JournalWatcher(Following):
    runner: CommandRunner
    unit: str
    signatures: tuple[Signature, ...]
    user: str | None = None  # a user unit's owner; None with uid None: the system journal
    uid: int | None = None
    cursor: str | None = None  # read entries after this one
    since_us: int | None = None  # or, with no cursor, entries from this realtime on
    poll_s: float = 1.0
    lines: list[str] = field(default_factory=list)
    matches: list[Match] = field(default_factory=list)
    oldest: float | None = None  # the journal realtime (unix s) of the first line read
    newest: float | None = None  # and of the last one
    errors: list[str] = field(default_factory=list)

    thread_name = "journal"
    join_s = 30.0  # a journalctl through a container may take a while to return

    def __post_init__(self) -> None:
        self._following()  # its lock also guards `oldest` and `newest`
        self._polling = threading.Lock()  # one journalctl at a time: the cursor only moves on

    @classmethod
    def from_now(cls, runner: CommandRunner, unit: str, signatures: tuple[Signature, ...], *,
                 user: str | None = None, uid: int | None = None,
                 poll_s: float = 1.0) -> JournalWatcher:
        """Watch only what is logged from now on: after the journal's newest entry."""
        watcher = cls(runner, unit, signatures, user=user, uid=uid, poll_s=poll_s)
        done = watcher._journalctl(["-n", "0", "--show-cursor"])
        cursor = _cursor_line(done.stdout)
        if cursor:
            watcher.cursor = cursor
        else:  # an empty journal has no cursor yet
            watcher.since_us = int(time.time() * 1_000_000)
        return watcher

    def poll(self) -> int:
        """Read what is new; returns the number of new entries."""
        with self._polling:
            # No --show-cursor here: every JSON entry carries its __CURSOR, and with nothing new
            # after a cursor that is not the unit's own entry (the newest entry of the journal
            # when the watch began, say a `logger` line), journalctl 252 cannot name a cursor and
            # exits 1 without a word; a good poll that read nothing looked like a failure.
            args = ["-u", self.unit, "-o", "json"]
            if self.cursor:
                args += ["--after-cursor", self.cursor]
            elif self.since_us is not None:
                args += ["--since", f"@{self.since_us / 1_000_000:.6f}"]
            done = self._journalctl(args)  # readers are not blocked meanwhile
            if done.returncode != 0:
                with self._lock:
                    self.errors.append(f"exit {done.returncode}: {done.tail(2) or 'no output'}")
                return 0
            entries = 0
            with self._lock:
                now = time.time()  # under the lock: a reader's earlier time sees this line
                for raw in done.stdout.splitlines():
                    if not raw.startswith("{"):
                        continue
                    try:
                        entry = json.loads(raw)
                    except json.JSONDecodeError:
                        continue
                    entries += 1
                    self.cursor = entry.get("__CURSOR", self.cursor)
                    stamp = _realtime(entry)
                    for line in message_text(entry.get("MESSAGE")).splitlines() or [""]:
                        self._add(line, stamp, now)
                if not entries:  # quiet for a poll: a folded record (a traceback) is whole
                    self._flush_records()
            return entries

    def _add(self, line: str, stamp: float | None, now: float) -> None:
        self.newest = stamp if stamp is not None else now
        if self.oldest is None:
            self.oldest = self.newest
        self._take(line, now, _iso(stamp) if stamp is not None else None)

    # -- beyond LogWatcher -------------------------------------------------------------
    @property
    def origin(self) -> dict[str, str]:
        return {"unit": self.unit}

    def newest_timestamp(self) -> float | None:
        with self._lock:
            return self.newest

    def wait_for(self, needle: str, timeout_s: float) -> str | None:
        """Poll until a line containing `needle` was read; the line, or None on timeout."""
        seen = 0

        def read() -> str | None:
            nonlocal seen
            with self._lock:
                new = self.line_count - seen  # read since the last look (the tail holds them)
                for line in self.lines[len(self.lines) - min(new, len(self.lines)):]:
                    if needle in line:
                        return line
                seen = self.line_count
            if self._thread is None or not self._thread.is_alive():
                self.poll()  # nobody follows the journal: read what came since
            return None

        return waits.poll(read, timeout_s=timeout_s, interval_s=min(self.poll_s, 0.5))

    def _journalctl(self, args: Sequence[str]):  # noqa: ANN202
        argv = ["journalctl", "--no-pager"]
        env = None
        if self.uid is not None:
            argv.append("--user")
            env = systemd_user_env(self.uid)
        return self.runner.run([*argv, *args], user=self.user, env=env, timeout=30)


def message_text(message: object) -> str:
    """journalctl -o json gives MESSAGE as a string, as byte values if not UTF-8, or null."""
    if message is None:
        return ""
    if isinstance(message, str):
        return message
    if isinstance(message, list) and all(isinstance(b, int) for b in message):
        return bytes(message).decode("utf-8", errors="replace")
    return str(message)


def _realtime(entry: dict[str, object]) -> float | None:
    try:
        return int(str(entry["__REALTIME_TIMESTAMP"])) / 1_000_000
    except (KeyError, ValueError):
        return None


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds")


def _cursor_line(text: str) -> str | None:
    for line in reversed(text.splitlines()):
        if line.startswith("-- cursor: "):
            return line[len("-- cursor: "):].strip()
    return None


# -- stale file logs ------------------------------------------------------------------------
@dataclass(frozen=True)
class Staleness:
    stale: bool
    reason: str  # one line, for a person
    newest: float | None  # the file's newest entry, unix seconds


def file_log_staleness(path: str | Path, soak_started: float, *,
                       journal_newest: float | None = None, max_lag_s: float = 30.0,
                       runner: CommandRunner | None = None, tail_lines: int = 200) -> Staleness:
    """Is the file log at `path` (on the target, through `runner`; else on this host) stale?

    Its newest entry is the newest timestamp among its last lines (a JSON object's `time` or
    `_meta.date`, or a leading ISO timestamp), else the file's modification time.
    """
    text, mtime = _read_tail(path, runner, tail_lines)
    if text is None:
        return Staleness(True, f"{path}: no such file: the gateway logs elsewhere", None)
    newest = max((t for t in map(entry_time, text.splitlines()) if t is not None), default=None)
    basis = "newest entry"
    if newest is None:
        newest, basis = mtime, "last modified"
    if newest is None:
        return Staleness(True, f"{path}: no timestamped entry and no modification time", None)
    if newest < soak_started:
        return Staleness(True, f"{path}: {basis} {_iso(newest)} is {soak_started - newest:.0f} s "
                               f"older than the soak start {_iso(soak_started)}", newest)
    if journal_newest is not None and journal_newest - newest > max_lag_s:
        return Staleness(True, f"{path}: {basis} {_iso(newest)} lags the journal's newest "
                               f"{_iso(journal_newest)} by {journal_newest - newest:.0f} s "
                               f"(more than {max_lag_s:g} s)", newest)
    return Staleness(False, f"{path}: {basis} {_iso(newest)} is within the soak", newest)


def entry_time(line: str) -> float | None:
    line = line.strip()
    value: object = None
    if line.startswith("{"):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            meta = obj.get("_meta")
            value = obj.get("time") or (meta.get("date") if isinstance(meta, dict) else None)
    else:
        value = line_timestamp(line)
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _read_tail(path: str | Path, runner: CommandRunner | None,
               lines: int) -> tuple[str | None, float | None]:
    if runner is None:
        p = Path(path)
        try:
            with open(p, "rb") as handle:
                handle.seek(max(0, p.stat().st_size - 512 * 1024))
                data = handle.read().decode("utf-8", errors="replace")
            return "\n".join(data.splitlines()[-lines:]), p.stat().st_mtime
        except OSError:
            return None, None
    quoted = "'" + str(path).replace("'", "'\\''") + "'"
    done = runner.run(["sh", "-c", f"stat -c %Y {quoted} && tail -n {lines} {quoted}"],
                      timeout=30)
    if done.returncode != 0:
        return None, None
    first, _, rest = done.stdout.partition("\n")
    try:
        return rest, float(first)
    except ValueError:
        return rest, None
