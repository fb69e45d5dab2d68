"""The soak driver and the judgement, run for real against the model lab (no gateway between).

Scenario and policy files are written as a user would write them; the lab is the real upstream
process with its declared behaviours, at a time scale that makes its "70 s" take under a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.judge import assess
from harness.judge.judge import Judge
from harness.judge.policy import Window, load_policy
from harness.modellab import ModelLab
from harness.reporting.soak import baseline_comparison_markdown
from harness.signals.logwatch import LogWatcher
from harness.signals.signatures import OPENCLAW
from harness.soak.driver import SoakDriver, SoakRun
from harness.soak.scenarios import load_scenarios
from harness.targets.client import GatewayEndpoint

# A real line of OpenClaw 2026.4.1's console log when it gives up on a silent model.
FAILOVER_LINE = ("2026-04-02T10:11:12.345+00:00 [agent/embedded] embedded run failover decision:"
                 " runId=run-{n} stage=assistant decision=surface_error reason=timeout "
                 "provider=lab/slow-reasoner profile=-")

POLICY_HEAD = """
[policy]
name = "test"
min_samples = {min_samples}
[soak]
window_s = 2
drain_s = 5
[watch]
window_s = 1
drain_s = 5
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[ModelLab]:
    with ModelLab(time_scale=0.01) as running:
        yield running


def endpoint(lab: ModelLab) -> GatewayEndpoint:
    return GatewayEndpoint(base_url=lab.url, token="lab", headers={},
                           chat_path="/v1/chat/completions", model_prefix="")


def files(tmp_path: Path, scenarios: str, triggers: str, min_samples: int = 1):
    s = tmp_path / "soak"
    s.mkdir(exist_ok=True)
    (s / "mix.toml").write_text(scenarios)
    p = tmp_path / "policy.toml"
    p.write_text(POLICY_HEAD.format(min_samples=min_samples) + triggers)
    return load_scenarios(s), load_policy(p)


def soak(lab: ModelLab, scenario_set, policy, log: Path, window_s: float = 2.0,
         baseline: SoakRun | None = None, label: str = "soak",
         write_lines: int = 0, stop_grace_s: float = 10.0, drain_s: float = 5.0) -> SoakRun:
    log.touch()
    watcher = LogWatcher.from_end(log, OPENCLAW)
    driver = SoakDriver(endpoint(lab), scenario_set.scenarios, Judge(policy, baseline), watcher)
    writer = None
    if write_lines:
        def write() -> None:  # the "gateway" logging its failovers while the soak runs
            for n in range(write_lines):
                time.sleep(0.2)
                with open(log, "a") as handle:
                    handle.write(FAILOVER_LINE.format(n=n) + "\n")
        writer = threading.Thread(target=write)
        writer.start()
    with watcher:
        run = driver.run(label, Window(window_s, drain_s, stop_grace_s=stop_grace_s))
    if writer is not None:
        writer.join()
    return run


MIX = """
[[scenarios]]
id = "quick"
kind = "reply"
agent = "fast-chat"
concurrency = 2
pause_s = 0.1

[[scenarios]]
id = "panel"
kind = "panel"
reviewers = ["fast-chat", "steady", "slow-reasoner"]
synthesiser = "fast-chat"

[[scenarios]]
id = "triage"
kind = "sequence"
stream = false
rate_per_min = 120

[[scenarios.steps]]
name = "classify"
agent = "fast-chat"
prompt = "Reply as JSON with tags and summary, quoting {nonce}."
json_keys = ["tags", "summary"]

[[scenarios.steps]]
name = "answer"
agent = "steady"
stream = true
prompt = "Answer from this triage, quoting {nonce}.\\n\\n{previous}"
contains = ["Ack"]
"""

CLEAN_TRIGGERS = """
[[triggers]]
name = "bursts"
kind = "log"
interval_s = 0.5
classes = ["timeout", "failover"]
count = 3
within_s = 60

[[triggers]]
name = "bad"
kind = "replies"
interval_s = 0.5
count = 1

[[triggers]]
name = "slow"
kind = "latency"
interval_s = 0.5
max_s = 30
min_samples = 2
"""


def test_a_clean_candidate_passes_with_every_scenarios_numbers_shown(
        lab: ModelLab, tmp_path: Path) -> None:
    scenarios, policy = files(tmp_path, MIX, CLEAN_TRIGGERS, min_samples=2)
    run = soak(lab, scenarios, policy, tmp_path / "gateway.log")
    verdict = assess.soak_verdict(run, {s: 2 for s in run.scenario_ids})
    assert verdict["verdict"] == "pass", verdict["reasons"]
    for sid in ("quick", "panel", "triage"):
        stats = run.stats(sid)
        assert stats["good"] >= 2 and stats["bad"] == 0, (sid, stats)
        line = next(r for r in verdict["reasons"] if r.startswith(f"{sid}: pass: "))
        assert f"{stats['good']} good, 0 bad of {stats['finished']} finished" in line
        assert f"p95 {stats['p95_s']} s" in line
    # why it passed: each trigger's peak against its threshold, stamped with the policy hash
    policy_line = verdict["reasons"][0]
    assert "bursts peak 0/3" in policy_line and "bad peak 0/1" in policy_line
    assert all(d.policy_sha256 == policy.sha256 for d in run.decisions)
    # the sequence chained its steps: the answer echoed the triage's nonce and its own
    answer = next(x for x in run.exchanges("triage") if x.step == "answer")
    assert len(answer.expected) == 2 and all(n in answer.outcome.content for n in answer.expected)
    # the open-model scenario kept its schedule: 120/min for 2 s is 4 arrivals
    triage = run.stats("triage")
    assert triage["iterations"] == 4 and triage["dropped"] == 0
    assert triage["lag_p99_s"] is not None and triage["started_per_min"] == 120
    # the live line a person watches: time, requests, errors, classes, p95, nearest trigger
    line = assess.progress_line(run, 2.0)
    assert line.startswith("[soak]     2/2 s  requests ") and "(bad 0)" in line
    assert "no signatures" in line and "nearest trigger: " in line


def test_a_scenario_with_too_few_samples_is_inconclusive(lab: ModelLab, tmp_path: Path) -> None:
    mix = MIX.split("[[scenarios]]\nid = \"panel\"")[0]
    scenarios, policy = files(tmp_path, mix + """
[[scenarios]]
id = "slow"
kind = "reply"
agent = "slow-reasoner"
min_samples = 3
""", CLEAN_TRIGGERS)
    run = soak(lab, scenarios, policy, tmp_path / "gateway.log", window_s=0.5)
    judgement = assess.scenario(run, "slow", 3)
    assert judgement.verdict == "inconclusive", judgement.summary
    assert "only 1 finished iteration(s), fewer than min_samples 3" in judgement.summary
    verdict = assess.soak_verdict(run, {"quick": 1, "slow": 3})
    assert verdict["verdict"] == "inconclusive"
    assert verdict["scenarios"]["quick"]["verdict"] == "pass"


BASELINE_TRIGGER = """
[[triggers]]
name = "vs-baseline"
kind = "baseline"
interval_s = 0.5
classes = ["timeout", "failover"]
max_ratio = 2.0
absolute_max = 0
"""


def test_a_class_the_baseline_never_had_fails_the_candidate(lab: ModelLab,
                                                            tmp_path: Path) -> None:
    mix = MIX.split("[[scenarios]]\nid = \"panel\"")[0]
    scenarios, policy = files(tmp_path, mix, BASELINE_TRIGGER)
    log = tmp_path / "gateway.log"
    baseline = soak(lab, scenarios, policy, log, window_s=1.0, label="baseline")
    assert assess.class_counts(baseline)["failover"] == 0
    run = soak(lab, scenarios, policy, log, window_s=3.0, baseline=baseline, write_lines=2)
    decision = next(d for d in run.decisions if d.trigger.name == "vs-baseline")
    assert decision.fired and decision.observed >= 1
    assert "the baseline had none" in decision.note
    assert "decision=surface_error reason=timeout" in decision.evidence[0]
    assert run.stopped_by == "vs-baseline" and run.ended - run.started < 3.0 + 5.0
    comparison = assess.compare(baseline, run)
    assert comparison["classes"]["failover"]["new"] is True
    assert "NEW (none in the baseline)" in baseline_comparison_markdown(comparison)
    assert assess.soak_verdict(run, {"quick": 1}, baseline)["verdict"] == "fail"


@pytest.mark.parametrize("grace_s", [10.0, 0.0])
def test_a_trigger_stops_new_work_and_lets_what_is_in_flight_finish_within_the_grace(
        tmp_path: Path, grace_s: float) -> None:
    # The slow reasoner takes 2.1 s at this time scale; the log trigger fires at the first
    # evaluation (1 s), while its first request is in flight.
    scenarios, policy = files(tmp_path, """
[[scenarios]]
id = "slow"
kind = "reply"
agent = "slow-reasoner"
""", """
[[triggers]]
name = "bursts"
kind = "log"
interval_s = 0.5
classes = ["timeout", "failover"]
count = 2
""")
    with ModelLab(time_scale=0.03) as slow_lab:
        run = soak(slow_lab, scenarios, policy, tmp_path / "gateway.log", window_s=6.0,
                   write_lines=2, stop_grace_s=grace_s)
    assert run.stopped_by == "bursts"
    verdicts = [i.verdict for i in run.of("slow")]
    if grace_s:
        assert verdicts == ["good"]  # the request in flight finished and was judged
        assert run.ended - run.started >= 2.0
    else:
        assert verdicts == ["cut"]  # no grace: cut at the stop, not judged
        assert run.ended - run.started < 2.0
    assert run.ended - run.started < 6.0  # stopped early either way, nothing new started


def test_without_a_baseline_a_baseline_trigger_is_reported_not_evaluated(
        lab: ModelLab, tmp_path: Path) -> None:
    mix = MIX.split("[[scenarios]]\nid = \"panel\"")[0]
    scenarios, policy = files(tmp_path, mix, BASELINE_TRIGGER)
    run = soak(lab, scenarios, policy, tmp_path / "gateway.log", window_s=0.5, write_lines=1)
    decision = run.decisions[0]
    assert not decision.fired and decision.note.startswith("no baseline soak")
    assert "vs-baseline not evaluated (no baseline soak" in assess.policy(run).summary


def test_a_dry_run_trigger_is_reported_and_does_not_decide(lab: ModelLab,
                                                           tmp_path: Path) -> None:
    mix = MIX.split("[[scenarios]]\nid = \"panel\"")[0].replace('"fast-chat"', '"flaky"', 1)
    scenarios, policy = files(tmp_path, mix, """
[[triggers]]
name = "errors"
kind = "error-ratio"
interval_s = 0.5
max_ratio = 0.05
min_samples = 5
dry_run = true
""")
    run = soak(lab, scenarios, policy, tmp_path / "gateway.log")
    decision = run.decisions[0]
    assert run.stats("quick")["bad"] >= 1  # the flaky model failed every fifth call
    assert decision.fired and not decision.decides and run.stopped_by is None
    assert "errors[quick] would have fired (dry run" in assess.policy(run).summary
    assert assess.policy(run).verdict == "pass"


def test_content_checks_and_latency_budgets_make_a_reply_bad(lab: ModelLab,
                                                             tmp_path: Path) -> None:
    scenarios, policy = files(tmp_path, """
[[scenarios]]
id = "wants-words"
kind = "reply"
agent = "fast-chat"
contains = ["no model says this"]

[[scenarios]]
id = "wants-json"
kind = "reply"
agent = "fast-chat"
json_keys = ["tags"]

[[scenarios]]
id = "over-budget"
kind = "reply"
agent = "slow-reasoner"
latency_budget_s = 0.2
""", CLEAN_TRIGGERS)
    run = soak(lab, scenarios, policy, tmp_path / "gateway.log", window_s=0.3)
    reasons = {sid: run.of(sid)[0].reason for sid in run.scenario_ids}
    assert "without 'no model says this'" in reasons["wants-words"]
    assert "reply is not JSON" in reasons["wants-json"]
    assert "over the 0.2 s latency budget" in reasons["over-budget"]
    assert run.stopped_by == "bad"


def test_an_open_model_drops_arrivals_beyond_its_in_flight_cap(lab: ModelLab,
                                                               tmp_path: Path) -> None:
    scenarios, policy = files(tmp_path, """
[[scenarios]]
id = "stuck"
kind = "reply"
agent = "hang"
rate_per_min = 600
max_in_flight = 3
timeout_s = 30
""", CLEAN_TRIGGERS.split("[[triggers]]\nname = \"bad\"")[0])
    run = soak(lab, scenarios, policy, tmp_path / "gateway.log", window_s=1.0, drain_s=1.0)
    stats = run.stats("stuck")
    # 10 arrivals a second for 1 s; the model never answers, so 3 are in flight and 7 dropped,
    # and the 3 are cut when the drain ends
    assert stats["iterations"] == 3 and stats["dropped"] == 7 and stats["cut"] == 3


def test_ask_puts_an_inconclusive_soak_before_a_person(tmp_path: Path) -> None:
    from harness.procedure.gate import REQUEST, RestartGate, answer

    def ask(timeout_s: float, approver: str | None):
        def go() -> None:
            deadline = time.monotonic() + 10
            while not (tmp_path / REQUEST).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            if approver:
                answer(tmp_path, approver)
        thread = threading.Thread(target=go, daemon=True)
        thread.start()
        decision = RestartGate("manual", tmp_path, timeout_s, poll_s=0.05).ask(
            "accept an inconclusive soak", {"paths": ["slow"]})
        thread.join()
        return decision.approved, decision.as_dict()

    mode, decision = assess.inconclusive_mode("ask", "inconclusive", lambda: ask(10, "alice"))
    assert mode == "pass" and decision["by"] == "alice"
    mode, decision = assess.inconclusive_mode("ask", "inconclusive", lambda: ask(0.3, None))
    assert mode == "fail" and decision["channel"] == "timeout"  # nobody answered: fail closed

    def never() -> tuple[bool, dict]:
        raise AssertionError("a person is asked only about an inconclusive soak")

    assert assess.inconclusive_mode("ask", "pass", never) == ("fail", None)
    assert assess.inconclusive_mode("pass", "inconclusive", never) == ("pass", None)
    assert assess.inconclusive_mode("fail", "inconclusive", never) == ("fail", None)
