"""Backups are trusted only after a test restore; rollback restores chosen paths exactly."""

from pathlib import Path

from harness.procedure.backup import (
    compare_selected,
    create_backup,
    restore_paths,
    verify_by_restore,
)


def make_state(root: Path) -> Path:
    state = root / "state"
    (state / "agents" / "main" / "sessions").mkdir(parents=True)
    (state / "credentials").mkdir()
    (state / "openclaw.json").write_text('{"gateway": {"mode": "local"}}')
    (state / "credentials" / "token").write_text("secret")
    (state / "agents" / "main" / "sessions" / "s1.jsonl").write_text("hello\n")
    (state / "workspace").mkdir()
    (state / "workspace" / "notes.md").write_text("keep me")
    return state


def test_a_backup_verifies_by_test_restore(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    backup = create_backup(state, tmp_path / "backups", "pre-upgrade")
    assert set(backup.manifest) == {"openclaw.json", "credentials/token",
                                    "agents/main/sessions/s1.jsonl", "workspace/notes.md"}
    assert backup.manifest_path.exists()
    assert not any(verify_by_restore(backup).values())


def test_a_corrupted_archive_is_caught_by_the_test_restore(tmp_path: Path) -> None:
    backup = create_backup(make_state(tmp_path), tmp_path / "backups", "pre-upgrade")
    data = bytearray(backup.archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    backup.archive.write_bytes(bytes(data))
    assert any(verify_by_restore(backup).values())


def test_restore_puts_chosen_paths_back_exactly_and_leaves_the_rest(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    backup = create_backup(state, tmp_path / "backups", "pre-upgrade")
    # what a candidate might do: migrate config, add a session, touch the workspace
    (state / "openclaw.json").write_text('{"migrated": true}')
    (state / "agents" / "main" / "sessions" / "s2.jsonl").write_text("new\n")
    (state / "workspace" / "notes.md").write_text("changed by the candidate")
    globs = ["openclaw.json", "credentials", "agents"]
    assert compare_selected(backup, state, globs)["changed"] == ["openclaw.json"]
    restored = restore_paths(backup, state, globs)
    assert "openclaw.json" in restored
    assert compare_selected(backup, state, globs) == {"missing": [], "added": [], "changed": []}
    assert not (state / "agents" / "main" / "sessions" / "s2.jsonl").exists()
    assert (state / "workspace" / "notes.md").read_text() == "changed by the candidate"


def test_a_file_that_vanishes_while_archiving_is_skipped_and_listed(tmp_path: Path,
                                                                    monkeypatch) -> None:
    state = make_state(tmp_path)
    lock = state / "agents" / "main" / "sessions" / "sessions.json.lock"
    lock.write_text("held")
    real_read = Path.read_bytes

    def gateway_releases_its_lock(path: Path) -> bytes:
        if path == lock:
            lock.unlink()  # what a live gateway does between our listing and our read
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", gateway_releases_its_lock)
    backup = create_backup(state, tmp_path / "backups", "live")
    monkeypatch.undo()
    assert backup.vanished == ["agents/main/sessions/sessions.json.lock"]
    assert "agents/main/sessions/sessions.json.lock" not in backup.manifest
    assert not any(verify_by_restore(backup).values())
