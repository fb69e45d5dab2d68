"""Backup posture: what a backup can be shown to hold, and the go/no-go it leads to.

The target's own backup command is played here by a small program that writes archives the way
OpenClaw's `backup create` does (its own folders, then the state dir's absolute path); the real
command is exercised in `test_safety_e2e.py`.
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from harness.common import commands
from harness.procedure.backup import restore_paths
from harness.procedure.posture import BackupTaker
from harness.targets.profile import BackupCommands, StateSpec
from tests.seams.rotting_storage import rot

FULL_PATHS = {"config": ["openclaw.json"], "credentials": ["credentials", "agents/*/agent"],
              "sessions": ["agents/*/sessions"], "state": ["*"]}
SPEC = StateSpec("openclaw.json", None, ["openclaw.json", "credentials", "agents"], FULL_PATHS)

TOOL = textwrap.dedent('''
    import os, sys, tarfile
    args = sys.argv[1:]
    dest = args[args.index("--output") + 1]
    state = os.environ["STATE"]
    only = "--only-config" in args
    if not only and os.environ.get("FULL") == "fail":
        sys.exit("backup failed: EACCES reading a session")
    archive = os.path.join(dest, "x-openclaw-backup.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(os.path.join(state, "openclaw.json") if only else state,
                arcname="x-openclaw-backup/payload/posix" + (state + "/openclaw.json" if only
                                                              else state))
    if not only and os.environ.get("FULL") == "rot":  # the storage flips bits after the write
        data = bytearray(open(archive, "rb").read())
        data[len(data) // 2] ^= 0xFF
        open(archive, "wb").write(bytes(data))
''')


def make_state(root: Path) -> Path:
    state = root / "state"
    for rel, text in {"openclaw.json": '{"gateway": {"mode": "local"}}',
                      "credentials/oauth.json": "{}",
                      "agents/main/agent/auth-profiles.json": "{}",
                      "agents/main/sessions/s1.jsonl": "hello\n",
                      "workspace/notes.md": "keep"}.items():
        (state / rel).parent.mkdir(parents=True, exist_ok=True)
        (state / rel).write_text(text)
    return state


def tool(tmp_path: Path, state: Path, full: str = "ok"):
    script = tmp_path / "tool.py"
    script.write_text(TOOL)

    def run_cli(argv: list[str], timeout: float) -> commands.Completed:
        return commands.run([sys.executable, str(script), *argv],
                            env={"STATE": str(state), "FULL": full}, timeout=timeout)
    return run_cli


COMMANDS = BackupCommands(["backup", "create", "--output", "{dest}"],
                          ["backup", "create", "--only-config", "--output", "{dest}"])


def test_the_harness_archive_of_a_declared_state_is_full(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    assessed = BackupTaker(SPEC, state, tmp_path / "backups", None).take("pre-upgrade")
    assert assessed.posture == "full" and assessed.go
    assert assessed.line().startswith("backup posture full: harness archive, 5 files, every "
                                      "SHA-256 matched by a test restore")
    assert assessed.coverage["sessions"] == {**assessed.coverage["sessions"], "covered": True,
                                             "files": 1, "archived": 1}


def test_state_the_profile_does_not_declare_makes_it_config_only(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    spec = replace(SPEC, paths={"config": ["openclaw.json"]})
    assessed = BackupTaker(spec, state, tmp_path / "backups", None).take("pre-upgrade")
    assert assessed.posture == "config-only" and not assessed.go
    assert "credentials is not declared in the target profile" in assessed.reason
    assert assessed.no_go().startswith("no-go: backup posture config-only (degraded)")
    assert "--accept-backup-posture config-only" in assessed.no_go()
    accepted = BackupTaker(spec, state, tmp_path / "b2", None).take("pre-upgrade", "config-only")
    assert accepted.go and accepted.line().endswith(
        "accepted up front by --accept-backup-posture config-only")
    assert BackupTaker(spec, state, tmp_path / "b3", None).take("x", "none").go


def test_a_gateway_that_keeps_only_its_config_can_be_full(tmp_path: Path) -> None:
    """LiteLLM proxy without a database: the config is its whole state; the kinds it does not
    keep are named, not globbed for."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "config.yaml").write_text("general_settings: {master_key: sk-x}\n")
    why = {"credentials": "no database: no virtual keys on disk",
           "sessions": "no database: no sessions on disk", "state": "no database"}
    spec = StateSpec("config.yaml", None, ["config.yaml"], {"config": ["config.yaml"]},
                     not_applicable=why)
    assessed = BackupTaker(spec, state, tmp_path / "backups", None).take("pre-upgrade")
    assert assessed.posture == "full" and assessed.go
    assert assessed.line() == ("backup posture full: harness archive, 1 file, every SHA-256 "
                               "matched by a test restore; not applicable (the target keeps "
                               "none): credentials, sessions, state")
    assert assessed.coverage["sessions"]["applies"] is False
    assert assessed.coverage["sessions"]["why"] == \
        "does not apply: no database: no sessions on disk"
    # the same profile without saying so: the undeclared kinds keep it config-only
    bare = BackupTaker(replace(spec, not_applicable={}), state, tmp_path / "b2",
                       None).take("pre-upgrade")
    assert bare.posture == "config-only" and not bare.go


def test_the_targets_own_command_is_used_and_its_archive_checked(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    spec = replace(SPEC, backup=COMMANDS)
    taker = BackupTaker(spec, state, tmp_path / "backups", tool(tmp_path, state), "openclaw")
    assessed = taker.take("pre-upgrade")
    assert assessed.posture == "full", assessed.as_dict()
    assert assessed.backup is not None
    assert assessed.backup.tool == "openclaw backup create"
    assert set(assessed.backup.manifest) == {"openclaw.json", "credentials/oauth.json",
                                             "agents/main/agent/auth-profiles.json",
                                             "agents/main/sessions/s1.jsonl", "workspace/notes.md"}
    # its archive restores like the harness's own
    (state / "openclaw.json").write_text('{"migrated": true}')
    restore_paths(assessed.backup, state, ["openclaw.json"])
    assert (state / "openclaw.json").read_text() == '{"gateway": {"mode": "local"}}'


def test_a_target_tool_that_refuses_is_followed_by_the_harness_archive(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    spec = replace(SPEC, backup=COMMANDS)
    taker = BackupTaker(spec, state, tmp_path / "backups", tool(tmp_path, state, "fail"),
                        "openclaw")
    assessed = taker.take("pre-upgrade")
    assert [(a.scope, a.tool, a.ok) for a in assessed.attempts] == [
        ("full", "openclaw backup create", False), ("full", "harness archive", True)]
    assert "EACCES reading a session" in assessed.attempts[0].why
    assert assessed.posture == "full" and assessed.backup is not None
    assert assessed.backup.tool == "harness archive"


def rot_every_full_archive(monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage under the backups rots every full archive once written: everything after
    its first quarter is lost. (A single flipped byte is not always damage: it may land in
    padding, and then the test restore rightly gives every file back.)"""
    real = BackupTaker._make

    def make(self: BackupTaker, scope: str, label: str, tool: str, own: bool):
        backup = real(self, scope, label, tool, own)
        if scope == "full":
            rot(backup.archive)
        return backup
    monkeypatch.setattr(BackupTaker, "_make", make)


def test_corrupted_archives_are_caught_by_the_test_restore(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    state = make_state(tmp_path)
    rot_every_full_archive(monkeypatch)
    spec = replace(SPEC, backup=COMMANDS)
    taker = BackupTaker(spec, state, tmp_path / "backups", tool(tmp_path, state), "openclaw")
    assessed = taker.take("pre-upgrade")
    full = [a for a in assessed.attempts if a.scope == "full"]
    assert [a.tool for a in full] == ["openclaw backup create", "harness archive"]
    assert all(not a.ok and a.why.startswith("test restore does not match the manifest")
               for a in full), [a.why for a in full]
    assert assessed.posture == "config-only" and not assessed.go
    assert assessed.backup is not None and set(assessed.backup.manifest) == {"openclaw.json"}
    assert "full backup (openclaw backup create) failed: test restore" in assessed.reason


def test_a_backup_without_the_config_is_posture_none(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    assessed = BackupTaker(SPEC, state, tmp_path / "backups", None).take("pre-upgrade")
    assert assessed.posture == "none" and not assessed.go
    assert assessed.line().startswith("backup posture none (degraded): harness archive, 0 files")
    assert "config has no file in the state dir" in assessed.reason
    assert not BackupTaker(SPEC, state, tmp_path / "b2", None).take("x", "config-only").go
