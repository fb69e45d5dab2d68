"""Benchmarks of the soak machinery, measured in one run and printed side by side.

1. Load driver accuracy: an open-model scenario at several requested arrival rates against the
   model lab directly (no gateway), reporting achieved start rate against requested, and the
   scheduling lag (how late each iteration started against its schedule), p50 and p99.
2. Signal pipeline lag: lines written into a log file while a real soak runs, from the moment a
   line is written to the moment the log watcher has it, and to the moment the soak's judge
   counts it in a trigger's decision.

Numbers, not pass/fail: these machines are shared and noisy, so no threshold is asserted.
Run with `make bench`.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from harness.modellab import ModelLab
from harness.policy import Window, load_policy, percentile
from harness.signals.logwatch import LogWatcher
from harness.signals.signatures import OPENCLAW
from harness.soak.driver import SoakDriver, SoakRun
from harness.soak.judge import Judge
from harness.soak.scenarios import load_scenarios
from harness.target.client import GatewayEndpoint

LINE = ("2026-04-02T10:11:12.345+00:00 [agent/embedded] embedded run failover decision: "
        "runId=bench-{n} stage=assistant decision=surface_error reason=timeout "
        "provider=lab/slow-reasoner profile=-")

POLICY = """
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
interval_s = 0.1
"""


def _files(folder: Path, rate_per_min: float, in_flight: int) -> tuple[Path, Path]:
    scenarios = Path(tempfile.mkdtemp(dir=folder))
    (scenarios / "bench.toml").write_text(f"""
[[scenarios]]
id = "arrivals"
kind = "reply"
agent = "fast-chat"
rate_per_min = {rate_per_min}
max_in_flight = {in_flight}
timeout_s = 30
""")
    policy = folder / f"policy-{scenarios.name}.toml"
    policy.write_text(POLICY)
    return scenarios, policy


def _endpoint(lab: ModelLab) -> GatewayEndpoint:
    return GatewayEndpoint(lab.url, "bench", {}, "/v1/chat/completions", "")


def driver_accuracy(lab: ModelLab, folder: Path, rates: list[float], seconds: float) -> None:
    print(f"\n1. load driver at a requested arrival rate (open model, {seconds:g} s each, "
          "fast-chat on the model lab)")
    print(f"{'requested/s':>12} {'started/s':>10} {'ratio':>7} {'good':>6} {'dropped':>8} "
          f"{'lag p50 ms':>11} {'lag p99 ms':>11}")
    for rate in rates:
        scenarios_dir, policy_file = _files(folder, rate * 60, in_flight=10000)
        scenarios, policy = load_scenarios(scenarios_dir), load_policy(policy_file)
        driver = SoakDriver(_endpoint(lab), scenarios.scenarios, Judge(policy), None)
        run = driver.run("bench", Window(seconds, 30.0))
        its = run.of("arrivals")
        lags = [i.lag_s for i in its if i.lag_s is not None]
        started = len(its) / seconds
        print(f"{rate:>12g} {started:>10.2f} {started / rate:>7.3f} "
              f"{sum(i.verdict == 'good' for i in its):>6} {run.dropped.get('arrivals', 0):>8} "
              f"{1000 * (percentile(lags, 50) or 0):>11.1f} "
              f"{1000 * (percentile(lags, 99) or 0):>11.1f}")


def signal_lag(lab: ModelLab, folder: Path, lines: int, every_s: float) -> None:
    print(f"\n2. signal pipeline: {lines} failover lines written {every_s:g} s apart during a "
          "soak (watcher polls every 0.2 s, the judge runs every 1 s)")
    scenarios_dir, policy_file = _files(folder, 120, in_flight=100)
    scenarios, policy = load_scenarios(scenarios_dir), load_policy(policy_file)
    log = folder / "gateway.log"
    log.write_text("")
    written: list[float] = []
    counted: list[tuple[float, int]] = []
    judge = Judge(policy)

    def timed_judge(run: SoakRun, matches: list, final: bool) -> list:
        decisions = judge(run, matches, final)
        counted.append((time.time(), len(matches)))
        return decisions

    def write() -> None:
        time.sleep(0.5)
        for n in range(lines):
            with open(log, "a") as handle:
                handle.write(LINE.format(n=n) + "\n")
            written.append(time.time())
            time.sleep(every_s)

    watcher = LogWatcher.from_end(log, OPENCLAW)
    driver = SoakDriver(_endpoint(lab), scenarios.scenarios, timed_judge, watcher)
    writer = threading.Thread(target=write)
    writer.start()
    with watcher:
        driver.run("bench", Window(lines * every_s + 1.5, 5.0))
    writer.join()
    seen = [m.seen - w for m, w in zip(watcher.snapshot(), written, strict=True)]
    judged = []
    for n, w in enumerate(written):
        first = next((at for at, count in counted if count > n), None)
        if first is not None:
            judged.append(first - w)
    print(f"{'stage':>28} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'lines':>6}")
    for name, values in (("written -> watcher has it", seen), ("written -> judge counts it",
                                                                 judged)):
        print(f"{name:>28} {1000 * (percentile(values, 50) or 0):>8.0f} "
              f"{1000 * (percentile(values, 99) or 0):>8.0f} "
              f"{1000 * max(values, default=0):>8.0f} {len(values):>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", default="1,10,50", help="requested arrivals per second")
    parser.add_argument("--lines", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ModelLab() as lab:
        driver_accuracy(lab, Path(tmp), [float(r) for r in args.rates.split(",")],
                        args.seconds)
        signal_lag(lab, Path(tmp), args.lines, 0.25)


if __name__ == "__main__":
    main()
