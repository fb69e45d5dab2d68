"""The judge's cost on simulated soaks: the shipped policy against a synthetic run, live (one
call a second of simulated time, as the driver calls it at least) and at the end.

A simulated soak is what a healthy candidate produces: requests on several paths at a steady
rate with realistic latencies, a few bad ones, a few error lines in the log, and a baseline
like it, so no trigger fires and the soak would run to its end. The clock is the simulation's,
so ten hours cost seconds; what is measured is the judge's own CPU time (its thread's, so
other work on a shared machine does not count). The interpreter's full garbage collections
are the process's cost, not the judge's (their pause grows with everything a long soak holds):
they are taken out of the call they happened in and shown beside it.
"""

from __future__ import annotations

import gc
import heapq
import random
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from harness.common.nonce import new_nonce
from harness.judge.judge import Evaluation, Judge
from harness.judge.policy import Policy, Window, load_policy, percentile
from harness.signals.logwatch import Match
from harness.soak.driver import Exchange, Iteration, SoakRun
from harness.soak.records import RequestFile
from harness.soak.scenarios import Scenario
from harness.targets.client import ChatOutcome

SHIPPED_POLICY = Path(__file__).parents[1] / "scenarios" / "policy.toml"
PATHS = ("reply-plain", "reply-quick", "reply-streaming", "panel-3-reviewers", "triage")


def simulated(seconds: float, requests: int, seed: int = 1, label: str = "soak"
              ) -> tuple[SoakRun, list[tuple[float, int, str, object]], list[Match]]:
    """A soak of `requests` one-request iterations spread over `seconds`: the run (empty),
    what happens to it in time order, and the log's matches."""
    rng = random.Random(seed)
    run = SoakRun(label, Window(seconds, 0.0), 1_000.0,
                  scenarios=[Scenario(sid, "reply", ()) for sid in PATHS])
    happenings: list[tuple[float, int, str, object]] = []
    for n in range(requests):
        sid = PATHS[n % len(PATHS)]
        at = run.started + seconds * n / requests
        took = rng.lognormvariate(1.5, 0.5)  # about 4.5 s, a long tail
        verdict = "bad" if n % 5000 == 4999 else "good"  # rarer than any trigger's count
        iteration = Iteration(sid, n // len(PATHS), at)
        x = Exchange(sid, iteration.index, "reply", (), ChatOutcome(
            "m", False, 200, "", at, at + 0.1, at + took), verdict, verdict)
        happenings += [(at, 3 * n, "start", iteration), (at + took, 3 * n + 1, "x", (iteration, x)),
                       (at + took, 3 * n + 2, "end", iteration)]
    happenings.sort(key=lambda h: (h[0], h[1]))
    lines = max(1, requests // 500)  # an error line now and then, as the baseline has them
    matches = [Match(run.started + seconds * (k + 1) / lines, k + 1, "lab-error", "error",
                     None, "error", None) for k in range(lines)]
    return run, happenings, matches


def _apply(run: SoakRun, happening: tuple[float, int, str, object]) -> None:
    at, _, kind, what = happening
    if kind == "start":
        run.start(what)  # type: ignore[arg-type]
    elif kind == "x":
        run.record(*what)  # type: ignore[misc]
    else:
        iteration: Iteration = what  # type: ignore[assignment]
        run.end(iteration, iteration.exchanges[0].verdict, "", at=at)


def _finished(seconds: float, requests: int, seed: int, label: str) -> SoakRun:
    run, happenings, matches = simulated(seconds, requests, seed, label)
    for happening in happenings:
        _apply(run, happening)
    run.ended = run.started + seconds + 60
    run.matches = matches
    return run


def live_cost(policy: Policy, minutes: float, per_s: float) -> dict[str, float]:
    """The live judge over a whole simulated soak, called every simulated second."""
    seconds = minutes * 60
    baseline = _finished(600, int(600 * per_s), 2, "baseline")
    run, happenings, matches = simulated(seconds, int(seconds * per_s), 1)
    judge = Judge(policy, baseline)
    calls: list[float] = []
    pauses: list[float] = []  # the interpreter's full collections: the process's, not the judge's
    began_gc = [0.0]

    def collected(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began_gc[0] = time.perf_counter()
        elif info["generation"] == 2:
            pauses.append(time.perf_counter() - began_gc[0])

    gc.callbacks.append(collected)
    k = m = 0
    moment = run.started
    while moment < run.started + seconds + 60:
        moment += 1.0
        while k < len(happenings) and happenings[k][0] <= moment:
            _apply(run, happenings[k])
            k += 1
        while m < len(matches) and matches[m].seen <= moment:
            run.matches.append(matches[m])
            m += 1
        began, pauses_before = time.thread_time(), sum(pauses)
        decisions = judge(run, run.matches, False, moment)
        calls.append(time.thread_time() - began - (sum(pauses) - pauses_before))
        assert not any(d.decides for d in decisions), [d.as_dict() for d in decisions if d.decides]
    gc.callbacks.remove(collected)
    return {"gc_full": len(pauses), "gc_worst_ms": 1000 * max(pauses, default=0.0),
            "requests": len(run.completed), "calls": len(calls), "total_s": sum(calls),
            "worst_ms": 1000 * max(calls), "p99_ms": 1000 * (percentile(calls, 99) or 0),
            "cpu_pct": 100 * sum(calls) / (seconds + 60)}


def final_cost(policy: Policy, requests: int, seconds: float = 600) -> float:
    baseline = _finished(600, 600, 2, "baseline")
    run = _finished(seconds, requests, 1, "soak")
    began = time.thread_time()
    Judge(policy, baseline)(run, run.matches, True)
    return time.thread_time() - began


def final_cost_from_file(policy: Policy, requests: int, folder: Path,
                         seconds: float = 600) -> dict[str, tuple[float, float]]:
    """The final judgement of a soak whose ended requests went to a record file (as a real
    soak's do): streamed from the file as the judge does it, and, beside it, the file read
    back whole first (as it was before). Each one's CPU, and the most Python heap it held
    (a second run, traced: tracing slows it down)."""
    run = SoakRun("soak", Window(seconds, 0.0), 1_000.0,
                  scenarios=[Scenario(sid, "reply", ()) for sid in PATHS],
                  record_file=RequestFile(folder / "soak.jsonl"))
    for at, kind, what in _arrivals(seconds, requests, 1, run):
        _arrive(run, kind, what, at)
    run.close()
    run.ended = run.started + seconds + 60
    baseline = _finished(600, 600, 2, "baseline")

    def streamed() -> None:
        Judge(policy, baseline)(run, run.matches, True)

    def whole() -> None:
        evaluation = Evaluation(Judge(policy, baseline), run)
        evaluation.take_all(run.matches)  # every iteration read back at once, then judged
        evaluation.advance(run.ended, final=True)

    out = {}
    for label, judged in (("streamed", streamed), ("whole", whole)):
        began = time.thread_time()
        judged()
        cpu = time.thread_time() - began
        tracemalloc.start()
        try:
            judged()
            out[label] = (cpu, tracemalloc.get_traced_memory()[1] / 2**20)
        finally:
            tracemalloc.stop()
    return out


def report(sizes: list[int], minutes: list[float], per_s: float) -> None:
    policy = load_policy(SHIPPED_POLICY)
    print(f"\n2. the judge's cost, shipped policy ({len(policy.triggers)} triggers), "
          "simulated soaks, judge CPU only")
    print(f"{'final judgement of a 600 s soak':<44} {'CPU s':>9}   goal")
    for n in sizes:
        goal = "< 2 s" if n == 100_000 else ""
        print(f"{f'  {n:,} requests':<44} {final_cost(policy, n):>9.3f}   {goal}")
    with tempfile.TemporaryDirectory() as folder:
        n = max(sizes)
        costs = final_cost_from_file(policy, n, Path(folder))
        for label, what in (("streamed", "streamed from its record file"),
                            ("whole", "its record file read back whole (before)")):
            cpu, peak = costs[label]
            goal = "< 2 s" if n == 100_000 and label == "streamed" else ""
            print(f"{f'  {n:,} requests, {what}':<44} {cpu:>9.3f}   {goal:<6} "
                  f"(Python heap at most {peak:.1f} MB)")
    print(f"{f'live judge at {per_s:g} requests/s, a call a second':<44} {'calls':>9} "
          f"{'total s':>8} {'CPU %':>6} {'p99 ms':>7} {'worst ms':>9}   goal"
          "   (full GC: count, worst ms)")
    for minute in minutes:
        cost = live_cost(policy, minute, per_s)
        goal = "worst < 10 ms, CPU < 1 %" if minute >= 60 else ""
        what = f"  {minute:g} min ({int(cost['requests']):,} requests)"
        print(f"{what:<44} "
              f"{int(cost['calls']):>9} {cost['total_s']:>8.2f} {cost['cpu_pct']:>6.3f} "
              f"{cost['p99_ms']:>7.2f} {cost['worst_ms']:>9.2f}   {goal:<26}"
              f"({int(cost['gc_full'])}, {cost['gc_worst_ms']:.0f})")


def _arrivals(seconds: float, requests: int, seed: int, run: SoakRun
              ) -> Iterator[tuple[float, str, object]]:
    """`simulated`'s soak made as it goes (so the bench holds only what the run keeps): each
    request starts, ends, and its iteration ends, in time order."""
    rng = random.Random(seed)
    pending: list[tuple[float, int, Iteration, Exchange]] = []
    for n in range(requests):
        at = run.started + seconds * n / requests
        while pending and pending[0][0] <= at:
            ends, _, iteration, x = heapq.heappop(pending)
            yield ends, "x", (iteration, x)
        sid = PATHS[n % len(PATHS)]
        took = rng.lognormvariate(1.5, 0.5)
        verdict = "bad" if n % 5000 == 4999 else "good"
        iteration = Iteration(sid, run.count_of(sid), at)
        yield at, "start", iteration
        x = Exchange(sid, iteration.index, "reply", (new_nonce(),), ChatOutcome(
            "fast-chat", True, 200, "Ack " * 40, at, at + 0.1, at + took), verdict,
            f"HTTP 200 after {took:.1f} s, checks passed")
        heapq.heappush(pending, (at + took, n, iteration, x))
    while pending:
        ends, _, iteration, x = heapq.heappop(pending)
        yield ends, "x", (iteration, x)



def _arrive(run: SoakRun, kind: str, what: object, at: float) -> None:
    """One arrival of _arrivals: a request that starts, or one that ends with its exchange."""
    if kind == "start":
        run.start(what)  # type: ignore[arg-type]
    else:
        iteration, x = what  # type: ignore[misc]
        run.record(iteration, x)
        run.end(iteration, x.verdict, x.reason, at=at)

def kept_in_memory(policy: Policy, minutes: float, per_s: float, records: Path | None,
                   every_min: float) -> list[float]:
    """A simulated soak judged live, a call a second: the Python heap it holds (MB, traced)
    every `every_min` simulated minutes; with `records`, ended iterations go to a file."""
    seconds = minutes * 60
    tracemalloc.start()
    try:
        run = SoakRun("soak", Window(seconds, 0.0), 1_000.0,
                      scenarios=[Scenario(sid, "reply", ()) for sid in PATHS],
                      record_file=RequestFile(records / "soak.jsonl") if records else None)
        judge = Judge(policy)
        held: list[float] = []
        moment = run.started
        for at, kind, what in _arrivals(seconds, int(seconds * per_s), 1, run):
            while moment + 1.0 <= at:
                moment += 1.0
                judge(run, run.matches, False, moment)
                if (moment - run.started) % (every_min * 60) == 0:
                    held.append(tracemalloc.get_traced_memory()[0] / 2**20)
            _arrive(run, kind, what, at)
        run.close()
        return held
    finally:
        tracemalloc.stop()


def memory_report(minutes: float, per_s: float, every_min: float, folder: Path) -> None:
    policy = load_policy(SHIPPED_POLICY)
    marks = [f"{every_min * (k + 1):g} min" for k in range(int(minutes // every_min))]
    print(f"\n4. what a soak holds: a simulated {minutes:g}-minute soak at {per_s:g} requests/s "
          "judged live (shipped policy), Python heap traced, MB")
    print(f"{'':<34}" + "".join(f"{m:>9}" for m in marks) + "   goal")
    for label, records in (("every request in memory (before)", None),
                           ("ended requests to a record file", folder)):
        held = kept_in_memory(policy, minutes, per_s, records, every_min)
        goal = "flat after warm-up" if records else ""
        print(f"{label:<34}" + "".join(f"{mb:>9.1f}" for mb in held) + f"   {goal}")
