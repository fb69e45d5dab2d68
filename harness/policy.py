"""Rollback policy: the triggers declared before a release, and how they are evaluated.

A policy file is hashed when it is loaded at the start of a run; that hash is stamped on every
decision, so a run cannot claim a policy it did not declare up front.

Trigger kinds:
  log      count of log-signature events (by class or name) within a sliding window
  replies  count of bad replies (status, transport error, or missing nonce) within a window
Events can be counted per line/request, or per distinct gateway run (`per = "run"`), so one
failing request that logs four lines counts once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.schema import load_toml
from harness.signals.signatures import CLASSES

TRIGGER_KINDS = ("log", "replies")


@dataclass(frozen=True)
class Trigger:
    name: str
    kind: str
    count: int
    within_s: float
    classes: tuple[str, ...] = ()
    signatures: tuple[str, ...] = ()
    per: str = "event"  # "event" or "run"
    per_scenario: bool = False
    dry_run: bool = False  # reported, never decides

    def describe(self) -> str:
        what = ", ".join(self.classes + self.signatures) if self.kind == "log" else "bad replies"
        unit = "distinct runs" if self.per == "run" else "events"
        return f">= {self.count} {unit} of {what} within {self.within_s:g} s"


@dataclass(frozen=True)
class Window:
    """A soak or watch window: how long traffic starts, and how long in-flight work may end."""

    window_s: float
    drain_s: float


@dataclass(frozen=True)
class Policy:
    path: Path
    sha256: str
    name: str
    soak: Window
    watch: Window
    triggers: tuple[Trigger, ...]
    text: str


@dataclass(frozen=True)
class Event:
    at: float  # unix time
    key: str  # what makes two events the same (run id, request id)
    scenario: str | None
    evidence: str


@dataclass(frozen=True)
class Decision:
    trigger: Trigger
    fired: bool
    observed: int  # peak count inside any window of the trigger's length
    samples: int  # events considered in all
    window_start: float | None
    window_end: float | None
    evidence: tuple[str, ...]
    scenario: str | None = None

    @property
    def decides(self) -> bool:
        return self.fired and not self.trigger.dry_run

    def as_dict(self) -> dict[str, object]:
        return {
            "trigger": self.trigger.name, "kind": self.trigger.kind,
            "threshold": self.trigger.describe(), "count": self.trigger.count,
            "within_s": self.trigger.within_s, "observed": self.observed,
            "samples": self.samples, "fired": self.fired, "dry_run": self.trigger.dry_run,
            "scenario": self.scenario, "window_start": self.window_start,
            "window_end": self.window_end, "evidence": list(self.evidence),
        }


def evaluate(trigger: Trigger, events: Sequence[Event], scenario: str | None = None) -> Decision:
    """The peak count of events inside any window of `within_s`, against the threshold."""
    ordered = sorted(events, key=lambda e: e.at)
    best: list[Event] = []
    start = 0
    for end in range(len(ordered)):
        while ordered[end].at - ordered[start].at > trigger.within_s:
            start += 1
        window = ordered[start:end + 1]
        if _count(window, trigger.per) > _count(best, trigger.per):
            best = window
    observed = _count(best, trigger.per)
    return Decision(
        trigger=trigger, fired=observed >= trigger.count, observed=observed,
        samples=len(ordered),
        window_start=best[0].at if best else None, window_end=best[-1].at if best else None,
        evidence=tuple(e.evidence for e in best), scenario=scenario,
    )


def _count(events: Sequence[Event], per: str) -> int:
    return len({e.key for e in events}) if per == "run" else len(events)


def load_policy(path: Path) -> Policy:
    root, digest = load_toml(path)
    root.reject_unknown({"policy", "soak", "watch", "triggers"})
    head = root.table("policy")
    head.reject_unknown({"name", "description"})
    windows = {}
    for name in ("soak", "watch"):
        table = root.table(name)
        table.reject_unknown({"window_s", "drain_s"})
        windows[name] = Window(table.number("window_s", minimum=0, exclusive=True),
                               table.number("drain_s", minimum=0))
    triggers = []
    for table in root.tables("triggers"):
        table.reject_unknown({"name", "kind", "classes", "signatures", "count", "within_s",
                              "per", "per_scenario", "dry_run"})
        kind = table.str("kind", choices=TRIGGER_KINDS)
        classes = tuple(table.str_list("classes", [], non_empty=False))
        for klass in classes:
            if klass not in CLASSES:
                known = ", ".join(CLASSES)
                raise table.fail("classes", f"unknown class {klass!r} (known: {known})")
        signatures = tuple(table.str_list("signatures", [], non_empty=False))
        if kind == "log" and not (classes or signatures):
            raise table.fail("classes", "a log trigger needs classes or signatures to count")
        triggers.append(Trigger(
            name=table.str("name"), kind=kind, count=table.int("count", minimum=1),
            within_s=table.number("within_s", minimum=0, exclusive=True),
            classes=classes, signatures=signatures,
            per=table.str("per", "event", choices=("event", "run")),
            per_scenario=table.bool("per_scenario", False), dry_run=table.bool("dry_run", False),
        ))
    if not triggers:
        raise root.fail("triggers", "a policy must declare at least one trigger")
    names = [t.name for t in triggers]
    if len(set(names)) != len(names):
        raise root.fail("triggers", "trigger names must be unique")
    return Policy(path=path, sha256=digest, name=head.str("name"), soak=windows["soak"],
                  watch=windows["watch"], triggers=tuple(triggers),
                  text=path.read_text())
