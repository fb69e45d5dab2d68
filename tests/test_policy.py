"""Policy files are validated with file:key errors, and triggers count what they should."""

import hashlib
from pathlib import Path

import pytest

from harness.common.errors import ExitCode, InputError
from harness.judge.policy import (
    Event,
    Measurement,
    Policy,
    Trigger,
    check_scenarios,
    count_measure,
    decide,
    load_policy,
)

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
    assert {"timeout-failover-burst", "bad-replies", "new-timeouts-vs-baseline"} <= {
        t.name for t in policy.triggers}
    assert policy.baseline is not None and policy.min_samples == 2
    assert policy.on_inconclusive == "fail"
    assert {t.kind for t in policy.triggers} == {"log", "replies", "latency", "error-ratio",
                                                 "baseline"}


def test_durations_may_carry_their_unit(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD.replace("within_s = 300", 'within_s = "5m"')
                               .replace("window_s = 60", 'window_s = "1h30m"', 1)))
    assert policy.triggers[0].within_s == 300 and policy.soak.window_s == 5400


@pytest.mark.parametrize(("old", "new", "key"), [
    ('within_s = 300', 'within_s = "5 fortnights"', "triggers[0].within_s"),
    ('within_s = 300', 'within_s = nan', "triggers[0].within_s"),
    ('within_s = 300', 'within_s = inf', "triggers[0].within_s"),
    ('within_s = 300', 'within_s = 1e308', "triggers[0].within_s"),
    ('window_s = 60', 'window_s = -inf', "soak.window_s"),
    ('count = 3', 'count = 3\ninterval_s = 1e-9', "triggers[0].interval_s"),
    ('count = 3', 'count = 0', "triggers[0].count"),
    ('classes = ["timeout", "failover"]', 'classes = ["timeouts"]', "triggers[0].classes"),
    ('kind = "log"', 'kind = "metric"', "triggers[0].kind"),
    ('per = "run"', 'per = "run"\nwithn_s = 3', "triggers[0].withn_s"),
    ('per = "run"', 'per = "run"\nconsecutive = 0', "triggers[0].consecutive"),
    ('count = 3', 'count = 3\nrate_per_min = 2', "triggers[0].rate_per_min"),
    ('window_s = 60', 'window_s = 0', "soak.window_s"),
    ('name = "p"', 'name = "p"\non_inconclusive = "maybe"', "policy.on_inconclusive"),
    ('[[triggers]]', '[[signatures]]\nname = "x"\nclass = "error"\npattern = "(unclosed"\n'
     '[[triggers]]', "signatures[0].pattern"),
    ('[[triggers]]', '[[triggers]]\nname = "l"\nkind = "latency"\nmax_s = 5\n'
     'percentile = 101\n[[triggers]]', "triggers[0].percentile"),
    ('[[triggers]]', '[[triggers]]\nname = "b"\nkind = "baseline"\nmetric = "p95_s"\n'
     'classes = ["error"]\nmax_ratio = 2\n[[triggers]]', "triggers[0].classes"),
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


def test_a_trigger_naming_an_unknown_scenario_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + '[[triggers]]\nname = "l"\nkind = "latency"\nmax_s = 5\n'
                 'scenarios = ["reply-qiuck"]\n')
    policy = load_policy(path)
    with pytest.raises(InputError, match=r"triggers\[1\]\.scenarios: no scenario 'reply-qiuck'"):
        check_scenarios(policy, ["reply-quick"])


def test_a_rate_is_a_count_over_its_window(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD.replace("count = 3", "rate_per_min = 1.5")))
    assert policy.triggers[0].count == 8  # 1.5/min over 300 s, rounded up


def test_broken_toml_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "\n[[triggers]\n")
    with pytest.raises(InputError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: not valid TOML")


def trigger(**kw) -> Trigger:
    base = {"name": "t", "kind": "log", "count": 3, "within_s": 60.0, "classes": ("timeout",),
            "interval_s": 5.0}
    return Trigger(**{**base, **kw})


def events(*spec: tuple[float, str]) -> list[Event]:
    return [Event(at, key, None, f"line {at}") for at, key in spec]


def run_over(t: Trigger, evs: list[Event], end: float = 300.0):
    return decide(t, count_measure(t, evs), 0.0, end, final=True)


def test_count_within_a_sliding_window() -> None:
    spread = events((1, "a"), (50, "b"), (120, "c"), (200, "d"))
    assert not run_over(trigger(), spread).fired
    burst = events((1, "a"), (100, "b"), (130, "c"), (150, "d"))
    decision = run_over(trigger(), burst)
    assert decision.fired and decision.observed == 3
    # fired at the first evaluation that saw three in its trailing 60 s
    assert decision.fired_at == 150 and (decision.window_start, decision.window_end) == (90, 150)
    assert decision.evidence == ("line 100", "line 130", "line 150")


def test_per_run_counts_a_run_once_however_many_lines_it_logs() -> None:
    one_run_four_lines = events((1, "r1"), (1.1, "r1"), (1.2, "r1"), (1.3, "r1"))
    assert run_over(trigger(per="event"), one_run_four_lines).fired
    assert not run_over(trigger(per="run"), one_run_four_lines).fired
    three_runs = one_run_four_lines + events((2, "r2"), (3, "r3"))
    assert run_over(trigger(per="run"), three_runs).observed == 3


def test_consecutive_ignores_an_isolated_spike_and_fires_on_a_held_one() -> None:
    held_twice = trigger(within_s=10.0, interval_s=10.0, consecutive=2)
    spike = events((3, "a"), (4, "b"), (5, "c"))
    decision = run_over(held_twice, spike, end=60)
    assert not decision.fired and decision.streak == 1 and decision.observed == 3
    assert run_over(trigger(within_s=10.0, interval_s=10.0), spike, end=60).fired  # 1 suffices
    held = spike + events((13, "d"), (14, "e"), (15, "f"))
    decision = run_over(held_twice, held, end=60)
    assert decision.fired and decision.fired_at == 20 and decision.streak == 2


def test_evaluations_without_enough_samples_neither_breach_nor_break_a_streak() -> None:
    values = {5: 9.0, 10: None, 15: 9.0, 20: 1.0}
    t = trigger(kind="latency", max_s=5.0, consecutive=2, count=0)

    def measure(at: float) -> Measurement:
        value = values.get(int(at))
        return Measurement(value, 0 if value is None else 5, value is not None and value > 5)

    decision = decide(t, measure, 0.0, 20.0, final=True)
    assert decision.fired and decision.fired_at == 15 and decision.evaluations == 3


def test_dry_run_fires_but_does_not_decide() -> None:
    decision = run_over(trigger(dry_run=True), events((1, "a"), (2, "b"), (3, "c")))
    assert decision.fired and not decision.decides


def test_no_events_is_not_a_fire() -> None:
    decision = run_over(trigger(), [])
    assert not decision.fired and decision.observed == 0 and decision.evidence == ()


def test_a_live_evaluation_agrees_with_the_final_one() -> None:
    evs = events((1, "a"), (6, "b"), (12, "c"))
    live = decide(trigger(), count_measure(trigger(), evs), 0.0, 12.5, final=False)
    final = decide(trigger(), count_measure(trigger(), evs), 0.0, 12.5, final=True)
    assert live.fired_at is None  # the grid point at 15 s is not there yet
    assert final.fired and final.fired_at == 12.5  # the end of the run is evaluated too
    assert [p.at for p in live.points] == [5.0, 10.0]


def test_policy_type_carries_its_hash(tmp_path: Path) -> None:
    policy: Policy = load_policy(write(tmp_path, GOOD))
    assert policy.sha256 == hashlib.sha256(GOOD.encode()).hexdigest()
