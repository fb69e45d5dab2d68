"""A deciding trigger does not wait for what cannot finish: cut at once, said so, never a pass.

Against the real model lab at a time scale where its slow reasoner answers in 2.1 s: the log
trigger fires while the first slow request is in flight (failover lines at 0.2 and 0.4 s).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.judge import assess
from harness.judge.judge import Judge
from harness.judge.policy import Window
from harness.judge.recovery_time import recovery
from harness.modellab import ModelLab
from harness.signals.logwatch import LogWatcher
from harness.signals.signatures import OPENCLAW
from harness.soak.driver import SoakDriver, SoakRun
from harness.soak.scenarios import Scenario
from tests.test_soak_judgement import FAILOVER_LINE, endpoint, files

SLOW = """
[[scenarios]]
id = "slow"
kind = "reply"
agent = "slow-reasoner"
"""
BURSTS = """
[[triggers]]
name = "bursts"
kind = "log"
classes = ["timeout", "failover"]
count = 2
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[ModelLab]:
    with ModelLab(time_scale=0.03) as running:
        yield running


def stopped_soak(lab: ModelLab, tmp_path: Path, known_s: dict[str, float] | None,
                 rolls_back: bool) -> SoakRun:
    scenarios, policy = files(tmp_path, SLOW, BURSTS)
    log = tmp_path / "gateway.log"
    log.touch()

    def write() -> None:
        for n in range(2):
            time.sleep(0.2)
            with open(log, "a") as handle:
                handle.write(FAILOVER_LINE.format(n=n) + "\n")

    watcher = LogWatcher.from_end(log, OPENCLAW)
    with watcher:
        driver = SoakDriver(endpoint(lab), scenarios.scenarios, Judge(policy), watcher,
                            known_s=known_s, decision_rolls_back=rolls_back)
        driver.settle_s = 0.1  # the lines are written apart from any reply here
        writer = threading.Thread(target=write)
        writer.start()
        run = driver.run("soak", Window(6.0, 5.0, stop_grace_s=10.0))
        writer.join()
    return run


@pytest.mark.parametrize("known_s,rolls_back,why", [
    (None, True, "the decision rolls back"),
    ({"slow": 0.2}, False, "past its path's known 0.2 s"),
])
def test_what_cannot_finish_within_the_grace_is_cut_at_once_and_is_not_a_pass(
        lab: ModelLab, tmp_path: Path, known_s: dict[str, float] | None, rolls_back: bool,
        why: str) -> None:
    run = stopped_soak(lab, tmp_path, known_s, rolls_back)
    assert run.stopped_by == "bursts"
    [iteration] = run.of("slow")
    assert iteration.verdict == "cut" and iteration.cut_by == "bursts"
    assert why in iteration.reason and iteration.reason.startswith("cut by bursts after ")
    # a moment for what lands with the evidence, then cut: not the 2.1 s reply, not the grace
    assert run.decided_at is not None and run.ended - run.decided_at < 1.0
    assert run.stats("slow")["cut_by_decision"] == 1
    judgement = assess.scenario(run, "slow", 1)
    assert judgement.verdict == "inconclusive"
    if not rolls_back:  # hanging well past its known duration: said so
        assert iteration.overdue and "well past this path's known duration" in judgement.summary
    assert "1 in flight cut by the decision (not judged)" in judgement.summary


def test_what_its_known_duration_says_ends_within_the_grace_keeps_it(
        lab: ModelLab, tmp_path: Path) -> None:
    run = stopped_soak(lab, tmp_path, {"slow": 3.0}, rolls_back=False)
    assert [i.verdict for i in run.of("slow")] == ["good"]
    assert run.stats("slow")["cut_by_decision"] == 0


def test_the_recovery_adds_up_from_the_decision_to_the_first_good_reply() -> None:
    from harness.procedure.phases import PhaseResult
    from harness.soak.driver import Exchange, Iteration
    from harness.targets.client import ChatOutcome

    soak = SoakRun("soak", Window(60, 10), 1_000.0, ended=1_061.5, stopped_by="bursts",
                   decided_at=1_060.0)
    timeline = {}
    for name, start, took in (("pre-rollback", 1_063.0, 0.7), ("rollback_prepare", 1_063.7, 2.0),
                              ("restart_gate", 1_065.7, 0.0), ("restore", 1_065.7, 0.4),
                              ("start", 1_066.1, 5.2)):
        timeline[name] = PhaseResult(name, True, "", seconds=took, started_at=start)
    smoke = SoakRun("smoke", Window(0, 10), 1_071.3, scenarios=[Scenario("quick", "reply", ())])
    reply = Iteration("quick", 0, 1_071.3)
    smoke.start(reply)
    smoke.record(reply, Exchange("quick", 0, "reply", (), ChatOutcome(
        "fast-chat", False, 200, "", 1_071.3, 1_072.0, 1_073.0), "good", "ok"))
    out = recovery(soak, timeline, smoke)
    assert out["decided_by"] == "bursts" and out["grace_s"] == 1.5
    assert (out["backup_s"], out["prepare_s"], out["restore_s"], out["start_s"]) == (
        0.7, 2.0, 0.4, 5.2)
    assert out["before_backup_s"] == 1.5  # the soak's report and the rollback's first step
    assert out["first_reply_s"] == pytest.approx(1.7) and out["total_s"] == 13.0
