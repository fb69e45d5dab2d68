"""Where a finished run lands for people, a run of one gateway and a fleet's alike: the link
`reports/latest` to its run dir, and Allure's environment panel (`environment.properties`)
in its results."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

LATEST = "latest"


def link_latest(reports: Path, run_dir: Path) -> bool:
    """Point `reports/latest` at the run dir; a run dir outside `reports/` leaves it as it
    was (a test's or a CI job's own folder is no one's latest run). Whether it was linked."""
    latest = reports / LATEST
    if latest.parent not in run_dir.parents:
        return False
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(run_dir)
    except OSError:
        return False
    return True


def properties(rows: Mapping[str, object]) -> str:
    return "".join(f"{key}={value}\n" for key, value in rows.items())


def write_environment(results: Path | str | None, text: str) -> bool:
    """Allure's environment panel, when its results folder is there."""
    if not results or not Path(results).is_dir():
        return False
    (Path(results) / "environment.properties").write_text(text)
    return True
