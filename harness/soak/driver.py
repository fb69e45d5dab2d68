"""The soak load driver: every scenario at once, in one process, judged while it runs.

Workers per scenario start iterations until the window closes; in-flight work may finish during
the drain. Every second the policy's triggers are evaluated against the log watcher's matches
and the bad replies so far; a deciding trigger stops the soak at once, with its reason.
A reply is good only if it carries the nonces of its request: a gateway that times out answers
HTTP 200 with an apology, so status codes alone prove nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx

from harness.nonce import new_nonce
from harness.policy import Decision, Event, Trigger, Window, evaluate
from harness.signals.logwatch import LogWatcher, Match
from harness.soak.scenarios import Scenario
from harness.target.client import ChatOutcome, GatewayEndpoint


@dataclass
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
                "excerpt": o.content[:160]}


@dataclass
class Iteration:
    scenario: str
    index: int
    started: float
    ended: float = 0.0
    verdict: str = "cut"  # good | bad | cut (stopped by the end of the drain or a trigger)
    reason: str = "not finished"
    exchanges: list[Exchange] = field(default_factory=list)


@dataclass
class SoakRun:
    label: str
    window: Window
    started: float
    ended: float = 0.0
    iterations: list[Iteration] = field(default_factory=list)
    matches: list[Match] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    stopped_by: str | None = None
    scenario_ids: list[str] = field(default_factory=list)

    def of(self, scenario: str) -> list[Iteration]:
        return [i for i in self.iterations if i.scenario == scenario]

    def exchanges(self) -> list[Exchange]:
        return [x for i in self.iterations for x in i.exchanges]

    def deciding(self) -> list[Decision]:
        return [d for d in self.decisions if d.decides]

    def stats(self, scenario: str) -> dict[str, object]:
        its = self.of(scenario)
        seconds = sorted(x.outcome.seconds for i in its for x in i.exchanges)
        return {
            "iterations": len(its),
            "good": sum(i.verdict == "good" for i in its),
            "bad": sum(i.verdict == "bad" for i in its),
            "cut": sum(i.verdict == "cut" for i in its),
            "requests": len(seconds),
            "p50_s": _percentile(seconds, 50), "p95_s": _percentile(seconds, 95),
            "max_s": round(seconds[-1], 3) if seconds else None,
        }


def _percentile(values: Sequence[float], pct: float) -> float | None:
    if not values:
        return None
    rank = max(0, min(len(values) - 1, round(pct / 100 * len(values) + 0.5) - 1))
    return round(values[rank], 3)


def check(outcome: ChatOutcome, expected: Sequence[str]) -> tuple[str, str]:
    if outcome.error:
        return "bad", f"transport error after {outcome.seconds:.1f} s: {outcome.error}"
    if outcome.status != 200:
        return "bad", (f"HTTP {outcome.status} after {outcome.seconds:.1f} s: "
                       f"{outcome.content[:120]}")
    missing = [n for n in expected if n not in outcome.content]
    if missing:
        return "bad", (f"HTTP 200 after {outcome.seconds:.1f} s without nonce "
                       f"{', '.join(missing)}: {outcome.content[:120]!r}")
    return "good", f"HTTP 200 after {outcome.seconds:.1f} s, nonce present"


def judge(triggers: Sequence[Trigger], run: SoakRun, matches: Sequence[Match],
          scenarios: Sequence[str]) -> list[Decision]:
    decisions = []
    for trigger in triggers:
        if trigger.kind == "log":
            events = [
                Event(m.seen, m.run_id or f"line-{m.line_no}", None, m.line) for m in matches
                if m.klass in trigger.classes or m.signature in trigger.signatures
            ]
            decisions.append(evaluate(trigger, events))
            continue
        bad = [Event(x.outcome.ended, f"{x.scenario}#{x.iteration}/{x.step}", x.scenario,
                     f"{x.scenario} {x.step}: {x.reason}")
               for x in run.exchanges() if x.verdict == "bad"]
        if trigger.per_scenario:
            decisions.extend(evaluate(trigger, [e for e in bad if e.scenario == sid], sid)
                             for sid in scenarios)
        else:
            decisions.append(evaluate(trigger, bad))
    return decisions


Progress = Callable[[SoakRun, float], None]


class SoakDriver:
    def __init__(self, endpoint: GatewayEndpoint, scenarios: Sequence[Scenario],
                 triggers: Sequence[Trigger], watcher: LogWatcher | None,
                 progress: Progress | None = None, progress_every_s: float = 10.0) -> None:
        self.endpoint = endpoint
        self.scenarios = list(scenarios)
        self.triggers = list(triggers)
        self.watcher = watcher
        self.progress = progress
        self.progress_every_s = progress_every_s

    def run(self, label: str, window: Window, once: bool = False) -> SoakRun:
        """Soak for the window; with `once`, every worker runs exactly one iteration."""
        return asyncio.run(self._run(label, window, once))

    async def _run(self, label: str, window: Window, once: bool) -> SoakRun:
        run = SoakRun(label=label, window=window, started=time.time(),
                      scenario_ids=[s.id for s in self.scenarios])
        window_closes = time.monotonic() + window.window_s
        stop = asyncio.Event()
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
        async with httpx.AsyncClient(limits=limits) as client:
            workers = [
                asyncio.create_task(self._worker(client, scenario, run, window_closes, stop, once))
                for scenario in self.scenarios for _ in range(scenario.concurrency)
            ]
            all_done = asyncio.gather(*workers, return_exceptions=True)
            deadline = window_closes + window.drain_s
            last_progress = time.monotonic()
            while not all_done.done():
                await asyncio.wait([all_done], timeout=1.0)
                run.decisions = self._judge(run)
                if run.deciding() and run.stopped_by is None:
                    run.stopped_by = run.deciding()[0].trigger.name
                    stop.set()
                    break
                now = time.monotonic()
                if now >= deadline:
                    break
                if self.progress and now - last_progress >= self.progress_every_s:
                    last_progress = now
                    self.progress(run, now - (window_closes - window.window_s))
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        if self.watcher is not None:
            self.watcher.poll()
        run.ended = time.time()
        run.matches = self.watcher.snapshot() if self.watcher is not None else []
        run.decisions = self._judge(run)
        return run

    def _judge(self, run: SoakRun) -> list[Decision]:
        matches = self.watcher.snapshot() if self.watcher is not None else []
        return judge(self.triggers, run, matches, [s.id for s in self.scenarios])

    async def _worker(self, client: httpx.AsyncClient, scenario: Scenario, run: SoakRun,
                      window_closes: float, stop: asyncio.Event, once: bool) -> None:
        first = True
        while (first and once) or (not once and time.monotonic() < window_closes
                                   and not stop.is_set()):
            first = False
            iteration = Iteration(scenario.id, len(run.of(scenario.id)), time.time())
            run.iterations.append(iteration)
            if scenario.kind == "reply":
                await self._reply(client, scenario, iteration)
            else:
                await self._panel(client, scenario, iteration)
            iteration.ended = time.time()
            if scenario.pause_s:
                await asyncio.sleep(scenario.pause_s)

    async def _exchange(self, client: httpx.AsyncClient, scenario: Scenario, iteration: Iteration,
                        step: str, agent: str, prompt: str, expected: tuple[str, ...]) -> Exchange:
        outcome = await self.endpoint.chat(client, agent, prompt, scenario.stream,
                                           scenario.timeout_s)
        verdict, reason = check(outcome, expected)
        exchange = Exchange(scenario.id, iteration.index, step, expected, outcome, verdict, reason)
        iteration.exchanges.append(exchange)
        return exchange

    async def _reply(self, client: httpx.AsyncClient, scenario: Scenario,
                     iteration: Iteration) -> None:
        nonce = new_nonce()
        prompt = (f"Answer in one short sentence and quote the reference tag {nonce} verbatim. "
                  "What is a good habit before upgrading a service?")
        exchange = await self._exchange(client, scenario, iteration, "reply", scenario.agent,
                                        prompt, (nonce,))
        iteration.verdict, iteration.reason = exchange.verdict, exchange.reason

    async def _panel(self, client: httpx.AsyncClient, scenario: Scenario,
                     iteration: Iteration) -> None:
        nonces = {agent: new_nonce() for agent in scenario.reviewers}
        reviews = await asyncio.gather(*(
            self._exchange(client, scenario, iteration, f"review:{agent}", agent,
                           f"Review this change and quote the reference tag {nonce} verbatim: "
                           "raise the gateway's idle-stream timeout to 60 seconds.", (nonce,))
            for agent, nonce in nonces.items()
        ))
        own = new_nonce()
        body = "\n\n".join(f"Review by {x.outcome.agent}:\n{x.outcome.content}" for x in reviews)
        prompt = (f"Synthesise these reviews into one verdict. Quote every reference tag, and "
                  f"the tag {own}.\n\n{body}")
        synthesis = await self._exchange(client, scenario, iteration,
                                         f"synthesis:{scenario.synthesiser}",
                                         scenario.synthesiser, prompt,
                                         (*nonces.values(), own))
        failed = [x for x in (*reviews, synthesis) if x.verdict == "bad"]
        if failed:
            iteration.verdict = "bad"
            iteration.reason = "; ".join(f"{x.step}: {x.reason}" for x in failed)
        else:
            iteration.verdict, iteration.reason = "good", synthesis.reason
