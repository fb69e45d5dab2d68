"""An hour-long soak of the harness itself against the model lab: does it hold an hour?

The whole machinery of a real soak (the load driver with its live judge in a thread, the log
watcher, the shipped policy) runs for `--minutes` against the model lab directly, with the
lab's time scale (`--time-scale 0.1`: the slow reasoner's 70 s of silence take 7 s), a mix of
paths named as the shipped scenarios are (so the shipped policy's triggers apply to them),
and a log written beside it at `--lines-per-s` with a warning now and then, which the watcher
reads and the judge counts. Nothing in it is meant to fire: it measures the harness.

Every `--every-min` minutes, and at the end, it prints: the requests sent in the slice and
their rate, the send lag (how late each open-model request went out against its schedule)
p50/p99/max, the live judge's CPU in the slice as a share of the wall clock, its worst call,
and the harness's resident memory. Goals: judge CPU under 1 %, send lag p99 under 20 ms.

Run: `make soak-long` (60 minutes), `make soak-long MINUTES=5` to check it.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.judge import SHIPPED_POLICY
from harness.judge.judge import Judge
from harness.judge.policy import Decision, Window, load_policy, percentile
from harness.modellab import ModelLab
from harness.signals.logwatch import LogWatcher, Match
from harness.signals.signatures import OPENCLAW
from harness.soak.driver import SoakDriver, SoakRun
from harness.soak.scenarios import Scenario, load_scenarios
from harness.targets.client import GatewayEndpoint

LAG_GOAL_S = 0.020
JUDGE_CPU_GOAL = 0.01
WORST_GOAL_MS = 10.0
MIX = """
[[scenarios]]
id = "reply-quick"
kind = "reply"
agent = "fast-chat"
stream = true
rate_per_min = {rate}
max_in_flight = 200
latency_budget_s = 30
contains = ["Ack"]

[[scenarios]]
id = "reply-streaming"
kind = "reply"
agent = "steady"
stream = true
concurrency = 2

[[scenarios]]
id = "reply-plain"
kind = "reply"
agent = "slow-reasoner"
stream = false
concurrency = 2
timeout_s = 120

[[scenarios]]
id = "panel-3-reviewers"
kind = "panel"
reviewers = ["fast-chat", "steady", "fast-chat"]
synthesiser = "fast-chat"
stream = true
concurrency = 1
"""
WARNING = "2026-04-02T10:11:12.345+00:00 [plugins] amazon-bedrock failed to load"


class MeteredJudge:
    """The judge, with the CPU of each of its live calls (in the thread that makes them), and
    how much of it was the interpreter's garbage collection: a collection runs in whichever
    thread allocates when a threshold is crossed, and walks every object the soak keeps, the
    driver's included, so it is the process's pause, not the judge's work."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.calls: list[tuple[float, float]] = []  # (wall time, CPU s) per live call
        self.gc_in_calls: list[float] = []  # of each call's CPU, the collections' (s)
        # every full collection: (at, gen, s); the young ones are only counted (there are
        # tens a second: a list of them was most of what this meter's process grew by)
        self.pauses: list[tuple[float, int, float]] = []
        self.young = 0
        self._local = threading.local()

    def collected(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._local.began = time.thread_time()
            return
        took = time.thread_time() - getattr(self._local, "began", time.thread_time())
        if info["generation"] == 2:
            self.pauses.append((time.time(), info["generation"], took))
        else:
            self.young += 1
        if getattr(self._local, "in_call", False):
            self._local.gc += took

    def __call__(self, run: SoakRun, matches: list[Match], final: bool,
                 now: float | None = None) -> list[Decision]:
        self._local.in_call, self._local.gc = True, 0.0
        began = time.thread_time()
        try:
            decisions = self.judge(run, matches, final, now)
        finally:
            self._local.in_call = False
        if not final:
            self.calls.append((time.time(), time.thread_time() - began))
            self.gc_in_calls.append(self._local.gc)
        return decisions


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


class Sampler:
    """Resident memory every few seconds, and the log the gateway would write."""

    def __init__(self, log: Path, lines_per_s: float, warning_every: int) -> None:
        self.log, self.lines_per_s, self.warning_every = log, lines_per_s, warning_every
        self.rss: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def _run(self) -> None:
        n = 0
        rng = random.Random(1)
        with open(self.log, "a") as handle:
            while not self.stop.wait(1.0):
                for _ in range(int(self.lines_per_s)):
                    n += 1
                    line = WARNING if n % self.warning_every == 0 else (
                        f"2026-04-02T10:11:12.345+00:00 [gateway] request {n} done in "
                        f"{rng.randint(5, 900)} ms")
                    handle.write(line + "\n")
                handle.flush()
                self.rss.append((time.time(), resident_mb()))

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _mix(folder: Path, rate_per_s: float) -> list[Scenario]:
    (folder / "mix.toml").write_text(MIX.format(rate=min(rate_per_s * 60, 6000)))
    mix = load_scenarios(folder).scenarios
    # the file caps a path at 100 arrivals a second; the driver has no such cap
    return [replace(s, rate_per_min=rate_per_s * 60) if s.open_model else s for s in mix]


def _ms(values: list[float], pct: float) -> float:
    return 1000 * (percentile(values, pct) or 0.0)


class Counts:
    """Where each path's numbers stood at the end of the last slice: a slice reads what came
    since (the run keeps its numbers, not its requests, with a record file)."""

    def __init__(self) -> None:
        self.at: dict[str, tuple[int, int]] = {}  # path -> (iterations started, send lags)

    def since(self, run: SoakRun) -> tuple[int, list[float]]:
        """Iterations started and the open-model send lags since the last call."""
        started, lags = 0, []
        for sid, tally in list(run.tallies.items()):
            then_started, then_lags = self.at.get(sid, (0, 0))
            now_started, now_lags = tally.started, len(tally.send_lags)
            started += now_started - then_started
            lags.extend(tally.send_lags[then_lags:now_lags])
            self.at[sid] = (now_started, now_lags)
        return started, lags


def report_slice(label: str, run: SoakRun, judge: MeteredJudge, sampler: Sampler,
                 since: float, until: float, counts: Counts) -> dict[str, Any]:
    requests, lags = counts.since(run)
    calls = list(zip(list(judge.calls), list(judge.gc_in_calls), strict=False))
    cpu = sum(c for (at, c), _ in calls if since <= at < until)
    worst = max((c for (at, c), _ in calls if since <= at < until), default=0.0)
    worst_own = max((c - g for (at, c), g in calls if since <= at < until), default=0.0)
    full = [s for at, gen, s in list(judge.pauses) if gen == 2 and since <= at < until]
    rss = [mb for at, mb in list(sampler.rss) if since <= at < until]
    span = max(until - since, 1e-9)
    row = {"slice": label, "iterations": requests, "open_model_per_s": len(lags) / span,
           "lag_p50_ms": _ms(lags, 50), "lag_p99_ms": _ms(lags, 99),
           "lag_max_ms": 1000 * max(lags, default=0.0), "judge_cpu_share": cpu / span,
           "judge_worst_ms": 1000 * worst, "judge_worst_own_ms": 1000 * worst_own,
           "gc_full": len(full), "gc_full_worst_ms": 1000 * max(full, default=0.0),
           "rss_mb": rss[-1] if rss else resident_mb()}
    print(f"{label:>12} {requests:>10} {row['open_model_per_s']:>8.1f} "
          f"{row['lag_p50_ms']:>8.1f} {row['lag_p99_ms']:>8.1f} {row['lag_max_ms']:>8.1f} "
          f"{100 * row['judge_cpu_share']:>10.3f} {row['judge_worst_ms']:>9.1f} "
          f"{row['judge_worst_own_ms']:>9.1f} {row['gc_full']:>4} {row['gc_full_worst_ms']:>7.1f} "
          f"{row['rss_mb']:>8.0f}", flush=True)
    return row


def print_memory(rss: list[tuple[float, float]], started: float, window_s: float,
                 warm_up_s: float, recorded: bool) -> None:
    """Resident memory beside its goal: flat after the first slice (the warm-up: the live
    judge's windows filling, the interpreter's caches)."""
    during = [mb for at, mb in rss if at < started + window_s] or [rss[-1][1]]
    warm = [mb for at, mb in rss if at < started + warm_up_s] or during[:1]
    growth = during[-1] - warm[-1]
    kept = ("ended requests written to a record file" if recorded
            else "every request kept in memory (--in-memory)")
    print(f"resident memory ({kept}): {rss[0][1]:.0f} MB at the start, {warm[-1]:.0f} MB "
          f"after the first slice, {during[-1]:.0f} MB when the window closed: grew "
          f"{growth:.0f} MB after warm-up (goal: flat), "
          f"{growth / max(window_s - warm_up_s, 1) * 3600:.0f} MB an hour; "
          f"{max(mb for _, mb in rss):.0f} MB at most, {rss[-1][1]:.0f} MB at the end"
          + (" (the final judgement streams the record file)" if recorded else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--time-scale", type=float, default=0.1,
                        help="the model lab's: 0.1 makes the slow reasoner's 70 s take 7 s")
    parser.add_argument("--rate", type=float, default=10.0,
                        help="open-model arrivals a second on the quick path")
    parser.add_argument("--lines-per-s", type=float, default=20.0)
    parser.add_argument("--warning-every", type=int, default=500, help="lines")
    parser.add_argument("--every-min", type=float, default=5.0, help="minutes a slice")
    parser.add_argument("--in-memory", action="store_true",
                        help="keep every request in memory, as before record files (to compare)")
    args = parser.parse_args()
    for option in ("minutes", "time_scale", "rate", "lines_per_s", "warning_every",
                   "every_min"):
        value = getattr(args, option)
        if not (value > 0 and value != float("inf")):
            print(f"soak-long: --{option.replace('_', '-')}: expected a positive number, got "
                  f"{value!r}", file=sys.stderr)
            raise SystemExit(20)  # bad input
    policy = load_policy(SHIPPED_POLICY)
    window_s = args.minutes * 60
    print(f"soak-long: {args.minutes:g} min against the model lab (time scale "
          f"{args.time_scale:g}), quick path {args.rate:g}/s open model plus steady, slow "
          f"reasoner and panel paths; a log at {args.lines_per_s:g} lines/s; shipped policy "
          f"'{policy.name}' judged live")
    print(f"{'minutes':>12} {'iterations':>10} {'sent/s':>8} {'lag p50':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'judge CPU%':>10} {'worst ms':>9} {'w/o GC':>9} {'full GC':>12} "
          f"{'RSS MB':>8}")
    with tempfile.TemporaryDirectory() as tmp, \
            ModelLab(time_scale=args.time_scale) as lab:
        folder = Path(tmp)
        log = folder / "gateway.log"
        log.write_text("")
        judge = MeteredJudge(Judge(policy))
        gc.callbacks.append(judge.collected)
        watcher = LogWatcher.from_end(log, OPENCLAW + policy.signatures)
        endpoint = GatewayEndpoint(lab.url, "soak-long", {}, "/v1/chat/completions", "")
        driver = SoakDriver(endpoint, _mix(folder, args.rate), judge, watcher,
                            records=None if args.in_memory else folder / "requests")
        counts = Counts()
        rows: list[dict[str, Any]] = []
        started = time.time()
        slices = threading.Event()

        def every() -> None:
            k = 1
            while not slices.wait(max(0.0, started + k * args.every_min * 60 - time.time())):
                until = started + k * args.every_min * 60
                if driver.current is not None:
                    rows.append(report_slice(
                        f"{(k - 1) * args.every_min:g}-{k * args.every_min:g}", driver.current,
                        judge, sampler, until - args.every_min * 60, until, counts))
                k += 1

        with Sampler(log, args.lines_per_s, args.warning_every) as sampler, watcher:
            reporter = threading.Thread(target=every, daemon=True)
            reporter.start()
            try:
                run = driver.run("soak-long", Window(window_s, 10.0, stop_grace_s=5.0))
            finally:
                slices.set()
                reporter.join()
        wall = run.ended - run.started
        print()
        whole = report_slice("whole", run, judge, sampler, run.started, run.started + window_s,
                             Counts())
        began = time.process_time()
        judge.judge(run, run.matches, True)
        final_s = time.process_time() - began
        deciding = [d.label for d in run.decisions if d.decides]
        rss = [mb for _, mb in sampler.rss]
        print(f"\n{sum(t.started for t in run.tallies.values())} iterations, "
              f"{run.request_count()} requests, "
              f"{watcher.line_count} log lines ({len(run.matches)} matches) in {wall / 60:.1f} "
              f"min; deciding triggers: {', '.join(deciding) or 'none'}")
        print(f"judge CPU {100 * whole['judge_cpu_share']:.3f} % of the wall clock over "
              f"{len(judge.calls)} live calls (goal < {100 * JUDGE_CPU_GOAL:g} %), worst call "
              f"{whole['judge_worst_ms']:.1f} ms (goal < {WORST_GOAL_MS:g} ms), "
              f"{whole['judge_worst_own_ms']:.1f} ms without the garbage collections that ran "
              f"in it; final judgement {final_s:.2f} s CPU")
        print(f"full garbage collections: {whole['gc_full']}, the longest "
              f"{whole['gc_full_worst_ms']:.1f} ms (they walk every object the soak keeps); "
              f"{judge.young} young ones")
        print(f"send lag p99 {whole['lag_p99_ms']:.1f} ms (goal < {1000 * LAG_GOAL_S:g} ms), "
              f"max {whole['lag_max_ms']:.1f} ms")
        if rss:
            print_memory(sampler.rss, run.started, window_s, args.every_min * 60,
                         run.record_file is not None)


if __name__ == "__main__":
    main()
