"""`make drill`: fault injections on the real gateway, and what each one left behind.

Each case is a real acceptance run (`pytest scenarios`, real OpenClaw on loopback against the
model lab) that gets SIGKILL, SIGTERM or SIGINT at one of 8 boundaries of the procedure:

    after_stop          the known-good just stopped, the candidate active, nothing running
    during_start        the candidate starting
    during_health       the candidate up, its health check running
    during_soak         the candidate serving the soak, not yet proven
    during_rollback_prepare   (a candidate that never boots) the rollback preparing the known-good
    during_rollback_restore   the candidate stopped, the known-good's state being restored
    during_rollback_start     the known-good starting
    during_watch        the known-good back and serving its watch, not yet proven

`--signals STOP` stalls the harness instead (SIGSTOP, SIGCONT 25 s later): the guard takes the
lapsed lease over and the harness, awake again, must stop acting and report it.

The upgrade boundaries run 2026.3.28 -> 2026.4.1; the rollback boundaries a candidate that
never boots (2026.3.28 with 2026.4.1's config change, which 2026.3.28 rejects), so the rollback
starts at once. After the signal the drill waits for the run to end (SIGINT, SIGTERM: the
harness restores and proves, then writes its verdict; SIGKILL: the guard, the last one alive,
does) and reports per case:

    to proven   seconds from the signal to a proven version serving (the record of the proof:
                the harness's `interrupted restored` or the guard's `proven`/`witnessed`)
    verdict     the outcome, and whether it matches what serves (interrupted, a proven
                known-good serving at the end, never `passed`)
    orphans     processes of the run left once it ended: in its deployment folder, its model
                lab, its guard

The drill holds one machine-wide soak slot (like the e2e tests) for all its cases. Run:
`make drill`, or `python -m bench.drill --only during_soak --signals KILL` for a subset;
`--json FILE` keeps the rows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.common.commands import alive, start_time

ROOT = Path(__file__).resolve().parents[1]
KNOWN_GOOD, CANDIDATE = "2026.3.28", "2026.4.1"
BROKEN_PATCH = ROOT / "scenarios" / "targets" / "openclaw" / "idle-timeout-off.json"
UPGRADE = ("--known-good", KNOWN_GOOD, "--candidate", CANDIDATE, "--soak", "40",
           "--baseline", "0", "--watch", "10", "--late-watch", "0")
ROLLBACK = ("--known-good", KNOWN_GOOD, "--candidate", KNOWN_GOOD, "--candidate-config",
            str(BROKEN_PATCH), "--baseline", "0", "--watch", "20", "--late-watch", "0")
GOAL_S = 40.0


def step(name: str, event: str) -> Callable[[dict], bool]:
    return lambda r: r.get("step") == name and r.get("event") == event


def entered(state: str) -> Callable[[dict], bool]:
    return lambda r: r.get("state") == state and r.get("event") == "enter"


# boundary: (run arguments, the record to wait for, seconds to wait after it)
BOUNDARIES: dict[str, tuple[tuple[str, ...], Callable[[dict], bool], float]] = {
    "after_stop": (UPGRADE, step("stop", "passed"), 0.0),
    "during_start": (UPGRADE, entered("start"), 1.0),
    "during_health": (UPGRADE, entered("health"), 0.5),
    "during_soak": (UPGRADE, entered("soak"), 12.0),
    "during_rollback_prepare": (ROLLBACK, step("rollback_backup", "passed"), 0.0),
    "during_rollback_restore": (ROLLBACK, step("rollback_restart_gate", "passed"), 0.0),
    "during_rollback_start": (ROLLBACK, step("rollback_restore", "passed"), 0.0),
    "during_watch": (ROLLBACK, step("rollback_smoke", "passed"), 4.0),
}
SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "INT": signal.SIGINT,
           "STOP": signal.SIGSTOP}  # STOP: a stall past the lease (SIGCONT after STALL_S)
DEFAULT_SIGNALS = ("KILL", "TERM", "INT")
STALL_S = 25.0


@dataclass
class Row:
    boundary: str
    signal: str
    to_proven_s: float | None
    outcome: str
    matches: bool
    serving: str
    orphans: list[str]
    action: str = ""  # who put what back: `guard restored`, `harness left alone`, ...
    during: str = ""  # the step the signal landed in (the run's last transition before it)
    note: str = ""

    @property
    def ok(self) -> bool:
        return (self.matches and not self.orphans and self.to_proven_s is not None
                and self.to_proven_s <= GOAL_S and self.outcome != "passed")


@contextmanager
def soak_slot() -> Iterator[None]:
    """One of the machine-wide soak slots the e2e tests share, taken as they take it."""
    from tests.conftest import SOAK_SLOTS, machine_slot

    with machine_slot("soak", SOAK_SLOTS):
        yield


def records(run_dir: Path) -> list[dict]:
    try:
        lines = (run_dir / "transitions.jsonl").read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def wait_for(run_dir: Path, proc: subprocess.Popen, match: Callable[[dict], bool],
             timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the run ended ({proc.returncode}) before the boundary")
        for record in records(run_dir):
            if match(record):
                return record
            if record.get("event") == "failed" and record.get("step") not in (
                    "start", "health"):  # a rollback case's candidate fails its start
                raise RuntimeError(f"{record.get('step')} failed before the boundary: "
                                   f"{record.get('summary', '')[:200]}")
        time.sleep(0.02)  # a restore of a small state takes well under a second
    raise RuntimeError("the boundary never came")


def proof_at(run_dir: Path, after: float) -> float | None:
    """When a proven version served: the harness's proof after the interruption, or the
    guard's."""
    for record in records(run_dir):
        if record["ts"] < after:
            continue
        if (record["state"], record["event"]) == ("interrupted", "restored") and \
                record.get("proven"):
            return record["ts"]
        if record["state"] == "guard" and record["event"] in ("proven", "witnessed") and \
                "proven by a real reply" in str(record.get("summary")) + record["event"]:
            return record["ts"]
    return None


def leftovers(run_dir: Path) -> list[str]:
    """What of the run still runs: in its deployment, its recorded processes, its guard."""
    try:
        owner = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return ["(no run.json)"]
    found = []
    for proc in owner.get("processes", []):
        if alive(proc["pid"]) and start_time(proc["pid"]) == proc.get("start_time"):
            found.append(f"{proc['role']} PID {proc['pid']}")
    for folder in map(Path, owner.get("deployments", [])):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cwd = Path(os.readlink(entry / "cwd"))
                args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if (cwd == folder or folder in cwd.parents or str(folder / "guard") in args) \
                    and alive(int(entry.name)):
                found.append(f"PID {entry.name} {args[:80]}")
    return found


def stop_leftovers(run_dir: Path) -> None:
    """The drill cleans up after a failed case, by the run's own PIDs only."""
    from harness.procedure.rundir import owner_record, stop_leftovers

    previous = owner_record(run_dir)
    if previous is not None:
        stop_leftovers(previous, grace_s=5)


def run_case(boundary: str, sig_name: str, work: Path) -> Row:
    args, match, delay = BOUNDARIES[boundary]
    run_dir = work / f"{boundary}-{sig_name.lower()}"
    with open(work / f"{run_dir.name}.log", "wb") as output:
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "scenarios", "-q", "-p",
                                 "no:cacheprovider", "--run-dir", str(run_dir), *args],
                                cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True)
    note = ""
    try:
        wait_for(run_dir, proc, match)
        time.sleep(delay)
        if proc.poll() is not None:
            raise RuntimeError(f"the run ended ({proc.returncode}) before the signal")
        sent = time.time()
        os.kill(proc.pid, SIGNALS[sig_name])  # the harness alone, as a CI runner or OOM would
        if sig_name == "STOP":  # the harness wakes after its lease lapsed: it must not act
            time.sleep(STALL_S)
            os.kill(proc.pid, signal.SIGCONT)
        proc.wait(timeout=600)
        deadline = time.monotonic() + 180  # after SIGKILL: the guard's verdict
        while not (run_dir / "verdict.json").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        deadline = time.monotonic() + 30  # the guard ends itself once it wrote the end
        while leftovers(run_dir) and time.monotonic() < deadline:
            time.sleep(0.5)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        note = str(exc)
        sent = time.time()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:
        verdict = json.loads((run_dir / "verdict.json").read_text())
    except (OSError, ValueError):
        verdict = {}
    orphans = leftovers(run_dir)
    if orphans:
        stop_leftovers(run_dir)
    proven_at = proof_at(run_dir, sent)
    final = verdict.get("final_state") or {}
    serving = f"{final.get('version')} {'proven' if final.get('proven') else 'NOT proven'}" \
        if final.get("serving") else "nothing"
    matches = (verdict.get("outcome") == "interrupted" and final.get("serving") is True
               and final.get("proven") is True and final.get("version") == KNOWN_GOOD)
    return Row(boundary, sig_name, None if proven_at is None else round(proven_at - sent, 1),
               verdict.get("outcome", "no verdict"), matches, serving, orphans,
               action(verdict), str((verdict.get("interruption") or {}).get("during") or ""),
               note or ("" if matches else str(verdict.get("claim", ""))[-200:]))


def action(verdict: dict) -> str:
    """Who put the known-good back, and how: restored, or left alone (it already served)."""
    stopped = verdict.get("interruption") or {}
    if verdict.get("written_by") == "guard" or stopped.get("guard"):
        trip = stopped.get("guard") or (verdict.get("guard_trips") or [{}])[0]
        return f"guard {trip.get('action', '?')}"
    restore = stopped.get("restore")
    if restore is None:
        return "nothing to do" if verdict else "?"
    return "harness " + ("left alone" if restore.get("left_alone") else "restored")


def table(rows: list[Row]) -> str:
    lines = [f"{'boundary':<26}{'signal':<8}{'to proven':>10}  {'verdict':<13}{'matches':<9}"
             f"{'serving at the end':<22}{'orphans':<9}{'by':<20}landed in"]
    for r in rows:
        took = f"{r.to_proven_s:.1f} s" if r.to_proven_s is not None else "never"
        lines.append(f"{r.boundary:<26}{r.signal:<8}{took:>10}  {r.outcome:<13}"
                     f"{'yes' if r.matches else 'NO':<9}{r.serving:<22}{len(r.orphans):<9}"
                     f"{r.action:<20}{r.during}"
                     + (f"  ({r.note[:120]})" if r.note and not r.ok else ""))
    good = sum(r.ok for r in rows)
    false_passes = sum(r.outcome == "passed" for r in rows)
    worst = max((r.to_proven_s for r in rows if r.to_proven_s is not None), default=None)
    lines.append(f"{good}/{len(rows)} cases: a proven version serving within {GOAL_S:g} s, a "
                 f"verdict that matches it, no orphan (goal: all); false passes: "
                 f"{false_passes} (goal 0); slowest to proven: "
                 f"{'-' if worst is None else f'{worst:.1f} s'}; orphans: "
                 f"{sum(len(r.orphans) for r in rows)} (goal 0)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="drill", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(BOUNDARIES), default=list(BOUNDARIES))
    parser.add_argument("--signals", nargs="+", choices=list(SIGNALS),
                        default=list(DEFAULT_SIGNALS),
                        help="KILL, TERM and INT by default; STOP stalls the harness for "
                        f"{STALL_S:g} s (past its lease) then continues it")
    parser.add_argument("--json", type=Path, help="write the rows here as JSON")
    parser.add_argument("--work", type=Path, help="where the runs go (default: a temp dir)")
    parser.add_argument("--slot-held", action="store_true",
                        help="the caller holds a soak slot already (e.g. under flock)")
    parser.add_argument("--table", type=Path, nargs="+", metavar="JSON",
                        help="print the table of rows kept by --json (later files replace a "
                        "boundary and signal of earlier ones) and run nothing")
    args = parser.parse_args(argv)
    if args.table:
        kept: dict[tuple[str, str], Row] = {}
        for path in args.table:
            for row in json.loads(path.read_text()):
                kept[(row["boundary"], row["signal"])] = Row(**row)
        for row in kept.values() if args.work else []:  # rows kept before these columns
            verdict_path = args.work / f"{row.boundary}-{row.signal.lower()}" / "verdict.json"
            if not row.action and verdict_path.exists():
                verdict = json.loads(verdict_path.read_text())
                row.action = action(verdict)
                row.during = str((verdict.get("interruption") or {}).get("during") or "")
        print(table(list(kept.values())))
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="drill-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    with contextlib.nullcontext() if args.slot_held else soak_slot():  # one for all cases
        for sig_name in args.signals:  # every boundary once before the next signal
            for boundary in args.only:
                row = run_case(boundary, sig_name, work)
                rows.append(row)
                print(f"  {row.boundary} {row.signal}: {row.outcome}, to proven "
                      f"{row.to_proven_s} s, orphans {len(row.orphans)}"
                      + (f" ({row.note[:160]})" if row.note else ""), flush=True)
                if args.json:
                    args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    print(table(rows))
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
