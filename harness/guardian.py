"""The detached guard: puts the known-good gateway back if the harness dies mid-upgrade.

This file runs on its own, on the target, with nothing but the Python standard library (it is
copied next to its state file and started by `harness.guard.Guard`); it never imports the
harness. It is not a child of the harness:
  systemd  a transient user service (`systemd-run --user --unit=grh-guard-...`), a child of
           the user's systemd manager, next to the gateway's own unit
  local    a double-forked daemon in its own session, reparented to init at once

While armed (state.json `"armed": true`) it watches the harness's heartbeat file. When the
heartbeat is older than `stale_s` (the harness was killed or hangs), or the gateway has been
down longer than `max_down_s`, it trips: stops what may be half up, switches `current` back to
the known-good prefix with one rename, puts the saved known-good files (the config) back, and
starts the gateway again (the unit rewritten as it was, or the saved command line); then it
probes the health URL and writes result.json. Disarmed (`"armed": false`, or the state file is
gone) it exits. Every step is one line on stdout (the journal under systemd) and in guard.log.

    python3 guardian.py STATE_JSON [--daemonize]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def log(folder: Path, message: str, **fields: object) -> None:
    record = {"at": round(time.time(), 3), "guard": message, **fields}
    line = json.dumps(record, default=str)
    print(line, flush=True)
    with open(folder / "guard.log", "a") as handle:
        handle.write(line + "\n")


def load(state_path: Path) -> dict | None:
    try:
        return json.loads(state_path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


def replace_file(source: str, dest: str) -> None:
    tmp = f"{dest}.guard-tmp"
    shutil.copyfile(source, tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, dest)


def switch(current: str, prefix: str) -> None:
    tmp = f"{current}.guard-switch"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(prefix, tmp)
    os.replace(tmp, current)


def user_bus_env() -> dict[str, str]:
    uid = os.getuid()
    env = dict(os.environ)
    env.setdefault("XDG_RUNTIME_DIR", f"/run/user/{uid}")
    env.setdefault("DBUS_SESSION_BUS_ADDRESS", f"unix:path=/run/user/{uid}/bus")
    return env


def systemctl(folder: Path, *args: str) -> int:
    done = subprocess.run(["systemctl", "--user", *args], env=user_bus_env(),
                          capture_output=True, text=True, timeout=90)
    log(folder, f"systemctl --user {' '.join(args)}", rc=done.returncode,
        err=done.stderr.strip()[-300:])
    return done.returncode


def stop_local(folder: Path, pid_file: str) -> None:
    try:
        pid = int(Path(pid_file).read_text().strip())
    except (OSError, ValueError):
        return
    for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                log(folder, "stopped the half-up gateway", pid=pid)
                return
            time.sleep(0.2)


def start_local(folder: Path, spec: dict) -> int:
    with open(spec["log"], "ab") as out:
        out.write(f"--- guard: starting the known-good at {time.time():.3f}\n".encode())
        out.flush()
        proc = subprocess.Popen(spec["argv"], env=spec["env"], cwd=spec["cwd"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    Path(spec["pid_file"]).write_text(str(proc.pid))
    return proc.pid


def healthy(url: str, timeout_s: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.5)
    return None


def trip(folder: Path, state: dict, why: str) -> dict:
    log(folder, "tripped", why=why, restore=state["known_good"]["version"])
    mode = state["mode"]
    if mode == "systemd":
        systemctl(folder, "stop", state["systemd"]["unit"])
    else:
        stop_local(folder, state["local"]["pid_file"])
    switch(state["current"], state["known_good"]["prefix"])
    log(folder, "current switched", to=state["known_good"]["prefix"])
    for saved, dest in state["files"]:
        replace_file(saved, dest)
        log(folder, "restored", file=dest)
    if mode == "systemd":
        sd = state["systemd"]
        replace_file(sd["unit_text_file"], sd["unit_path"])
        systemctl(folder, "daemon-reload")
        systemctl(folder, "enable", sd["unit"])
        rc = systemctl(folder, "start", sd["unit"])
        started = {"systemctl_start_rc": rc}
    else:
        started = {"pid": start_local(folder, state["local"])}
    seconds = healthy(state["health_url"], state.get("health_timeout_s", 120))
    result = {"tripped_at": time.time(), "why": why, "restored": state["known_good"],
              **started, "healthy": seconds is not None,
              "healthy_after_s": None if seconds is None else round(seconds, 2)}
    log(folder, "restored and healthy" if seconds is not None else "restored, NOT healthy",
        **result)
    write_json(folder / "result.json", result)
    return result


def watch(state_path: Path) -> int:
    folder = state_path.parent
    (folder / "guard.pid").write_text(str(os.getpid()))
    log(folder, "watching", pid=os.getpid(), ppid=os.getppid())
    while True:
        state = load(state_path)
        if state is None or not state.get("armed"):
            log(folder, "disarmed: exiting", reason=(state or {}).get("reason", "no state"))
            return 0
        now = time.time()
        try:
            beat = os.stat(state["heartbeat"]).st_mtime
        except OSError:
            beat = state["armed_at"]
        age = now - beat
        if age > state["stale_s"]:
            why = f"the harness's heartbeat is {age:.0f} s old (limit {state['stale_s']:g} s)"
        elif now - state["armed_at"] > state["max_down_s"]:
            why = f"armed for more than {state['max_down_s']:g} s without reaching healthy"
        else:
            time.sleep(state.get("poll_s", 1.0))
            continue
        state["armed"] = False
        state["reason"] = f"tripped: {why}"
        write_json(state_path, state)
        trip(folder, state, why)
        return 0


def daemonize() -> None:
    """Double fork: the guard's parent exits at once, so init (or a subreaper) adopts it."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)


def main(argv: list[str]) -> int:
    state_path = Path(argv[1]).resolve()
    if "--daemonize" in argv[2:]:
        daemonize()
    try:
        return watch(state_path)
    except Exception as exc:  # noqa: BLE001 - the log is the only place anyone will see it
        log(state_path.parent, "guard error", error=f"{type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
