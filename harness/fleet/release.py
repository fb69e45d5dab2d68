"""One release lock for the fleet: the controller reviews the release once, before any member
starts, and writes it to the fleet's run dir (`release.lock.json`). Every member's run is
handed that file (`--fleet-lock`) and takes both versions from it instead of asking the
registry itself (harness.procedure.review.from_fleet_lock), so every member gets the same
reviewed candidate; its own checks (integrity at install, the lock re-checked before each
change) then hold it to the fleet's review.

The review is the first member's settings (the fleet file makes every member take the same
package, known-good and candidate), with the fleet's command line.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.common.errors import StaleLockError
from harness.fleet.plan import FleetPlan
from harness.procedure.lock import LOCK_FILE, ROLES, differences
from harness.procedure.review import look_up
from harness.procedure.settings import Settings
from harness.targets.registry import Release

Say = Callable[[str], None]
LookUp = Callable[[Settings, Say], tuple[Release | None, Release | None]]


def fleet_lock_path(run_dir: Path) -> Path:
    return run_dir / LOCK_FILE


def review_fleet(plan: FleetPlan, settings: Settings, run_dir: Path, say: Say,
                 look: LookUp = look_up) -> dict[str, Any] | None:
    """Resolve the fleet's release once and lock it (None: attached members, nothing is
    installed, no lock). A run dir that holds a fleet lock already must name the same
    release (StaleLockError otherwise, as for one gateway)."""
    known_good, candidate = look(settings, say)
    if known_good is None or candidate is None:
        return None
    first = plan.members[0]
    lock = {"fleet": plan.name, "fleet_file": plan.path.name, "fleet_sha256": plan.sha256,
            "reviewed_with": {"member": first.name, "target": first.profile.name,
                              "file": str(first.profile.path)},
            "members": [m.name for m in plan.members],
            "known_good": known_good.as_dict(), "candidate": candidate.as_dict()}
    path = fleet_lock_path(run_dir)
    old = read_fleet_lock(path)
    if old is not None:
        moved = differences({r: old.get(r) for r in ROLES}, {r: lock[r] for r in ROLES})
        if moved:
            raise StaleLockError(f"review is stale: {path} was locked for fleet "
                                 f"{old.get('fleet')}, and now {'; '.join(moved)}. Re-run the "
                                 "review in a new --run-dir; nothing was changed")
        return old
    locked = {**lock, "locked_at": round(time.time(), 3)}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(locked, indent=2))
    os.replace(partial, path)
    say(f"harness: fleet {plan.name}: one review for its {len(plan.members)} member(s): "
        f"{candidate.label} over {known_good.label}, locked in {path.name}")
    return locked


def read_fleet_lock(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StaleLockError(f"{path}: unreadable fleet lock ({exc}): re-run the review in a "
                             "new --run-dir") from None
