"""`harness supervisor` options are checked like every other input: one line naming the option,
exit 20, nothing written. A value that goes into a unit file cannot add a line of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import cli

ROOT = Path(__file__).resolve().parents[1]
TARGET = str(ROOT / "scenarios" / "targets" / "local-openclaw.toml")


@pytest.mark.parametrize(("args", "said"), [
    (["--timeout", "nan"], "--timeout: expected seconds"),
    (["--timeout", "-5"], "--timeout: expected greater than 0 seconds"),
    (["--timeout", "0"], "--timeout: expected greater than 0 seconds"),
    (["--timeout", "inf"], "--timeout: expected seconds"),
    (["--on-active", "nan"], "--on-active: expected seconds"),
    (["--on-active", "-1"], "--on-active: expected at least 0 seconds"),
    (["--env", "FOO"], "--env: expected NAME=VALUE, got 'FOO'"),
    (["--env", "1X=2"], "--env: expected NAME=VALUE"),
    (["--env", "A=b\nExecStartPre=/bin/false"], "--env: expected one line of text"),
    (["--on-calendar", "daily\nExecStartPre=/bin/false"], "--on-calendar: expected one line"),
    (["--name", "a/b"], "--name: expected a systemd unit name"),
    (["--name=-x"], "--name: expected a systemd unit name"),
    (["--target", "no-such-profile.toml"], "no-such-profile.toml"),
])
def test_a_bad_supervisor_option_is_one_line_and_exit_20(
        args: list[str], said: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = cli.main(["supervisor", "install", "--target", TARGET,
                     "--units-dir", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 20, err
    assert err.count("\n") == 1 and said in err, err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_durations_take_units_and_reach_the_units(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["supervisor", "show", "--target", TARGET, "--timeout", "2h",
                     "--on-active", "90s", "--env", "A=b"])
    shown = capsys.readouterr().out
    assert code == 0
    assert "TimeoutStartSec=7200" in shown and "OnActiveSec=90s" in shown
    assert "Environment=" in shown and "A=b" in shown


def test_show_without_a_target_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["supervisor", "show"]) == 20
    assert "--target: supervisor install and show need" in capsys.readouterr().err
