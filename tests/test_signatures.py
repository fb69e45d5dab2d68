"""OpenClaw's real log lines are matched and classified; look-alike noise is not."""

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.common.errors import InputError
from harness.judge.judge import log_events
from harness.judge.policy import Trigger, count_events, load_policy
from harness.signals.logwatch import Match
from harness.signals.signatures import (
    OPENCLAW,
    classify,
    line_timestamp,
    run_id,
    timestamp_seconds,
)

ROOT = Path(__file__).resolve().parents[1]

# Lines as the real gateways print them (see the OpenClaw notes): 2026.4.1 on a slow model.
REAL = [
    ("2026-11-22T23:41:52.792+00:00 [agent/embedded] embedded run timeout: runId=7f3a "
     "sessionId=s1 timeoutMs=60000", "embedded-run-timeout", "timeout"),
    ("2026-11-22T23:41:52.800+00:00 [agent/embedded] embedded run failover decision: "
     "runId=7f3a stage=assistant decision=surface_error reason=timeout "
     "provider=lab/slow-reasoner profile=-", "failover-decision", "failover"),
    ("[agent/embedded] Profile openai-codex:work timed out. Trying next account...",
     "profile-timeout", "timeout"),
    ("[model-fallback/decision] model fallback decision: decision=candidate_failed "
     "requested=fake/slow candidate=fake/slow reason=timeout next=fake2/fast",
     "model-fallback-failed", "fallback"),
    ('[diagnostic] lane task error: lane=main durationMs=30846 error="FailoverError: LLM '
     'request timed out."', "lane-task-timeout", "timeout"),
    ("embedded run agent end: runId=9 isError=true model=m provider=p error=HTTP 500: boom",
     "run-error", "error"),
    ("2026-11-23T01:40:15.429+00:00 [openai-compat] streaming chat completion failed: Error: "
     "ENOENT: no such file or directory, rename '/x/workspace-state.json.tmp-1' -> '/x'",
     "chat-completion-failed", "error"),
    ("[plugins] amazon-bedrock failed to load", "plugin-load-failure", "warning"),
    ('[gateway-http] stage "slack" threw — skipping: Error: Cannot find module',
     "http-stage-threw", "warning"),
]

NOISE = [
    "[agents/model-providers] [xai-auth] bootstrap config fallback: no config-backed key found",
    "2026-11-22T23:41:52.792+00:00 [gateway] listening on ws://127.0.0.1:18789 (PID 4920)",
    "[model-fallback/decision] model fallback decision: decision=candidate_succeeded x",
]


@pytest.mark.parametrize(("line", "name", "klass"), REAL)
def test_real_signatures_are_classified(line: str, name: str, klass: str) -> None:
    signature = classify(line, OPENCLAW)
    assert signature is not None and (signature.name, signature.klass) == (name, klass)


@pytest.mark.parametrize("line", NOISE)
def test_look_alike_noise_is_not_a_signature(line: str) -> None:
    assert classify(line, OPENCLAW) is None


def test_run_id_and_timestamp_are_read_from_the_line() -> None:
    line = REAL[1][0]
    assert run_id(line) == "7f3a"
    assert line_timestamp(line) == "2026-11-22T23:41:52.800+00:00"
    assert run_id(NOISE[0]) is None


# A user's pattern that backtracks exponentially under Python's `re` (issue 13): on this line
# `re` runs for hours holding the interpreter lock. Run in a child process with a deadline, so
# a regression fails here instead of hanging the suite where pytest-timeout cannot reach it.
CATASTROPHIC = r"^(\w+\s?)+$"
CHILD = """
import sys
from pathlib import Path
from harness.judge.policy import load_policy
from harness.signals.logwatch import LogWatcher
policy = load_policy(Path(sys.argv[1]))
log = Path(sys.argv[2])
log.write_text("a" * 55 + "!\\n" + "ordinary words in a line\\n")
watcher = LogWatcher(log, policy.signatures)
watcher.poll()
print(len(watcher.lines), [m.signature for m in watcher.matches])
"""


def test_a_user_pattern_cannot_hang_the_log_watcher(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY_WITH_PATTERN.format(pattern=CATASTROPHIC))
    done = subprocess.run([sys.executable, "-c", CHILD, str(policy), str(tmp_path / "g.log")],
                          capture_output=True, text=True, timeout=20, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "['words']"]


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?<=x)y", r"(?!x)y", "(unclosed"])
def test_a_pattern_the_linear_engine_cannot_run_is_refused_at_load(
        tmp_path: Path, pattern: str) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY_WITH_PATTERN.format(pattern=pattern))
    with pytest.raises(InputError) as caught:
        load_policy(policy)
    assert str(caught.value).startswith(f"{policy}: signatures[0].pattern: not a ")
    assert "\n" not in str(caught.value)


POLICY_WITH_PATTERN = """
[policy]
name = "p"
[soak]
window_s = 60
drain_s = 30
[watch]
window_s = 10
drain_s = 30
[[signatures]]
name = "words"
class = "error"
pattern = '{pattern}'
[[triggers]]
name = "t"
kind = "log"
signatures = ["words"]
count = 1
"""


def test_journald_short_timestamps_are_read_from_the_line() -> None:
    now = datetime(2026, 4, 3, 9, 0, tzinfo=UTC)
    line = "Apr 02 10:14:03 host node[1234]: [agent/embedded] embedded run timeout: runId=7f3a"
    assert line_timestamp(line, now) == "2026-04-02T10:14:03+00:00"
    assert line_timestamp("Apr  2 10:14:03.250 host node[1]: x", now) \
        == "2026-04-02T10:14:03.250000+00:00"
    assert line_timestamp("Dec 31 23:59:59 host node[1]: x", now).startswith("2025-12-31")
    assert line_timestamp("Feb 30 10:00:00 host node[1]: x", now) is None
    assert timestamp_seconds(line_timestamp("2026-04-02T10:14:03+0000 host x")) \
        == datetime(2026, 4, 2, 10, 14, 3, tzinfo=UTC).timestamp()


def _match(line: str, line_no: int, seen: float) -> Match:
    signature = classify(line, OPENCLAW)
    assert signature is not None
    return Match(seen, line_no, signature.name, signature.klass, run_id(line), line,
                 line_timestamp(line))


def test_per_run_counts_a_failing_request_once_with_its_run_less_lines() -> None:
    """OpenClaw's 'Profile ... timed out' names no run: beside its request's own lines it is
    that run, far from any it counts apart; never one request twice."""
    burst = Trigger(name="b", kind="log", classes=("timeout", "failover"), per="run", count=2)
    request = [
        _match("2026-04-02T10:14:03.100Z [agent/embedded] embedded run timeout: runId=r1", 1, 50),
        _match("2026-04-02T10:14:03.400Z [agent/embedded] Profile lab:a timed out. Trying next "
               "account...", 2, 50),
        _match("2026-04-02T10:14:03.500Z [agent/embedded] embedded run failover decision: "
               "runId=r1 decision=surface_error", 3, 50),
    ]
    assert count_events(log_events(burst, request), "run") == 1
    alone = _match("Apr 02 10:20:00 host node[9]: Profile lab:a timed out. Trying next account",
                   9, 400)
    assert count_events(log_events(burst, [*request, alone]), "run") == 2
