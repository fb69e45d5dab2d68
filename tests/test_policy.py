"""Policy files are validated with file:key errors, and triggers count what they should."""

from pathlib import Path

import pytest

from harness.errors import ExitCode, InputError
from harness.policy import Event, Trigger, evaluate, load_policy

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
[policy]
name = "p"
[soak]
window_s = 60
drain_s = 30
[watch]
window_s = 10
drain_s = 30
[[triggers]]
name = "burst"
kind = "log"
classes = ["timeout", "failover"]
per = "run"
count = 3
within_s = 300
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def test_the_shipped_policy_loads_and_is_hashed() -> None:
    policy = load_policy(ROOT / "scenarios" / "policy.toml")
    assert len(policy.sha256) == 64
    assert {t.name for t in policy.triggers} == {"timeout-failover-burst", "bad-replies"}


@pytest.mark.parametrize(("old", "new", "key"), [
    ('within_s = 300', 'within_s = "5m"', "triggers[0].within_s"),
    ('count = 3', 'count = 0', "triggers[0].count"),
    ('classes = ["timeout", "failover"]', 'classes = ["timeouts"]', "triggers[0].classes"),
    ('kind = "log"', 'kind = "metric"', "triggers[0].kind"),
    ('per = "run"', 'per = "run"\nwithn_s = 3', "triggers[0].withn_s"),
    ('window_s = 60', 'window_s = 0', "soak.window_s"),
])
def test_a_malformed_policy_names_file_and_key(tmp_path: Path, old: str, new: str,
                                               key: str) -> None:
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(InputError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert "\n" not in message
    assert caught.value.exit_code == ExitCode.BAD_INPUT


def test_broken_toml_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "\n[[triggers]\n")
    with pytest.raises(InputError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: not valid TOML")


def trigger(**kw) -> Trigger:
    base = {"name": "t", "kind": "log", "count": 3, "within_s": 60.0, "classes": ("timeout",)}
    return Trigger(**{**base, **kw})


def events(*spec: tuple[float, str]) -> list[Event]:
    return [Event(at, key, None, f"line {at}") for at, key in spec]


def test_count_within_a_sliding_window() -> None:
    spread = events((0, "a"), (50, "b"), (120, "c"), (200, "d"))
    assert not evaluate(trigger(), spread).fired
    burst = events((0, "a"), (100, "b"), (130, "c"), (150, "d"))
    decision = evaluate(trigger(), burst)
    assert decision.fired and decision.observed == 3
    assert decision.window_start == 100 and decision.window_end == 150
    assert decision.samples == 4


def test_per_run_counts_a_run_once_however_many_lines_it_logs() -> None:
    one_run_four_lines = events((0, "r1"), (0.1, "r1"), (0.2, "r1"), (0.3, "r1"))
    assert evaluate(trigger(per="event"), one_run_four_lines).fired
    assert not evaluate(trigger(per="run"), one_run_four_lines).fired
    three_runs = one_run_four_lines + events((1, "r2"), (2, "r3"))
    assert evaluate(trigger(per="run"), three_runs).observed == 3


def test_dry_run_fires_but_does_not_decide() -> None:
    decision = evaluate(trigger(dry_run=True), events((0, "a"), (1, "b"), (2, "c")))
    assert decision.fired and not decision.decides


def test_no_events_is_not_a_fire() -> None:
    decision = evaluate(trigger(), [])
    assert not decision.fired and decision.observed == 0 and decision.window_start is None
