"""Turning a soak into verdicts, `pass`, `fail` or `inconclusive`, each with its reasons.

A person reading the report must see why a path passed, not just that it did: every judgement
carries the numbers behind it, and a pass names the samples and the triggers that looked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.common.numbers import num
from harness.judge.policy import percentile
from harness.signals.signatures import CLASSES
from harness.soak.driver import SoakRun

VERDICTS = ("pass", "fail", "inconclusive")
ON_INCONCLUSIVE = ("fail", "pass", "ask")  # ask: a person decides at the manual gate


@dataclass(frozen=True)
class Judgement:
    verdict: str  # pass | fail | inconclusive
    summary: str
    numbers: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.verdict == "pass"


def _stats_line(stats: dict[str, Any]) -> str:
    line = (f"{stats['good']} good, {stats['bad']} bad of {stats['finished']} finished "
            f"(p50 {stats['p50_s']} s, p95 {stats['p95_s']} s, max {stats['max_s']} s)")
    if stats["lag_p99_s"] is not None:
        line += f", start lag p99 {stats['lag_p99_s']} s, {stats['dropped']} dropped"
    if stats.get("cut_by_decision"):
        line += f", {stats['cut_by_decision']} in flight cut by the decision (not judged)"
    return line


def scenario(run: SoakRun, scenario_id: str, min_samples: int,
             baseline: SoakRun | None = None) -> Judgement:
    stats = run.stats(scenario_id)
    numbers: dict[str, Any] = {"candidate": stats, "min_samples": min_samples,
                               "decisions": [d.as_dict() for d in run.decisions
                                             if d.scenario in (scenario_id, None)]}
    if baseline is not None and scenario_id in baseline.scenario_ids:
        numbers["baseline"] = baseline.stats(scenario_id)
    own = [d for d in run.deciding() if d.scenario == scenario_id]
    if own:
        why = "; ".join(f"{d.label} fired: observed {num(d.observed)} ({d.trigger.describe()}),"
                        f" {d.samples} samples" for d in own)
        return Judgement("fail", f"{why}. {_stats_line(stats)}", numbers)
    if run.stopped_by and stats["bad"]:
        first = next(i for i in run.of(scenario_id) if i.verdict == "bad")
        return Judgement("fail", f"this path was hit while {run.stopped_by} fired: "
                         f"{_stats_line(stats)}; first bad: {first.reason}", numbers)
    hanging = [i for i in run.of(scenario_id) if i.cut_by and i.overdue]
    if hanging:
        # cutting it must not make the path look better than waiting would have
        return Judgement("inconclusive", f"{len(hanging)} iteration(s) still in flight well "
                         f"past this path's known duration were cut when {run.stopped_by} "
                         f"fired ({hanging[0].reason}): not shown working. "
                         f"{_stats_line(stats)}", numbers)
    if stats["finished"] < min_samples:
        why = f" (the soak was stopped by {run.stopped_by})" if run.stopped_by else ""
        return Judgement("inconclusive", f"only {stats['finished']} finished iteration(s), "
                         f"fewer than min_samples {min_samples}{why}: not enough to judge. "
                         f"{_stats_line(stats)}", numbers)
    if not stats["good"]:
        first = next((i for i in run.of(scenario_id) if i.verdict == "bad"), None)
        return Judgement("fail", f"no good iteration: this path was not shown to work. "
                         f"{_stats_line(stats)}"
                         + (f"; first bad: {first.reason}" if first else ""), numbers)
    looked = [d for d in run.decisions if d.scenario == scenario_id and d.evaluations]
    watched = "; ".join(f"{d.trigger.name} peak {num(d.observed)}/{num(d.trigger.threshold)}"
                        for d in looked)
    vs = ""
    if "baseline" in numbers:
        base = numbers["baseline"]
        vs = f"; baseline p95 {base['p95_s']} s, {base['bad']} bad of {base['finished']}"
    return Judgement("pass", f"{_stats_line(stats)}{vs}"
                     + (f"; per-path triggers: {watched}" if watched else ""), numbers)


def policy(run: SoakRun) -> Judgement:
    decisions = [d.as_dict() for d in run.decisions]
    deciding = run.deciding()
    if deciding:
        d = deciding[0]
        return Judgement("fail", f"trigger {d.label} fired: observed {num(d.observed)} "
                         f"({d.trigger.describe()}), {d.samples} samples"
                         + (f"; {d.note}" if d.note else ""), {"decisions": decisions})
    parts = []
    for d in run.decisions:
        if d.fired and d.trigger.dry_run:
            parts.append(f"{d.label} would have fired (dry run, observed {num(d.observed)})")
        elif not d.evaluations:
            parts.append(f"{d.label} not evaluated ({d.note or 'no samples'})")
        else:
            parts.append(f"{d.label} peak {num(d.observed)}/{num(d.trigger.threshold)} in "
                         f"{d.evaluations} evaluations")
    return Judgement("pass", "no deciding trigger fired: " + "; ".join(parts),
                     {"decisions": decisions})


def soak_verdict(run: SoakRun, min_samples: dict[str, int],
                 baseline: SoakRun | None = None) -> dict[str, Any]:
    """The soak's one verdict: fail beats inconclusive beats pass, with every reason."""
    paths = {sid: scenario(run, sid, min_samples[sid], baseline) for sid in run.scenario_ids}
    rules = policy(run)
    reasons = [f"policy: {rules.summary}"] if not rules.ok else []
    reasons += [f"{sid}: {j.verdict}: {j.summary}" for sid, j in paths.items() if not j.ok]
    verdicts = [rules.verdict, *(j.verdict for j in paths.values())]
    verdict = next(v for v in ("fail", "inconclusive", "pass") if v in verdicts)
    if verdict == "pass":
        reasons = [f"policy: {rules.summary}"] + [f"{sid}: pass: {j.summary}"
                                                  for sid, j in paths.items()]
    return {"verdict": verdict, "reasons": reasons,
            "scenarios": {sid: {"verdict": j.verdict, "summary": j.summary}
                          for sid, j in paths.items()}}


def inconclusive_mode(setting: str, verdict: str,
                      ask: Callable[[], tuple[bool, dict[str, Any]]]) -> tuple[str, Any]:
    """What an inconclusive soak means for this run: `fail` (fail closed) or `pass`
    (accepted). With `ask`, a person decides at the manual gate, once, and only when the soak
    really was inconclusive; no decision in time fails closed."""
    if setting != "ask":
        return setting, None
    if verdict != "inconclusive":
        return "fail", None
    approved, decision = ask()
    return ("pass" if approved else "fail"), decision


def _watch_problems(stats: dict[str, Any]) -> list[str]:
    problems = []
    if stats["bad"]:
        problems.append(f"{stats['bad']} bad iterations")
    if stats["cut"]:  # a reply still missing when the drain ended is not a path shown working
        problems.append(f"{stats['cut']} unanswered when the watch ended")
    if not stats["good"]:
        problems.append("no good iteration")
    return problems


def watch(run: SoakRun) -> Judgement:
    """After a rollback (the smoke, the early and the later watch): the bad pattern must be
    gone AND every path of the mix, the slowest included, must be shown working: no deciding
    trigger, no bad or unanswered iteration, at least one good one per path."""
    problems = [f"trigger {d.label} fired (observed {num(d.observed)})"
                for d in run.deciding()]
    numbers = {sid: run.stats(sid) for sid in run.scenario_ids}
    for sid, stats in numbers.items():
        problems += [f"{sid}: {p}" for p in _watch_problems(stats)]
    quiet = run.window.delay_s
    before = f"after {quiet:g} s of quiet (the log watched, no traffic), " if quiet else ""
    if problems:
        return Judgement("fail", before + "; ".join(problems), numbers)
    return Judgement("pass", f"{before}every path replied correctly and no trigger fired: "
                     + ", ".join(f"{sid} {s['good']} good (max {s['max_s']} s)"
                                 for sid, s in numbers.items()), numbers)


def watch_verdict(run: SoakRun) -> dict[str, Any]:
    """A post-rollback watch's own verdict for verdict.json, the same as its test's."""
    judged = watch(run)
    paths = {}
    for sid in run.scenario_ids:
        stats = run.stats(sid)
        problems = _watch_problems(stats)
        paths[sid] = {"verdict": "fail" if problems else "pass",
                      "summary": "; ".join(problems + [_stats_line(stats)])}
    return {"verdict": judged.verdict, "reasons": [judged.summary], "scenarios": paths}


def progress_line(run: SoakRun, elapsed: float) -> str:
    """One live line: time, requests, errors, signature classes, p95, the nearest trigger."""
    tallies = list(run.tallies.values())  # every request that ended, per path
    requests = sum(len(t.seconds) for t in tallies)
    bad = sum(t.bad_requests for t in tallies)
    classes = " ".join(f"{k} {v}" for k, v in class_counts(run).items() if v) or "no signatures"
    p95 = percentile([s for t in tallies for s in t.seconds], 95)
    live = [d for d in run.decisions if not d.trigger.dry_run and d.points]
    nearest = "-"
    if live:
        d = max(live, key=lambda d: d.closeness())
        held = (f", held {d.held()}/{d.trigger.consecutive}" if d.trigger.consecutive > 1
                else "")
        last = d.points[-1].value
        nearest = f"{d.label} {num(last)}/{num(d.trigger.threshold)}{held}"
    window = run.window.window_s
    clock = (f"{elapsed:5.0f} s" if not window else f"{elapsed:5.0f}/{window:g} s"
             + (" (draining)" if elapsed > window else ""))
    if elapsed < 0:  # the quiet delay before a later watch's traffic: the log is watched
        clock = f"quiet, traffic in {-elapsed:.0f} s"
    return (f"[{run.label}] {clock}  requests {requests}"
            f" (bad {bad})  {classes}  p95 {num(p95)} s  nearest trigger: {nearest}")


def signature_counts(run: SoakRun) -> dict[str, int]:
    counts: dict[str, int] = {}
    for match in run.matches:
        counts[match.signature] = counts.get(match.signature, 0) + 1
    return counts


def class_counts(run: SoakRun) -> dict[str, int]:
    counts = dict.fromkeys(CLASSES, 0)
    for match in run.matches:
        counts[match.klass] = counts.get(match.klass, 0) + 1
    return counts


def summary(run: SoakRun) -> dict[str, Any]:
    """The numbers of a soak, watch or smoke run, as they go into verdict.json."""
    return {
        "window_s": run.window.window_s, "drain_s": run.window.drain_s,
        "delay_s": run.window.delay_s, "stop_grace_s": run.window.stop_grace_s,
        "seconds": round(run.ended - run.started, 1), "stopped_by": run.stopped_by,
        "scenarios": {sid: run.stats(sid) for sid in run.scenario_ids},
        "signature_counts": signature_counts(run), "class_counts": class_counts(run),
        "requests": run.request_count(),
        "decisions": [d.as_dict() for d in run.decisions],
    }


def compare(baseline: SoakRun, candidate: SoakRun) -> dict[str, Any]:
    """Candidate beside baseline, per scenario and per signature class."""
    b_req, c_req = baseline.request_count(), candidate.request_count()
    b_cls, c_cls = class_counts(baseline), class_counts(candidate)
    keys = ("finished", "good", "bad", "error_ratio", "p50_s", "p95_s", "max_s")
    scenarios = {}
    for sid in candidate.scenario_ids:
        b = baseline.stats(sid) if sid in baseline.scenario_ids else {}
        c = candidate.stats(sid)
        scenarios[sid] = {k: {"baseline": b.get(k), "candidate": c[k]} for k in keys}
    classes = {k: {"baseline": b_cls[k], "candidate": c_cls[k],
                   "baseline_per_100_requests": _per100(b_cls[k], b_req),
                   "candidate_per_100_requests": _per100(c_cls[k], c_req),
                   "new": b_cls[k] == 0 and c_cls[k] > 0} for k in b_cls}
    return {"requests": {"baseline": b_req, "candidate": c_req}, "scenarios": scenarios,
            "classes": classes}


def _per100(count: int, requests: int) -> float | None:
    return round(100 * count / requests, 2) if requests else None


