"""The review: the first step of the procedure, before anything is installed or stopped.

The versions the settings name (a version, a range or a dist-tag) are looked up in the target's
registry, checked against its deny list, said out loud when they resolved to something else,
and locked with everything else the run was asked to do (release.lock.json in the run dir: a
locked run dir accepts the same review again and refuses another, exit 14). An attached
deployment looks nothing up: its version is read from what runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.common.errors import InputError
from harness.procedure.lock import fleet_releases, lock_path
from harness.procedure.lock import take as take_lock
from harness.procedure.run import RunSettings
from harness.procedure.settings import Settings
from harness.targets.packages import ecosystem_for
from harness.targets.profile import TargetProfile
from harness.targets.registry import Release
from harness.targets.runtime import Runtime

Say = Callable[[str], None]


def allowed(target: TargetProfile, release: Release, origin: str) -> Release:
    """A version on the target's deny list is refused at lock, before anything is installed."""
    denied = target.denied(release.version)
    if denied is not None:
        raise InputError(str(target.path), "versions.deny", f"{origin} resolves to "
                         f"{release.label}, which is denied: {denied.reason}")
    return release


def look_up(settings: Settings, say: Say) -> tuple[Release | None, Release | None]:
    """Both versions as the registry resolves them now (None, None: an attached deployment)."""
    if settings.known_good_spec is None or settings.candidate_spec is None:
        return None, None
    target = settings.target
    known_origin = settings.sources["known_good_spec"].where
    cand_origin = settings.sources["candidate_spec"].where
    # the ecosystem the target names: npm's registry, or pip against its own index
    packages = ecosystem_for(Runtime(settings.cache_dir / "runtime"), target.package.ecosystem,
                             target.package.extras)
    known_good = allowed(target, packages.resolve(target.package.name, settings.known_good_spec,
                                                  known_origin), known_origin)
    candidate = allowed(target, packages.resolve(target.package.name, settings.candidate_spec,
                                                 cand_origin), cand_origin)
    for origin, release in ((known_origin, known_good), (cand_origin, candidate)):
        if release.spec != release.version:  # a range, a partial version or a dist-tag
            say(f"harness: {origin} {release.spec!r} resolved to {release.version} in the "
                "registry: that exact version is locked, installed and judged")
    return known_good, candidate


def from_fleet_lock(settings: Settings, fleet_lock: Path,
                    say: Say) -> tuple[Release | None, Release | None, dict[str, Any] | None]:
    """A fleet's member: both versions as the fleet's one review locked them (no registry
    look-up of its own), checked against this member's own specs and deny list."""
    if settings.known_good_spec is None or settings.candidate_spec is None:
        return None, None, None  # an attached member installs nothing: nothing to take
    target = settings.target
    releases, taken = fleet_releases(fleet_lock, target.package.name,
                                     {"known_good": settings.known_good_spec,
                                      "candidate": settings.candidate_spec})
    known_good = allowed(target, releases["known_good"], f"the fleet's lock {fleet_lock.name}")
    candidate = allowed(target, releases["candidate"], f"the fleet's lock {fleet_lock.name}")
    say(f"harness: the fleet's review: {candidate.label} ({candidate.integrity[:23]}...) and "
        f"{known_good.label}, as the fleet's lock has them (not looked up again)")
    return known_good, candidate, taken


def run_settings(settings: Settings, run_id: str, run_dir: Path,
                 known_good: Release | None, candidate: Release | None) -> RunSettings:
    windows = settings.windows
    return RunSettings(
        run_id=run_id, run_dir=run_dir, cache_dir=settings.cache_dir, target=settings.target,
        policy=settings.policy, scenarios=settings.scenarios, known_good=known_good,
        candidate=candidate, soak=windows.soak, watch=windows.watch,
        late_watch=windows.late_watch, restart_gate=settings.restart_gate,
        candidate_config=settings.candidate_config, baseline=windows.baseline,
        on_inconclusive=settings.on_inconclusive, gate_timeout_s=settings.gate_timeout_s,
        accept_backup_posture=settings.accept_backup_posture,
        rollback_path=settings.rollback_path)


def lock_review(settings: Settings, run_id: str, run_dir: Path, say: Say,
                fleet_lock: Path | None = None) -> tuple[RunSettings, dict[str, Any]]:
    """Look the versions up (a fleet's member: take them from the fleet's lock) and lock the
    review, before anything runs; a locked run dir must match it. Returns the run's settings
    and the lock's record (file, when, reused)."""
    if fleet_lock is None:
        known_good, candidate = look_up(settings, say)
        taken = None
    else:
        known_good, candidate, taken = from_fleet_lock(settings, fleet_lock, say)
    resolved = replace(run_settings(settings, run_id, run_dir, known_good, candidate),
                       fleet_lock=taken)
    locked, reused = take_lock(run_dir, resolved.lock())
    return resolved, {"file": str(lock_path(run_dir)), "locked_at": locked["locked_at"],
                      "reused": reused}
