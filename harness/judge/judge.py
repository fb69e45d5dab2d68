"""Deciding a policy's triggers on a soak: what each kind measures, from the log and the requests.

The same judge decides a soak while it runs and once more when it is over, on the same
evaluation grid, so the live stop and the final record agree. Every decision is stamped with
the policy's SHA-256. It is linear in the work: live, each call takes in only what happened
since the last one and evaluates only the evaluation times that have passed since (records
stream through trailing windows, see `series`); at the end, everything is streamed once.

A count trigger (`log`, `replies`) that one breached evaluation fires (`consecutive` = 1) is
also evaluated the moment a counted event arrives, so a burst of failover lines decides as
soon as the watcher has read them rather than at the next grid point; `consecutive` keeps its
meaning on the grid.
"""

from __future__ import annotations

import gc
import heapq
import math
import time
from bisect import bisect_left, bisect_right, insort
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from harness.judge.policy import Decision, Event, Policy, Trigger, percentile
from harness.judge.series import (
    Grid,
    Ranked,
    Reading,
    Series,
    Stream,
    Trailing,
    too_few,
    unevaluated,
)
from harness.signals.logwatch import SAME_RUN_S, Match, run_keys
from harness.signals.signatures import timestamp_seconds
from harness.soak.driver import Exchange, Iteration, SoakRun, iterations_on_file
from harness.soak.records import RequestFile

SKEW_S = 5.0  # the wall clock may step back this much during a soak (a streamed judgement)
STEPS = 1 << 20  # a request's order in its run: its iteration's start order, then its step
FORWARD_EVERY_S = 1.0  # a streamed judgement evaluates what it has read this often (run time)


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection for a short burst of allocations that mostly live a
    while: a final judgement makes an object or three per request, and the collector took
    each batch that survived for a reason to walk every object the process holds (7 full
    collections, 1.4 of 3.1 s, in a final judgement of 100k requests). What the judgement
    lets go of as it goes is freed by its reference count; what it holds at its end (its
    streams and windows refer to one another) goes at the next collection after it."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class OutOfOrder(Exception):
    """A record file's times went back further than a streamed judgement allows for."""


@dataclass
class _Line:
    """A counted log line; its key (the run it belongs to) can change while the soak runs:
    a line naming no run is that of the nearest line naming one within `SAME_RUN_S`, which
    may be read after it (`logwatch.run_keys`)."""

    index: int  # in its stream
    key: str
    evidence: str


class _RunKeys:
    """`logwatch.run_keys` kept as lines arrive: each new line naming a run re-keys the lines
    around it that name none, so the keys are always run_keys over the lines read so far."""

    def __init__(self) -> None:
        self.times: list[float] = []  # lines naming a run, in order of (time, run id)
        self.named: list[tuple[float, str]] = []
        self.loose: list[tuple[float, int]] = []  # lines naming none: (time, stream index)
        self.lines: list[_Line] = []
        self.line_nos: list[int] = []

    def add(self, m: Match) -> tuple[_Line, list[tuple[_Line, str]]]:
        """The new line, and the earlier ones whose key changed (with their old key)."""
        t = timestamp_seconds(m.logged_at) or m.seen
        line = _Line(len(self.lines), "", m.line)
        self.lines.append(line)
        self.line_nos.append(m.line_no)
        if not m.run_id:
            insort(self.loose, (t, line.index))
            line.key = self._nearest(t, line.index)
            return line, []
        line.key = m.run_id
        at = bisect_right(self.named, (t, m.run_id))
        self.named.insert(at, (t, m.run_id))
        self.times.insert(at, t)
        changed = []
        lo = bisect_left(self.loose, (t - SAME_RUN_S - 1e-6, -1))
        for near_t, index in self.loose[lo:]:
            if near_t > t + SAME_RUN_S + 1e-6:
                break
            key = self._nearest(near_t, index)
            if key != self.lines[index].key:
                changed.append((self.lines[index], self.lines[index].key))
                self.lines[index].key = key
        return line, changed

    def _nearest(self, t: float, index: int) -> str:
        i = bisect_left(self.times, t)
        near = [self.named[j] for j in (i - 1, i) if 0 <= j < len(self.named)]
        best = min(near, key=lambda n: abs(n[0] - t), default=None)
        return best[1] if best and abs(best[0] - t) <= SAME_RUN_S \
            else f"line-{self.line_nos[index]}"


def log_event(match: Match) -> Event:
    return Event(match.seen, match.run_id or f"line-{match.line_no}", None, match.line)


def log_events(trigger: Trigger, matches: list[Match]) -> list[Event]:
    """The lines a log trigger counts, each keyed by the run it belongs to (`run_keys`)."""
    counted = [m for m in matches if counts(trigger, m)]
    return [Event(m.seen, key, None, m.line)
            for m, key in zip(counted, run_keys(counted), strict=True)]


def bad_reply_event(x: Exchange) -> Event:
    return Event(x.outcome.ended, f"{x.scenario}#{x.iteration}/{x.step}", x.scenario,
                 f"{x.scenario} {x.step}: {x.reason}")


def counts(trigger: Trigger, match: Match) -> bool:
    return match.klass in trigger.classes or match.signature in trigger.signatures


@dataclass
class _Streams:
    """What a soak produced, by kind and scenario, each in the order of its time."""

    logs: dict[str, Stream] = field(default_factory=dict)  # per log-counting trigger
    bad_replies: Stream = field(default_factory=Stream)
    bad_replies_of: dict[str, Stream] = field(default_factory=dict)
    # read only through their windows: what every window has passed is let go (`prune`)
    exchanges: Stream = field(default_factory=lambda: Stream(prunable=True))
    exchanges_of: dict[str, Stream] = field(default_factory=dict)  # (seconds, -order, x)
    finished_of: dict[str, Stream] = field(default_factory=dict)  # iterations by their end
    order: int = 0  # the position of an exchange in `SoakRun.exchanges()` (ties: first wins)

    keys: dict[str, _RunKeys] = field(default_factory=dict)  # per log trigger counting runs
    rekeyed: dict[str, Callable[[_Line, str], None]] = field(default_factory=dict)

    def match(self, triggers: list[Trigger], m: Match) -> None:
        for trigger in triggers:
            if not counts(trigger, m):
                continue
            if trigger.name not in self.keys:
                self.logs[trigger.name].add(m.seen, log_event(m))
                continue
            line, changed = self.keys[trigger.name].add(m)
            self.logs[trigger.name].add(m.seen, line)
            for earlier, old in changed:
                self.rekeyed[trigger.name](earlier, old)

    def matches(self, triggers: list[Trigger], matches: list[Match]) -> None:
        """All of a finished run's matches at once: the keys as `run_keys` gives them."""
        for trigger in triggers:
            counted = [m for m in matches if counts(trigger, m)]
            stream = self.logs[trigger.name]
            if trigger.name not in self.keys:
                for m in counted:
                    stream.add(m.seen, log_event(m))
                continue
            for n, (m, key) in enumerate(zip(counted, run_keys(counted), strict=True)):
                stream.add(m.seen, _Line(n, key, m.line))

    def exchange(self, x: Exchange, order: int | None = None) -> None:
        ended = x.outcome.ended
        order = self.order if order is None else order
        self.order += 1
        self.exchanges.add(ended, None)
        self.exchanges_of.setdefault(x.scenario, Stream(prunable=True)).add(
            ended, (x.outcome.seconds, -order, x))
        if x.verdict == "bad":
            event = bad_reply_event(x)
            self.bad_replies.add(ended, event)
            self.bad_replies_of.setdefault(x.scenario, Stream()).add(ended, event)

    def prune(self) -> None:
        for stream in (self.exchanges, *self.exchanges_of.values(), *self.finished_of.values()):
            stream.prune()

    def finished(self, iteration: Iteration) -> None:
        self.finished_of.setdefault(iteration.scenario, Stream(prunable=True)).add(
            iteration.ended,
                                                                      iteration)


def _bad_lines(iterations: list[Iteration]) -> tuple[str, ...]:
    return tuple(f"{i.scenario}#{i.index}: {i.reason}"
                 for i in sorted(iterations, key=lambda i: i.index) if i.verdict == "bad")


class _Measure:
    """One series' measurement: its trailing windows move to `t`, then `read()`."""

    windows: list[Trailing]
    counted: Trailing | None = None  # events that may fire the trigger on arrival

    def move(self, t: float) -> None:
        for window in self.windows:
            window.move(t)

    def read(self) -> Reading:
        raise NotImplementedError


class _Count(_Measure):
    """log and replies: events in the trailing window against the count."""

    def __init__(self, trigger: Trigger, stream: Stream) -> None:
        self.trigger, self.stream = trigger, stream
        self.keys: Counter[str] = Counter()
        self.counted = Trailing(stream, trigger.within_s, self._enter, self._leave)
        self.windows = [self.counted]

    def _enter(self, e: Event | _Line) -> None:
        self.keys[e.key] += 1

    def _leave(self, e: Event | _Line) -> None:
        self.keys[e.key] -= 1
        if not self.keys[e.key]:
            del self.keys[e.key]

    def rekeyed(self, line: _Line, old: str) -> None:
        """A line's run became known after it was read: the window counts it anew (the
        evaluations already made stand, as they were made on what was known)."""
        if self.counted is not None and self.counted.lo <= line.index < self.counted.hi:
            self._leave(_Line(line.index, old, ""))
            self._enter(line)

    def read(self) -> Reading:
        w = self.counted
        assert w is not None
        value = len(self.keys) if self.trigger.per == "run" else w.size
        items, lo, hi = self.stream.items, w.lo, w.hi
        return Reading(value, w.size, value >= self.trigger.count,
                       lambda: tuple(e.evidence for e in items[lo:hi]))


def _slowest(top: list[tuple[float, int, Exchange]]) -> tuple[str, ...]:
    """The three slowest requests (slowest first, the earlier one first among equals)."""
    return tuple(f"{x.scenario} {x.step}: {x.outcome.seconds:.1f} s ({x.verdict})"
                 for _, _, x in top)


class _Latency(_Measure):
    """A latency percentile per scenario over the trailing window. The window's requests are
    ranked by (seconds, -order), which is unique, so the three slowest are the ranking's top
    three: a new peak's evidence costs O(1), not a pass over the window."""

    def __init__(self, trigger: Trigger, stream: Stream) -> None:
        self.trigger, self.stream = trigger, stream
        self.ranked = Ranked()
        self.window = Trailing(stream, trigger.within_s, self._enter, self._leave)
        self.windows = [self.window]

    def _enter(self, item: tuple[float, int, Exchange]) -> None:
        self.ranked.add(item)

    def _leave(self, item: tuple[float, int, Exchange]) -> None:
        self.ranked.remove(item)

    def read(self) -> Reading:
        n, t = self.ranked.size, self.trigger
        if n < t.min_samples:
            return too_few(n, t.min_samples, "requests")
        value = self.ranked[max(0, min(n - 1, math.ceil(t.percentile / 100 * n) - 1))][0]
        top = self.ranked.largest(3)  # now: the ranking moves on before the evidence is read
        return Reading(value, n, value > t.max_s, lambda: _slowest(top))


class _ErrorRatio(_Measure):
    """Bad iterations over finished iterations per scenario in the trailing window."""

    def __init__(self, trigger: Trigger, stream: Stream) -> None:
        self.trigger, self.stream = trigger, stream
        self.bad = 0
        # the bad iterations in the order they entered, and how many of them have left: a
        # new peak's evidence reads these, not every iteration of the window (a whole soak's)
        self.bads: list[Iteration] = []
        self.bads_left = 0
        self.window = Trailing(stream, trigger.within_s, self._enter, self._leave)
        self.windows = [self.window]

    def _enter(self, i: Iteration) -> None:
        if i.verdict == "bad":
            self.bad += 1
            self.bads.append(i)

    def _leave(self, i: Iteration) -> None:
        if i.verdict == "bad":
            self.bad -= 1
            self.bads_left += 1

    def _evidence(self) -> Callable[[], tuple[str, ...]]:
        bads, lo, hi = self.bads, self.bads_left, len(self.bads)
        return lambda: _bad_lines(bads[lo:hi])

    def read(self) -> Reading:
        n, t = self.window.size, self.trigger
        if n < t.min_samples:
            return too_few(n, t.min_samples, "iterations")
        return Reading(self.bad / n, n, self.bad / n > t.max_ratio, self._evidence())


class _VsBaselineLog(_Measure):
    """A signature class's rate per request against the baseline's, over the soak so far."""

    def __init__(self, trigger: Trigger, events: Stream, exchanges: Stream,
                 base_events: int, base_requests: int) -> None:
        self.trigger, self.events = trigger, events
        self.base_events, self.base_requests = base_events, base_requests
        self.keys: Counter[str] = Counter()
        self.counted = Trailing(events, 0.0, self._enter)
        self.requests = Trailing(exchanges, 0.0)
        self.windows = [self.counted, self.requests]

    def _enter(self, e: Event) -> None:
        self.keys[e.key] += 1

    def read(self) -> Reading:
        t, w = self.trigger, self.counted
        assert w is not None
        count = len(self.keys) if t.per == "run" else w.size
        requests = self.requests.size
        items, hi = self.events.items, w.hi

        def evidence() -> tuple[str, ...]:
            return tuple(e.evidence for e in items[:hi])

        if self.base_events == 0:
            # zero to some is a change however small: the absolute rule decides
            return Reading(count, requests, count > t.absolute_max, evidence,
                           note=f"the baseline had none in {self.base_requests} requests: "
                           f"absolute rule, more than {t.absolute_max:g} fails")
        if requests < t.min_samples:
            return too_few(requests, t.min_samples, "requests")
        ratio = (count / requests) / (self.base_events / max(self.base_requests, 1))
        return Reading(ratio, requests, ratio > t.max_ratio and count > t.absolute_max,
                       evidence, note=f"baseline {self.base_events} in {self.base_requests} "
                       "requests")


class _VsBaselineP95(_Measure):
    def __init__(self, trigger: Trigger, stream: Stream, base: float | None) -> None:
        self.trigger, self.base = trigger, base
        self.ranked = Ranked()
        self.windows = [Trailing(stream, 0.0, lambda item: self.ranked.add(item[0]))]

    def read(self) -> Reading:
        n, t = self.ranked.size, self.trigger
        if n < t.min_samples:
            return too_few(n, t.min_samples, "requests")
        if not self.base:
            return Reading(None, n, False, note="no baseline latency")
        mine = self.ranked[max(0, min(n - 1, math.ceil(95 / 100 * n) - 1))]
        return Reading(mine / self.base, n, mine / self.base > t.max_ratio,
                       (f"p95 {mine:.2f} s against the baseline's {self.base:.2f} s",))


class _VsBaselineErrors(_ErrorRatio):
    def __init__(self, trigger: Trigger, stream: Stream, base_done: int,
                 base_bad: int) -> None:
        super().__init__(trigger, stream)
        self.window.within_s = 0.0  # the whole soak so far
        self.base_done, self.base_bad = base_done, base_bad

    def read(self) -> Reading:
        n, t = self.window.size, self.trigger
        if n < t.min_samples:
            return too_few(n, t.min_samples, "iterations")
        evidence = self._evidence()
        if self.base_bad == 0:
            return Reading(self.bad, n, self.bad > t.absolute_max, evidence,
                           note=f"the baseline had no bad iteration in {self.base_done}: "
                           "absolute rule")
        ratio = (self.bad / n) / (self.base_bad / self.base_done)
        return Reading(ratio, n, ratio > t.max_ratio and self.bad > t.absolute_max, evidence)


class Evaluation:
    """Every trigger of a policy on one soak, evaluated forward in time."""

    def __init__(self, judge: Judge, run: SoakRun) -> None:
        self.run = run
        self.streams = _Streams()
        self.log_triggers = [t for t in judge.policy.triggers
                             if t.kind == "log" or (t.kind == "baseline" and t.metric == "log")]
        for trigger in self.log_triggers:
            self.streams.logs[trigger.name] = Stream()
            if trigger.kind == "log" and trigger.per == "run":
                self.streams.keys[trigger.name] = _RunKeys()
        for sid in run.scenario_ids:
            self.streams.bad_replies_of[sid] = Stream()
            self.streams.exchanges_of[sid] = Stream(prunable=True)
            self.streams.finished_of[sid] = Stream(prunable=True)
        self.on_arrival = judge.on_arrival
        self.parts: list[tuple[Series | Decision, _Measure | None, Grid | None]] = []
        sha = judge.policy.sha256
        for trigger in judge.policy.triggers:
            for scenario, measure, note in judge.measures(trigger, run, self.streams):
                if measure is None:
                    self.parts.append((unevaluated(trigger, scenario, note, sha), None, None))
                else:
                    self.parts.append((Series(trigger, scenario, run.started, sha, note),
                                       measure, Grid(run.started, trigger.interval_s)))
        self.matches_seen = self.exchanges_seen = self.finished_seen = 0

    def take(self, matches: list[Match]) -> None:
        """What happened since the last call: the run's requests and iterations in the order
        they ended, and the log's matches in the order they were read."""
        run, streams = self.run, self.streams
        for m in matches[self.matches_seen:]:
            streams.match(self.log_triggers, m)
        self.matches_seen = max(self.matches_seen, len(matches))
        completed, ended = run.completed, run.ended_iterations
        for x in completed[self.exchanges_seen - run.completed_base:]:
            streams.exchange(x)
            self.exchanges_seen += 1
        for i in ended[self.finished_seen - run.ended_base:]:
            streams.finished(i)
            self.finished_seen += 1
        run.taken(self.exchanges_seen, self.finished_seen)  # with a record file: let go
        streams.prune()

    def take_all(self, matches: list[Match]) -> None:
        """A finished run at once, each stream in the order of time and, within the same
        time, in the order the run lists it."""
        run, streams = self.run, self.streams
        streams.matches(self.log_triggers, sorted(matches, key=lambda m: m.seen))
        iterations = run.every_iteration()  # with a record file: read back
        exchanges = [x for i in iterations for x in i.exchanges]
        for n in sorted(range(len(exchanges)), key=lambda n: exchanges[n].outcome.ended):
            streams.exchange(exchanges[n], n)
        for i in sorted((i for i in iterations if i.finished), key=lambda i: i.ended):
            streams.finished(i)

    def take_streamed(self, matches: list[Match], records: RequestFile) -> None:
        """A finished run whose ended iterations went to a record file, streamed from it: the
        same streams, in the same order, as `take_all` builds, but evaluated as they grow
        (`forward`), so what every window has passed is let go and memory holds about one
        longest iteration's worth of requests, not the whole soak.

        The file is in the order iterations ended, not the order their requests did: a
        request ends after its iteration started, and an iteration started at most its
        path's longest iteration before it ended (`Tally.longest`). So once an iteration that
        ended at E is read, every request and iteration of the rest of the file ended after
        E - longest: what ended before that goes out, earliest first. Those cut (written at
        the end) are in memory: none goes out from the earliest one's start on. Raises
        `OutOfOrder` if the clock went back by more than that margin."""
        run, streams = self.run, self.streams
        streams.matches(self.log_triggers, sorted(matches, key=lambda m: m.seen))
        reach = max((t.longest or 0.0 for t in run.tallies.values()), default=0.0) + SKEW_S
        floor = min((i.started for i in run.iterations if not i.finished), default=math.inf)
        requests: list[tuple[float, int, int, Exchange]] = []  # (ended, start order, step)
        ended: list[tuple[float, int, Iteration]] = []  # (ended, start order)
        last = [(-math.inf, -1, -1), (-math.inf, -1)]  # the last of each sent out

        def send_out(until: float) -> None:
            while requests and requests[0][0] < until:
                at, seq, k, x = heapq.heappop(requests)
                if (at, seq, k) < last[0]:  # it came after what it should have preceded
                    raise OutOfOrder(f"a request ended at {at} after one at {last[0][0]}")
                last[0] = (at, seq, k)
                streams.exchange(x, seq * STEPS + k)
            while ended and ended[0][0] < until:
                at, seq, iteration = heapq.heappop(ended)
                if (at, seq) < last[1]:
                    raise OutOfOrder(f"an iteration ended at {at} after one at {last[1][0]}")
                last[1] = (at, seq)
                streams.finished(iteration)

        moved = -math.inf
        push = heapq.heappush
        for seq, iteration in iterations_on_file(records):
            for k, x in enumerate(iteration.exchanges):
                push(requests, (x.outcome.ended, seq, k, x))
            if not iteration.finished:
                continue
            push(ended, (iteration.ended, seq, iteration))
            until = min(iteration.ended - reach, floor)
            if until - moved >= FORWARD_EVERY_S:  # a second of run time on: judge what is in
                moved = until
                send_out(until)  # now all that ended before `until` is in
                self.forward(math.nextafter(until, -math.inf))
                streams.prune()
        send_out(math.inf)

    def forward(self, now: float, final: bool = False) -> None:
        """Evaluate every trigger at each evaluation time (and, for a count trigger, each
        counted arrival) up to `now`: what happened up to `now` must be in the streams."""
        for series, measure, grid in self.parts:
            if not isinstance(series, Series):
                continue
            assert measure is not None and grid is not None
            for at in grid.due(now, final):
                self._arrivals(series, measure, at)
                measure.move(at)
                series.record(at, measure.read())
            if not final:
                self._arrivals(series, measure, now)

    def advance(self, now: float, final: bool) -> list[Decision]:
        self.forward(now, final)
        return [series.decision() if isinstance(series, Series) else series
                for series, _, _ in self.parts]

    def _arrivals(self, series: Series, measure: _Measure, until: float) -> None:
        """Evaluate at each counted event's arrival before `until` (a count trigger that a
        single breach fires, while it has not fired)."""
        counted = measure.counted
        if counted is None or not self.on_arrival or series.trigger.consecutive != 1:
            return
        while series.fired_at is None:
            at = counted.next_at()
            if at is None or at >= until:
                return
            measure.move(at)
            series.arrived(at, measure.read())


class Judge:
    """The policy's triggers over a soak: a pure function of what the soak recorded and the
    time it is asked at (live) or its end (final). `on_arrival = False` evaluates on the grid
    only, as the grid alone decides (kept for comparison)."""

    def __init__(self, policy: Policy, baseline: SoakRun | None = None,
                 on_arrival: bool = True) -> None:
        self.policy = policy
        self.baseline = baseline
        self.on_arrival = on_arrival
        self._live: Evaluation | None = None
        # the baseline's numbers, once, before the soak: a live call only does new work
        self._base_log: dict[str, tuple[int, int]] = {}
        self._base_p95: dict[str, float | None] = {}
        self._base_errors: dict[str, tuple[int, int]] = {}
        if baseline is not None:
            requests = baseline.request_count()
            for trigger in policy.triggers:
                if trigger.kind == "baseline" and trigger.metric == "log":
                    events = [log_event(m) for m in baseline.matches if counts(trigger, m)]
                    n = len({e.key for e in events}) if trigger.per == "run" else len(events)
                    self._base_log[trigger.name] = (n, requests)
            for sid in baseline.scenario_ids:
                tally = baseline.tally(sid)
                self._base_p95[sid] = percentile(list(tally.seconds), 95)
                self._base_errors[sid] = (tally.good + tally.bad, tally.bad)

    def __call__(self, run: SoakRun, matches: list[Match], final: bool,
                 now: float | None = None) -> list[Decision]:
        """`now`: what the run holds is complete up to this time (live: taken before the
        records were read; default the clock)."""
        if final:
            with collector_paused():
                evaluation = Evaluation(self, run)
                if run.record_file is None:
                    evaluation.take_all(matches)
                else:
                    try:
                        evaluation.take_streamed(matches, run.record_file)
                    except OutOfOrder:  # the clock went back: everything at once, sorted
                        evaluation = Evaluation(self, run)
                        evaluation.take_all(matches)
                return evaluation.advance(run.ended or time.time(), final=True)
        now = time.time() if now is None else now
        if self._live is None or self._live.run is not run:
            self._live = Evaluation(self, run)
        self._live.take(matches)
        return self._live.advance(now, final=False)

    def measures(self, trigger: Trigger, run: SoakRun, streams: _Streams
                 ) -> list[tuple[str | None, _Measure | None, str]]:
        ids = [sid for sid in run.scenario_ids
               if not trigger.scenarios or sid in trigger.scenarios]
        if trigger.kind == "log":
            count = _Count(trigger, streams.logs[trigger.name])
            streams.rekeyed[trigger.name] = count.rekeyed
            return [(None, count, "")]
        if trigger.kind == "replies":
            if trigger.per_scenario:
                return [(sid, _Count(trigger, streams.bad_replies_of[sid]), "") for sid in ids]
            return [(None, _Count(trigger, streams.bad_replies), "")]
        if trigger.kind == "latency":
            return [(sid, _Latency(trigger, streams.exchanges_of[sid]), "") for sid in ids]
        if trigger.kind == "error-ratio":
            return [(sid, _ErrorRatio(trigger, streams.finished_of[sid]), "") for sid in ids]
        if self.baseline is None:
            note = "no baseline soak in this run: not evaluated"
            return [(sid, None, note) for sid in (ids if trigger.per_scenario else [None])]
        if trigger.metric == "log":
            return [(None, _VsBaselineLog(trigger, streams.logs[trigger.name],
                                          streams.exchanges, *self._base_log[trigger.name]), "")]
        out: list[tuple[str | None, _Measure | None, str]] = []
        for sid in ids:
            if sid not in self._base_p95:
                out.append((sid, None, ""))
            elif trigger.metric == "p95_s":
                out.append((sid, _VsBaselineP95(trigger, streams.exchanges_of[sid],
                                                self._base_p95[sid]), ""))
            else:
                out.append((sid, _VsBaselineErrors(trigger, streams.finished_of[sid],
                                                   *self._base_errors[sid]), ""))
        return out
