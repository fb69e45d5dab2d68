"""A soak with a record file keeps little in memory and decides and reports as one without.

The same generated soak (tests/test_judge_linear.py's, seeded) is replayed twice, once kept in
memory and once writing its ended iterations to a record file: every decision of the judge,
live at many moments and at the end, every path's numbers, the verdict's summary and the
requests as the report lists them are compared. The live judge is also compared with the
reference judge while its streams let go of what every window has passed, at every call.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from harness.judge import assess
from harness.judge import judge as judge_module
from harness.judge.judge import Judge
from harness.judge.policy import Window
from harness.judge.recovery_time import recovery
from harness.judge.series import Stream
from harness.soak import driver
from harness.soak.driver import Exchange, Iteration, SoakRun
from harness.soak.records import KEPT_BAD, KEPT_LAST, RequestFile
from harness.soak.scenarios import Scenario
from harness.targets.client import ChatOutcome
from tests.reference_judge import ReferenceJudge
from tests.test_judge_linear import Soak, apply, policy


def twins(tmp_path: Path, seed: int, seconds: float = 90, bad: float = 0.2,
          ids: tuple[str, ...] = ("a", "b", "c")) -> tuple[Soak, Soak, Path]:
    """The same soak twice (separate objects): one to keep in memory, one to write out."""
    classes = ("timeout", "failover", "error")
    return (Soak(seed, ids, seconds, bad, classes), Soak(seed, ids, seconds, bad, classes),
            tmp_path / f"soak-{seed}.jsonl")


def written(soak: Soak, path: Path) -> tuple[SoakRun, list]:
    run, happenings = soak.replay()
    run.record_file = RequestFile(path)
    return run, happenings


def finish(run: SoakRun, soak: Soak, happenings: list) -> SoakRun:
    for h in happenings:
        apply(run, h)
    run.close()
    run.ended = soak.end
    run.matches = list(soak.matches)
    return run


@pytest.mark.parametrize("seed", [1, 2, 4])
def test_the_final_judgement_and_the_numbers_are_the_same_from_the_file(
        tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # a short soak: keep few, so most of it is let go and read back
    monkeypatch.setattr(driver, "KEPT_LAST", 3)
    monkeypatch.setattr(driver, "KEPT_BAD", 2)
    rules = policy(tmp_path)
    kept, out, path = twins(tmp_path, seed)
    base_kept, base_out, base_path = twins(tmp_path, seed + 100, 40, 0.1, ("a", "b"))
    baseline = base_kept.finished()
    run_b, happenings_b = written(base_out, base_path)
    baseline_written = finish(run_b, base_out, happenings_b)
    memory = kept.finished()
    run, happenings = written(out, path)
    bounded = finish(run, out, happenings)
    assert bounded.bounded and not memory.bounded
    assert len(bounded.iterations) < len(memory.iterations)  # it let go of some

    with monkeypatch.context() as streamed_only:  # from the file as it is read, not all at once
        streamed_only.setattr(judge_module.Evaluation, "take_all", None)
        mine = Judge(rules, baseline_written)(bounded, bounded.matches, True)
    theirs = Judge(rules, baseline)(memory, memory.matches, True)
    assert [d.label for d in mine] == [d.label for d in theirs]
    for a, b in zip(mine, theirs, strict=True):
        assert a == b, a.label
    assert any(d.fired for d in theirs) and any(not d.fired for d in theirs)
    reference = ReferenceJudge(rules, baseline)(memory, memory.matches, True)
    assert [d.label for d in reference] == [d.label for d in theirs]

    bounded.decisions = memory.decisions = theirs
    for sid in memory.scenario_ids:
        assert bounded.stats(sid) == memory.stats(sid), sid
        for min_samples in (2, 1000):
            assert assess.scenario(bounded, sid, min_samples, baseline_written) \
                == assess.scenario(memory, sid, min_samples, baseline), sid
    assert assess.summary(bounded) == assess.summary(memory)
    assert assess.compare(baseline_written, bounded) == assess.compare(baseline, memory)
    def key(r: dict) -> tuple:
        return r["scenario"], r["iteration"], r["step"]

    # the file lists them in the order their iterations ended (memory: as they started)
    assert sorted(bounded.requests(), key=key) == sorted(memory.requests(), key=key)
    assert recovery(None, {}, bounded) == recovery(None, {}, memory)
    # the file holds every request, one JSON line each, with the fields the README names
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    requests = [line for line in lines if "step" in line]
    assert len(requests) == memory.request_count() == len(memory.exchanges())
    for field in ("scenario", "step", "started", "first_byte", "ended", "status", "verdict",
                  "reason"):
        assert all(field in line for line in requests), field


@pytest.mark.parametrize("seed", [1, 3])
def test_the_live_judgement_is_the_same_while_it_lets_go(
        tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Stream, "PRUNE_AT", 1)  # let go at every call it can
    rules = policy(tmp_path)
    kept, out, path = twins(tmp_path, seed, 60)
    memory, happenings = kept.replay()
    run, happenings_out = written(out, path)
    # one live judge a run: it lets go of what it took from the run's queues
    pruning, reference = Judge(rules, on_arrival=False), ReferenceJudge(rules)
    grid = list(happenings)
    other = list(happenings_out)
    moment, compared = kept.start, 0
    while moment < kept.end:
        moment += random.Random(moment).uniform(0.3, 2.5)
        while grid and grid[0][0] <= moment:
            apply(memory, grid.pop(0))
            apply(run, other.pop(0))
        matches = [m for m in kept.matches if m.seen <= moment]
        mine = pruning(run, matches, False, moment)
        theirs = reference(memory, matches, False, moment)
        for a, b in zip(mine, theirs, strict=True):
            if not (a.trigger.kind == "log" and a.trigger.per == "run"):  # see test_judge_linear
                assert a == b, (moment, a.label)
        compared += 1
    assert compared > 20
    streams = pruning._live.streams  # type: ignore[union-attr]
    assert any(s.base > 0 for s in streams.finished_of.values())  # it did let go
    assert run.completed_base > 0 and len(run.completed) < run.completed_count


def test_a_long_soak_with_a_record_file_keeps_a_bounded_number_of_iterations(
        tmp_path: Path) -> None:
    """Hours of a path that now and then fails: memory holds its first bad ones, its last
    ones and what is in flight, however long it runs; the numbers count everything."""
    run = SoakRun("soak", Window(36_000, 10), 1_000.0, scenarios=[Scenario("q", "reply", ())],
                  record_file=RequestFile(tmp_path / "soak.jsonl"))
    rng = random.Random(3)
    judge = Judge(policy(tmp_path))
    most = 0
    for n in range(20_000):
        at = 1_000.0 + n * 0.5
        iteration = Iteration("q", run.count_of("q"), at)
        run.start(iteration)
        verdict = "bad" if rng.random() < 0.01 else "good"
        run.record(iteration, Exchange("q", iteration.index, "reply", (), ChatOutcome(
            "m", False, 200, "x" * 500, at, at + 0.1, at + 1.0), verdict, f"why {n}"))
        run.end(iteration, verdict, verdict, at=at + 1.0)
        if n % 200 == 0:
            judge(run, [], False, at + 1.0)
            most = max(most, len(run.iterations), len(run.completed))
    assert most <= KEPT_LAST + KEPT_BAD + 200
    stats = run.stats("q")
    assert stats["iterations"] == stats["finished"] == 20_000
    assert stats["bad"] == sum(1 for i in run.every_iteration() if i.verdict == "bad") > 100
    firsts = [i for i in run.of("q") if i.verdict == "bad"]
    assert [i.index for i in firsts[:KEPT_BAD]] == sorted(
        i.index for i in run.every_iteration() if i.verdict == "bad")[:KEPT_BAD]


@pytest.mark.parametrize("seed", [1, 2])
def test_a_clock_that_went_back_is_judged_from_the_whole_file(
        tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A streamed final judgement relies on the file's order: a request ended after its
    iteration started, an iteration at most its path's longest one after. When the times on
    file break that (here: no margin at all, so the first late request does), it says so and
    the run is judged from the whole file at once, the same decisions."""
    rules = policy(tmp_path)
    kept, out, path = twins(tmp_path, seed)
    memory = kept.finished()
    run, happenings = written(out, path)
    bounded = finish(run, out, happenings)
    went_back = []
    streamed = judge_module.Evaluation.take_streamed

    def watched(self: judge_module.Evaluation, *args: object) -> None:
        try:
            streamed(self, *args)
        except judge_module.OutOfOrder as e:
            went_back.append(str(e))
            raise

    monkeypatch.setattr(judge_module.Evaluation, "take_streamed", watched)
    monkeypatch.setattr(judge_module, "SKEW_S", -1e9)  # every request goes out at once
    monkeypatch.setattr(judge_module, "FORWARD_EVERY_S", 0.0)  # as each iteration is read
    mine = Judge(rules)(bounded, bounded.matches, True)
    assert went_back and "ended at" in went_back[0]
    assert mine == Judge(rules)(memory, memory.matches, True)


def test_a_final_judgement_from_the_file_holds_about_a_longest_iteration_not_the_soak(
        tmp_path: Path) -> None:
    """Two simulated hours of one path on file, judged at their end: what the judgement holds
    at most is measured (Python's allocations) beside reading the whole file back at once
    (6 and 22 MB when written). The same decisions either way."""
    import tracemalloc

    run = SoakRun("soak", Window(7_200, 0), 1_000.0, scenarios=[Scenario("q", "reply", ())],
                  record_file=RequestFile(tmp_path / "soak.jsonl"))
    for n in range(14_400):
        at = 1_000.0 + n * 0.5
        iteration = Iteration("q", run.count_of("q"), at)
        run.start(iteration)
        verdict = "bad" if n % 1000 == 999 else "good"
        run.record(iteration, Exchange("q", iteration.index, "reply", (), ChatOutcome(
            "m", False, 200, "x" * 200, at, at + 0.1, at + 1.0 + n % 7), verdict, f"why {n}"))
        run.end(iteration, verdict, verdict, at=at + 1.0 + n % 7)
    run.close()
    run.ended = 1_000.0 + 7_260
    rules = policy(tmp_path)

    def peak(judged: object) -> tuple[int, object]:
        tracemalloc.start()
        try:
            decisions = judged()  # type: ignore[operator]
            return tracemalloc.get_traced_memory()[1], decisions
        finally:
            tracemalloc.stop()

    streamed, mine = peak(lambda: Judge(rules)(run, [], True))
    whole, theirs = peak(lambda: _all_at_once(rules, run))
    assert mine == theirs
    # what it still holds: the evaluations' points (the decisions show them) and a batch of
    # lines being parsed; the requests themselves about a longest iteration's worth
    assert streamed * 3 < whole, (streamed, whole)


def _all_at_once(rules: object, run: SoakRun) -> list:
    evaluation = judge_module.Evaluation(Judge(rules), run)  # type: ignore[arg-type]
    evaluation.take_all([])
    return evaluation.advance(run.ended, final=True)
