"""`harness status RUN_DIR`: what happened to a run (one that died too), and what serves now.

Read from what the run and its guard left: run.json (its PID, whether it ended), the lock on
the run dir (is it still running?), verdict.json (the harness's, or the guard's when the
harness died), transitions.jsonl (the last steps, the guard's included), the guard's
result.json, and for each of its deployments what runs there now: the active version, the
gateway's PID and whether it answers its readiness probe. Nothing is changed.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from harness.common.commands import alive
from harness.common.errors import InputError
from harness.procedure.rundir import LOCK_FILE, OWNER_FILE
from harness.targets.runtime import MARKER


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _held(run_dir: Path) -> bool:
    """Whether a live run holds the run dir's lock (probed, never kept)."""
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "?"


def _probe(url: str) -> int | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def serving(folder: Path) -> str:
    """What serves in a deployment now."""
    try:
        version = json.loads((folder / "current" / MARKER).read_text())["version"]
    except (OSError, ValueError, KeyError):
        version = None
    try:
        pid: int | None = int((folder / "gateway.pid").read_text().strip())
    except (OSError, ValueError):
        pid = None
    state = _read(folder / "guard" / "state.json") or {}
    api = state.get("api") or {}
    if pid is None or not alive(pid):
        where = f" (active install {version})" if version else ""
        return f"nothing serving{where}"
    ready = _probe(api["base_url"] + api["ready"]) if api else None
    answer = f"{api.get('ready')} {ready}" if api else "readiness not probed"
    return f"{version or 'an unknown version'} running as PID {pid} ({answer})"


def status(run_dir: Path) -> str:
    owner = _read(run_dir / OWNER_FILE)
    if owner is None:
        raise InputError(str(run_dir), OWNER_FILE, "not a run dir of this harness (no "
                         "readable run.json)")
    verdict = _read(run_dir / "verdict.json")
    records = []
    try:
        for line in (run_dir / "transitions.jsonl").read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    except OSError:
        pass
    held = _held(run_dir)
    if held:
        life = f"running (PID {owner.get('pid')} holds the run dir)"
    elif owner.get("ended"):
        life = f"ended {_when(owner['ended'])}"
    else:
        life = (f"DIED without ending (PID {owner.get('pid')} is gone; killed, or the host "
                "went down)")
    lines = [f"run {owner.get('run_id')} in {run_dir}: {life}",
             f"  started {_when(owner.get('started'))} by PID {owner.get('pid')}"]
    if verdict is not None:
        by = "its guard (the harness had died)" if verdict.get("written_by") == "guard" \
            else "the harness"
        lines.append(f"  verdict: {verdict.get('outcome')} (exit {verdict.get('exit_code')}), "
                     f"written by {by}")
        lines.append(f"  claim: {verdict.get('claim')}")
        final = verdict.get("final_state") or {}
        if final:
            proven = "proven" if final.get("proven") else "NOT proven"
            lines.append(f"  at its end: {final.get('version')} "
                         f"{'serving' if final.get('serving') else 'not serving'} ({proven})"
                         + (f"; {final['after_run']}" if final.get("after_run") else ""))
    else:
        lines.append("  verdict: none" + ("" if held else " (the run died before writing one, "
                                                           "and no guard wrote it)"))
    ours = [r for r in records if r.get("run_id") == owner.get("run_id")]
    if ours:
        last = [r for r in ours if r.get("by") != "guard"][-1:]
        for r in last:
            lines.append(f"  last step of the harness: {r.get('state')} {r.get('event')} at "
                         f"{r.get('at')}")
        for r in (r for r in ours if r.get("by") == "guard" or r.get("state") == "guard"):
            lines.append(f"  {r.get('state')} {r.get('event')} (by the guard) at {r.get('at')}: "
                         f"{str(r.get('summary') or '')[:300]}")
    for folder in map(Path, owner.get("deployments", [])):
        result = _read(folder / "guard" / "result.json")
        if result is not None and not any(r.get("state") == "guard" for r in ours):
            lines.append(f"  guard result: {result.get('summary') or result.get('why')}")
        lines.append(f"  serving now in {folder}: {serving(folder)}")
    if not held and not owner.get("ended"):
        lines.append("  next run into this dir: refused (exit 19) unless --resume-cleanup")
    return "\n".join(lines) + "\n"
