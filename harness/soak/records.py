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
KEPT_CHARS = 160  # of a reply once its iteration ended (its excerpt): a night's soak keeps no
# whole replies
# an iteration's fields written only when set (the rest are on every iteration's first line)
ITERATION_OPTIONAL = ("lag_s", "due_at", "sent_at", "cut_by", "overdue")


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
        """An iteration's requests, one line each with the exact times, its start order
        (`seq`) on every line, and its own fields once, on its first line (`iteration_of`,
        those at their defaults left out): the judge reads every line of a soak back, and
        each field written once less is time it does not spend decoding."""
        assert self._out is not None, f"{self.path} is closed"
        whole: dict[str, Any] = {"started": iteration.started, "ended": iteration.ended,
                                 "verdict": iteration.verdict, "reason": iteration.reason}
        for key in ITERATION_OPTIONAL:
            value = getattr(iteration, key)
            if value is not None and value is not False:
                whole[key] = value
        first = {"iteration_of": whole}
        for x in iteration.exchanges:
            o = x.outcome
            line = {"seq": seq, "scenario": x.scenario, "iteration": x.iteration,
                    "step": x.step, "agent": o.agent, "stream": o.stream, "status": o.status,
                    "started": o.started, "first_byte": o.first_byte, "ended": o.ended,
                    "seconds": round(o.seconds, 3), "verdict": x.verdict, "reason": x.reason,
                    "expected": list(x.expected), "finish_reason": o.finish_reason,
                    "done": o.done if o.stream else None, "excerpt": o.content[:KEPT_CHARS],
                    **first}
            self._out.write(json.dumps(line) + "\n")
            self.lines += 1
            first = {}
        if not iteration.exchanges:  # cut before any request ended: the iteration alone
            self._out.write(json.dumps({"seq": seq, "scenario": iteration.scenario,
                                        "iteration": iteration.index, **first}) + "\n")

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
