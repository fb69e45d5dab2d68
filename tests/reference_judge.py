"""The judge as it was before it was made linear, kept only as the reference the linear one
is compared with (tests/test_judge_linear.py): it re-evaluates every trigger over the whole
grid and every record at each call, which is quadratic in the soak, and obviously right.

Its only change: `now` can be given, as the driver gives it to the live judge.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from harness.judge.policy import (
    Decision,
    Event,
    Measurement,
    Policy,
    Trigger,
    count_events,
    count_measure,
    decide,
    in_window,
    percentile,
)
from harness.signals.logwatch import Match, run_keys
from harness.soak.driver import SoakRun


def log_events(trigger: Trigger, matches: list[Match]) -> list[Event]:
    counted = [m for m in matches
               if m.klass in trigger.classes or m.signature in trigger.signatures]
    return [Event(m.seen, key, None, m.line)
            for m, key in zip(counted, run_keys(counted), strict=True)]


def bad_reply_events(run: SoakRun, scenario: str | None = None) -> list[Event]:
    return [Event(x.outcome.ended, f"{x.scenario}#{x.iteration}/{x.step}", x.scenario,
                  f"{x.scenario} {x.step}: {x.reason}")
            for x in run.exchanges(scenario) if x.verdict == "bad"]


def _too_few(n: int, minimum: int, what: str) -> Measurement:
    return Measurement(None, n, False, note=f"{n} {what} < min_samples {minimum}: not counted")


class ReferenceJudge:
    def __init__(self, policy: Policy, baseline: SoakRun | None = None) -> None:
        self.policy = policy
        self.baseline = baseline

    def __call__(self, run: SoakRun, matches: list[Match], final: bool,
                 now: float | None = None) -> list[Decision]:
        if final and run.ended:
            now = run.ended
        return self._decide(run, matches, time.time() if now is None else now, final)

    def _decide(self, run: SoakRun, matches: list[Match], now: float,
                final: bool) -> list[Decision]:
        decisions: list[Decision] = []
        for trigger in self.policy.triggers:
            for scenario, measure, note in self._measures(trigger, run, matches):
                if measure is None:
                    decision = Decision(trigger, False, None, 0, None, None, (), scenario,
                                        note=note)
                else:
                    decision = decide(trigger, measure, run.started, now, final, scenario, note)
                decisions.append(replace(decision, policy_sha256=self.policy.sha256))
        return decisions

    def _measures(self, trigger: Trigger, run: SoakRun, matches: list[Match]
                  ) -> list[tuple[str | None, Callable[[float], Measurement] | None, str]]:
        ids = [sid for sid in run.scenario_ids
               if not trigger.scenarios or sid in trigger.scenarios]
        if trigger.kind == "log":
            return [(None, count_measure(trigger, log_events(trigger, matches)), "")]
        if trigger.kind == "replies":
            if trigger.per_scenario:
                return [(sid, count_measure(trigger, bad_reply_events(run, sid)), "")
                        for sid in ids]
            return [(None, count_measure(trigger, bad_reply_events(run)), "")]
        if trigger.kind == "latency":
            return [(sid, self._latency(trigger, run, sid), "") for sid in ids]
        if trigger.kind == "error-ratio":
            return [(sid, self._error_ratio(trigger, run, sid), "") for sid in ids]
        if self.baseline is None:
            note = "no baseline soak in this run: not evaluated"
            return [(sid, None, note) for sid in (ids if trigger.per_scenario else [None])]
        if trigger.metric == "log":
            return [(None, self._vs_baseline_log(trigger, run, matches), "")]
        return [(sid, self._vs_baseline_scenario(trigger, run, sid), "") for sid in ids]

    # -- per scenario, over the trailing window ------------------------------------------------
    @staticmethod
    def _latency(trigger: Trigger, run: SoakRun, sid: str) -> Callable[[float], Measurement]:
        def measure(t: float) -> Measurement:
            done = [x for x in run.exchanges(sid) if in_window(x.outcome.ended, t,
                                                               trigger.within_s)]
            if len(done) < trigger.min_samples:
                return _too_few(len(done), trigger.min_samples, "requests")
            value = percentile([x.outcome.seconds for x in done], trigger.percentile)
            assert value is not None
            slowest = sorted(done, key=lambda x: -x.outcome.seconds)[:3]
            return Measurement(value, len(done), value > trigger.max_s, tuple(
                f"{x.scenario} {x.step}: {x.outcome.seconds:.1f} s ({x.verdict})"
                for x in slowest))

        return measure

    @staticmethod
    def _error_ratio(trigger: Trigger, run: SoakRun, sid: str) -> Callable[[float], Measurement]:
        def measure(t: float) -> Measurement:
            done = [i for i in run.of(sid) if i.finished
                    and in_window(i.ended, t, trigger.within_s)]
            if len(done) < trigger.min_samples:
                return _too_few(len(done), trigger.min_samples, "iterations")
            bad = [i for i in done if i.verdict == "bad"]
            ratio = len(bad) / len(done)
            return Measurement(ratio, len(done), ratio > trigger.max_ratio,
                               tuple(f"{i.scenario}#{i.index}: {i.reason}" for i in bad))

        return measure

    # -- against the baseline ----------------------------------------------------------------
    def _vs_baseline_log(self, trigger: Trigger, run: SoakRun, matches: list[Match]
                         ) -> Callable[[float], Measurement]:
        assert self.baseline is not None
        base_events = count_events(log_events(trigger, self.baseline.matches), trigger.per)
        base_requests = len(self.baseline.exchanges())
        events = log_events(trigger, matches)

        def measure(t: float) -> Measurement:
            mine = [e for e in events if e.at <= t]
            count = count_events(mine, trigger.per)
            requests = sum(x.outcome.ended <= t for x in run.exchanges())
            evidence = tuple(e.evidence for e in mine)
            if base_events == 0:
                # zero to some is a change however small: the absolute rule decides
                return Measurement(count, requests, count > trigger.absolute_max, evidence,
                                   note=f"the baseline had none in {base_requests} requests: "
                                   f"absolute rule, more than {trigger.absolute_max:g} fails")
            if requests < trigger.min_samples:
                return _too_few(requests, trigger.min_samples, "requests")
            ratio = (count / requests) / (base_events / max(base_requests, 1))
            return Measurement(ratio, requests, ratio > trigger.max_ratio
                               and count > trigger.absolute_max, evidence,
                               note=f"baseline {base_events} in {base_requests} requests")

        return measure

    def _vs_baseline_scenario(self, trigger: Trigger, run: SoakRun, sid: str
                              ) -> Callable[[float], Measurement] | None:
        assert self.baseline is not None
        if sid not in self.baseline.scenario_ids:
            return None
        if trigger.metric == "p95_s":
            base = percentile([x.outcome.seconds for x in self.baseline.exchanges(sid)], 95)

            def p95(t: float) -> Measurement:
                done = [x.outcome.seconds for x in run.exchanges(sid) if x.outcome.ended <= t]
                if len(done) < trigger.min_samples:
                    return _too_few(len(done), trigger.min_samples, "requests")
                if not base:
                    return Measurement(None, len(done), False, note="no baseline latency")
                mine = percentile(done, 95)
                assert mine is not None
                return Measurement(mine / base, len(done), mine / base > trigger.max_ratio,
                                   (f"p95 {mine:.2f} s against the baseline's {base:.2f} s",))

            return p95
        base_done = [i for i in self.baseline.of(sid) if i.finished]
        base_bad = sum(i.verdict == "bad" for i in base_done)

        def errors(t: float) -> Measurement:
            done = [i for i in run.of(sid) if i.finished and i.ended <= t]
            if len(done) < trigger.min_samples:
                return _too_few(len(done), trigger.min_samples, "iterations")
            bad = [i for i in done if i.verdict == "bad"]
            evidence = tuple(f"{i.scenario}#{i.index}: {i.reason}" for i in bad)
            if base_bad == 0:
                return Measurement(len(bad), len(done), len(bad) > trigger.absolute_max,
                                   evidence, note=f"the baseline had no bad iteration in "
                                   f"{len(base_done)}: absolute rule")
            ratio = (len(bad) / len(done)) / (base_bad / len(base_done))
            return Measurement(ratio, len(done), ratio > trigger.max_ratio
                               and len(bad) > trigger.absolute_max, evidence)

        return errors
