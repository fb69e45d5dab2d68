"""The pieces that make judging linear in the work: time-ordered streams of what happened,
trailing windows that move forward over them, a multiset that answers percentiles, and one
trigger's evaluation series kept as it grows.

Each record enters a window once and leaves it once, and each evaluation time is evaluated
once, so judging a soak costs O(requests + log lines + evaluation times) (times a logarithm
for percentiles), live and at the end alike. The grid semantics are `harness.judge.policy`'s:
evaluated every `interval_s` from the start (and at the end), fired at the first run of
`consecutive` breached evaluations, evaluations without enough samples neither breach nor
break a streak.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

from harness.judge.policy import Decision, Point, Trigger


class Stream:
    """Records in the order of their time (unix seconds), appended as they happen. A prunable
    stream is read only through its trailing windows, so the records every window has passed
    (left, or entered by a window that never lets anything leave) can go: positions stay
    absolute, the first `base` are gone."""

    PRUNE_AT = 256  # records to let go at once (a list's front is moved, so not one by one)

    def __init__(self, prunable: bool = False) -> None:
        self.at: list[float] = []
        self.items: list[Any] = []
        self.base = 0
        self.prunable = prunable
        self.readers: list[Trailing] = []

    def add(self, at: float, item: Any) -> None:
        self.at.append(at)
        self.items.append(item)

    def __len__(self) -> int:
        return self.base + len(self.at)

    def prune(self) -> None:
        if not self.prunable:
            return
        needed = min((r.lo if r.within_s and r.leave is not None else r.hi
                      for r in self.readers), default=len(self))  # no reader: none needed
        gone = needed - self.base
        if gone >= self.PRUNE_AT and gone * 2 >= len(self.at):
            del self.at[:gone], self.items[:gone]
            self.base = needed


class Trailing:
    """A trailing window over a stream, moved forward only: records with `at <= t` are in,
    and (with `within_s`) those with `at <= t - within_s` have left, as `policy.in_window`
    says. `enter` and `leave` see each record once."""

    def __init__(self, stream: Stream, within_s: float,
                 enter: Callable[[Any], None] | None = None,
                 leave: Callable[[Any], None] | None = None) -> None:
        self.stream = stream
        self.within_s = within_s
        self.enter = enter
        self.leave = leave
        self.lo = 0
        self.hi = 0
        stream.readers.append(self)

    def move(self, t: float) -> None:
        at, items, base = self.stream.at, self.stream.items, self.stream.base
        hi = bisect_right(at, t, self.hi - base) + base
        if self.enter is not None:
            for item in items[self.hi - base:hi - base]:
                self.enter(item)
        self.hi = hi
        if self.within_s:
            # not `at > t - within_s`
            lo = bisect_right(at, t - self.within_s, max(0, self.lo - base), hi - base) + base
            if self.leave is not None:
                for item in items[self.lo - base:lo - base]:
                    self.leave(item)
            self.lo = max(self.lo, lo)

    def next_at(self) -> float | None:
        """The time of the next record not in the window yet."""
        k = self.hi - self.stream.base
        return self.stream.at[k] if k < len(self.stream.at) else None

    @property
    def size(self) -> int:
        return self.hi - self.lo


class Ranked:
    """A sorted multiset of distinct keys in buckets: add, remove and the k-th smallest in
    O(sqrt n), which keeps a percentile over a moving window cheap at 100k requests."""

    LOAD = 256

    def __init__(self) -> None:
        self.buckets: list[list[Any]] = []
        self.maxes: list[Any] = []
        self.size = 0

    def add(self, key: Any) -> None:
        self.size += 1
        if not self.buckets:
            self.buckets, self.maxes = [[key]], [key]
            return
        i = min(bisect_left(self.maxes, key), len(self.buckets) - 1)
        bucket = self.buckets[i]
        insort(bucket, key)
        self.maxes[i] = bucket[-1]
        if len(bucket) > 2 * self.LOAD:
            self.buckets[i:i + 1] = [bucket[:self.LOAD], bucket[self.LOAD:]]
            self.maxes[i:i + 1] = [bucket[self.LOAD - 1], bucket[-1]]

    def remove(self, key: Any) -> None:
        i = bisect_left(self.maxes, key)
        bucket = self.buckets[i]
        del bucket[bisect_left(bucket, key)]
        self.size -= 1
        if bucket:
            self.maxes[i] = bucket[-1]
        else:
            del self.buckets[i], self.maxes[i]

    def __getitem__(self, k: int) -> Any:
        if k >= self.size // 2:  # percentiles worth watching are near the top
            k -= self.size
            for bucket in reversed(self.buckets):
                if -k <= len(bucket):
                    return bucket[k]
                k += len(bucket)
        for bucket in self.buckets:
            if k < len(bucket):
                return bucket[k]
            k -= len(bucket)
        raise IndexError(k)

    def largest(self, n: int) -> list[Any]:
        out: list[Any] = []
        for bucket in reversed(self.buckets):
            out.extend(reversed(bucket[-(n - len(out)):]))
            if len(out) >= n:
                break
        return out


class SoFar(Sequence[Point]):
    """The first `n` points of a series' list, which only grows: what a decision shows of its
    evaluations, without copying them. A series makes a new decision at every evaluation,
    and a copy of its points each time cost O(evaluations) per evaluation (an hour at a 5 s
    interval: 720 points, copied 720 times; a night's: 7,200). Compares equal to a tuple of
    the same points."""

    __slots__ = ("_items", "_n")

    def __init__(self, items: list[Point], n: int | None = None) -> None:
        self._items = items
        self._n = len(items) if n is None else n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, slice):
            return tuple(self._items[:self._n][k])
        if k < 0:
            k += self._n
        if not 0 <= k < self._n:
            raise IndexError(k)
        return self._items[k]

    def __iter__(self) -> Iterator[Point]:
        return islice(self._items, self._n)

    def __reversed__(self) -> Iterator[Point]:
        return (self._items[k] for k in range(self._n - 1, -1, -1))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, tuple | list | SoFar):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other,
                                                                          strict=True))

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


@dataclass
class Reading:
    """One evaluation of a trigger; the evidence is built only for the evaluation a decision
    shows (the one that fired it, else its peak), so a long window costs nothing to carry."""

    value: float | None
    samples: int
    breached: bool
    evidence: Callable[[], tuple[str, ...]] | tuple[str, ...] = ()
    note: str = ""

    def lines(self) -> tuple[str, ...]:
        if callable(self.evidence):
            self.evidence = self.evidence()
        return self.evidence


def too_few(n: int, minimum: int, what: str) -> Reading:
    return Reading(None, n, False, note=f"{n} {what} < min_samples {minimum}: not counted")


class Series:
    """One trigger (for one scenario, or for all) evaluated as time goes on; `decision()` is
    what `policy.decide` would say over the same evaluations."""

    def __init__(self, trigger: Trigger, scenario: str | None, start: float,
                 policy_sha256: str, note: str = "") -> None:
        self.trigger = trigger
        self.scenario = scenario
        self.start = start
        self.policy_sha256 = policy_sha256
        self.note = note
        self.points: list[Point] = []
        self.streak = self.best_streak = self.evaluations = 0
        self.fired_at: float | None = None
        self.decisive: tuple[float, Reading] | None = None
        self.peak: tuple[float, Reading] | None = None
        self.last_note = note
        self._decision: Decision | None = None

    def record(self, at: float, m: Reading) -> None:
        """An evaluation on the grid."""
        self._decision = None
        self.points.append(Point(at, m.value, m.samples, m.breached))
        self.last_note = m.note or self.last_note
        if m.value is None:
            return
        self.evaluations += 1
        if self.peak is None or m.value > (self.peak[1].value or 0.0):
            self.peak = (at, m)
        if m.breached:
            self.streak += 1
            self.best_streak = max(self.best_streak, self.streak)
            if self.streak >= self.trigger.consecutive and self.fired_at is None:
                self.fired_at, self.decisive = at, (at, m)
        else:
            self.streak = 0

    def arrived(self, at: float, m: Reading) -> None:
        """An evaluation off the grid, when a counted event arrived: it can only fire a
        trigger that one breached evaluation fires (`consecutive` = 1), and is kept only
        when it does, so the grid's streaks keep their meaning."""
        if self.fired_at is not None or not m.breached or self.trigger.consecutive != 1:
            return
        self._decision = None
        self.points.append(Point(at, m.value, m.samples, m.breached))
        self.evaluations += 1
        self.best_streak = max(self.best_streak, 1)
        self.fired_at, self.decisive = at, (at, m)
        if self.peak is None or (m.value or 0.0) > (self.peak[1].value or 0.0):
            self.peak = (at, m)

    def decision(self) -> Decision:
        if self._decision is not None:
            return self._decision
        trigger, shown = self.trigger, self.decisive or self.peak
        window = None
        if shown is not None:
            window = (shown[0] - trigger.within_s if trigger.within_s else self.start,
                      shown[0])
        self._decision = Decision(
            trigger=trigger, fired=self.fired_at is not None,
            observed=shown[1].value if shown else None,
            samples=shown[1].samples if shown else 0,
            window_start=round(window[0], 3) if window else None,
            window_end=round(window[1], 3) if window else None,
            evidence=shown[1].lines() if shown else (), scenario=self.scenario,
            streak=self.best_streak, evaluations=self.evaluations, fired_at=self.fired_at,
            note=(shown[1].note or self.note) if shown else self.last_note,
            points=SoFar(self.points), policy_sha256=self.policy_sha256)
        return self._decision


def unevaluated(trigger: Trigger, scenario: str | None, note: str,
                policy_sha256: str) -> Decision:
    """A trigger that cannot be evaluated in this run (a baseline trigger without one)."""
    return replace(Decision(trigger, False, None, 0, None, None, (), scenario, note=note),
                   policy_sha256=policy_sha256)


class Grid:
    """A trigger's evaluation times: every `interval_s` from the start, each handed out once,
    and the end of the run when it is over (as `policy.evaluation_times`)."""

    def __init__(self, start: float, interval_s: float) -> None:
        self.start = start
        self.interval_s = interval_s
        self.k = 0  # evaluations handed out so far
        self.ended = False

    def due(self, now: float, final: bool) -> list[float]:
        if self.ended:
            return []
        last = int((now - self.start) / self.interval_s)
        times = [self.start + k * self.interval_s for k in range(self.k + 1, last + 1)]
        self.k = max(self.k, last)
        if final:
            self.ended = True
            previous = self.start + self.k * self.interval_s if self.k else None
            if previous is None or now - previous > 1e-6:
                times.append(now)
        return times
