"""An attached deployment (provision = "attached"): its profile is validated at the edge with file
and key, its version is read from what runs, its token from the environment or a file on the
target, and the suite refuses to upgrade it or to start without it. The container test
(tests/test_systemd_attached.py) soaks a real one."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.common.errors import InputError
from harness.targets.attached import (
    AttachedUnit,
    Observation,
    RunningProcess,
    environment_words,
    exec_argv,
    judge_version,
    token_of,
)
from harness.targets.profile import load_target
from harness.targets.runner import LocalRunner

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "scenarios" / "targets" / "staging-systemd-openclaw.toml"


def _profile(tmp_path: Path, *edits: tuple[str, str], append: str = "") -> Path:
    text = SAMPLE.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "staging.toml"
    path.write_text(text + append)
    return path


def test_the_sample_staging_profile_attaches_to_openclaws_own_unit() -> None:
    profile = load_target(SAMPLE)
    assert (profile.provision, profile.driver, profile.log_source) == \
        ("attached", "systemd", "journal")
    spec = profile.attached
    assert spec is not None and spec.unit == "openclaw-gateway.service"
    assert (spec.url, profile.gateway.port) == ("http://127.0.0.1:18789", 18789)
    assert (spec.token_file, spec.token_key, spec.token_env) == \
        ("/home/openclaw/.openclaw/openclaw.json", "gateway.auth.token", "")
    assert profile.known_good == profile.candidate == ""  # nothing to install


@pytest.mark.parametrize(("edits", "append", "key", "words"), [
    ((), '\n[versions]\nknown_good = "2026.3.28"\ncandidate = "2026.4.1"\n', "versions",
     "not used with target.provision"),
    ((), '\n[[preflight.config]]\nkey = "a"\nexpect = 1\n', "preflight", "no preflight"),
    ((('driver = "systemd"', 'driver = "local"'),), "", "target.driver", "systemd unit"),
    ((('url = "http://127.0.0.1:18789"', 'url = "127.0.0.1:18789"'),), "", "attached.url",
     "HOST[:PORT]"),
    ((('url = "http://127.0.0.1:18789"', 'url = "http://127.0.0.1:99999"'),), "",
     "attached.url", "HOST[:PORT]"),
    ((('token_file = "/home/openclaw/.openclaw/openclaw.json"\ntoken_key = '
       '"gateway.auth.token"', ""),), "", "attached.token_env", "exactly one of"),
    ((('token_key = "gateway.auth.token"', 'token_env = "STAGING_TOKEN"'),), "",
     "attached.token_file", "exactly one of"),
    ((('token_file = "/home/openclaw/.openclaw/openclaw.json"', 'token_env = "T"'),), "",
     "attached.token_key", "only with token_file"),
    ((('token_file = "/home/openclaw/.openclaw/openclaw.json"', 'token_file = "oc.json"'),),
     "", "attached.token_file", "absolute path"),
    ((('state_dir = "/home/openclaw/.openclaw"', 'state_dir = "~/.openclaw"'),), "",
     "attached.state_dir", "absolute path"),
    ((('config = "openclaw.json"', 'config = "../etc/passwd"'),), "", "attached.config",
     "inside state_dir"),
    ((('unit = "openclaw-gateway.service"', 'unit = "openclaw-gateway"'),), "",
     "attached.unit", "service unit name"),
    ((('version_env = "OPENCLAW_SERVICE_VERSION"', 'versoin_env = "X"'),), "",
     "attached.versoin_env", "unknown key"),
    ((('provision = "attached"', 'provision = "attach"'),), "", "target.provision",
     "embedded, attached"),
])
def test_a_malformed_attached_profile_names_file_and_key(
        tmp_path: Path, edits: tuple[tuple[str, str], ...], append: str, key: str,
        words: str) -> None:
    path = _profile(tmp_path, *edits, append=append)
    with pytest.raises(InputError) as caught:
        load_target(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert words in message and "\n" not in message


def test_an_embedded_profile_with_an_attached_table_is_refused(tmp_path: Path) -> None:
    source = ROOT / "scenarios" / "targets"
    (tmp_path / "openclaw").symlink_to(source / "openclaw")
    path = tmp_path / "t.toml"
    path.write_text((source / "systemd-openclaw.toml").read_text()
                    + '\n[attached]\nurl = "http://127.0.0.1:1"\n')
    with pytest.raises(InputError, match=r"t\.toml: attached: only for target\.provision"):
        load_target(path)


# -- what runs ---------------------------------------------------------------------------------
# `systemctl --user show -p ExecStart -p Environment` of the unit `openclaw gateway install`
# (2026.3.28) wrote, as systemd 252 printed it
EXEC_START = ("{ path=/n/bin/node ; argv[]=/n/bin/node /srv/oc/node_modules/openclaw/dist/index.js "
              "gateway --port 18999 ; ignore_errors=no ; start_time=[Mon 2026-11-23 15:36:00 UTC]"
              " ; stop_time=[n/a] ; pid=131 ; code=(null) ; status=0/0 }")
ENVIRONMENT = ('HOME=/home/gw TMPDIR=/tmp OPENCLAW_GATEWAY_PORT=18999 '
               '"OPENCLAW_WINDOWS_TASK_NAME=OpenClaw Gateway" OPENCLAW_SERVICE_VERSION=2026.3.28')


def test_the_units_exec_start_and_environment_are_read() -> None:
    assert exec_argv(EXEC_START) == ["/n/bin/node", "/srv/oc/node_modules/openclaw/dist/index.js",
                                     "gateway", "--port", "18999"]
    assert exec_argv("") == []
    env = environment_words(ENVIRONMENT)
    assert env["OPENCLAW_WINDOWS_TASK_NAME"] == "OpenClaw Gateway"
    assert env["OPENCLAW_SERVICE_VERSION"] == "2026.3.28"


def _process(package: str | None = "2026.3.28", mtime: int | None = 1000,
           started: int | None = 2000, process: str | None = "2026.3.28") -> RunningProcess:
    return RunningProcess("/srv/oc/node_modules/openclaw", package, mtime, started,
                          process_env_version=process)


def test_the_version_is_the_package_the_unit_runs_when_every_source_agrees() -> None:
    version, sources, notes = judge_version(_process(), "2026.3.28", "OPENCLAW_SERVICE_VERSION")
    assert version == "2026.3.28" and notes == []
    assert sources["package"] == {"path": "/srv/oc/node_modules/openclaw", "version": "2026.3.28"}


def test_a_package_replaced_under_the_running_process_is_said_and_not_believed() -> None:
    # `npm i -g openclaw@2026.4.1` while 3.28 keeps running: the files say 4.1, the process not
    version, _, notes = judge_version(_process(package="2026.4.1", mtime=3000), "2026.3.28",
                                      "OPENCLAW_SERVICE_VERSION")
    assert version == "2026.3.28"
    assert any("replaced after the running process started" in n for n in notes)
    assert any("started as 2026.3.28" in n and "says 2026.4.1" in n for n in notes)


def test_a_unit_rewritten_and_not_restarted_is_said() -> None:
    version, _, notes = judge_version(_process(), "2026.4.1", "OPENCLAW_SERVICE_VERSION")
    assert version == "2026.3.28"
    assert notes == ["the unit names 2026.4.1, the running process was started with 2026.3.28: "
                     "the unit was rewritten and not restarted"]


def test_no_version_anywhere_is_said() -> None:
    version, _, notes = judge_version(_process(package=None, process=None), None, "")
    assert version is None and "no version found" in notes[0]


def test_changes_since_name_a_restart_under_the_soak() -> None:
    before = Observation("gw.service", "active", "running", 131, "Mon 15:36:00", 0, "2026.3.28")
    same = Observation("gw.service", "active", "running", 131, "Mon 15:36:00", 0, "2026.3.28")
    assert same.changes_since(before) == []
    restarted = Observation("gw.service", "active", "running", 240, "Mon 15:39:10", 1,
                            "2026.3.28")
    assert restarted.changes_since(before) == [
        "MainPID 131 -> 240", "ActiveEnterTimestamp Mon 15:36:00 -> Mon 15:39:10",
        "NRestarts 0 -> 1"]


# -- the token ---------------------------------------------------------------------------------
def _unit_profile(tmp_path: Path, token_lines: str):  # noqa: ANN202
    user = getpass.getuser()
    path = _profile(tmp_path, ('user = "openclaw"', f'user = "{user}"'),
                    ('token_file = "/home/openclaw/.openclaw/openclaw.json"\n'
                     'token_key = "gateway.auth.token"', token_lines))
    profile = load_target(path)
    assert profile.attached is not None
    return profile, AttachedUnit(LocalRunner(), user, profile.attached, "openclaw")


def test_the_token_comes_from_a_json_file_on_the_target(tmp_path: Path) -> None:
    config = tmp_path / "openclaw.json"
    config.write_text(json.dumps({"gateway": {"auth": {"token": " s3cret-tok \n"}}}))
    profile, unit = _unit_profile(tmp_path, f'token_file = "{config}"\n'
                                  'token_key = "gateway.auth.token"')
    assert token_of(profile, unit) == "s3cret-tok"


def test_the_token_comes_from_a_plain_file_or_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "token"
    plain.write_text("plain-tok\n")
    profile, unit = _unit_profile(tmp_path, f'token_file = "{plain}"')
    assert token_of(profile, unit) == "plain-tok"
    monkeypatch.setenv("GRH_STAGING_TOKEN", "env-tok")
    profile, unit = _unit_profile(tmp_path, 'token_env = "GRH_STAGING_TOKEN"')
    assert token_of(profile, unit) == "env-tok"


@pytest.mark.parametrize(("content", "lines", "key", "words"), [
    (None, 'token_env = "GRH_UNSET_TOKEN_VAR"', "attached.token_env", "is not set"),
    (None, 'token_file = "/nonexistent/grh/token"', "attached.token_file", "cannot read"),
    ("", 'token_file = "{file}"', "attached.token_file", "is empty"),
    ("// json5\n{}", 'token_file = "{file}"\ntoken_key = "gateway.auth.token"',
     "attached.token_key", "is not JSON"),
    ('{"gateway": {"auth": {}}}', 'token_file = "{file}"\ntoken_key = "gateway.auth.token"',
     "attached.token_key", "no token"),
])
def test_a_token_that_cannot_be_had_names_the_key(tmp_path: Path, content: str | None,
                                                  lines: str, key: str, words: str) -> None:
    file = tmp_path / "tok"
    if content is not None:
        file.write_text(content)
    os.environ.pop("GRH_UNSET_TOKEN_VAR", None)
    profile, unit = _unit_profile(tmp_path, lines.format(file=file))
    with pytest.raises(InputError) as caught:
        token_of(profile, unit)
    assert str(caught.value).startswith(f"{profile.path}: {key}: ")
    assert words in str(caught.value)


# -- the suite against an attached target --------------------------------------------------------
def _suite(tmp_path: Path, target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "scenarios", "-q", "--run-dir",
                           str(tmp_path / "run"), "--target", str(target), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "GRH_STAGING_TOKEN": "never-used-tok"})


def _local_target(tmp_path: Path) -> Path:
    return _profile(tmp_path, ('user = "openclaw"', f'user = "{getpass.getuser()}"'),
                    ('unit = "openclaw-gateway.service"', 'unit = "grh-absent-gw.service"'),
                    ('url = "http://127.0.0.1:18789"', 'url = "http://127.0.0.1:9"'),
                    ('token_file = "/home/openclaw/.openclaw/openclaw.json"\n'
                     'token_key = "gateway.auth.token"', 'token_env = "GRH_STAGING_TOKEN"'))


def test_upgrade_tests_against_an_attached_target_are_refused(tmp_path: Path) -> None:
    target = _local_target(tmp_path)
    done = _suite(tmp_path, target)  # no -m soak: the upgrade and rollback tests are selected
    assert done.returncode == 20, done.stdout[-2000:] + done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith(f"harness: error: {target}: target.provision: ")
    assert "upgrade and rollback" in errors[0] and "-m soak" in errors[0]
    verdict = json.loads((tmp_path / "run" / "verdict.json").read_text())
    assert verdict["outcome"] == "error" and verdict["exit_code"] == 20
    assert "attached" not in verdict  # refused before the deployment was even looked at


def test_naming_versions_for_an_attached_target_is_refused(tmp_path: Path) -> None:
    done = _suite(tmp_path, _local_target(tmp_path), "-m", "soak", "--candidate", "2026.4.1")
    assert done.returncode == 20, done.stdout[-2000:] + done.stderr[-2000:]
    assert "harness: error: --candidate: " in done.stderr and "never upgraded" in done.stderr


def test_an_attached_deployment_that_is_not_there_ends_the_run_before_any_test(
        tmp_path: Path) -> None:
    """No such unit here (and no user manager on a machine whose PID 1 is not systemd)."""
    done = _suite(tmp_path, _local_target(tmp_path), "-m", "soak")
    assert done.returncode == 22, done.stdout[-2000:] + done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1 and "attached grh-absent-gw.service on local://" in errors[0], \
        done.stderr
    verdict = json.loads((tmp_path / "run" / "verdict.json").read_text())
    assert verdict["phases"] == [] and verdict["exit_code"] == 22  # no test ran
    assert verdict["claim"].startswith("No claim: the run stopped on an error")  # no posture
