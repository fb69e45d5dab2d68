"""Fleet files and the fleet's decisions: waves, the stopped line, who goes back, one exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.common.errors import ExitCode, InputError
from harness.fleet.outcome import fleet_exit, may_start, not_reached, to_roll_back
from harness.fleet.plan import load_fleet

ROOT = Path(__file__).resolve().parents[1]
OPENCLAW = ROOT / "scenarios" / "targets" / "local-openclaw.toml"
PASS, BACK, FAILED = ExitCode.PASSED, ExitCode.ROLLED_BACK, ExitCode.ROLLBACK_FAILED


def fleet(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(body)
    return path


def members(*names: str, canary: int = 1) -> str:
    return "".join(f'[[members]]\nname = "{n}"\ntarget = "{OPENCLAW}"\n'
                   + ("canary = true\n" if i < canary else "") for i, n in enumerate(names))


def profile_with(tmp_path: Path, old: str, new: str) -> Path:
    text = OPENCLAW.read_text().replace(old, new)
    text = text.replace('config_template = "openclaw/',
                        f'config_template = "{OPENCLAW.parent}/openclaw/')
    path = tmp_path / "other.toml"
    path.write_text(text)
    return path


def test_canaries_first_then_waves_of_max_parallel_in_file_order(tmp_path: Path) -> None:
    plan = load_fleet(fleet(tmp_path, '[fleet]\nname = "prod"\nmax_parallel = 2\n'
                            + members("a", "b", "c", "d", "e")))
    assert [[m.name for m in w] for w in plan.waves] == [["a"], ["b", "c"], ["d", "e"]]
    assert plan.on_failure == "rollback-wave"
    assert plan.wave_of("d") == 2


def test_one_profile_on_several_hosts_is_one_member_per_host(tmp_path: Path) -> None:
    plan = load_fleet(fleet(tmp_path, '[fleet]\nname = "f"\n' + members("canary") +
                            f'[[members]]\nname = "team"\ntarget = "{OPENCLAW}"\n'
                            'hosts = ["ssh://ops@gw1", "ssh://gw2:2222"]\n'))
    team = [m for m in plan.members if m.name.startswith("team")]
    assert [(m.name, m.profile.host) for m in team] == [
        ("team@gw1", "ssh://ops@gw1"), ("team@gw2:2222", "ssh://gw2:2222")]


@pytest.mark.parametrize("body, where", [
    ('[fleet]\nname = "f"\non_failure = "rollback-some"\n' + members("a"), "fleet.on_failure"),
    ('[fleet]\nname = "f"\nmax_parallel = 0\n' + members("a"), "fleet.max_parallel"),
    ('[fleet]\nname = "f f"\n' + members("a"), "fleet.name"),
    ('[fleet]\nname = "f"\n', "members"),
    ('[fleet]\nname = "f"\n' + members("a", canary=0), "members"),
    ('[fleet]\nname = "f"\n' + members("a", "a"), "members[1]"),
    ('[fleet]\nname = "f"\n[[members]]\nname = "a"\ntarget = "nowhere.toml"\n',
     "members[0].target"),
    ('[fleet]\nname = "f"\n' + members("a") + '[[members]]\nname = "b"\n'
     f'target = "{OPENCLAW}"\nhosts = ["ftp://x"]\n', "members[1].hosts[0]"),
    ('[fleet]\nname = "f"\nwaves = 3\n' + members("a"), "fleet.waves"),
])
def test_a_bad_fleet_file_names_file_and_key(tmp_path: Path, body: str, where: str) -> None:
    path = fleet(tmp_path, body)
    with pytest.raises(InputError) as caught:
        load_fleet(path)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    assert str(caught.value).startswith(f"{path}: {where}: "), str(caught.value)


def test_every_member_takes_the_same_release(tmp_path: Path) -> None:
    other = profile_with(tmp_path, 'candidate = "2026.4.1"', 'candidate = "2026.4.2"')
    path = fleet(tmp_path, '[fleet]\nname = "f"\n' + members("a") +
                 f'[[members]]\nname = "b"\ntarget = "{other}"\n')
    with pytest.raises(InputError, match=r"members\[1\]: every member takes the same release: "
                                         r"its candidate is '2026.4.2', a's is '2026.4.1'"):
        load_fleet(path)


def plan5(tmp_path: Path, on_failure: str):
    return load_fleet(fleet(tmp_path, f'[fleet]\nname = "f"\nmax_parallel = 2\n'
                            f'on_failure = "{on_failure}"\n' + members("a", "b", "c", "d", "e")))


def test_a_wave_starts_only_after_every_earlier_member_passed(tmp_path: Path) -> None:
    plan = plan5(tmp_path, "rollback-wave")
    assert may_start(plan, 0, {}) is True
    assert may_start(plan, 1, {}) is None  # the canary still runs
    assert may_start(plan, 1, {"a": PASS}) is True
    assert may_start(plan, 2, {"a": PASS, "b": PASS}) is None  # c still runs
    assert may_start(plan, 2, {"a": PASS, "b": PASS, "c": BACK}) is False


def test_a_failing_canary_stops_the_line_and_leaves_the_rest_untouched(tmp_path: Path) -> None:
    plan = plan5(tmp_path, "rollback-all")
    results = {"a": BACK}
    assert may_start(plan, 1, results) is False
    assert to_roll_back(plan, results) == []
    assert not_reached(plan, results) == ["b", "c", "d", "e"]
    assert fleet_exit(plan, results, {}) == BACK


@pytest.mark.parametrize("on_failure, back", [("rollback-wave", ["b"]),
                                              ("rollback-all", ["a", "b"])])
def test_who_goes_back_when_the_second_wave_fails(tmp_path: Path, on_failure: str,
                                                  back: list[str]) -> None:
    plan = plan5(tmp_path, on_failure)
    results = {"a": PASS, "b": PASS, "c": BACK}
    assert to_roll_back(plan, results) == back
    assert not_reached(plan, results) == ["d", "e"]
    assert fleet_exit(plan, results, dict.fromkeys(back, BACK)) == BACK
    # one rollback the fleet made that did not prove the known-good: a person must look
    assert fleet_exit(plan, results, {**dict.fromkeys(back, BACK), back[0]: FAILED}) == FAILED


def test_the_release_passes_only_when_every_member_passed(tmp_path: Path) -> None:
    plan = plan5(tmp_path, "rollback-wave")
    everyone = dict.fromkeys("abcde", PASS)
    assert fleet_exit(plan, everyone, {}) == PASS
    # a member that never ended, with the line not stopped, is never a pass
    assert fleet_exit(plan, {k: v for k, v in everyone.items() if k != "e"}, {}) \
        == ExitCode.INTERRUPTED
    assert fleet_exit(plan, {**everyone, "d": ExitCode.INTERRUPTED}, {}) == ExitCode.INTERRUPTED
    assert fleet_exit(plan, {**everyone, "d": FAILED, "e": ExitCode.INTERRUPTED}, {}) == FAILED
