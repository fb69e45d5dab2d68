"""Turning a soak run into per-path and per-policy judgements, each with its reasons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.soak.driver import SoakRun


@dataclass(frozen=True)
class Judgement:
    ok: bool
    summary: str
    numbers: dict[str, Any]


def scenario(run: SoakRun, scenario_id: str) -> Judgement:
    stats = run.stats(scenario_id)
    own = [d for d in run.deciding() if d.scenario == scenario_id]
    if own:
        names = ", ".join(d.trigger.name for d in own)
        return Judgement(False, f"trigger {names} fired on this path", stats)
    if run.stopped_by and stats["bad"]:
        return Judgement(False, f"{stats['bad']} bad of {stats['iterations']} iterations while "
                         f"trigger {run.stopped_by} fired: this path was hit", stats)
    if not stats["good"]:
        return Judgement(False, f"no good iteration in {stats['iterations']} "
                         f"({stats['cut']} cut): this path was not shown to work", stats)
    return Judgement(True, f"{stats['good']} good, {stats['bad']} bad, p95 {stats['p95_s']} s",
                     stats)


def policy(run: SoakRun) -> Judgement:
    decisions = [d.as_dict() for d in run.decisions]
    deciding = run.deciding()
    if deciding:
        d = deciding[0]
        return Judgement(False, f"trigger {d.trigger.name} fired: observed {d.observed} "
                         f"({d.trigger.describe()}), {d.samples} samples", {"decisions": decisions})
    return Judgement(True, "no deciding trigger fired: " + "; ".join(
        f"{d.trigger.name} peak {d.observed}/{d.trigger.count}" for d in run.decisions),
        {"decisions": decisions})


def watch(run: SoakRun) -> Judgement:
    """After a rollback: the bad pattern must be gone AND every path must be shown working."""
    problems = [f"trigger {d.trigger.name} fired (observed {d.observed})" for d in run.deciding()]
    numbers = {sid: run.stats(sid) for sid in run.scenario_ids}
    for sid, stats in numbers.items():
        if stats["bad"]:
            problems.append(f"{sid}: {stats['bad']} bad iterations")
        if not stats["good"]:
            problems.append(f"{sid}: no good iteration")
    if problems:
        return Judgement(False, "; ".join(problems), numbers)
    return Judgement(True, "every path replied correctly and no trigger fired: " + ", ".join(
        f"{sid} {s['good']} good (max {s['max_s']} s)" for sid, s in numbers.items()), numbers)


def signature_counts(run: SoakRun) -> dict[str, int]:
    counts: dict[str, int] = {}
    for match in run.matches:
        counts[match.signature] = counts.get(match.signature, 0) + 1
    return counts


def summary(run: SoakRun) -> dict[str, Any]:
    """The numbers of a soak, watch or smoke run, as they go into verdict.json."""
    return {
        "window_s": run.window.window_s, "drain_s": run.window.drain_s,
        "seconds": round(run.ended - run.started, 1), "stopped_by": run.stopped_by,
        "scenarios": {sid: run.stats(sid) for sid in run.scenario_ids},
        "signature_counts": signature_counts(run),
        "decisions": [d.as_dict() for d in run.decisions],
    }
