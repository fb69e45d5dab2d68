"""The detached guard: a dead man's switch from the first change until the run proves a version.

This file runs on its own, on the target, with nothing but the Python standard library (it is
copied next to its state file and started by `harness.procedure.guard.Guard`); it never imports the
harness (the harness imports a few of its functions: one reader of a lease, of a port's owner).
It is not a child of the harness:
  systemd  a transient user service (`systemd-run --user --unit=grh-guard-...`), a child of
           the user's systemd manager, next to the gateway's own unit
  local    a double-forked daemon in its own session, reparented to init at once

One owner of the gateway at a time. The harness holds a lease (lease.json: owner, PID, expiry;
every change under an flock of lease.lock) and renews it every second. While armed (state.json
`"armed": true`) the guard reads it; when the lease lapses (its expiry passed: the harness is
stalled or hung; or its owner's PID is gone: the harness died) the guard takes the lease, and
from then on the harness, should it wake, finds the lease lost and stops acting. Then the guard
  1. leaves alone a known-good that serves on its own (the active install, its state equal to
     the snapshot, its own process ready): nothing is restarted;
  2. else stops what runs, switches `current` back to the known-good prefix with one rename,
     gives config, credentials and sessions back as they were right before the first stop
     (files removed and written, then compared hash by hash: the same restore as
     `rollback_restore`) and starts the known-good (the unit rewritten as it was, or the saved
     command line), ready when the process it started is up and holds the port;
  3. proves it with one real reply carrying a nonce, and writes result.json;
  4. when the harness is dead (the guard is the last one alive): writes the run's verdict
     (`interrupted`, exit 17, what serves and whether it was proven), the outcome transition and
     the alert; in embedded mode it then stops the gateway and the model lab (the deployment is
     the run's own); on systemd the restored known-good keeps serving (it is the user's service).
Each step is a line of transitions.jsonl (state `guard`), on stdout (the journal under
systemd) and in guard.log. Disarmed (`"armed": false`, or no state file) it exits.

    python3 guardian.py STATE_JSON [--daemonize]
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

INTERRUPTED = 17


def log(folder: Path, message: str, **fields: object) -> None:
    record = {"at": round(time.time(), 3), "guard": message, **fields}
    line = json.dumps(record, default=str)
    print(line, flush=True)
    with open(folder / "guard.log", "a") as handle:
        handle.write(line + "\n")


def load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, payload: dict, mode: int | None = None) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


# -- processes -------------------------------------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int | None) -> bool:
    fields = _stat(pid) if pid else None
    return fields is not None and fields[0] != "Z"


def start_time(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields is not None else None


def pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def same_process(pid: int | None, started: int | None) -> bool:
    return bool(pid) and alive(pid) and (started is None or start_time(pid) == started)


def port_holders(port: int) -> set[int]:
    """PIDs holding a listening TCP socket on `port` (this host's /proc, readable ones)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    holders: set[int] = set()
    if not inodes:
        return holders
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    holders.add(int(proc.name))
                    break
        except OSError:
            continue
    return holders


def holds_port(pid: int, port: int) -> bool | None:
    """Whether the process `pid` (or one of its session: the gateway may fork its server) holds
    the listening socket of `port`; None when this host's /proc cannot tell (nobody visible
    listens, e.g. another PID namespace)."""
    holders = port_holders(port)
    if not holders:
        return None
    fields = _stat(pid)
    session = fields[3] if fields else None
    for holder in holders:
        if holder == pid:
            return True
        other = _stat(holder)
        if other is not None and session is not None and other[3] == session:
            return True
    return False


# -- the lease -------------------------------------------------------------------------------
@contextlib.contextmanager
def lease_locked(lock_path: Path) -> Iterator[None]:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def lapsed(lease: dict | None, now: float, armed_at: float, lease_s: float) -> str | None:
    """Why the harness no longer holds the gateway, or None while its lease holds."""
    if lease is None:
        return f"no lease since {now - armed_at:.0f} s" if now - armed_at > lease_s else None
    if lease.get("owner") != "harness":
        return f"the lease is held by {lease.get('owner')}"
    if lease.get("pid_ns") == pid_namespace() and not same_process(lease.get("pid"),
                                                                    lease.get("start_time")):
        return f"the harness (PID {lease.get('pid')}) is gone"
    if now > float(lease.get("expires", 0)):
        return (f"the harness's lease expired {now - float(lease['expires']):.0f} s ago (last "
                f"renewed {now - float(lease.get('renewed', 0)):.0f} s ago: stalled or hung)")
    return None


def take_lease(state: dict) -> str | None:
    """Under the lease's lock: if it lapsed, make it the guard's and say why; else None."""
    with lease_locked(Path(state["lease_lock"])):
        lease = load(Path(state["lease"]))
        why = lapsed(lease, time.time(), state["armed_at"], state["lease_s"])
        if why is None:
            return None
        write_json(Path(state["lease"]), {
            "owner": "guard", "pid": os.getpid(), "start_time": start_time(os.getpid()),
            "pid_ns": pid_namespace(), "taken_at": time.time(), "why": why,
            "previous": lease}, 0o666)
        return why


def harness_dead(state: dict) -> bool:
    """The harness is gone for good (not merely stalled): only knowable in its PID namespace."""
    lease = load(Path(state["lease"])) or {}
    owner = lease.get("previous") or {}
    if owner.get("pid_ns") != pid_namespace():
        return False
    return not same_process(owner.get("pid"), owner.get("start_time"))


# -- transitions and the alert hook ------------------------------------------------------------
class Run:
    """The run's records, written by the guard the way the harness writes them."""

    def __init__(self, state: dict) -> None:
        self.spec = state.get("run") or {}
        self.folder = Path(state["folder"])
        self.dir = Path(self.spec["run_dir"]) if self.spec.get("run_dir") else None

    def emit(self, state: str, event: str, **fields: object) -> dict:
        now = time.time()
        record = {"at": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
                  "ts": round(now, 3), "run_id": self.spec.get("run_id"), "state": state,
                  "event": event, "by": "guard", **fields}
        log(self.folder, f"transition {state} {event}", summary=fields.get("summary"))
        if self.dir is not None and self.dir.is_dir():
            with open(self.dir / "transitions.jsonl", "a") as handle:
                handle.write(json.dumps(record, default=str) + "\n")
        return record

    def last_step(self) -> str | None:
        """The step the harness was in when it died (its last transition)."""
        if self.dir is None:
            return None
        try:
            lines = (self.dir / "transitions.jsonl").read_text().splitlines()
        except OSError:
            return None
        for line in reversed(lines):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("by") != "guard" and record.get("run_id") == self.spec.get("run_id"):
                return f"{record.get('step') or record.get('state')} ({record.get('event')})"
        return None

    def alert(self, body: dict) -> None:
        hook = self.spec.get("alert") or {}
        text = json.dumps(body, default=str)
        if hook.get("command"):
            env = {**os.environ, "HARNESS_ALERT": str(body.get("alert")),
                   "HARNESS_RUN_ID": str(body.get("run_id") or ""),
                   "HARNESS_OUTCOME": str(body.get("outcome", "")),
                   "HARNESS_SUMMARY": str(body.get("summary", ""))}
            try:
                done = subprocess.run(list(hook["command"]), input=text, env=env,
                                      capture_output=True, text=True, timeout=60)
                ok, detail = done.returncode == 0, f"exit {done.returncode}"
            except (OSError, subprocess.TimeoutExpired) as exc:
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            self.emit("alert", "alert_sent" if ok else "alert_failed", kind=body["alert"],
                      hook="command", command=list(hook["command"]), detail=detail)
        if hook.get("webhook"):
            request = urllib.request.Request(hook["webhook"], data=text.encode(), method="POST",
                                             headers={"content-type": "application/json"})
            try:
                with no_proxy().open(request, timeout=10) as response:
                    ok, detail = 200 <= response.status < 300, f"HTTP {response.status}"
            except OSError as exc:
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            self.emit("alert", "alert_sent" if ok else "alert_failed", kind=body["alert"],
                      hook="webhook", url=hook["webhook"], detail=detail)


def no_proxy() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- the gateway -----------------------------------------------------------------------------
def replace_file(source: str | Path, dest: str | Path) -> None:
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


def selected(rel: str, globs: list[str]) -> bool:
    """As harness.procedure.backup.selected: one of `globs`, or under one."""
    return any(rel == g or fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(rel, f"{g}/*")
               for g in globs)


def manifest(folder: Path, globs: list[str]) -> dict[str, str]:
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(folder).as_posix()
            if selected(rel, globs):
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def state_diff(expected: dict[str, str], actual: dict[str, str]) -> dict[str, list[str]]:
    return {"missing": sorted(set(expected) - set(actual)),
            "added": sorted(set(actual) - set(expected)),
            "changed": sorted(p for p in expected if p in actual and expected[p] != actual[p])}


def restore_state(folder: Path, spec: dict) -> dict[str, list[str]]:
    """The known-good's config, credentials and sessions as they were before the first stop:
    what was added since is removed, every saved file written back, then compared."""
    live, saved, globs = Path(spec["dir"]), Path(spec["saved"]), spec["globs"]
    expected = spec["manifest"]
    for rel in manifest(live, globs):
        if rel not in expected:
            (live / rel).unlink()
    for rel in expected:
        (live / rel).parent.mkdir(parents=True, exist_ok=True)
        replace_file(saved / rel, live / rel)
    diff = state_diff(expected, manifest(live, globs))
    log(folder, "state restored", files=len(expected), diff=diff)
    return diff


def systemctl(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    uid = os.getuid()
    env = dict(os.environ)
    env.setdefault("XDG_RUNTIME_DIR", f"/run/user/{uid}")
    env.setdefault("DBUS_SESSION_BUS_ADDRESS", f"unix:path=/run/user/{uid}/bus")
    done = subprocess.run(["systemctl", "--user", *args], env=env, capture_output=True,
                          text=True, timeout=90)
    log(folder, f"systemctl --user {' '.join(args)}", rc=done.returncode,
        err=done.stderr.strip()[-300:])
    return done


def gateway_pid(folder: Path, state: dict) -> int | None:
    if state["mode"] == "systemd":
        done = systemctl(folder, "show", "-p", "MainPID", "--value", state["systemd"]["unit"])
        value = done.stdout.strip()
        return int(value) if value.isdigit() and int(value) > 0 else None
    try:
        return int(Path(state["local"]["pid_file"]).read_text().strip())
    except (OSError, ValueError):
        return None


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
            if not alive(pid):
                log(folder, "stopped the gateway", pid=pid, signal=sig.name)
                return
            time.sleep(0.2)


def start_local(spec: dict) -> int:
    with open(spec["log"], "ab") as out:
        out.write(f"--- guard: starting the known-good at {time.time():.3f}\n".encode())
        out.flush()
        proc = subprocess.Popen(spec["argv"], env=spec["env"], cwd=spec["cwd"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    Path(spec["pid_file"]).write_text(str(proc.pid))
    return proc.pid


def probe(url: str) -> int | None:
    try:
        with no_proxy().open(url, timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def wait_ready(folder: Path, state: dict, pid_of: object, timeout_s: float) -> tuple[bool, str]:
    """Ready when the process the guard started (or found) is alive, holds the port, and the
    live and ready probes answer 200: never whoever else answers the port."""
    api = state["api"]
    port = int(api["base_url"].rsplit(":", 1)[1])
    started = time.monotonic()
    why = "not probed"
    while time.monotonic() - started < timeout_s:
        pid = pid_of() if callable(pid_of) else pid_of
        if pid is None or not alive(pid):
            why = f"the gateway process {pid} is not running"
            if not callable(pid_of):
                return False, why
        elif probe(api["base_url"] + api["live"]) == 200 and \
                probe(api["base_url"] + api["ready"]) == 200:
            owner = holds_port(pid, port)
            if owner is False:
                why = f"port {port} answers, but not from PID {pid}"
            else:
                return True, f"PID {pid} ready in {time.monotonic() - started:.1f} s"
        time.sleep(0.5)
    return False, f"not ready within {timeout_s:g} s ({why})"


def prove(state: dict) -> tuple[bool, str]:
    """One real reply that quotes a fresh nonce: the known-good serves, not only answers."""
    api = state["api"]
    nonce = f"nonce-{secrets.token_hex(6)}"
    body = {"model": f"{api['model_prefix']}{api['agent']}", "stream": False,
            "messages": [{"role": "user", "content":
                          f"Recovery check: quote the reference tag {nonce} verbatim."}]}
    headers = {**api.get("headers", {}), "Authorization": f"Bearer {api['token']}",
               "content-type": "application/json"}
    request = urllib.request.Request(api["base_url"] + api["chat"], method="POST",
                                     data=json.dumps(body).encode(), headers=headers)
    try:
        with no_proxy().open(request, timeout=state.get("proof_timeout_s", 90)) as response:
            raw = response.read()
        content = json.loads(raw)["choices"][0]["message"]["content"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        return False, f"no good reply: {type(exc).__name__}: {exc}"
    if nonce in str(content):
        return True, "a real reply carried its nonce"
    return False, f"the reply lacked its nonce: {str(content)[:120]!r}"


def serving_alone(folder: Path, state: dict) -> tuple[int | None, str]:
    """A known-good already in place and serving on its own (started by the harness after its
    restore, or by its unit's Restart=): its PID, else None and why not. The harness starts
    the known-good only once its state is restored, so a running known-good has it."""
    kg = state["known_good"]
    if os.path.realpath(state["current"]) != os.path.realpath(kg["prefix"]):
        return None, "the candidate is the active install"
    pid = gateway_pid(folder, state)
    if pid is None or not alive(pid):
        return None, "no gateway process runs"
    ready, why = wait_ready(folder, state, pid, state.get("alone_timeout_s", 30))
    return (pid, why) if ready else (None, why)


def witness(folder: Path, state: dict, run: Run) -> dict:
    """The run had proven a version before its harness died: nothing is restored; what serves
    is observed and asked for one real reply."""
    proven = state["proven"]
    started = time.monotonic()
    pid = gateway_pid(folder, state)
    ready, reason = wait_ready(folder, state, pid, 30) if pid else (False, "no gateway runs")
    result = {"tripped_at": time.time(), "why": "the harness died after the run had proven "
              f"{proven['version']}", "action": "left in place", "version": proven["version"],
              "restored": None, "mode": state["mode"], "pid": pid, "ready": ready,
              "ready_reason": reason, "state_diff": None}
    proven_now, proof = prove(state) if ready else (False, "not ready")
    result.update(proven=proven_now, proof=proof)
    result["seconds"] = round(time.monotonic() - started, 2)
    result["healthy"] = ready
    result["summary"] = (f"left in place: {proven['version']} "
                         f"{'serving' if ready else 'NOT ready'} (PID {pid}), "
                         f"{'proven by a real reply' if result['proven'] else result['proof']}")
    run.emit("guard", "witnessed", summary=result["summary"])
    write_json(folder / "result.json", result)
    return result


def restore(folder: Path, state: dict, run: Run) -> dict:
    mode, kg = state["mode"], state["known_good"]
    started = time.monotonic()
    pid, why_not = serving_alone(folder, state)
    if pid is not None:
        run.emit("guard", "left_alone", summary=f"{kg['version']} serves on its own (PID {pid}): "
                 "nothing restarted", pid=pid)
        result = {"action": "left alone", "pid": pid, "ready": True, "ready_reason": why_not,
                  # nothing was restored; how its state moved since the first stop (its
                  # own sessions, say) is recorded, not judged
                  "state_diff": None, "state_since_first_stop": state_diff(
                      state["state"]["manifest"],
                      manifest(Path(state["state"]["dir"]), state["state"]["globs"]))}
    else:
        run.emit("guard", "restore", summary=f"putting {kg['version']} back ({why_not})")
        if mode == "systemd":
            systemctl(folder, "stop", state["systemd"]["unit"])
        else:
            stop_local(folder, state["local"]["pid_file"])
        switch(state["current"], kg["prefix"])
        log(folder, "current switched", to=kg["prefix"])
        diff = restore_state(folder, state["state"])
        if mode == "systemd":
            sd = state["systemd"]
            replace_file(sd["unit_text_file"], sd["unit_path"])
            systemctl(folder, "daemon-reload")
            systemctl(folder, "enable", sd["unit"])
            systemctl(folder, "start", sd["unit"])
            ready, reason = wait_ready(folder, state, lambda: gateway_pid(folder, state),
                                       state.get("ready_timeout_s", 120))
            pid = gateway_pid(folder, state)
        else:
            pid = start_local(state["local"])
            ready, reason = wait_ready(folder, state, pid, state.get("ready_timeout_s", 120))
        result = {"action": "restored", "pid": pid, "ready": ready, "ready_reason": reason,
                  "state_diff": diff}
    result["ready_after_s"] = round(time.monotonic() - started, 2)
    if result["ready"]:
        proven, proof = prove(state)
        result.update(proven=proven, proof=proof)
    else:
        result.update(proven=False, proof="not ready: no reply asked")
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def trip(folder: Path, state: dict, why: str, run: Run) -> dict:
    kg = state["known_good"]
    log(folder, "tripped", why=why, restore=kg["version"])
    run.emit("guard", "took_over", summary=why, restores=kg["version"])
    result = {"tripped_at": time.time(), "why": why, "restored": kg, "version": kg["version"],
              "mode": state["mode"], **restore(folder, state, run)}
    result["healthy"] = result["ready"]  # the old name, kept for readers of result.json
    serving = f"{kg['version']} serving (PID {result['pid']})" if result["ready"] \
        else f"{kg['version']} NOT ready ({result['ready_reason']})"
    proof = "proven by a real reply" if result["proven"] else f"not proven ({result['proof']})"
    result["summary"] = f"{result['action']}: {serving}, {proof}"
    run.emit("guard", "proven" if result["proven"] else "not_proven", summary=result["summary"],
             seconds=result["seconds"])
    write_json(folder / "result.json", result)
    log(folder, "restored and healthy" if result["ready"] else "restored, NOT healthy",
        **{k: v for k, v in result.items() if k != "restored"})
    return result


# -- the harness is dead: the guard writes the end of the run ---------------------------------
def stop_model_lab(folder: Path, lab: dict) -> str:
    pid = lab.get("pid")
    if not same_process(pid, lab.get("start_time")):
        return "already gone"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        return "SIGKILL"
    log(folder, "stopped the model lab", pid=pid)
    return "SIGTERM"


def finish_run(folder: Path, state: dict, result: dict, run: Run) -> None:
    """Verdict, outcome transition and alert of a run whose harness died; then, in embedded
    mode, nothing of the run is left running."""
    spec = run.spec
    kg, cand = spec.get("known_good"), spec.get("candidate")
    during = run.last_step()
    version = result["version"]
    final = {"serving": result["ready"], "version": version, "pid": result["pid"],
             "proven": bool(result["ready"] and result["proven"]),
             "proven_version": version if result["proven"] else None, "by": "guard"}
    if spec.get("embedded"):
        final["after_run"] = ("then stopped by the guard with the model lab (an embedded "
                              "deployment is the run's own)")
    tested = "proven by a real reply" if final["proven"] else "NOT proven"
    left = (f"At the end {final['version']} was serving ({tested})" if final["serving"]
            else f"At the end nothing was serving (active install {final['version']})")
    did = {"left alone": f"left {kg} serving as it was (nothing restarted)",
           "left in place": f"left {version} in place (the run had proven it)"}.get(
        result["action"], f"put {kg} back (config, credentials and sessions as before the "
                          "first stop)")
    after = f"; {final['after_run']}" if final.get("after_run") else ""
    scope = f"no claim about {cand}" if result["action"] != "left in place" else \
        f"the run had proven {version} before it died, and claims no more"
    claim = (f"Interrupted: the harness died during {during or 'the run'} (killed: no verdict "
             f"of its own) and its guard took over ({result['why']}): {scope}. "
             f"The guard {did} in {result['seconds']:g} s. {left}{after}.")
    verdict = {"outcome": "interrupted", "exit_code": INTERRUPTED, "error": None,
               "written_by": "guard", "started": spec.get("started"),
               "ended": round(time.time(), 3), "lock": load(run.dir / "release.lock.json")
               if run.dir else None, "phases": [],
               "interruption": {"by": "the harness died (lease lapsed)", "during": during,
                                "signals": [], "guard": result},
               "guard_trips": [result], "final_state": final, "claim": claim}
    if spec.get("embedded"):  # observed and proven first, as the harness does
        if state["mode"] == "local":
            stop_local(folder, state["local"]["pid_file"])
            Path(state["local"]["pid_file"]).unlink(missing_ok=True)
        if spec.get("model_lab"):
            stop_model_lab(folder, spec["model_lab"])
        run.emit("guard", "stopped", summary="the embedded deployment and the model lab stopped")
    run.emit("outcome", "interrupted", exit_code=INTERRUPTED, summary=claim, final_state=final)
    if run.dir is not None and not (run.dir / "verdict.json").exists():
        write_json(run.dir / "verdict.json", verdict)
        log(folder, "verdict written", path=str(run.dir / "verdict.json"))
    run.alert({"alert": "interrupted", "run_id": spec.get("run_id"), "at": time.time(),
               "target": spec.get("target"), "outcome": "interrupted",
               "exit_code": INTERRUPTED, "summary": claim, "final_state": final,
               "verdict": str(run.dir / "verdict.json") if run.dir else None})


def watch(state_path: Path) -> int:
    folder = state_path.parent
    (folder / "guard.pid").write_text(str(os.getpid()))
    log(folder, "watching", pid=os.getpid(), ppid=os.getppid())
    next_probe, down_since = 0.0, None
    while True:
        state = load(state_path)
        if state is None or not state.get("armed"):
            log(folder, "disarmed: exiting", reason=(state or {}).get("reason", "no state"))
            return 0
        state["folder"] = str(folder)
        now = time.time()
        lease = load(Path(state["lease"]))
        if state.get("proven"):  # a witness only: it acts when the harness is dead, no sooner
            if lapsed(lease, now, state["armed_at"], state["lease_s"]) and \
                    (lease or {}).get("pid_ns") == pid_namespace() and \
                    not same_process((lease or {}).get("pid"), (lease or {}).get("start_time")):
                why = take_lease(state)
                if why is not None:
                    run = Run(state)
                    run.emit("guard", "took_over", summary=why)
                    finish_run(folder, state, witness(folder, state, run), run)
                    return 0
            time.sleep(state.get("poll_s", 0.5))
            continue
        why = lapsed(lease, now, state["armed_at"], state["lease_s"])
        if why is None and now >= next_probe:  # a soak may be long: only a gateway down counts
            next_probe = now + 5.0
            api = state["api"]
            up = probe(api["base_url"] + api["live"]) == 200
            down_since = None if up else (down_since or now)
        if why is None and down_since is not None and now - down_since > state["max_down_s"]:
            why = (f"the gateway has been down for more than {state['max_down_s']:g} s while "
                   "armed")
            with lease_locked(Path(state["lease_lock"])):
                write_json(Path(state["lease"]), {"owner": "guard", "pid": os.getpid(),
                                                  "why": why, "taken_at": now,
                                                  "previous": lease}, 0o666)
        elif why is not None:
            why = take_lease(state)
        if why is None:
            time.sleep(state.get("poll_s", 0.5))
            continue
        state["armed"] = False
        state["reason"] = f"tripped: {why}"
        write_json(state_path, {k: v for k, v in state.items() if k != "folder"}, 0o600)
        run = Run(state)
        result = trip(folder, state, why, run)
        if harness_dead(state):
            finish_run(folder, state, result, run)
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
