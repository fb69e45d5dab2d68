"""Test seam (loaded with `pytest -p tests.seams.rotting_storage`): the storage under the backups
loses everything after the first quarter of every full backup archive written (the target's
own, after its `backup create --verify` passed, and the harness's), before the test restore.
Config-only archives are left alone. Everything else is the real run."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.procedure import posture
from harness.procedure.backup import Backup

_real = posture.BackupTaker._make


def rot(archive: Path) -> None:
    """Everything after the archive's first quarter lost: one flipped byte may land in
    padding, and then the test restore rightly gives every file back."""
    data = bytearray(archive.read_bytes())
    quarter = len(data) // 4
    data[quarter:] = bytes(len(data) - quarter)
    archive.write_bytes(bytes(data))


def pytest_configure(config: pytest.Config) -> None:
    def make(self: posture.BackupTaker, scope: str, label: str, tool: str, own: bool) -> Backup:
        backup = _real(self, scope, label, tool, own)
        if scope == "full":
            rot(backup.archive)
        return backup

    posture.BackupTaker._make = make  # type: ignore[method-assign]
