"""Backups of a gateway's state: a tar archive plus a SHA-256 manifest of every file.

A backup is only trusted after a test restore into a scratch folder reproduces every hash of
its manifest. Rollback restores chosen paths (config, credentials, auth profiles) from the
pre-upgrade backup and then proves the state matches it again.

An archive is either the harness's own (`state/<path>` members, hashed as written) or one
written by the target's own backup command: then the manifest holds the state's own hashes,
taken around the command, and the test restore proves the archive gives them back.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from harness.common.digest import sha256_file
from harness.common.errors import InfrastructureError


def manifest_of(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 for every regular file under `root`."""
    return {
        str(path.relative_to(root)): sha256_file(path)
        for path in sorted(root.rglob("*")) if path.is_file() and not path.is_symlink()
    }


@dataclass(frozen=True)
class Backup:
    label: str
    archive: Path
    manifest: dict[str, str]
    archive_sha256: str
    created: float
    vanished: list[str] = field(default_factory=list)  # removed by the gateway while archived
    members: dict[str, str] = field(default_factory=dict)  # path -> archive member, if not ours
    tool: str = "harness archive"

    def member(self, rel: str) -> str:
        return self.members.get(rel, f"state/{rel}")

    @property
    def manifest_path(self) -> Path:
        name = self.archive.name.removesuffix(".gz").removesuffix(".tgz").removesuffix(".tar")
        return self.archive.with_name(f"{name}.manifest.json")

    def summary(self) -> dict[str, object]:
        return {"label": self.label, "tool": self.tool, "archive": self.archive.name,
                "files": len(self.manifest), "archive_sha256": self.archive_sha256,
                "created": round(self.created, 3), "vanished_while_archiving": self.vanished}

    def write_manifest(self) -> None:
        self.manifest_path.write_text(json.dumps(
            {**self.summary(), "manifest": self.manifest}, indent=2))


def create_backup(state_dir: Path, dest_dir: Path, label: str,
                  only: list[str] | None = None) -> Backup:
    """Archive every regular file of a (possibly live) state dir, or those under `only` (globs).

    Each file is read once, and the bytes archived are the bytes hashed, so the manifest always
    describes the archive. A file the gateway removes while we read (a lock file, a temp file)
    is skipped and listed in `vanished`, never a reason to fail."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    archive = dest_dir / f"{label}.tar.gz"
    manifest: dict[str, str] = {}
    vanished: list[str] = []
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(state_dir.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            rel = str(path.relative_to(state_dir))
            if only is not None and not selected(rel, only):
                continue
            try:
                info = tar.gettarinfo(str(path), arcname=f"state/{rel}")
                data = path.read_bytes()
            except FileNotFoundError:
                vanished.append(rel)
                continue
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            manifest[rel] = hashlib.sha256(data).hexdigest()
    backup = Backup(label, archive, manifest, sha256_file(archive), time.time(), vanished)
    backup.write_manifest()
    return backup


def archive_members(archive: Path, state_dir: Path) -> tuple[dict[str, str], str | None]:
    """Map the regular-file members of another tool's archive to paths in the state dir.

    A member belongs to the state dir when its name holds the state dir's absolute path (tar
    tools drop the leading slash, some put their own folders before it); anything else (the
    tool's own manifest, say) is not state. A damaged archive yields what could be listed and
    the error; the test restore then reports every file it cannot give back."""
    keys = {str(state_dir).lstrip("/") + "/", str(state_dir.resolve()).lstrip("/") + "/"}
    members: dict[str, str] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                rel = next((member.name.split(key, 1)[1] for key in keys
                            if key in member.name), None)
                if member.isfile() and rel:
                    members[rel] = member.name
    except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as exc:
        return members, f"{archive.name}: {exc}"
    return members, None


def member_sha256(archive: Path, name: str) -> str | None:
    try:
        with tarfile.open(archive, "r:*") as tar:
            handle = tar.extractfile(name)
            return hashlib.sha256(handle.read()).hexdigest() if handle else None
    except (tarfile.TarError, OSError, EOFError, zlib.error, KeyError, ValueError):
        return None


def diff_manifests(expected: dict[str, str], actual: dict[str, str]) -> dict[str, list[str]]:
    return {
        "missing": sorted(set(expected) - set(actual)),
        "added": sorted(set(actual) - set(expected)),
        "changed": sorted(p for p in set(expected) & set(actual) if expected[p] != actual[p]),
    }


def verify_by_restore(backup: Backup) -> dict[str, list[str]]:
    """Extract into a scratch folder and compare with the manifest; empty lists mean good."""
    with tempfile.TemporaryDirectory(prefix="harness-restore-test-") as scratch:
        try:
            with tarfile.open(backup.archive, "r:*") as tar:
                tar.extractall(scratch, filter="data")
        except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as exc:
            return {"unreadable": [f"{backup.archive.name}: {exc}"]}
        restored = {}
        for rel in backup.manifest:
            path = Path(scratch) / backup.member(rel)
            if path.is_file():
                restored[rel] = sha256_file(path)
        if not backup.members:  # our own archive: anything else under state/ is an addition
            restored.update({rel: sha for rel, sha in manifest_of(
                Path(scratch) / "state").items() if rel not in backup.manifest})
        return diff_manifests(backup.manifest, restored)


def selected(path: str, globs: list[str]) -> bool:
    """True when `path` is one of `globs` or lies under one (`*` selects everything)."""
    return any(path == g or fnmatch.fnmatch(path, g) or fnmatch.fnmatch(path, f"{g}/*")
               for g in globs)


def restore_paths(backup: Backup, state_dir: Path, globs: list[str]) -> list[str]:
    """Put the selected paths back exactly as they were in the backup; return what was written.

    Files under a selected path that did not exist at backup time are removed, so the restored
    part of the state equals the backup, not a mix of both."""
    restored: list[str] = []
    with tempfile.TemporaryDirectory(prefix="harness-restore-") as scratch:
        with tarfile.open(backup.archive, "r:*") as tar:
            tar.extractall(scratch, filter="data")
        for rel in sorted(manifest_of(state_dir)):
            if selected(rel, globs) and rel not in backup.manifest:
                (state_dir / rel).unlink()
        for rel in sorted(backup.manifest):
            if selected(rel, globs):
                target = state_dir / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(scratch) / backup.member(rel), target)
                restored.append(rel)
    if not restored:
        raise InfrastructureError(f"{backup.archive.name}: nothing in the backup matches {globs}")
    return restored


def compare_selected(backup: Backup, state_dir: Path, globs: list[str]) -> dict[str, list[str]]:
    expected = {p: h for p, h in backup.manifest.items() if selected(p, globs)}
    actual = {p: h for p, h in manifest_of(state_dir).items() if selected(p, globs)}
    return diff_manifests(expected, actual)
