"""The soak load driver: every scenario at once, in one process, judged while it runs.

Closed-model scenarios have workers that start their next iteration when the last one ended;
open-model scenarios start iterations on a fixed schedule (`rate_per_min`, like k6's constant-
arrival-rate), whatever the gateway does, up to `max_in_flight` (beyond it an arrival is
dropped and counted). Iterations start until the window closes; in-flight work may finish
during the drain. The policy's triggers are judged, off the event loop, as soon as a log match
or a finished request arrives (at least every second); a deciding trigger stops the soak at
once: nothing new starts; what fails together with the evidence lands within half a second (two
polls of the log); then what is in flight and cannot finish within the window's `stop_grace_s`
is cut at once and recorded as cut by the decision (everything, when the decision rolls back;
else what is past its path's known duration, or known to need longer than the grace leaves),
and the rest gets the grace (a request that was going to fail is the evidence of the path it
was on). A window with a `delay_s` (the later post-rollback watch) is quiet first: the log is
watched and judged from the start, and traffic starts only when the delay is over.

A reply is good only if it passes its checks: it ended whole (`ChatOutcome.unfinished`: a
stream cut by an in-band error or without `[DONE]`, a reply truncated at its token limit are
bad), the nonces of its request (a gateway that times out answers HTTP 200 with an apology, so
status codes alone prove nothing), any `contains` and `json_keys`, and the step's latency
budget. Every request is recorded: start, first byte, end, status, how it ended (finish reason,
`[DONE]`), check result, scenario, step.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from bisect import insort
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from harness.common import http
from harness.common.nonce import new_nonce
from harness.judge.policy import Decision, Window, percentile
from harness.signals.logwatch import LogWatcher, Match
from harness.soak.records import KEPT_BAD, KEPT_CHARS, KEPT_LAST, RequestFile, Tally
from harness.soak.scenarios import Scenario, Step
from harness.targets.client import ChatOutcome, GatewayEndpoint


@dataclass(slots=True)
class Exchange:
    scenario: str
    iteration: int
    step: str
    expected: tuple[str, ...]
    outcome: ChatOutcome
    verdict: str  # good | bad
    reason: str

    def as_dict(self) -> dict[str, object]:
        o = self.outcome
        return {"scenario": self.scenario, "iteration": self.iteration, "step": self.step,
                "agent": o.agent, "stream": o.stream, "status": o.status,
                "started": round(o.started, 3), "first_byte": o.first_byte and round(
                    o.first_byte, 3), "ended": round(o.ended, 3), "seconds": round(o.seconds, 3),
                "verdict": self.verdict, "reason": self.reason, "expected": list(self.expected),
                "finish_reason": o.finish_reason, "done": o.done if o.stream else None,
                "excerpt": o.content[:KEPT_CHARS]}


@dataclass(slots=True)
class Iteration:
    scenario: str
    index: int
    started: float
    ended: float = 0.0
    verdict: str = "cut"  # good | bad | cut (stopped by the end of the drain or a trigger)
    reason: str = "not finished"
    lag_s: float | None = None  # open model: how late it started against its schedule
    due_at: float | None = None  # open model: when its schedule said it starts (unix time)
    sent_at: float | None = None  # when its first request was handed to the HTTP client
    cut_by: str | None = None  # the deciding trigger that cut it at once (not at a grace's end)
    overdue: bool = False  # cut while well past its path's known duration: hanging

    @property
    def send_lag_s(self) -> float | None:
        """How late its first request went out against its schedule (open model)."""
        if self.due_at is None or self.sent_at is None:
            return None
        return self.sent_at - self.due_at
    exchanges: list[Exchange] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.verdict in ("good", "bad")


@dataclass
class SoakRun:
    label: str
    window: Window
    started: float
    ended: float = 0.0
    # every iteration; with a record file, those in flight and those kept (`records`)
    iterations: list[Iteration] = field(default_factory=list)
    matches: list[Match] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    stopped_by: str | None = None
    decided_at: float | None = None  # when the live judge's deciding decision reached the driver
    scenarios: list[Scenario] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    # each evidence log line's neighbours in the watched stream (line number -> numbered lines)
    context: dict[int, list[str]] = field(default_factory=dict, repr=False)
    # the requests and iterations that ended, in that order, not yet taken by a live judge
    # (all of them without a record file): `completed_base` were taken and let go before
    completed: list[Exchange] = field(default_factory=list, repr=False)
    ended_iterations: list[Iteration] = field(default_factory=list, repr=False)
    completed_base: int = field(default=0, repr=False)
    ended_base: int = field(default=0, repr=False)
    # where ended iterations are written out (then not kept in memory), and each path's numbers
    record_file: RequestFile | None = field(default=None, repr=False)
    tallies: dict[str, Tally] = field(default_factory=dict, repr=False)
    _of: dict[str, list[Iteration]] = field(default_factory=dict, repr=False)
    _indexed: int = field(default=0, repr=False)
    _seq: dict[int, int] = field(default_factory=dict, repr=False)  # id -> start order
    _started: int = field(default=0, repr=False)
    _last: dict[str, deque[Iteration]] = field(default_factory=dict, repr=False)
    _bads: dict[str, list[tuple[int, Iteration]]] = field(default_factory=dict, repr=False)

    @property
    def scenario_ids(self) -> list[str]:
        return [s.id for s in self.scenarios]

    @property
    def bounded(self) -> bool:
        """Ended iterations go to the record file: memory holds what `records` says."""
        return self.record_file is not None

    def tally(self, scenario: str) -> Tally:
        if scenario not in self.tallies:
            self.tallies[scenario] = Tally()
        return self.tallies[scenario]

    def _index(self) -> dict[str, list[Iteration]]:
        """Iterations per scenario, indexed as they are added (each one once)."""
        if self.bounded:  # the few in memory
            of: dict[str, list[Iteration]] = {}
            for iteration in self.iterations:
                of.setdefault(iteration.scenario, []).append(iteration)
            return of
        for iteration in self.iterations[self._indexed:]:
            self._of.setdefault(iteration.scenario, []).append(iteration)
        self._indexed = len(self.iterations)
        return self._of

    def of(self, scenario: str) -> list[Iteration]:
        """A path's iterations in the order they started (with a record file: those kept)."""
        return list(self._index().get(scenario, ()))

    def count_of(self, scenario: str) -> int:
        return self.tally(scenario).started

    def start(self, iteration: Iteration) -> None:
        tally = self.tally(iteration.scenario)
        tally.started += 1
        if iteration.lag_s is not None:
            tally.lags.append(iteration.lag_s)
        self._seq[id(iteration)] = self._started
        self._started += 1
        self.iterations.append(iteration)

    def record(self, iteration: Iteration, exchange: Exchange) -> None:
        """A request ended (its outcome and check are final)."""
        iteration.exchanges.append(exchange)
        self.completed.append(exchange)
        self.tally(exchange.scenario).request(exchange.outcome.seconds, exchange.outcome.ended,
                                              exchange.verdict == "good")

    def end(self, iteration: Iteration, verdict: str, reason: str,
            at: float | None = None) -> None:
        """An iteration ended, good or bad (at `at`, default now)."""
        iteration.verdict, iteration.reason = verdict, reason
        iteration.ended = time.time() if at is None else at
        self.ended_iterations.append(iteration)
        for exchange in iteration.exchanges:  # checked and chained: only the excerpt is read
            exchange.outcome.content = exchange.outcome.content[:KEPT_CHARS]
        tally = self.tally(iteration.scenario)
        tally.ended(verdict, iteration.ended - iteration.started)
        if self.record_file is not None:
            self.record_file.write(iteration, self._seq[id(iteration)])
            self._let_go(iteration, tally)

    def _let_go(self, iteration: Iteration, tally: Tally) -> None:
        """An ended iteration stays in memory if it is one of its path's first `KEPT_BAD` bad
        ones (by start) or its last `KEPT_LAST` ones to end; else it goes (it is in the file)."""
        if iteration.verdict == "bad":
            bads = self._bads.setdefault(iteration.scenario, [])
            insort(bads, (self._seq[id(iteration)], iteration), key=lambda b: b[0])
            if len(bads) <= KEPT_BAD:
                return
            iteration = bads.pop()[1]  # a later-started one leaves the first bad ones
        last = self._last.setdefault(iteration.scenario, deque())
        last.append(iteration)
        if len(last) > KEPT_LAST:
            gone = last.popleft()  # the oldest of its path: near the front
            at = next(k for k, i in enumerate(self.iterations) if i is gone)
            del self.iterations[at]
            del self._seq[id(gone)]

    def taken(self, exchanges: int, iterations: int) -> None:
        """A live judge took this many requests and iterations: with a record file, they
        are let go from its queues."""
        if not self.bounded:
            return
        exchanges -= self.completed_base
        iterations -= self.ended_base
        self.completed_base += exchanges
        del self.completed[:exchanges]
        self.ended_base += iterations
        del self.ended_iterations[:iterations]

    @property
    def completed_count(self) -> int:
        return self.completed_base + len(self.completed)

    def close(self) -> None:
        """The run is over: with a record file, what was still in flight (cut) is written out
        too, and kept; the file is closed."""
        if self.record_file is None:
            return
        for iteration in self.iterations:
            if not iteration.finished:
                self.record_file.write(iteration, self._seq[id(iteration)])
        self.record_file.close()

    def exchanges(self, scenario: str | None = None) -> list[Exchange]:
        """The requests in memory (with a record file, those of the iterations kept)."""
        return [x for i in self.iterations for x in i.exchanges
                if scenario is None or i.scenario == scenario]

    def request_count(self) -> int:
        return sum(len(t.seconds) for t in self.tallies.values())

    def requests(self) -> Iterator[dict[str, object]]:
        """Every request as `Exchange.as_dict` gives it, from the record file if it has one."""
        if self.record_file is not None:
            for _, iteration in iterations_on_file(self.record_file):
                for x in iteration.exchanges:
                    yield x.as_dict()
            return
        for x in self.exchanges():
            yield x.as_dict()

    def every_iteration(self) -> list[Iteration]:
        """Every iteration with its requests, in the order they started: from memory, or read
        back from the record file (exact times: a judgement made on them is the same)."""
        if self.record_file is None:
            return list(self.iterations)
        return read_back(self.record_file, self.label)

    def deciding(self) -> list[Decision]:
        return [d for d in self.decisions if d.decides]

    def stats(self, scenario: str) -> dict[str, object]:
        tally = self.tally(scenario)
        # an iteration cut by a decision never ended: it is in memory, record file or not
        cut_by = sum(i.cut_by is not None for i in self.of(scenario))
        finished = tally.good + tally.bad
        seconds, lags = tally.seconds, tally.lags
        # arrivals are scheduled inside the window only (after any quiet delay), so the rate
        # is over the window
        duration = min((self.ended or time.time()) - self.started - self.window.delay_s,
                       self.window.window_s or float("inf"))
        return {
            "iterations": tally.started, "finished": finished,
            "good": tally.good, "bad": tally.bad, "cut": tally.started - finished,
            "cut_by_decision": cut_by,
            "dropped": self.dropped.get(scenario, 0),
            "error_ratio": round(tally.bad / finished, 4) if finished else None,
            "requests": len(seconds),
            "p50_s": _round(percentile(list(seconds), 50)),
            "p95_s": _round(percentile(list(seconds), 95)),
            "max_s": _round(max(seconds, default=None)),
            "started_per_min": round(tally.started / duration * 60, 3) if duration > 0 else None,
            "lag_p99_s": _round(percentile(list(lags), 99)),
        }


def read_back(records: RequestFile, label: str) -> list[Iteration]:
    """A record file's iterations, each with its requests, in the order they started."""
    return [iteration for _, iteration in sorted(iterations_on_file(records),
                                                 key=lambda pair: pair[0])]


def iterations_on_file(records: RequestFile) -> Iterator[tuple[int, Iteration]]:
    """A record file's iterations, each with its requests and its start order, one at a time
    in the order they were written (as they ended; those cut, at the end of the run). An
    iteration's lines are written together, so only one is being put together at a time."""
    seq, iteration = -1, None
    for line in records.read():
        if line["seq"] != seq:
            if iteration is not None:
                yield seq, iteration
            seq, whole = line["seq"], line["iteration_of"]
            iteration = Iteration(
                line["scenario"], line["iteration"], whole["started"], whole["ended"],
                whole["verdict"], whole["reason"], whole.get("lag_s"), whole.get("due_at"),
                whole.get("sent_at"), whole.get("cut_by"), whole.get("overdue", False))
        if "step" not in line:
            continue
        outcome = ChatOutcome(line["agent"], line["stream"], line["status"], line["excerpt"],
                              line["started"], line["first_byte"], line["ended"],
                              finish_reason=line["finish_reason"], done=bool(line["done"]))
        assert iteration is not None
        iteration.exchanges.append(Exchange(
            line["scenario"], line["iteration"], line["step"], tuple(line["expected"]),
            outcome, line["verdict"], line["reason"]))
    if iteration is not None:
        yield seq, iteration


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _longest(run: SoakRun, scenario: str) -> float | None:
    """The longest finished iteration of a path in this run so far."""
    return run.tally(scenario).longest


def known_durations(baseline: SoakRun) -> dict[str, float]:
    """How long each path's iterations took on the known-good: its longest finished one."""
    return {sid: took for sid in baseline.scenario_ids
            if (took := _longest(baseline, sid)) is not None}


def check(outcome: ChatOutcome, expected: Sequence[str], step: Step | None = None
          ) -> tuple[str, str]:
    """Judge one reply: ended whole, transport, status, nonce echo, then the step's own
    checks."""
    unfinished = outcome.unfinished()
    if unfinished:
        return "bad", unfinished
    if outcome.error:
        return "bad", f"transport error after {outcome.seconds:.1f} s: {outcome.error}"
    if outcome.status != 200:
        return "bad", (f"HTTP {outcome.status} after {outcome.seconds:.1f} s: "
                       f"{outcome.content[:120]}")
    missing = [n for n in expected if n not in outcome.content]
    if missing:
        return "bad", (f"HTTP 200 after {outcome.seconds:.1f} s without nonce "
                       f"{', '.join(missing)}: {outcome.content[:120]!r}")
    if step is not None:
        absent = [text for text in step.contains if text not in outcome.content]
        if absent:
            return "bad", (f"HTTP 200 after {outcome.seconds:.1f} s without "
                           f"{', '.join(map(repr, absent))}: {outcome.content[:120]!r}")
        if step.json_keys:
            problem = _json_shape(outcome.content, step.json_keys)
            if problem:
                return "bad", f"HTTP 200 after {outcome.seconds:.1f} s, {problem}"
        budget = step.latency_budget_s
        if budget is not None and outcome.seconds > budget:
            return "bad", (f"correct reply, but after {outcome.seconds:.1f} s, over the "
                           f"{budget:g} s latency budget")
    return "good", f"HTTP 200 after {outcome.seconds:.1f} s, checks passed"


def _json_shape(content: str, keys: Sequence[str]) -> str | None:
    text = content.strip()
    if text.startswith("```"):  # a fenced block is how many models answer "as JSON"
        text = text.strip("`").removeprefix("json").strip()
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError:
        return f"reply is not JSON: {content[:120]!r}"
    if not isinstance(value, dict):
        return f"reply is JSON but not an object: {content[:120]!r}"
    missing = [k for k in keys if k not in value]
    return f"JSON reply without key(s) {', '.join(missing)}" if missing else None


async def _quiet_until(moment: float, stop: asyncio.Event) -> bool:
    """Wait, sending nothing, until `moment` (monotonic); False when the run was stopped."""
    wait = moment - time.monotonic()
    if 0 < wait <= TICK_S:  # a plain timer: no task per arrival at a high rate; a stop within
        await asyncio.sleep(wait)  # it is seen when it ends, before anything starts
    elif wait > 0:
        try:
            await asyncio.wait_for(stop.wait(), timeout=wait)
        except TimeoutError:
            pass
    return not stop.is_set()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when it is installed: the driver's loop does the same work in about half the
    CPU, and its CPU is what the send lag is made of at a few hundred requests a second."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class JudgeFn(Protocol):
    """Decides the policy on a run: live (`final` False) on what it holds up to `now`, or
    on the whole run once it has ended."""

    def __call__(self, run: SoakRun, matches: list[Match], final: bool,
                 now: float | None = None) -> list[Decision]: ...


Progress = Callable[["SoakRun", float], None]


SETTLE_S = 0.5  # after a decision, what fails with its evidence lands before the rest is cut
OVERDUE = 1.5  # cut past this many times its path's known duration: hanging, not slow
TICK_S = 0.1  # how soon a new log match or a finished request reaches the judge
JUDGE_EVERY_S = 1.0  # with nothing new, the grid still moves on


class _LiveJudge:
    """The judge while the soak runs, called off the event loop (its own thread) so a slow
    call is never the requests' scheduling lag, and as soon as something new happened: a log
    match or a finished request; else every second. What it is given is complete up to the
    time taken here, in the loop, before the records are read."""

    def __init__(self, judge: JudgeFn, watcher: LogWatcher | None, run: SoakRun) -> None:
        self.judge, self.watcher, self.run = judge, watcher, run
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge")
        self.reporter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="progress")
        self.reporting: Future[None] | None = None
        self.last = -math.inf
        self.seen = (0, 0)

    def due(self) -> bool:
        fresh = (self.run.completed_count, self.watcher.count() if self.watcher else 0)
        return fresh != self.seen or time.monotonic() - self.last >= JUDGE_EVERY_S

    async def __call__(self) -> list[Decision]:
        run = self.run
        now = time.time()
        if self.watcher is not None:
            run.matches.extend(self.watcher.since(len(run.matches)))
        self.seen = (run.completed_count, len(run.matches))
        self.last = time.monotonic()
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, self.judge, run, run.matches, False, now)

    def report(self, progress: Progress, run: SoakRun, elapsed: float) -> None:
        """A progress line, written by a thread of its own (one at a time, never awaited)."""
        if self.reporting is None or self.reporting.done():
            self.reporting = self.reporter.submit(progress, run, elapsed)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.reporter.shutdown(wait=True)


class _Clients:
    """Several HTTP clients, each request on the next one. httpx's connection pool scans
    every connection it holds when a request starts and when one ends, so one pool of
    hundreds of connections costs every request O(connections): at 200 requests/s that scan
    was most of the driver's time. Shards keep each pool small; a slow path's hanging
    connections spread over them."""

    SHARDS = 16
    LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=8)

    def __init__(self) -> None:
        tls = httpx.create_ssl_context()  # loading the CA bundle once, not once a shard
        self._clients = [http.async_client(limits=self.LIMITS, verify=tls)
                         for _ in range(self.SHARDS)]
        self._next = 0

    def next(self) -> httpx.AsyncClient:
        client = self._clients[self._next]
        self._next = (self._next + 1) % len(self._clients)
        return client

    async def __aenter__(self) -> _Clients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(c.aclose() for c in self._clients), return_exceptions=True)


class SoakDriver:
    def __init__(self, endpoint: GatewayEndpoint, scenarios: Sequence[Scenario],
                 judge: JudgeFn, watcher: LogWatcher | None,
                 progress: Progress | None = None, progress_every_s: float = 10.0,
                 known_s: dict[str, float] | None = None,
                 decision_rolls_back: bool = False, records: Path | None = None) -> None:
        """`known_s`: how long an iteration of each path takes where it is known to work (the
        known-good's baseline); `decision_rolls_back`: a deciding trigger here means a
        rollback, so nothing in flight is worth waiting for once it has landed; `records`: a
        folder where each run writes its requests as they end (`<label>.jsonl`), keeping in
        memory only what `harness.soak.records` says (without it, every request stays)."""
        self.endpoint = endpoint
        self.scenarios = list(scenarios)
        self.judge = judge
        self.watcher = watcher
        self.progress = progress
        self.progress_every_s = progress_every_s
        self.known_s = dict(known_s or {})
        self.decision_rolls_back = decision_rolls_back
        self.records = records
        self.settle_s = SETTLE_S
        self._in_flight: dict[int, tuple[Iteration, asyncio.Task[Any]]] = {}
        self.current: SoakRun | None = None

    def run(self, label: str, window: Window, once: bool = False) -> SoakRun:
        """Soak for the window; with `once`, every scenario runs exactly one iteration per
        worker (open-model scenarios: one)."""
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(self._run(label, window, once))

    async def _run(self, label: str, window: Window, once: bool) -> SoakRun:
        async with _Clients() as client:  # ready before the schedule starts
            run = SoakRun(label=label, window=window, started=time.time(),
                          scenarios=list(self.scenarios), record_file=RequestFile(
                              self.records / f"{label}.jsonl") if self.records else None)
            self.current = run  # for a reader in another thread (a long soak's sampler)
            traffic_starts = time.monotonic() + window.delay_s  # the log is watched from now on
            window_closes = traffic_starts + window.window_s
            stop = asyncio.Event()
            loads = []
            for scenario in self.scenarios:
                if scenario.open_model and not once:
                    loads.append(self._arrivals(client, scenario, run, window_closes, stop))
                else:
                    workers = 1 if scenario.open_model else scenario.concurrency
                    loads.extend(self._worker(client, scenario, run, traffic_starts,
                                              window_closes, stop, once)
                                 for _ in range(workers))
            tasks = [asyncio.create_task(load) for load in loads]
            all_done = asyncio.gather(*tasks, return_exceptions=True)
            live = _LiveJudge(self.judge, self.watcher, run)
            try:
                await self._watch(run, live, all_done, stop, traffic_starts,
                                  window_closes + window.drain_s)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                live.close()
                run.close()
        if self.watcher is not None:
            self.watcher.poll()
        run.ended = time.time()
        run.matches = self.watcher.snapshot() if self.watcher is not None else []
        run.decisions = self.judge(run, run.matches, True)
        return run

    async def _watch(self, run: SoakRun, live: _LiveJudge, all_done: asyncio.Future[Any],
                     stop: asyncio.Event, traffic_starts: float, deadline: float) -> None:
        """Judge while the load runs, until it is done, the deadline, or a deciding trigger
        (then nothing new starts and what is in flight gets the grace)."""
        last_progress = time.monotonic()
        while not all_done.done():
            await asyncio.wait([all_done], timeout=TICK_S)
            if live.due():
                run.decisions = await live()
            if run.deciding() and run.stopped_by is None:
                run.stopped_by = run.deciding()[0].label
                run.decided_at = time.time()
                stop.set()
                grace_ends = min(time.monotonic() + run.window.stop_grace_s, deadline)
                # what fails with the evidence lands with it: its reply and its log line come
                # from one timeout, read by two pipelines a moment apart
                settled = min(time.monotonic() + self.settle_s, grace_ends)
                await self._until(all_done, settled)
                self._cut(run, time.time() + grace_ends - time.monotonic())
                await self._until(all_done, grace_ends)
                return
            now = time.monotonic()
            if now >= deadline:
                return
            if self.progress and now - last_progress >= self.progress_every_s:
                last_progress = now
                # its line reads the whole run so far: in a thread of its own, off the loop
                live.report(self.progress, run, now - traffic_starts)  # negative: still quiet

    @staticmethod
    async def _until(all_done: asyncio.Future[Any], moment: float) -> None:
        while not all_done.done() and time.monotonic() < moment:
            await asyncio.wait([all_done], timeout=max(0.0, moment - time.monotonic()))

    def _cut(self, run: SoakRun, grace_ends: float) -> None:
        """Cut at once, and record as cut by the decision, what is in flight and cannot
        finish within the grace: everything when the decision rolls back, else each
        iteration already past its path's known duration or known to need longer than the
        grace leaves. A path with no known duration keeps the grace."""
        assert run.stopped_by is not None
        now = time.time()
        for iteration, task in list(self._in_flight.values()):
            known = self.known_s.get(iteration.scenario, _longest(run, iteration.scenario))
            took = now - iteration.started
            if self.decision_rolls_back:
                why = "the decision rolls back"
            elif known is not None and took > known:
                why = f"past its path's known {known:.1f} s"
            elif known is not None and iteration.started + known > grace_ends:
                why = f"its path's known {known:.1f} s ends after the grace"
            else:
                continue
            iteration.cut_by = run.stopped_by
            iteration.overdue = known is not None and took > OVERDUE * known
            iteration.reason = f"cut by {run.stopped_by} after {took:.1f} s: {why}"
            task.cancel()

    async def _worker(self, client: _Clients, scenario: Scenario, run: SoakRun,
                      traffic_starts: float, window_closes: float, stop: asyncio.Event,
                      once: bool) -> None:
        if not await _quiet_until(traffic_starts, stop):
            return
        first = True
        while (first and once) or (not once and time.monotonic() < window_closes
                                   and not stop.is_set()):
            first = False
            await self._iterate(client, scenario, run, None)
            if scenario.pause_s and not once:
                await _quiet_until(time.monotonic() + scenario.pause_s, stop)

    async def _arrivals(self, client: _Clients, scenario: Scenario, run: SoakRun,
                        window_closes: float, stop: asyncio.Event) -> None:
        """Start iterations at a constant rate; never wait for replies to schedule the next."""
        assert scenario.rate_per_min is not None
        interval = 60.0 / scenario.rate_per_min
        # the schedule starts with the window, however late this task got going
        origin = window_closes - run.window.window_s
        in_flight: set[asyncio.Task[None]] = set()
        k = 0
        try:
            while not stop.is_set():
                due = origin + k * interval
                if due >= window_closes:
                    break
                if not await _quiet_until(due, stop):  # a stop wakes it at once
                    break
                k += 1
                if len(in_flight) >= scenario.max_in_flight:
                    run.dropped[scenario.id] = run.dropped.get(scenario.id, 0) + 1
                    continue
                lag = time.monotonic() - due
                due_at = time.time() - lag
                task = asyncio.create_task(self._iterate(client, scenario, run, lag, due_at))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            await asyncio.gather(*in_flight, return_exceptions=True)
        finally:
            for task in in_flight:
                task.cancel()

    async def _iterate(self, client: _Clients, scenario: Scenario, run: SoakRun,
                       lag: float | None, due_at: float | None = None) -> None:
        iteration = Iteration(scenario.id, run.count_of(scenario.id), time.time(), lag_s=lag,
                              due_at=due_at)
        run.start(iteration)
        task = asyncio.current_task()
        assert task is not None
        self._in_flight[id(iteration)] = (iteration, task)
        try:
            await self._stages(client, scenario, run, iteration)
        finally:
            del self._in_flight[id(iteration)]

    async def _stages(self, client: _Clients, scenario: Scenario, run: SoakRun,
                      iteration: Iteration) -> None:
        previous: list[Exchange] = []
        for stage in scenario.stages:
            previous = list(await asyncio.gather(*(
                self._exchange(client, scenario, run, iteration, step, previous)
                for step in stage)))
            failed = [x for x in previous if x.verdict == "bad"]
            if failed:
                run.end(iteration, "bad", "; ".join(f"{x.step}: {x.reason}" for x in failed))
                return
        run.end(iteration, "good", previous[-1].reason)

    async def _exchange(self, client: _Clients, scenario: Scenario, run: SoakRun,
                        iteration: Iteration, step: Step, previous: list[Exchange]) -> Exchange:
        nonce = new_nonce() if step.nonce else ""
        expected: tuple[str, ...] = (nonce,) if nonce else ()
        body = ""
        if step.chains:
            body = "\n\n".join(f"Reply from {x.outcome.agent}:\n{x.outcome.content}"
                               for x in previous)
            # the replies it embeds carry their own nonces: a faithful step quotes them too
            expected = (*(n for x in previous for n in x.expected), *expected)
        prompt = step.prompt.format(nonce=nonce, previous=body)
        if iteration.sent_at is None:
            iteration.sent_at = time.time()
            if iteration.due_at is not None:
                run.tally(scenario.id).send_lags.append(iteration.sent_at - iteration.due_at)
        outcome = await self.endpoint.chat(client.next(), step.agent, prompt, step.stream,
                                           step.timeout_s)
        verdict, reason = check(outcome, expected, step)
        exchange = Exchange(scenario.id, iteration.index, step.name, expected, outcome, verdict,
                            reason)
        run.record(iteration, exchange)
        return exchange

