"""Fast tests of the systemd driver's pieces that need no container: the local runner, unit
rendering, `systemctl show` parsing, journal entries, and the stale-file-log check."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.signals.journal import entry_time, file_log_staleness, message_text
from harness.targets.runner import LocalRunner, SshRunner, runner_for
from harness.targets.runtime import NodeRuntime
from harness.targets.systemd import SystemdUserDriver, UnitState


def test_local_runner_passes_env_and_input() -> None:
    done = LocalRunner().run(["sh", "-c", "echo $GRH_X; cat"], env={"GRH_X": "a b"},
                             input="from stdin\n")
    assert done.returncode == 0
    assert done.stdout == "a b\nfrom stdin\n"


def test_local_runner_kills_a_command_that_runs_out_of_time() -> None:
    started = time.monotonic()
    done = LocalRunner().run(["sh", "-c", "sleep 30 & sleep 30"], timeout=0.5)
    assert done.returncode == 124 and "timed out" in done.stderr
    assert time.monotonic() - started < 5  # the whole group, not only the shell


@pytest.mark.skipif(os.geteuid() != 0, reason="runuser needs root")
def test_local_runner_runs_as_another_user_with_env() -> None:
    done = LocalRunner().run(["sh", "-c", "id -un; echo $GRH_Y"], user="nobody",
                             env={"GRH_Y": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["nobody", "1"]


def test_runner_specs() -> None:
    assert runner_for("local://").name == "local"
    assert runner_for("docker://0123456789abcdef").name == "docker://0123456789ab"
    ssh = runner_for("ssh://deploy@staging-1.example:2222")
    assert isinstance(ssh, SshRunner) and ssh.name == "ssh://deploy@staging-1.example:2222"
    assert (ssh.login, ssh.host, ssh.port) == ("deploy", "staging-1.example", 2222)
    assert runner_for("ssh://staging-1").ssh_argv()[-2:] == ["--", "staging-1"]
    for bad in ("ssh://", "ssh://host:22x", "smb://host", "local://x"):
        with pytest.raises(Exception, match="ssh://|unknown command runner"):
            runner_for(bad)


def test_the_ssh_runner_quotes_one_remote_command_under_timeout() -> None:
    """What the far side's shell gets: `timeout` first, the user switch, env, argv; each word
    quoted once. (tests/test_systemd_attached.py runs it against a real sshd.)"""
    runner = SshRunner("h", login="root", port=2222, config="/etc/grh ssh/config")
    argv = runner.ssh_argv()
    assert argv[:3] == ["ssh", "-F", "/etc/grh ssh/config"] and "BatchMode=yes" in argv
    assert argv[-4:] == ["-l", "root", "--", "h"] and ["-p", "2222"] == argv[-6:-4]
    command = runner.remote_command(["sh", "-c", "echo \"$X\" 'q'"], user="gw",
                                    env={"X": "a b;$(rm -rf /)"}, cwd="/srv/my dir",
                                    timeout=30)
    assert command.startswith("cd '/srv/my dir' && timeout -k 5 30 sh -c ")
    import shlex

    words = shlex.split(command.split(" && ", 1)[1])
    assert words[:4] == ["timeout", "-k", "5", "30"]
    assert words[4:6] == ["sh", "-c"] and words[7:9] == ["sh", "gw"]  # the user switch
    assert words[9:] == ["env", "X=a b;$(rm -rf /)", "sh", "-c", "echo \"$X\" 'q'"]


def _driver(tmp_path: Path, env: dict[str, str], argv: list[str]) -> SystemdUserDriver:
    import getpass

    node = NodeRuntime("22.0.0", Path("/opt/node 22/bin"))
    return SystemdUserDriver(LocalRunner(), getpass.getuser(), tmp_path / "dep", "x-gw.service",
                             "gw", argv, env, node, version_env="X_SERVICE_VERSION",
                             restart_sec=1, stop_timeout_s=7)


def test_unit_text_escapes_specifiers_variables_and_spaces(tmp_path: Path) -> None:
    driver = _driver(tmp_path, {"TOKEN": 'a%b"c\\d', "PLAIN": "v"},
                     ["run", "--name", "two words", "--price", "$5", "--pct", "50%"])
    assert (tmp_path / "dep" / "state").is_dir()  # created through the runner
    driver.version = "1.2.3"
    text = driver.unit_text()
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert exec_start == (f"ExecStart={tmp_path}/dep/current/node_modules/.bin/gw run --name "
                          '"two words" --price "$$5" --pct "50%%"')
    assert 'Environment="TOKEN=a%%b\\"c\\\\d"' in text
    assert 'Environment="PLAIN=v"' in text
    assert 'Environment="PATH=/opt/node 22/bin:/usr/local/bin:/usr/bin:/bin"' in text
    assert 'Environment="X_SERVICE_VERSION=1.2.3"' in text
    for setting in ("Restart=always", "RestartSec=1", "TimeoutStopSec=7",
                    "WantedBy=default.target"):
        assert setting in text.splitlines()


def test_unit_state_parses_systemctl_show() -> None:
    running = UnitState.parse(
        "ActiveState=active\nSubState=running\nMainPID=211\nNRestarts=2\n"
        "ExecMainStartTimestamp=Mon 2026-11-23 11:50:33 UTC\nExecMainExitTimestamp=\n"
        "ExecMainCode=0\nExecMainStatus=0\nResult=success\nNeedDaemonReload=no\n")
    assert (running.active, running.sub, running.main_pid, running.n_restarts) == \
        ("active", "running", 211, 2)
    assert running.exit_code is None and running.started_at.startswith("Mon 2026-11-23")
    killed = UnitState.parse("ActiveState=activating\nSubState=auto-restart\nMainPID=0\n"
                             "ExecMainExitTimestamp=Mon 2026-11-23 11:51:00 UTC\n"
                             "ExecMainCode=2\nExecMainStatus=9\nResult=signal\n")
    assert killed.exit_code == -9 and killed.main_pid == 0
    exited = UnitState.parse("ExecMainExitTimestamp=x\nExecMainCode=1\nExecMainStatus=1\n")
    assert exited.exit_code == 1


def test_journal_message_may_be_bytes() -> None:
    assert message_text("plain") == "plain"
    assert message_text(list("héllo".encode())) == "héllo"
    assert message_text([0xff, 0x41]) == "\ufffdA"
    assert message_text(None) == ""


def test_entry_time_of_openclaw_file_and_console_lines() -> None:
    json_line = json.dumps({"0": "x", "_meta": {"date": "2026-11-23T11:48:22.720Z"},
                            "time": "2026-11-23T11:48:22.723+00:00"})
    assert entry_time(json_line) == datetime(2026, 11, 23, 11, 48, 22, 723000, UTC).timestamp()
    meta_only = json.dumps({"_meta": {"date": "2026-11-23T11:48:22.720Z"}})
    assert entry_time(meta_only) == datetime(2026, 11, 23, 11, 48, 22, 720000, UTC).timestamp()
    assert entry_time("2026-11-23T23:41:52.792+00:00 [gateway] listening") is not None
    assert entry_time("no timestamp here") is None


def _log(path: Path, *stamps: float) -> None:
    path.write_text("".join(json.dumps({"0": "line", "time": datetime.fromtimestamp(
        s, UTC).isoformat()}) + "\n" for s in stamps))


def test_file_log_older_than_the_soak_is_stale(tmp_path: Path) -> None:
    log = tmp_path / "openclaw.log"
    now = time.time()
    _log(log, now - 600, now - 300)
    verdict = file_log_staleness(log, soak_started=now - 60)
    assert verdict.stale and "240 s older than the soak start" in verdict.reason
    assert "\n" not in verdict.reason
    fresh = file_log_staleness(log, soak_started=now - 400)
    assert not fresh.stale and "within the soak" in fresh.reason


def test_file_log_lagging_the_journal_is_stale(tmp_path: Path) -> None:
    log = tmp_path / "openclaw.log"
    now = time.time()
    _log(log, now - 100)
    verdict = file_log_staleness(log, soak_started=now - 200, journal_newest=now)
    assert verdict.stale and "lags the journal" in verdict.reason
    assert not file_log_staleness(log, soak_started=now - 200, journal_newest=now - 90).stale


def test_missing_or_untimed_file_log(tmp_path: Path) -> None:
    assert file_log_staleness(tmp_path / "none.log", soak_started=time.time()).stale
    plain = tmp_path / "plain.log"
    plain.write_text("no timestamps\n")
    os.utime(plain, (time.time() - 1000, time.time() - 1000))
    verdict = file_log_staleness(plain, soak_started=time.time() - 10)
    assert verdict.stale and "last modified" in verdict.reason
