"""The later post-rollback watch: declared in the policy, quiet first with the gateway's log
watched, then the whole mix again, with a verdict of its own in verdict.json and the claim.

The driver runs for real against the model lab (its "70 s" reasoner scaled to under a second).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.common.errors import InputError
from harness.judge import assess
from harness.judge.judge import Judge
from harness.judge.policy import Window, load_policy
from harness.modellab import ModelLab
from harness.procedure.records import SoakRecord
from harness.procedure.run import PhaseOutcome, RunRecord, build_verdict, with_windows
from harness.signals.logwatch import LogWatcher
from harness.signals.signatures import OPENCLAW
from harness.soak.driver import SoakDriver, SoakRun
from harness.soak.scenarios import load_scenarios
from tests.test_soak_judgement import FAILOVER_LINE, endpoint

ROOT = Path(__file__).resolve().parents[1]

POLICY = """
[policy]
name = "late"
[soak]
window_s = 60
drain_s = 30
[watch]
window_s = 10
drain_s = 30
[late_watch]
delay_s = 45
window_s = 5
drain_s = 20
[[triggers]]
name = "bursts"
kind = "log"
interval_s = 0.5
classes = ["timeout", "failover"]
count = 1
within_s = 60
"""

# the shipped mix in miniature: a quick path, and the slow reasoner's reply and panel paths
MIX = """
[[scenarios]]
id = "quick"
kind = "reply"
agent = "fast-chat"
rate_per_min = 240

[[scenarios]]
id = "slow"
kind = "reply"
agent = "slow-reasoner"
stream = true
concurrency = 2

[[scenarios]]
id = "panel"
kind = "panel"
reviewers = ["fast-chat", "slow-reasoner"]
synthesiser = "fast-chat"
"""


@pytest.fixture(scope="module")
def lab() -> ModelLab:
    with ModelLab(time_scale=0.01) as running:
        yield running


def policy_file(tmp_path: Path, text: str = POLICY) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def watch(lab: ModelLab, tmp_path: Path, window: Window, lines_during_quiet: int = 0
          ) -> SoakRun:
    (tmp_path / "soak").mkdir(exist_ok=True)
    (tmp_path / "soak" / "mix.toml").write_text(MIX)
    scenarios = load_scenarios(tmp_path / "soak")
    policy = load_policy(policy_file(tmp_path))
    log = tmp_path / "gateway.log"
    log.touch()
    watcher = LogWatcher.from_end(log, OPENCLAW)
    driver = SoakDriver(endpoint(lab), scenarios.scenarios, Judge(policy), watcher)

    def gateway_logs() -> None:  # the gateway's own background work, while nobody sends
        time.sleep(0.3)
        with open(log, "a") as handle:
            for n in range(lines_during_quiet):
                handle.write(FAILOVER_LINE.format(n=n) + "\n")

    writer = threading.Thread(target=gateway_logs)
    writer.start()
    with watcher:
        run = driver.run("late_watch", window)
    writer.join()
    return run


def test_the_shipped_policy_declares_a_later_watch_after_a_quiet_delay() -> None:
    policy = load_policy(ROOT / "scenarios" / "policy.toml")
    assert policy.late_watch is not None and policy.late_watch.delay_s > 0
    assert policy.watch.delay_s == 0  # the early watch starts right after the restart
    # long enough for the slow reasoner (about 70 s) to answer inside the drain
    assert policy.late_watch.drain_s >= 90 and policy.watch.drain_s >= 90


@pytest.mark.parametrize(("old", "new", "key"), [
    ("delay_s = 45", "delay_s = -1", "late_watch.delay_s"),
    ("[watch]\nwindow_s = 10", "[watch]\ndelay_s = 5\nwindow_s = 10", "watch.delay_s"),
    ("delay_s = 45\nwindow_s = 5", "delay_s = 45\nwindow_s = 0", "late_watch.window_s"),
])
def test_a_malformed_late_watch_names_file_and_key(tmp_path: Path, old: str, new: str,
                                                   key: str) -> None:
    assert old in POLICY
    path = policy_file(tmp_path, POLICY.replace(old, new, 1))
    with pytest.raises(InputError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: {key}: ")


def test_the_command_line_shortens_or_turns_off_the_later_watch(tmp_path: Path) -> None:
    policy = load_policy(policy_file(tmp_path))
    assert with_windows(policy).late_watch == Window(5, 20, 45)
    assert with_windows(policy, late_watch_s=3, late_delay_s=2).late_watch == Window(3, 20, 2)
    assert with_windows(policy, late_watch_s=0, late_delay_s=2).late_watch is None
    without = load_policy(policy_file(tmp_path, POLICY.split("[late_watch]")[0]
                                      + "[[triggers]]" + POLICY.split("[[triggers]]")[1]))
    assert without.late_watch is None and with_windows(without).late_watch is None
    # asked for on the command line, it drains like the early watch
    assert with_windows(without, late_watch_s=4, late_delay_s=1).late_watch == Window(4, 30, 1)


def test_the_later_watch_sends_nothing_while_quiet_then_the_whole_mix(
        lab: ModelLab, tmp_path: Path) -> None:
    run = watch(lab, tmp_path, Window(1.0, 5.0, delay_s=1.5))
    first = min(x.outcome.started for x in run.exchanges())
    assert first >= run.started + 1.5 - 0.05, first - run.started  # quiet for the delay
    for sid in ("quick", "slow", "panel"):  # the slow reasoner's paths answered too
        assert run.stats(sid)["good"] >= 1 and run.stats(sid)["bad"] == 0, run.stats(sid)
    # the open model's rate is over the traffic window, not the quiet
    assert run.stats("quick")["started_per_min"] == pytest.approx(240, rel=0.25)
    judged = assess.watch(run)
    assert judged.ok and judged.summary.startswith("after 1.5 s of quiet (the log watched, no "
                                                   "traffic), every path replied correctly")
    verdict = assess.watch_verdict(run)
    assert verdict["verdict"] == "pass" and set(verdict["scenarios"]) == {"quick", "slow",
                                                                          "panel"}
    assert assess.summary(run)["delay_s"] == 1.5
    assert "quiet, traffic in" in assess.progress_line(run, -1.0)


def test_a_signature_logged_while_quiet_fails_the_later_watch_before_any_traffic(
        lab: ModelLab, tmp_path: Path) -> None:
    run = watch(lab, tmp_path, Window(1.0, 5.0, delay_s=3.0), lines_during_quiet=1)
    assert run.stopped_by == "bursts" and run.exchanges() == []
    assert run.ended - run.started < 3.0  # stopped inside the quiet delay
    judged = assess.watch(run)
    assert not judged.ok
    assert "trigger bursts fired (observed 1)" in judged.summary
    assert assess.watch_verdict(run)["verdict"] == "fail"


def test_an_unanswered_reply_fails_a_watch(lab: ModelLab, tmp_path: Path) -> None:
    (tmp_path / "soak").mkdir()
    (tmp_path / "soak" / "mix.toml").write_text(MIX + """
[[scenarios]]
id = "stuck"
kind = "reply"
agent = "hang"
timeout_s = 30
""")
    scenarios = load_scenarios(tmp_path / "soak")
    policy = load_policy(policy_file(tmp_path))
    run = SoakDriver(endpoint(lab), scenarios.scenarios, Judge(policy), None).run(
        "watch", Window(1.0, 1.0))  # a window a loaded machine still starts in
    assert run.stats("stuck")["cut"] == 1
    judged = assess.watch(run)
    assert not judged.ok and "stuck: 1 unanswered when the watch ended" in judged.summary
    assert assess.watch_verdict(run)["scenarios"]["stuck"]["verdict"] == "fail"


def rolled_back(late: dict | None, late_phase: str = "passed", reason: str = "") -> dict:
    record = RunRecord(changed=True, rollback_started=True)
    record.phases = [PhaseOutcome("upgrade", "health", "passed", 1.0),
                     PhaseOutcome("soak", "soak_policy", "failed", 1.0),
                     PhaseOutcome("rollback", "rollback_watch", "passed", 1.0),
                     PhaseOutcome("rollback", "rollback_late_watch", late_phase, 1.0, reason)]
    record.soaks["watch"] = SoakRecord("watch", verdict={"verdict": "pass"})
    if late is not None:
        record.soaks["late_watch"] = SoakRecord("late_watch", {"delay_s": late["delay_s"]},
                                                late["verdict"])
    lock = {"candidate": {"version": "2026.4.1"}, "known_good": {"version": "2026.3.28"},
            "policy": {"name": "p"}, "scenarios": {"ids": ["reply-plain"]}}
    return build_verdict(record, lock)


def test_the_claim_names_each_watchs_own_verdict() -> None:
    verdict = rolled_back({"delay_s": 120.0, "verdict": {"verdict": "pass"}})
    assert verdict["outcome"] == "rolled_back"
    assert ("2026.3.28 was restored; its early watch passed, and its later watch after 120 s "
            "of quiet passed. No claim") in verdict["claim"]
    verdict = rolled_back(None, "skipped", "no later watch declared (policy [late_watch], or "
                          "--late-watch 0)")
    assert "its watch passed (no later watch: no later watch declared" in verdict["claim"]
    failed = rolled_back({"delay_s": 5.0, "verdict": {"verdict": "fail"}}, "failed",
                         "trigger bursts fired (observed 2)")
    assert failed["outcome"] == "rollback_failed"
    assert "did not prove healthy (rollback_late_watch: trigger bursts fired (observed 2))" \
        in failed["claim"]


def test_a_late_watch_delay_without_a_later_watch_is_one_line_naming_the_option(
        tmp_path: Path) -> None:
    policy = policy_file(tmp_path, POLICY.split("[late_watch]")[0] + "[[triggers]]"
                         + POLICY.split("[[triggers]]")[1])
    for args, line in (
            (["--policy", str(policy), "--late-watch-delay", "5"],
             f"harness: error: --late-watch-delay: no later watch to delay: {policy} declares "
             "no [late_watch] (give its window with --late-watch SECONDS)"),
            (["--late-watch", "-3"], "harness: error: --late-watch: expected at least 0 "
             "seconds, got '-3'")):
        done = subprocess.run([sys.executable, "-m", "pytest", "scenarios", "--collect-only",
                               "-q", "--run-dir", str(tmp_path / "run"), *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 20, done.stdout + done.stderr
        errors = [x for x in (done.stdout + done.stderr).splitlines()
                  if x.startswith("harness: error: ")]
        assert errors == [line]
