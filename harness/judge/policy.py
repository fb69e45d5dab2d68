"""Rollback policy: the triggers declared before a release, and how a trigger is decided.

A policy file is hashed when it is loaded at the start of a run; that hash is stamped on every
decision, so a run cannot claim a policy it did not declare up front.

Trigger kinds (what is measured at each evaluation):
  log          count of log-signature events (by class or name) in the trailing `within_s`;
               per line, or per distinct gateway run (`per = "run"`); `rate_per_min` instead
               of `count` states the same threshold as a rate
  replies      count of bad replies (HTTP error, transport error, failed content check, over
               the latency budget) in the trailing `within_s`, optionally per scenario
  latency      a latency percentile per scenario over the trailing `within_s` (0: all so far)
  error-ratio  bad iterations / finished iterations per scenario over the trailing `within_s`
  baseline     the candidate against the known-good's baseline soak: a signature class rate per
               request (`classes`), or a scenario's `p95_s` or `error_ratio` (`metric`);
               breached when more than `max_ratio` times the baseline, and, when the baseline
               had none at all, when more than `absolute_max` (zero to some is never "fine")

A trigger is evaluated every `interval_s` from the start of the soak (and once at its end). It
fires when it is breached in `consecutive` evaluations in a row, so one isolated spike can be
told from a held problem. Evaluations with fewer than `min_samples` samples are not counted
either way. `dry_run` triggers are evaluated and reported, and never decide.

Windows: `[soak]` and `[watch]` (the early post-rollback watch) are required, `[baseline]` and
`[late_watch]` (the later post-rollback watch) optional; each has `window_s` and `drain_s`, and
`[late_watch]` a `delay_s` of quiet first (the log watched and judged, no traffic sent).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.common.errors import InputError
from harness.common.schema import Table, load_toml
from harness.signals.signatures import CLASSES, Signature

# an evaluation grid finer than this is work without information (and a tiny interval_s would
# make the grid of a long soak too large to hold)
MIN_INTERVAL_S = 0.1
TRIGGER_KINDS = ("log", "replies", "latency", "error-ratio", "baseline")
BASELINE_METRICS = ("log", "p95_s", "error_ratio")


@dataclass(frozen=True)
class Trigger:
    name: str
    kind: str
    count: int = 0
    within_s: float = 0.0  # 0: everything since the soak started
    classes: tuple[str, ...] = ()
    signatures: tuple[str, ...] = ()
    per: str = "event"  # "event" or "run"
    per_scenario: bool = False
    scenarios: tuple[str, ...] = ()  # per-scenario kinds: only these (empty: every scenario)
    percentile: float = 95.0
    max_s: float = 0.0
    max_ratio: float = 0.0
    metric: str = "log"  # baseline: log | p95_s | error_ratio
    absolute_max: float = 0.0
    min_samples: int = 1
    consecutive: int = 1
    interval_s: float = 5.0
    dry_run: bool = False  # reported, never decides

    @property
    def threshold(self) -> float:
        return {"log": self.count, "replies": self.count, "latency": self.max_s,
                "error-ratio": self.max_ratio, "baseline": self.max_ratio}[self.kind]

    def describe(self) -> str:
        window = f"within {self.within_s:g} s" if self.within_s else "over the soak so far"
        held = (f", held {self.consecutive} evaluations in a row" if self.consecutive > 1
                else "")
        if self.kind in ("log", "replies"):
            what = ", ".join(self.classes + self.signatures) if self.kind == "log" \
                else "bad replies"
            unit = "distinct runs" if self.per == "run" else "events"
            return f">= {self.count} {unit} of {what} {window}{held}"
        if self.kind == "latency":
            return (f"p{self.percentile:g} latency > {self.max_s:g} s {window} "
                    f"(min {self.min_samples} requests){held}")
        if self.kind == "error-ratio":
            return (f"bad iterations > {self.max_ratio:.0%} {window} "
                    f"(min {self.min_samples} iterations){held}")
        what = ", ".join(self.classes + self.signatures) if self.metric == "log" \
            else self.metric
        return (f"{what} > {self.max_ratio:g}x the baseline (when the baseline had none: "
                f"> {self.absolute_max:g}){held}")


@dataclass(frozen=True)
class Window:
    """A soak or watch window: how long traffic starts, and how long in-flight work may end
    after it closes; when a trigger stops the soak early, requests already in flight get
    `stop_grace_s` to finish (their outcome is evidence too), and no new ones start.

    `delay_s` (the later post-rollback watch): a quiet time first, during which the gateway's
    log is watched and judged but no traffic is sent, so the watch asks whether the pattern
    stays gone once the gateway has been left alone, and its own background work (retries,
    timers) shows up in its log."""

    window_s: float
    drain_s: float
    delay_s: float = 0.0
    stop_grace_s: float = 10.0


@dataclass(frozen=True)
class Policy:
    path: Path
    sha256: str
    name: str
    soak: Window
    watch: Window
    baseline: Window | None  # None: no baseline soak unless asked for on the command line
    late_watch: Window | None  # None: no later watch after the early post-rollback watch
    min_samples: int  # per scenario: fewer finished iterations and the path is inconclusive
    on_inconclusive: str  # fail (fail closed) | pass | ask (a person, at the manual gate)
    triggers: tuple[Trigger, ...]
    signatures: tuple[Signature, ...]  # the user's own, matched before the target's catalogue
    text: str


@dataclass(frozen=True)
class Event:
    at: float  # unix time
    key: str  # what makes two events the same (run id, request id)
    scenario: str | None
    evidence: str


@dataclass(frozen=True)
class Measurement:
    """One evaluation of a trigger: its value (None when there were too few samples)."""

    value: float | None
    samples: int
    breached: bool
    evidence: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Point:
    at: float
    value: float | None
    samples: int
    breached: bool


@dataclass(frozen=True)
class Decision:
    trigger: Trigger
    fired: bool
    observed: float | None  # the value that fired it, else the peak value seen
    samples: int  # behind the observed value
    window_start: float | None
    window_end: float | None
    evidence: tuple[str, ...]
    scenario: str | None = None
    streak: int = 0  # longest run of breached evaluations
    evaluations: int = 0  # evaluations with enough samples to count
    fired_at: float | None = None
    note: str = ""
    points: Sequence[Point] = field(default=(), repr=False)  # a tuple or a judge's SoFar
    policy_sha256: str = ""

    @property
    def decides(self) -> bool:
        return self.fired and not self.trigger.dry_run

    @property
    def label(self) -> str:
        return f"{self.trigger.name}[{self.scenario}]" if self.scenario else self.trigger.name

    def held(self) -> int:
        """Breached evaluations in a row up to the last one."""
        return _trailing_streak(self.points)

    def closeness(self) -> float:
        """How near the last evaluation is to firing, 1.0 and above being there."""
        if not self.points or self.points[-1].value is None:
            return 0.0
        last = self.points[-1]
        threshold = self.trigger.threshold or 1.0
        streak = _trailing_streak(self.points) / self.trigger.consecutive
        return min(last.value / threshold, 1.0) * 0.5 + min(streak, 1.0) * 0.5 \
            if self.trigger.consecutive > 1 else last.value / threshold

    def as_dict(self) -> dict[str, object]:
        return {
            "trigger": self.trigger.name, "kind": self.trigger.kind,
            "threshold": self.trigger.describe(), "count": self.trigger.count,
            "limit": self.trigger.threshold, "within_s": self.trigger.within_s,
            "observed": _round(self.observed), "samples": self.samples, "fired": self.fired,
            "dry_run": self.trigger.dry_run, "decides": self.decides,
            "consecutive": self.trigger.consecutive, "streak": self.streak,
            "evaluations": self.evaluations, "scenario": self.scenario,
            "window_start": self.window_start, "window_end": self.window_end,
            "fired_at": self.fired_at, "note": self.note, "evidence": list(self.evidence),
            "policy_sha256": self.policy_sha256,
            "series": [[round(p.at, 3), _round(p.value)] for p in self.points],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _trailing_streak(points: Sequence[Point]) -> int:
    streak = 0
    for point in reversed(points):
        if point.value is None:
            continue
        if not point.breached:
            break
        streak += 1
    return streak


def evaluation_times(start: float, now: float, interval_s: float, final: bool) -> list[float]:
    """Every `interval_s` from `start` up to `now`, plus `now` itself when the run is over."""
    times = [start + k * interval_s for k in range(1, int((now - start) / interval_s) + 1)]
    if final and (not times or now - times[-1] > 1e-6):
        times.append(now)
    return times


def decide(trigger: Trigger, measure: Callable[[float], Measurement], start: float,
           now: float, final: bool, scenario: str | None = None,
           note: str = "") -> Decision:
    """Evaluate a trigger on its grid; it fires at the first run of `consecutive` breaches.

    Evaluations without enough samples (value None) neither breach nor break a streak."""
    points: list[Point] = []
    streak = best_streak = evaluations = 0
    fired_at: float | None = None
    decisive: tuple[float, Measurement] | None = None
    peak: tuple[float, Measurement] | None = None
    last_note = note
    for at in evaluation_times(start, now, trigger.interval_s, final):
        m = measure(at)
        points.append(Point(at, m.value, m.samples, m.breached))
        last_note = m.note or last_note
        if m.value is None:
            continue
        evaluations += 1
        if peak is None or m.value > (peak[1].value or 0.0):
            peak = (at, m)
        if m.breached:
            streak += 1
            best_streak = max(best_streak, streak)
            if streak >= trigger.consecutive and fired_at is None:
                fired_at, decisive = at, (at, m)
        else:
            streak = 0
    shown = decisive or peak
    window = None
    if shown is not None:
        window = (shown[0] - trigger.within_s if trigger.within_s else start, shown[0])
    return Decision(
        trigger=trigger, fired=fired_at is not None,
        observed=shown[1].value if shown else None,
        samples=shown[1].samples if shown else 0,
        window_start=round(window[0], 3) if window else None,
        window_end=round(window[1], 3) if window else None,
        evidence=shown[1].evidence if shown else (), scenario=scenario, streak=best_streak,
        evaluations=evaluations, fired_at=fired_at,
        note=(shown[1].note or note) if shown else last_note, points=tuple(points),
    )


def count_events(events: list[Event], per: str) -> int:
    return len({e.key for e in events}) if per == "run" else len(events)


def in_window(at: float, t: float, within_s: float) -> bool:
    """Inside the trailing window ending at t (`within_s` 0: everything up to t)."""
    return (not within_s or at > t - within_s) and at <= t


def count_measure(trigger: Trigger, events: list[Event]) -> Callable[[float], Measurement]:
    """Log and reply triggers: events in the trailing window against the count."""
    ordered = sorted(events, key=lambda e: e.at)

    def measure(t: float) -> Measurement:
        window = [e for e in ordered if in_window(e.at, t, trigger.within_s)]
        value = count_events(window, trigger.per)
        return Measurement(value, len(window), value >= trigger.count,
                           tuple(e.evidence for e in window))

    return measure


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[rank]


# -- loading ---------------------------------------------------------------------------------
_TRIGGER_KEYS = {
    "log": {"classes", "signatures", "count", "rate_per_min", "within_s", "per"},
    "replies": {"count", "within_s", "per_scenario", "scenarios"},
    "latency": {"percentile", "max_s", "within_s", "min_samples", "scenarios"},
    "error-ratio": {"max_ratio", "within_s", "min_samples", "scenarios"},
    "baseline": {"metric", "classes", "signatures", "max_ratio", "absolute_max",
                 "min_samples", "scenarios"},
}


def _what(table: Table) -> tuple[tuple[str, ...], tuple[str, ...]]:
    classes = tuple(table.str_list("classes", [], non_empty=False))
    for klass in classes:
        if klass not in CLASSES:
            raise table.fail("classes", f"unknown class {klass!r} (known: {', '.join(CLASSES)})")
    signatures = tuple(table.str_list("signatures", [], non_empty=False))
    if not (classes or signatures):
        raise table.fail("classes", "name the classes or signatures to count")
    return classes, signatures


def _trigger(table: Table) -> Trigger:
    kind = table.str("kind", choices=TRIGGER_KINDS)
    table.reject_unknown({"name", "kind", "dry_run", "consecutive", "interval_s"}
                         | _TRIGGER_KEYS[kind])
    common = dict(
        name=table.str("name"), kind=kind, dry_run=table.bool("dry_run", False),
        consecutive=table.int("consecutive", 1, minimum=1, maximum=1000),
        interval_s=table.seconds("interval_s", 5.0, minimum=MIN_INTERVAL_S, maximum=3600),
        within_s=table.seconds("within_s", 0.0),
        scenarios=tuple(table.str_list("scenarios", [], non_empty=False)),
    )
    if kind == "log":
        classes, signatures = _what(table)
        within = common["within_s"]
        if "rate_per_min" in table.data:
            if "count" in table.data:
                raise table.fail("rate_per_min", "give either count or rate_per_min, not both")
            if not within:
                raise table.fail("within_s", "a rate needs the window it is measured over")
            rate = table.number("rate_per_min", minimum=0, exclusive=True, maximum=1e6)
            count = max(1, math.ceil(rate * float(within) / 60.0 - 1e-9))
        else:
            count = table.int("count", minimum=1, maximum=1_000_000)
        return Trigger(**common, classes=classes, signatures=signatures, count=count,
                       per=table.str("per", "event", choices=("event", "run")))
    if kind == "replies":
        per_scenario = table.bool("per_scenario", False) or bool(common["scenarios"])
        return Trigger(**common, count=table.int("count", minimum=1, maximum=1_000_000),
                       per_scenario=per_scenario)
    if kind == "latency":
        pct = table.number("percentile", 95.0, minimum=0, exclusive=True)
        if pct > 100:
            raise table.fail("percentile", f"expected at most 100, got {pct:g}")
        return Trigger(**common, percentile=pct, per_scenario=True,
                       max_s=table.seconds("max_s", minimum=0, exclusive=True),
                       min_samples=table.int("min_samples", 5, minimum=1, maximum=1_000_000))
    if kind == "error-ratio":
        ratio = table.number("max_ratio", minimum=0)
        if ratio >= 1:
            raise table.fail("max_ratio", f"expected a ratio below 1, got {ratio:g}")
        return Trigger(**common, max_ratio=ratio, per_scenario=True,
                       min_samples=table.int("min_samples", 5, minimum=1, maximum=1_000_000))
    metric = table.str("metric", "log", choices=BASELINE_METRICS)
    classes: tuple[str, ...] = ()
    signatures: tuple[str, ...] = ()
    if metric == "log":
        classes, signatures = _what(table)
    elif "classes" in table.data or "signatures" in table.data:
        raise table.fail("classes", f"only applies with metric = \"log\", not {metric!r}")
    if metric == "log" and common["scenarios"]:
        raise table.fail("scenarios", "log signatures are not per scenario")
    if "within_s" in table.data:
        raise table.fail("within_s", "a baseline trigger compares the whole soak so far")
    return Trigger(**common, metric=metric, classes=classes, signatures=signatures,
                   per_scenario=metric != "log",
                   max_ratio=table.number("max_ratio", minimum=0, exclusive=True,
                                          maximum=1e6),
                   absolute_max=table.number("absolute_max", 0.0, minimum=0, maximum=1e6),
                   min_samples=table.int("min_samples", 10 if metric == "log" else 3,
                                         minimum=1, maximum=1_000_000))


def _signature(table: Table) -> Signature:
    table.reject_unknown({"name", "class", "pattern"})
    return Signature(table.str("name"), table.str("class", choices=CLASSES),
                     table.pattern("pattern"))


def check_scenarios(policy: Policy, ids: list[str]) -> None:
    """Every scenario a trigger names must exist in the scenario files of the run."""
    for i, trigger in enumerate(policy.triggers):
        for sid in trigger.scenarios:
            if sid not in ids:
                raise InputError(str(policy.path), f"triggers[{i}].scenarios",
                                 f"no scenario {sid!r} (known: {', '.join(ids)})")


def load_policy(path: Path) -> Policy:
    root, digest = load_toml(path)
    root.reject_unknown({"policy", "soak", "watch", "baseline", "late_watch", "signatures",
                         "triggers"})
    head = root.table("policy")
    head.reject_unknown({"name", "description", "min_samples", "on_inconclusive"})
    windows: dict[str, Window | None] = {}
    for name in ("soak", "watch", "baseline", "late_watch"):
        if name in ("baseline", "late_watch") and name not in root.data:
            windows[name] = None
            continue
        table = root.table(name)
        delayed = name == "late_watch"  # only the later watch waits, quietly, before traffic
        table.reject_unknown({"window_s", "drain_s", "stop_grace_s"}
                             | ({"delay_s"} if delayed else set()))
        windows[name] = Window(table.seconds("window_s", minimum=0, exclusive=True),
                               table.seconds("drain_s"),
                               table.seconds("delay_s", 0.0) if delayed else 0.0,
                               table.seconds("stop_grace_s", 10.0))
    signatures = tuple(_signature(t) for t in root.tables("signatures"))
    if len({s.name for s in signatures}) != len(signatures):
        raise root.fail("signatures", "signature names must be unique")
    triggers = tuple(_trigger(t) for t in root.tables("triggers"))
    if not triggers:
        raise root.fail("triggers", "a policy must declare at least one trigger")
    names = [t.name for t in triggers]
    if len(set(names)) != len(names):
        raise root.fail("triggers", "trigger names must be unique")
    soak, watch = windows["soak"], windows["watch"]
    assert soak is not None and watch is not None
    return Policy(path=path, sha256=digest, name=head.str("name"), soak=soak, watch=watch,
                  baseline=windows["baseline"], late_watch=windows["late_watch"],
                  min_samples=head.int("min_samples", 1, minimum=1, maximum=1_000_000),
                  on_inconclusive=head.str("on_inconclusive", "fail",
                                           choices=("fail", "pass", "ask")),
                  triggers=triggers, signatures=signatures, text=path.read_text())
