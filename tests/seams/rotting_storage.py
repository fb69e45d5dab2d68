"""Test seam (loaded with `pytest -p tests.seams.rotting_storage`): the storage under the backups
flips one byte of every full backup archive written (the target's own, after its
`backup create --verify` passed, and the harness's), before the harness's test restore.
Config-only archives are left alone. Everything else is the real run."""

from __future__ import annotations

import pytest

from harness import posture
from harness.backup import Backup

_real = posture.BackupTaker._make


def pytest_configure(config: pytest.Config) -> None:
    def make(self: posture.BackupTaker, scope: str, label: str, tool: str, own: bool) -> Backup:
        backup = _real(self, scope, label, tool, own)
        if scope == "full":
            data = bytearray(backup.archive.read_bytes())
            data[len(data) // 2] ^= 0xFF
            backup.archive.write_bytes(bytes(data))
        return backup

    posture.BackupTaker._make = make  # type: ignore[method-assign]
