"""A run dir belongs to one run.

A run takes `RUN_DIR/.run.lock` with flock for its whole life (the kernel drops it when the
process dies, however it dies, so no file a crash leaves behind can hold a run dir) and
writes `RUN_DIR/run.json`: its run id, its PID, and the processes it starts that outlive a
kill of the harness by design or by accident (the model lab by PID and start time, the
gateway and the guard through their deployment's PID files). A clean end writes `ended`.

Another run into the same dir:
- the lock is held: a live run owns the dir; refused at once (exit 18);
- the lock is free but run.json has no `ended`: that run died without a verdict; refused with
  one line saying so (exit 19), or with `--resume-cleanup`, what it left is stopped (each PID
  checked to still be the process that run started), its files are moved aside into
  `RUN_DIR/dead-<run-id>/`, and the new run starts fresh under its own run id;
- the run before ended (whatever its verdict): its files are moved into
  `RUN_DIR/previous-<run-id>/`, so two runs' results, transitions and verdicts never mix; its
  release lock stays in place too, as a dir that holds a lock runs only the same review again.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from harness.common import waits
from harness.common.commands import alive, start_time
from harness.common.errors import ExitCode, RunDirError
from harness.procedure.lock import LOCK_FILE as REVIEW_LOCK

LOCK_FILE = ".run.lock"
OWNER_FILE = "run.json"
DEAD_PREFIX = "dead-"
PREVIOUS_PREFIX = "previous-"
RUN_DIR_OWNER: pytest.StashKey[RunDirOwner] = pytest.StashKey()


class RunDirOwner:
    def __init__(self, run_dir: Path, run_id: str, fd: int) -> None:
        self.run_dir = run_dir
        self.run_id = run_id
        self._fd = fd
        self.record: dict[str, Any] = {"run_id": run_id, "pid": os.getpid(),
                                       "started": round(time.time(), 3), "ended": None,
                                       "processes": [], "deployments": []}

    @classmethod
    def take(cls, run_dir: Path, run_id: str, resume_cleanup: bool = False
             ) -> tuple[RunDirOwner, dict[str, Any] | None]:
        """Own `run_dir` for this process's life, or raise RunDirError (one line). Returns
        the owner and, after `resume_cleanup` of a dead run, what was stopped and moved."""
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            other = owner_record(run_dir) or {}
            raise RunDirError(
                f"--run-dir {run_dir}: held by run {other.get('run_id', '?')} (PID "
                f"{other.get('pid', '?')}), which is still running: give this run another "
                "--run-dir", ExitCode.RUN_DIR_BUSY) from None
        previous = owner_record(run_dir)
        cleanup = None
        if previous is not None and previous.get("ended") is None:
            if not resume_cleanup:
                os.close(fd)
                raise RunDirError(
                    f"--run-dir {run_dir}: run {previous.get('run_id')} (PID "
                    f"{previous.get('pid')}) died {_how(run_dir)}{_last_state(run_dir, previous)}"
                    f" and may have left {_leftovers(previous)} running (`harness status "
                    f"{run_dir}` says what serves): rerun with "
                    "--resume-cleanup to stop what it left and start fresh, or give another "
                    "--run-dir", ExitCode.RUN_DIR_DEAD)
            cleanup = {"run_id": previous.get("run_id"), "pid": previous.get("pid"),
                       "stopped": stop_leftovers(previous),
                       "moved_to": str(_move_aside(run_dir, str(previous.get("run_id"))))}
        elif previous is not None:  # it ended: its results are kept beside, never mixed
            kept = _move_aside(run_dir, str(previous.get("run_id")), PREVIOUS_PREFIX)
            if (kept / REVIEW_LOCK).exists():
                shutil.copy2(kept / REVIEW_LOCK, run_dir / REVIEW_LOCK)
            earlier = {"run_id": previous.get("run_id"), "moved_to": str(kept)}
        owner = cls(run_dir, run_id, fd)
        if cleanup is not None:
            owner.record["resumed_cleanup"] = cleanup
        if previous is not None and cleanup is None:
            owner.record["previous"] = earlier
        owner._write()
        return owner, cleanup

    def _write(self) -> None:
        tmp = self.run_dir / f".{OWNER_FILE}.tmp"
        tmp.write_text(json.dumps(self.record, indent=2))
        os.replace(tmp, self.run_dir / OWNER_FILE)

    def add_process(self, role: str, pid: int | None) -> None:
        """A process this run started that a later run may have to stop (by this PID)."""
        if pid is None:
            return
        self.record["processes"].append({"role": role, "pid": pid,
                                         "start_time": start_time(pid)})
        self._write()

    def add_deployment(self, folder: Path) -> None:
        """A deployment whose gateway.pid and guard/guard.pid name what runs in it."""
        self.record["deployments"].append(str(folder))
        self._write()

    def ended(self) -> None:
        """The run ended on its own feet (whatever its outcome): its dir is free again."""
        if self._fd < 0:
            return
        self.record["ended"] = round(time.time(), 3)
        self._write()
        os.close(self._fd)
        self._fd = -1


def owner_record(run_dir: Path) -> dict[str, Any] | None:
    """What the run that last took `run_dir` recorded (run.json), if anything readable."""
    return _read_json(run_dir / OWNER_FILE)


def _how(run_dir: Path) -> str:
    """A run that died left no verdict of its own; its guard may have written one."""
    verdict = _read_json(run_dir / "verdict.json") or {}
    if verdict.get("written_by") == "guard":
        final = verdict.get("final_state") or {}
        return (f"(its guard wrote the verdict: {verdict.get('outcome')}, "
                f"{final.get('version')} {'proven' if final.get('proven') else 'not proven'})")
    return "without a verdict"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _last_state(run_dir: Path, previous: dict[str, Any]) -> str:
    try:
        lines = (run_dir / "transitions.jsonl").read_text().splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("run_id") == previous.get("run_id"):
            return f" (its last transition: {record.get('state')} {record.get('event')})"
    return ""


def _leftovers(previous: dict[str, Any]) -> str:
    roles = [p["role"] for p in previous.get("processes", [])]
    roles += ["its gateway and guard"] * bool(previous.get("deployments"))
    return ", ".join(roles) or "nothing it recorded"


def _deployment_processes(folder: Path) -> list[tuple[str, int, str]]:
    """(role, PID, why it is that process) from a deployment's PID files, each checked: the
    guard by its command line naming this deployment's guard state, the gateway by its
    working directory being this deployment (the harness and the guard both start it there)."""
    found: list[tuple[str, int, str]] = []
    for role, pid_file in (("guard", folder / "guard" / "guard.pid"),
                           ("gateway", folder / "gateway.pid")):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        try:
            if role == "guard":
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                ours = str(folder / "guard").encode() in cmdline
            else:
                ours = Path(os.readlink(f"/proc/{pid}/cwd")) == folder.resolve()
        except OSError:
            continue
        if ours:
            found.append((role, pid, str(pid_file)))
    return found


def stop_leftovers(previous: dict[str, Any], grace_s: float = 10.0) -> list[dict[str, Any]]:
    """Stop what a dead run left, by the PIDs it recorded: the guard first (it would start the
    gateway again), then the gateway, then the rest. Each stop is reported."""
    targets: list[tuple[str, int, bool]] = []
    for folder in previous.get("deployments", []):
        targets += [(role, pid, True) for role, pid, _ in _deployment_processes(Path(folder))]
    for proc in previous.get("processes", []):
        pid = int(proc["pid"])
        if alive(pid) and start_time(pid) == proc.get("start_time"):
            targets.append((proc["role"], pid, True))
    stopped = []
    for role, pid, group in targets:
        stopped.append({"role": role, "pid": pid, "how": _stop(pid, group, grace_s)})
    return stopped


def _stop(pid: int, group: bool, grace_s: float) -> str:
    def send(sig: signal.Signals) -> None:
        try:
            if group and os.getpgid(pid) == pid:  # its own session: its children too
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    send(signal.SIGTERM)
    if waits.poll(lambda: not alive(pid), timeout_s=grace_s, interval_s=0.1):
        return "SIGTERM"
    send(signal.SIGKILL)
    return "SIGKILL"


def _move_aside(run_dir: Path, run_id: str, prefix: str = DEAD_PREFIX) -> Path:
    """Everything the earlier run wrote goes into <prefix><run-id>/: a folder's contents, not
    the folder (a writer of the new run may already hold its path)."""
    aside = run_dir / f"{prefix}{run_id}"
    aside.mkdir(exist_ok=True)
    for entry in run_dir.iterdir():
        if entry.name in (LOCK_FILE, aside.name) or entry.name.startswith(
                (DEAD_PREFIX, PREVIOUS_PREFIX)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            (aside / entry.name).mkdir(exist_ok=True)
            for child in entry.iterdir():
                shutil.move(str(child), str(aside / entry.name / child.name))
        else:
            shutil.move(str(entry), str(aside / entry.name))
    return aside
