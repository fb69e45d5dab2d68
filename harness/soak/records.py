"""What a soak keeps of its requests, bounded: the file they go to as they end, and per path
the numbers its report and judge need.

A soak of an hour at 10 requests a second makes 36,000 requests; kept as objects they cost
about 1.3 KB each for the whole soak. With a record file, an iteration that ended is written
out at once, one JSON line per request (every field the Allure attachment and the charts
show, and the exact times and the iteration's own fields, so a judgement made from the file
is the one made from memory), and only what is asked of it later stays in memory: per path
the counts, every request's seconds and every iteration's start lag (8 bytes each: the exact
percentiles), the longest finished iteration, the first `KEPT_BAD` bad iterations (the
evidence of a failed path), the last `KEPT_LAST` of each path, and every iteration cut
(in flight at the end: a decision's casualties, a hang).
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, Any

KEPT_BAD = 20  # the first bad iterations of each path stay in memory: a failed path's evidence
KEPT_LAST = 50  # and the last ones of each path (a smoke or a watch is kept whole)


@dataclass
class Tally:
    """One path's numbers, kept as its iterations start, its requests end and it ends."""

    started: int = 0
    good: int = 0
    bad: int = 0
    bad_requests: int = 0
    seconds: array = field(default_factory=lambda: array("d"))  # every request's, in order
    lags: array = field(default_factory=lambda: array("d"))  # every open-model start lag
    send_lags: array = field(default_factory=lambda: array("d"))  # and its first send's
    longest: float | None = None  # the longest finished iteration
    first_good_end: float | None = None  # the earliest end of a good request

    def request(self, seconds: float, ended: float, good: bool) -> None:
        self.seconds.append(seconds)
        if good:
            if self.first_good_end is None or ended < self.first_good_end:
                self.first_good_end = ended
        else:
            self.bad_requests += 1

    def ended(self, verdict: str, took: float) -> None:
        if verdict == "good":
            self.good += 1
        else:
            self.bad += 1
        self.longest = took if self.longest is None else max(self.longest, took)


class RequestFile:
    """A soak's requests as JSON lines, one per request, appended as each iteration ends (or,
    cut, when the run ends); read back in the order they were written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out: IO[str] | None = path.open("w")
        self.lines = 0

    def write(self, iteration: Any, seq: int) -> None:
        assert self._out is not None, f"{self.path} is closed"
        whole = {"seq": seq, "index": iteration.index, "started": iteration.started,
                 "ended": iteration.ended, "verdict": iteration.verdict,
                 "reason": iteration.reason, "lag_s": iteration.lag_s,
                 "due_at": iteration.due_at, "sent_at": iteration.sent_at,
                 "cut_by": iteration.cut_by, "overdue": iteration.overdue}
        for x in iteration.exchanges:
            o = x.outcome
            line = x.as_dict()
            line["iteration_of"] = whole
            line["exact"] = [o.started, o.first_byte, o.ended]
            self._out.write(json.dumps(line) + "\n")
            self.lines += 1
        if not iteration.exchanges:  # cut before any request ended: the iteration alone
            self._out.write(json.dumps({"scenario": iteration.scenario,
                                        "iteration_of": whole}) + "\n")

    def flush(self) -> None:
        if self._out is not None:
            self._out.flush()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def read(self) -> Iterator[dict[str, Any]]:
        """Every line written, in order (the file is flushed first). A thousand lines are
        parsed as one JSON array: per line, the parser's own overhead was most of the time."""
        self.flush()
        with self.path.open() as lines:
            while batch := list(islice(lines, 1000)):
                yield from json.loads("[" + ",".join(batch) + "]")

    def requests(self) -> Iterator[dict[str, Any]]:
        """Every request as `Exchange.as_dict` gives it."""
        for line in self.read():
            if "step" in line:
                line.pop("iteration_of")
                line.pop("exact")
                yield line
