"""Test seam (loaded with `pytest -p tests.seams.rotting_storage`): the storage under the backups
flips one byte of the first archive written, after the target's own `backup create --verify`
has passed and before the harness's test restore. Everything else is the real run."""

from __future__ import annotations

import pytest

from harness import posture
from harness.backup import Backup

_real = posture.BackupTaker._make


def pytest_configure(config: pytest.Config) -> None:
    rotted: list[str] = []

    def make(self: posture.BackupTaker, scope: str, label: str, tool: str) -> Backup:
        backup = _real(self, scope, label, tool)
        if not rotted:
            data = bytearray(backup.archive.read_bytes())
            data[len(data) // 2] ^= 0xFF
            backup.archive.write_bytes(bytes(data))
            rotted.append(backup.archive.name)
        return backup

    posture.BackupTaker._make = make  # type: ignore[method-assign]
