"""SHA-256 of a file, read in blocks: backups, installs, images and wheels' RECORDs all use it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO


def sha256_stream(handle: IO[bytes]) -> hashlib._Hash:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of the file at `path`."""
    with open(path, "rb") as handle:
        return sha256_stream(handle).hexdigest()
