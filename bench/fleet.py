"""What a wave costs: the wall time of a whole fleet release against one member's, one run.

Four real releases of OpenClaw 2026.3.28 -> 2026.4.1 on loopback against the model lab, one
after the other, each a `pytest scenarios` as a user runs it (the fast path only, which both
versions serve well: every member passes and is kept, no rollback; short windows):

    one gateway          no fleet: the one member's cost, the baseline
    fleet of 1           a canary alone (-n 1): what the fleet machinery adds
    fleet of 2           two canaries, one wave of 2 at once (-n 2): what a wave of 2 costs
    fleet of 3           a canary, then a wave of 2 (-n 2): the canary's time plus the wave's

Each is printed as wall seconds and as a multiple of the one gateway's, beside its goal: the
fleet of 1 within 1.2x (the fleet's own work is xdist, the ledger and the hold: seconds), a
wave of 2 under 1.5x on 2 cores (the members mostly wait on the soak window, the model lab and
the gateways' starts), the canary then a wave of 2 under 2.5x (1x then 1.5x). The members' own
run times show where it goes (a member of a wave against a member alone).

It holds two of the machine-wide soak slots (tests/conftest.py's `machine_slot`: the most
gateways it runs at once) for all four, so the harness's own e2e soaks do not run beside it.
Run: `make bench` (after bench.soak and bench.rollback), or `python -m bench.fleet`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPENCLAW = ROOT / "scenarios" / "targets" / "local-openclaw.toml"
QUICK = ("--scenarios", str(ROOT / "scenarios" / "soak" / "reply-quick.toml"),
         "--late-watch", "0", "--baseline", "0", "--watch", "10")


@dataclass(frozen=True)
class Release:
    label: str
    members: tuple[tuple[str, bool], ...]  # (name, canary); () is one gateway, no fleet
    workers: int
    goal_x: float | None


RELEASES = (
    Release("one gateway, no fleet", (), 0, None),
    Release("fleet of 1 (a canary)", (("canary", True),), 1, 1.2),
    Release("fleet of 2 (one wave of 2 at once)", (("a", True), ("b", True)), 2, 1.5),
    Release("fleet of 3 (a canary, then a wave of 2)",
            (("canary", True), ("a", False), ("b", False)), 2, 2.5),
)


@dataclass
class Measured:
    release: Release
    wall_s: float
    exit_code: int
    load: tuple[float, float]  # 1-minute load average before and after
    member_s: dict[str, float] = field(default_factory=dict)  # each member's own run
    waves: list[list[str]] = field(default_factory=list)


def fleet_file(folder: Path, release: Release) -> Path:
    body = '[fleet]\nname = "bench"\non_failure = "rollback-wave"\nmax_parallel = 2\n'
    for name, canary in release.members:
        body += f'[[members]]\nname = "{name}"\ntarget = "{OPENCLAW}"\n'
        body += "canary = true\n" if canary else ""
    path = folder / "fleet.toml"
    path.write_text(body)
    return path


def command(release: Release, run_dir: Path, soak_s: int) -> list[str]:
    argv = [sys.executable, "-m", "pytest", "scenarios", "-q", "-p", "no:cacheprovider",
            "--run-dir", str(run_dir), "--soak", str(soak_s), *QUICK]
    if not release.members:
        return [*argv, "--target", str(OPENCLAW), "-p", "no:xdist"]
    return [*argv, "--fleet", str(fleet_file(run_dir.parent, release)),
            "-n", str(release.workers)]


def _run_seconds(verdict_path: Path) -> float | None:
    try:
        verdict = json.loads(verdict_path.read_text())
        return round(float(verdict["ended"]) - float(verdict["started"]), 1)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def measure(release: Release, work: Path, soak_s: int) -> Measured:
    folder = work / release.label.split(" (")[0].replace(" ", "-").replace(",", "")
    folder.mkdir(parents=True, exist_ok=True)
    run_dir = folder / "run"
    argv = command(release, run_dir, soak_s)
    before = os.getloadavg()[0]
    started = time.monotonic()
    with open(folder / "console.log", "w") as console:
        code = subprocess.run(argv, cwd=ROOT, stdout=console, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=1800).returncode
    wall = time.monotonic() - started
    measured = Measured(release, round(wall, 1), code, (before, os.getloadavg()[0]))
    if not release.members:
        measured.member_s["-"] = _run_seconds(run_dir / "verdict.json") or 0.0
        return measured
    verdict = json.loads((run_dir / "verdict.json").read_text())
    measured.waves = verdict.get("waves", [])
    for name, _ in release.members:
        measured.member_s[name] = _run_seconds(run_dir / "members" / name / "verdict.json") \
            or 0.0
    return measured


def kept(row: dict) -> Measured:
    release = next(r for r in RELEASES if r.label == row["release"])
    return Measured(release, row["wall_s"], row["exit"], tuple(row["load"]), row["member_s"],
                    row["waves"])


def table(rows: list[Measured]) -> str:
    one = rows[0].wall_s
    lines = ["fleet releases, 2026.3.28 -> 2026.4.1 on loopback, every member passes and is "
             "kept (wall time from the command's start to its exit)",
             f"{'release':42}{'exit':>5}{'wall s':>9}{'x one':>8}{'goal':>10}{'':7}"
             f"{'each member own run s, | between waves':40}{'load avg':>12}"]
    for row in rows:
        ratio = row.wall_s / one if one else float("nan")
        goal = f"< {row.release.goal_x:g}x" if row.release.goal_x else ""
        met = "" if not row.release.goal_x else (" ok" if ratio < row.release.goal_x
                                                 else " MISSED")
        if row.waves:
            runs = " | ".join(", ".join(f"{row.member_s.get(n, 0):.0f}" for n in wave)
                              for wave in row.waves)
        else:
            runs = f"{row.member_s.get('-', 0):.0f}"
        lines.append(f"{row.release.label:42}{row.exit_code:>5}{row.wall_s:>9.1f}"
                     f"{ratio:>8.2f}{goal:>10}{met:<7}{runs:40}"
                     f"{row.load[0]:>7.1f} > {row.load[1]:<3.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--soak", type=int, default=20, help="each member's soak window, s")
    parser.add_argument("--work", type=Path, help="where the runs go (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="write the rows here as JSON")
    parser.add_argument("--table", type=Path, metavar="JSON",
                        help="print the table of rows kept by --json and run nothing")
    args = parser.parse_args(argv)
    if args.table:
        print(table([kept(row) for row in json.loads(args.table.read_text())]))
        return 0
    from tests.conftest import SOAK_SLOTS, machine_slot

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    print(f"bench.fleet: waiting for 2 soak slots (the most gateways it runs at once); runs "
          f"in {work}", flush=True)
    rows: list[Measured] = []
    with machine_slot("soak", SOAK_SLOTS, count=2):
        for release in RELEASES:
            rows.append(measure(release, work, args.soak))
            row = rows[-1]
            print(f"  {release.label}: exit {row.exit_code}, {row.wall_s:.0f} s", flush=True)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([{
            "release": r.release.label, "exit": r.exit_code, "wall_s": r.wall_s,
            "member_s": r.member_s, "waves": r.waves, "load": r.load} for r in rows], indent=2))
    failed = [r.release.label for r in rows if r.exit_code != 0]
    if failed:
        print(f"not every release passed (see {work}): {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
