"""Benchmarks of the soak machinery, measured in one run and printed side by side, each figure
beside its goal.

1. Load driver: an open-model scenario at several requested arrival rates against the model
   lab directly (no gateway): the rate requests were *sent* at (handed to the HTTP client, not
   scheduled), and the send lag (how late each went out against its schedule) beside the
   scheduler's own wake-up lag; the saturation point is the highest rate held with send-lag
   p99 under 20 ms, nothing dropped.
2. The judge's cost on simulated soaks under the shipped policy (see `bench.judge`).
3. Line -> decision: failover lines written into a log while a real soak runs under the shipped
   policy (`scenarios/policy.toml`, its own 5 s evaluation interval), from the line that
   completes the burst being written to the judge deciding; beside it the same on the grid
   alone, as the judge decided before it evaluated on arrival.
4. What a simulated soak holds in memory over time, every request kept against a record file;
   and the harness's resident memory after all of it.

Numbers, not pass/fail: these machines are shared and noisy, so no threshold is asserted.
Run with `make bench`.
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from bench.judge import SHIPPED_POLICY, memory_report
from bench.judge import report as judge_report
from harness.judge.judge import Judge
from harness.judge.policy import Window, load_policy, percentile
from harness.modellab import ModelLab
from harness.signals.logwatch import LogWatcher
from harness.signals.signatures import OPENCLAW
from harness.soak.driver import SoakDriver, SoakRun
from harness.soak.scenarios import Scenario, load_scenarios
from harness.targets.client import GatewayEndpoint

LINE = ("2026-04-02T10:11:12.345+00:00 [agent/embedded] embedded run failover decision: "
        "runId=bench-{n} stage=assistant decision=surface_error reason=timeout "
        "provider=lab/slow-reasoner profile=-")

NEVER_FIRES = """
[policy]
name = "bench"
[soak]
window_s = 1
drain_s = 5
[watch]
window_s = 1
drain_s = 5
[[triggers]]
name = "failovers"
kind = "log"
classes = ["failover"]
count = 1000000
"""
SEND_LAG_GOAL_S = 0.020


def _arrivals(folder: Path, rate_per_min: float, in_flight: int) -> list[Scenario]:
    """One open-model fast-chat path. A scenario file caps a path at 100 arrivals a second
    and 1000 in flight; the driver has no such cap, and the bench asks it for more."""
    scenarios = Path(tempfile.mkdtemp(dir=folder))
    (scenarios / "bench.toml").write_text("""
[[scenarios]]
id = "arrivals"
kind = "reply"
agent = "fast-chat"
rate_per_min = 60
timeout_s = 30
""")
    loaded = load_scenarios(scenarios).scenarios
    return [replace(s, rate_per_min=rate_per_min, max_in_flight=in_flight) for s in loaded]


def _endpoint(lab: ModelLab) -> GatewayEndpoint:
    return GatewayEndpoint(lab.url, "bench", {}, "/v1/chat/completions", "")


def _ms(values: list[float], pct: float) -> float:
    return 1000 * (percentile(values, pct) or 0.0)


def driver_rates(lab: ModelLab, folder: Path, rates: list[float], seconds: float) -> None:
    print(f"\n1. load driver at a requested arrival rate (open model, {seconds:g} s each, "
          "fast-chat on the model lab)")
    print(f"{'requested/s':>12} {'sent/s':>8} {'ratio':>6} {'good':>6} {'dropped':>8} "
          f"{'send lag p50 ms':>16} {'p99 ms':>7} {'scheduler p99 ms':>17}")
    policy_file = folder / "never-fires.toml"
    policy_file.write_text(NEVER_FIRES)
    policy = load_policy(policy_file)
    held = None
    for rate in rates:
        scenarios = _arrivals(folder, rate * 60, in_flight=10000)
        driver = SoakDriver(_endpoint(lab), scenarios, Judge(policy), None)
        run = driver.run("bench", Window(seconds, 30.0))
        its = run.of("arrivals")
        origin = min((i.due_at for i in its if i.due_at is not None), default=run.started)
        sent = sum(i.sent_at is not None and i.sent_at <= origin + seconds for i in its)
        send_lags = [i.send_lag_s for i in its if i.send_lag_s is not None]
        woke = [i.lag_s for i in its if i.lag_s is not None]
        dropped = run.dropped.get("arrivals", 0)
        print(f"{rate:>12g} {sent / seconds:>8.1f} {sent / seconds / rate:>6.3f} "
              f"{sum(i.verdict == 'good' for i in its):>6} {dropped:>8} "
              f"{_ms(send_lags, 50):>16.1f} {_ms(send_lags, 99):>7.1f} {_ms(woke, 99):>17.1f}")
        if (percentile(send_lags, 99) or 0) < SEND_LAG_GOAL_S and not dropped \
                and sent / seconds >= 0.95 * rate:
            held = rate
    print(f"saturation point (highest rate with send-lag p99 < 20 ms, all sent): "
          f"{f'{held:g}' if held is not None else 'none'} requests/s    goal: 200 requests/s held")


class _TimedJudge:
    """The judge, noting when it first decided (in the live judge's own thread)."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.decided: float | None = None

    def __call__(self, run: SoakRun, matches: list, final: bool,
                 now: float | None = None) -> list:
        decisions = self.judge(run, matches, final, now)
        if not final and self.decided is None and any(d.decides for d in decisions):
            self.decided = time.time()
        return decisions


def _decision_lag(lab: ModelLab, folder: Path, on_arrival: bool, seed: int
                  ) -> tuple[float | None, list[float]]:
    """One soak under the shipped policy: three failover lines of distinct runs a moment
    apart at a random time; (third line written -> decision, [written -> watcher has it])."""
    policy = load_policy(SHIPPED_POLICY)
    scenarios = _arrivals(folder, 120, in_flight=100)
    log = folder / f"gateway-{seed}.log"
    log.write_text("")
    rng = random.Random(seed)
    written: list[float] = []

    def write() -> None:
        time.sleep(rng.uniform(0.5, 5.5))
        for n in range(3):
            with open(log, "a") as handle:
                handle.write(LINE.format(n=f"{seed}-{n}") + "\n")
            written.append(time.time())
            time.sleep(0.1)

    timed = _TimedJudge(Judge(policy, on_arrival=on_arrival))
    watcher = LogWatcher.from_end(log, OPENCLAW)
    driver = SoakDriver(_endpoint(lab), scenarios, timed, watcher)
    writer = threading.Thread(target=write)
    writer.start()
    with watcher:
        driver.run("bench", Window(14.0, 5.0, stop_grace_s=policy.soak.stop_grace_s))
    writer.join()
    seen = [m.seen - w for m, w in zip(watcher.snapshot(), written, strict=True)]
    return (timed.decided - written[-1] if timed.decided else None), seen


def line_to_decision(lab: ModelLab, folder: Path, trials: int, grid_trials: int) -> None:
    policy = load_policy(SHIPPED_POLICY)
    burst = next(t for t in policy.triggers if t.kind == "log")
    print(f"\n3. line -> decision under the shipped policy: '{burst.name}' "
          f"({burst.describe()}, every {burst.interval_s:g} s); "
          "the lines written at random moments during a soak")
    print(f"{'':<46} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'soaks':>6}   goal")
    seen_all: list[float] = []
    for label, on_arrival, n in (("evaluated on arrival", True, trials),
                                 ("on the grid alone (before)", False, grid_trials)):
        lags: list[float] = []
        for k in range(n):
            lag, seen = _decision_lag(lab, folder, on_arrival, 100 * on_arrival + k)
            seen_all += seen
            if lag is not None:
                lags.append(lag)
        goal = "p99 < 500 ms" if on_arrival else ""
        print(f"{'written -> decision, ' + label:<46} {_ms(lags, 50):>8.0f} "
              f"{_ms(lags, 99):>8.0f} {1000 * max(lags, default=0):>8.0f} {len(lags):>6}   "
              f"{goal}" + (f"  ({n - len(lags)} never decided)" if len(lags) < n else ""))
    print(f"{'of which written -> watcher has it':<46} {_ms(seen_all, 50):>8.0f} "
          f"{_ms(seen_all, 99):>8.0f} {1000 * max(seen_all, default=0):>8.0f}")


def memory(minutes: float, per_s: float, folder: Path) -> None:
    memory_report(minutes, per_s, max(minutes / 6, 1.0), folder)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open("/proc/self/statm") as statm:
        now_mb = int(statm.read().split()[1]) * resource.getpagesize() / 2**20
    print(f"harness memory: resident now {now_mb:.0f} MB, peak {peak_mb:.0f} MB (the peak "
          "holds the longest simulated soak of 2., judged in memory as it was built); an hour "
          "against the model lab with its resident memory: `make soak-long`")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per arrival rate")
    parser.add_argument("--rates", default="10,50,100,200,300,400",
                        help="requested arrivals per second")
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="requests in a 600 s soak, judged at its end")
    parser.add_argument("--minutes", default="10,60,600",
                        help="simulated soaks judged live")
    parser.add_argument("--per-s", type=float, default=10.0,
                        help="requests per second in the simulated soaks")
    parser.add_argument("--trials", type=int, default=10, help="soaks for line -> decision")
    parser.add_argument("--memory-minutes", type=float, default=60.0,
                        help="the simulated soak whose memory is traced, both ways")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ModelLab() as lab:
        driver_rates(lab, Path(tmp), [float(r) for r in args.rates.split(",")], args.seconds)
        judge_report([int(n) for n in args.sizes.split(",")],
                     [float(m) for m in args.minutes.split(",")], args.per_s)
        line_to_decision(lab, Path(tmp), args.trials, max(2, args.trials // 4))
        memory(args.memory_minutes, args.per_s, Path(tmp))


if __name__ == "__main__":
    main()
