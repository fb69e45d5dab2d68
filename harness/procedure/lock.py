"""The release lock: what a run's review was locked against, and the refusal when that moved.

At the start of a run both versions are resolved to exact versions and integrity hashes and,
with the SHA-256 of the policy, scenario and target files, written to `release.lock.json` in
the run dir. Before each step that changes the host the candidate and known-good specs are
resolved again: a dist-tag that now points elsewhere, or a version the registry no longer
serves, makes the review void, and the run refuses to go on. A run dir that already holds a
lock can be run again only for the same review: naming another version there is refused too.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.common.errors import HarnessError, StaleLockError, UnknownVersionError
from harness.targets.registry import Release

LOCK_FILE = "release.lock.json"
ROLES = ("candidate", "known_good")
# what makes two locks the same review (the run id, host and time do not)
WINDOW_KEYS = ("soak_window_s", "watch_window_s", "late_watch_window_s", "late_watch_delay_s")
REVIEW_KEYS = ("candidate", "known_good", "policy", "scenarios", "target", "candidate_config",
               *WINDOW_KEYS)

Resolver = Callable[[str, str, str], Release]


def lock_path(run_dir: Path) -> Path:
    return run_dir / LOCK_FILE


def read_lock(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads(lock_path(run_dir).read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise StaleLockError(f"{lock_path(run_dir)}: unreadable lock ({exc}): re-run the review "
                             "and re-lock in a new run dir") from None


def _when(lock: dict[str, Any]) -> str:
    at = lock.get("locked_at")
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "earlier"


def _release(entry: dict[str, Any]) -> str:
    return f"{entry['package']}@{entry['version']} ({str(entry.get('integrity'))[:23]}...)"


def _moved_distributions(locked: dict[str, Any], now: Release) -> str:
    """A PyPI release's resolved set: which distributions moved since the lock."""
    if "resolved" not in locked or not now.resolved:
        return ""
    was = {d["name"]: (d["version"], d["sha256"]) for d in locked["resolved"]}
    found = {name: (version, sha) for name, version, sha in now.resolved}
    moved = [f"{name} {was[name][0]} -> {found[name][0]}" if name in was and name in found
             else f"{name} {'added' if name in found else 'dropped'}"
             for name in sorted(set(was) | set(found)) if was.get(name) != found.get(name)]
    if not moved:
        return ""
    more = f" and {len(moved) - 5} more" if len(moved) > 5 else ""
    return f" (its resolved set moved: {', '.join(moved[:5])}{more})"


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between the review of `old` and `new`, one phrase each."""
    found = []
    for role in ROLES:
        a, b = old.get(role) or {}, new.get(role) or {}
        if (a.get("version"), a.get("integrity")) != (b.get("version"), b.get("integrity")):
            found.append(f"{role} was {_release(a)}, this run names {b.get('spec')!r} = "
                         f"{_release(b)}")
    for name in ("policy", "scenarios", "target"):
        if (old.get(name) or {}).get("sha256") != (new.get(name) or {}).get("sha256"):
            found.append(f"the {name} file changed (sha256 {(old.get(name) or {}).get('sha256')}"
                         f" -> {(new.get(name) or {}).get('sha256')})")
    for name in ("candidate_config", *WINDOW_KEYS):
        if old.get(name) != new.get(name):
            found.append(f"{name} was {old.get(name)!r}, now {new.get(name)!r}")
    return found


def take(run_dir: Path, lock: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Write the lock for this run, or confirm the one already in `run_dir` is the same review.

    Returns the lock in force and whether it was reused; raises `StaleLockError` when the run
    dir was locked for a different review."""
    old = read_lock(run_dir)
    if old is not None:
        found = differences(old, lock)
        if found:
            raise StaleLockError(
                f"review is stale: {run_dir} was locked at {_when(old)} for "
                f"{_release(old['candidate'])}, and now {'; '.join(found)}. Re-run the review "
                "and re-lock (a new --run-dir); nothing was changed")
        return old, True
    run_dir.mkdir(parents=True, exist_ok=True)
    locked = {**lock, "locked_at": round(time.time(), 3)}
    partial = lock_path(run_dir).with_suffix(f".partial-{os.getpid()}")
    partial.write_text(json.dumps(locked, indent=2, default=str))
    os.replace(partial, lock_path(run_dir))
    return locked, False


@dataclass
class LockCheck:
    before: str  # the step the check guards
    at: float
    moved: list[str] = field(default_factory=list)
    error: str | None = None  # the registry could not be asked

    @property
    def ok(self) -> bool:
        return not self.moved and self.error is None

    def message(self, lock: dict[str, Any]) -> str:
        if self.moved:
            return (f"review is stale: {'; '.join(self.moved)} since the review was locked at "
                    f"{_when(lock)}. Re-run the review and re-lock; refused before {self.before}")
        if self.error:
            return (f"the release lock could not be re-checked before {self.before}: "
                    f"{self.error}")
        return f"lock holds before {self.before}: both versions resolve as locked"

    def as_dict(self) -> dict[str, Any]:
        return {"before": self.before, "at": round(self.at, 3), "ok": self.ok,
                "moved": self.moved, "error": self.error}


def recheck(lock: dict[str, Any], resolve: Resolver, before: str) -> LockCheck:
    """Resolve both locked specs again and compare with the lock."""
    check = LockCheck(before, time.time())
    for role in ROLES:
        locked = lock[role]
        try:
            now = resolve(locked["package"], locked["spec"], f"release lock ({role})")
        except UnknownVersionError as exc:
            check.moved.append(f"{role} {locked['package']}@{locked['spec']} no longer "
                               f"resolves ({exc})")
            continue
        except HarnessError as exc:
            check.error = str(exc)
            continue
        if (now.version, now.integrity) != (locked["version"], locked["integrity"]):
            check.moved.append(f"{role} {locked['package']}@{locked['spec']} now resolves to "
                               f"{_release(now.as_dict())}, not the locked "
                               f"{_release(locked)}{_moved_distributions(locked, now)}")
    return check


# A fleet's one review: the controller resolves both versions once and writes them to the
# fleet's run dir (harness.fleet.release); each member's run takes its releases from there
# instead of asking the registry, so every member installs the candidate that was reviewed.
def locked_release(entry: dict[str, Any]) -> Release:
    """A release as a lock wrote it (Release.as_dict)."""
    return Release(entry["package"], entry["spec"], entry["version"], entry["integrity"],
                   entry.get("node_engine"), entry.get("ecosystem", "npm"),
                   tuple((d["name"], d["version"], d["sha256"])
                         for d in entry.get("resolved") or ()),
                   entry.get("python_requires"))


def fleet_releases(path: Path, package: str, specs: dict[str, str]
                   ) -> tuple[dict[str, Release], dict[str, Any]]:
    """The fleet's reviewed releases for a member whose own settings name `package` and
    `specs` (role -> version spec): refused (StaleLockError) when the lock is missing or
    unreadable, or names another package or another spec than the member's."""
    try:
        text = path.read_text()
        lock = json.loads(text)
        releases = {role: locked_release(lock[role]) for role in ROLES}
    except FileNotFoundError:
        raise StaleLockError(f"{path}: the fleet's release lock is missing: no reviewed "
                             "candidate to install; nothing was changed") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StaleLockError(f"{path}: unreadable fleet lock ({exc!r}): re-run the fleet's "
                             "review; nothing was changed") from None
    for role, release in releases.items():
        if (release.package, release.spec) != (package, specs[role]):
            raise StaleLockError(
                f"this member's {role} is {package}@{specs[role]}, and the fleet's lock "
                f"{path.name} (locked at {_when(lock)}) reviewed {release.package}@"
                f"{release.spec} = {_release(release.as_dict())}: a member installs only "
                "the fleet's reviewed release; nothing was changed")
    return releases, {"file": str(path), "sha256": hashlib.sha256(text.encode()).hexdigest(),
                      "fleet": lock.get("fleet"), "locked_at": lock.get("locked_at")}
