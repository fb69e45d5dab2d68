"""Backups that tell the truth: take one, prove it by a test restore, and say what it covers.

The posture of a backup is what it can be shown to hold, by the kinds of state a target profile
declares (`[state.paths]`):
- `full`: config, credentials, sessions and the rest of the state, all archived and test-restored;
- `config-only` (degraded): the config is safe, something else is not (the full backup failed,
  its test restore did not match, or the profile does not declare where that state lives);
- `none`: not even the config.
A full backup is tried first (the target's own command when the profile declares one, such as
`openclaw backup create --verify`, then the harness's own archive of the state dir); when both
fail, a config-only one. Every attempt and why it failed is in the report. Anything below
`full` is a go/no-go question for a person: the run stops before anything is stopped unless
that posture was accepted up front.
"""

from __future__ import annotations

import shutil
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.common.commands import Completed
from harness.common.digest import sha256_file
from harness.common.errors import HarnessError, InfrastructureError
from harness.procedure.backup import (
    Backup,
    archive_members,
    create_backup,
    manifest_of,
    member_sha256,
    selected,
    verify_by_restore,
)
from harness.targets.profile import STATE_KINDS, StateSpec

POSTURES = ("full", "config-only", "none")  # best first
SCOPES = ("full", "config-only")

RunCli = Callable[[list[str], float], Completed]


def at_least(posture: str, floor: str) -> bool:
    return POSTURES.index(posture) <= POSTURES.index(floor)


@dataclass
class Attempt:
    scope: str  # full | config-only
    tool: str
    ok: bool
    why: str
    archive: str | None = None
    files: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Assessment:
    label: str
    posture: str
    backup: Backup | None
    attempts: list[Attempt]
    coverage: dict[str, dict[str, Any]] = field(default_factory=dict)
    accepted: str | None = None  # the posture the user accepted up front, if any

    @property
    def go(self) -> bool:
        return at_least(self.posture, self.accepted or "full")

    @property
    def reason(self) -> str:
        """Why the posture is below full, in one phrase (empty when full)."""
        if self.posture == "full":
            return ""
        failed = [f"{a.scope} backup ({a.tool}) failed: {a.why}" for a in self.attempts
                  if not a.ok]
        short = [f"{kind} {c['why']}" for kind, c in self.coverage.items() if not c["covered"]]
        return "; ".join(failed + short) or "no backup was made"

    def line(self) -> str:
        """The report's first words: the posture, what made it, and who accepted less."""
        if self.backup is None:
            head = "backup posture none: no backup could be made"
        else:
            head = (f"backup posture {self.posture}"
                    f"{'' if self.posture == 'full' else ' (degraded)'}: {self.backup.tool}, "
                    f"{_files(len(self.backup.manifest))}, every SHA-256 matched by a test "
                    "restore")
        if self.posture != "full":
            head += f" ({self.reason})"
            if self.go:
                head += f"; accepted up front by --accept-backup-posture {self.accepted}"
        not_kept = [kind for kind, c in self.coverage.items() if c.get("applies") is False]
        if not_kept:
            head += f"; not applicable (the target keeps none): {', '.join(not_kept)}"
        return head

    def no_go(self) -> str:
        return (f"no-go: {self.line()}. Nothing was stopped or changed. Go on with this posture "
                f"only by re-running with --accept-backup-posture {self.posture}; otherwise make "
                "a full backup work first")

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "posture": self.posture, "line": self.line(),
                "accepted": self.accepted, "go": self.go,
                "backup": self.backup.summary() if self.backup else None,
                "attempts": [a.as_dict() for a in self.attempts], "coverage": self.coverage}


class BackupTaker:
    """Takes a backup of one state dir and assesses its posture."""

    def __init__(self, spec: StateSpec, state_dir: Path, dest_root: Path,
                 run_cli: RunCli | None, cli_name: str = "target") -> None:
        self.spec = spec
        self.state_dir = state_dir
        self.dest_root = dest_root
        self.run_cli = run_cli
        self.cli_name = cli_name

    def take(self, label: str, accepted: str | None = None) -> Assessment:
        before = [str(p.relative_to(self.state_dir)) for p in sorted(self.state_dir.rglob("*"))
                  if p.is_file() and not p.is_symlink()]
        attempts: list[Attempt] = []
        for scope, own in self._ways():
            started = time.monotonic()
            tool = self._tool(scope, own)
            try:
                backup = self._make(scope, label, tool, own)
            except (HarnessError, OSError, tarfile.TarError, EOFError, ValueError) as exc:
                attempts.append(Attempt(scope, tool, False, str(exc),
                                        seconds=round(time.monotonic() - started, 3)))
                continue
            problems = {k: v for k, v in verify_by_restore(backup).items() if v}
            attempt = Attempt(scope, tool, not problems, "test restore matched every SHA-256",
                              backup.archive.name, len(backup.manifest),
                              round(time.monotonic() - started, 3))
            attempts.append(attempt)
            if problems:
                attempt.why = f"test restore does not match the manifest: {_few(problems)}"
                continue
            coverage = self._coverage(backup, before, scope)
            return Assessment(label, self._posture(coverage), backup, attempts, coverage,
                              accepted)
        return Assessment(label, "none", None, attempts, {}, accepted)

    # -- making one ---------------------------------------------------------------------
    def _command(self, scope: str) -> list[str] | None:
        cmds = self.spec.backup
        argv = cmds.full if scope == "full" else cmds.config_only
        return argv if self.run_cli is not None else None

    def _ways(self) -> list[tuple[str, bool]]:
        """(scope, harness's own archive?) in the order tried: for each scope, the target's own
        command first when it has one, then the harness's archive of the declared paths (a
        target tool that refuses, as OpenClaw's does on a config it cannot read, does not make
        the state impossible to back up)."""
        return [(scope, own) for scope in SCOPES
                for own in ((False, True) if self._command(scope) else (True,))]

    def _tool(self, scope: str, own: bool) -> str:
        argv = self._command(scope)
        if argv is not None and not own:
            shown: list[str] = []
            for arg in argv:  # the command without its output folder (`--output {dest}`)
                if "{dest}" in arg:
                    if shown and shown[-1].startswith("-") and not arg.startswith("-"):
                        shown.pop()
                    continue
                shown.append(arg)
            return f"{self.cli_name} {' '.join(shown)}"
        return "harness archive" + (" of the config" if scope == "config-only" else "")

    def _make(self, scope: str, label: str, tool: str, own: bool) -> Backup:
        dest = self.dest_root / f"{label}-{scope}-{'harness' if own else 'target'}"
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        argv = self._command(scope)
        if argv is None or own or self.run_cli is None:
            only = None if scope == "full" else self.spec.paths.get("config", [self.spec.config])
            return create_backup(self.state_dir, dest, label, only=only)
        scope_globs = self._scope(scope)
        before = {p: h for p, h in manifest_of(self.state_dir).items() if selected(p, scope_globs)}
        done = self.run_cli([a.replace("{dest}", str(dest)) for a in argv],
                            self.spec.backup.timeout_s)
        if done.returncode != 0:
            raise InfrastructureError(f"`{tool}` exited {done.returncode}: {done.tail(2)}")
        archives = [p for p in dest.iterdir() if p.is_file()]
        if len(archives) != 1:
            raise InfrastructureError(f"`{tool}` left {len(archives)} files in its output "
                                      "folder, expected one archive")
        archive = archives[0]
        after = manifest_of(self.state_dir)
        members, _ = archive_members(archive, self.state_dir)
        # What the archive must give back: every state file in the command's scope, with the
        # hash it had around the command. A file the live gateway changed meanwhile is held to
        # the archive's own copy; one it removed meanwhile is not state anyone loses.
        manifest: dict[str, str] = {}
        vanished: list[str] = []
        for rel, sha in before.items():
            if rel not in after:
                vanished.append(rel)
            elif after[rel] == sha:
                manifest[rel] = sha
            elif rel in members and (copy := member_sha256(archive, members[rel])):
                manifest[rel] = copy
            else:
                manifest[rel] = after[rel]
        backup = Backup(label, archive, manifest, sha256_file(archive), time.time(), vanished,
                        members, tool)
        backup.write_manifest()
        return backup

    def _scope(self, scope: str) -> list[str]:
        """The state a backup of this scope is expected to hold (declared kinds only)."""
        if scope == "config-only":
            return self.spec.paths.get("config", [self.spec.config])
        return [g for globs in self.spec.paths.values() for g in globs]

    # -- what it covers -----------------------------------------------------------------
    def _coverage(self, backup: Backup, before: list[str],
                  scope: str) -> dict[str, dict[str, Any]]:
        coverage: dict[str, dict[str, Any]] = {}
        for kind in STATE_KINDS:
            globs = self.spec.paths.get(kind)
            if kind in self.spec.not_applicable:  # the gateway keeps none: nothing to lose
                coverage[kind] = {"declared": [], "covered": True, "applies": False, "files": 0,
                                  "archived": 0, "why": "does not apply: "
                                  + self.spec.not_applicable[kind]}
                continue
            if not globs:
                coverage[kind] = {"declared": [], "covered": False, "files": 0, "archived": 0,
                                  "why": "is not declared in the target profile ([state.paths])"}
                continue
            # files present before the backup and still there after (a live gateway removes
            # lock and temp files; those are not state anyone loses)
            files = [p for p in before if selected(p, globs) and (self.state_dir / p).exists()]
            missing = [p for p in files if p not in backup.manifest]
            covered = not missing and (kind != "config" or bool(files))
            why = ""
            if missing:
                why = f"is not in the archive ({_few({'not archived': missing})})"
            elif not covered:
                why = "has no file in the state dir"
            coverage[kind] = {"declared": globs, "covered": covered, "files": len(files),
                              "archived": len(files) - len(missing), "why": why,
                              "not_archived": missing[:20]}
        if scope == "config-only":
            for kind, entry in coverage.items():
                if kind != "config" and entry.get("applies", True):
                    entry.update(covered=False, why="was left out (a config-only backup)")
        return coverage

    @staticmethod
    def _posture(coverage: dict[str, dict[str, Any]]) -> str:
        if all(c["covered"] for c in coverage.values()):
            return "full"
        return "config-only" if coverage.get("config", {}).get("covered") else "none"


def _files(n: int) -> str:
    return f"{n} file{'' if n == 1 else 's'}"


def _few(problems: dict[str, list[str]], n: int = 3) -> str:
    parts = []
    for name, paths in problems.items():
        more = f" and {len(paths) - n} more" if len(paths) > n else ""
        parts.append(f"{name}: {', '.join(paths[:n])}{more}")
    return "; ".join(parts)
