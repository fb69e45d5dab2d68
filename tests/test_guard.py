"""The detached guard in local mode, with real processes: the harness side runs in a child
process that holds the lease and is SIGKILLed or SIGSTOPped while the guard is armed; the
double-forked guardian must then take the lease, put the known-good back (config, credentials
and sessions as before the first stop), see the process it started ready and holding the port,
prove it with a real reply, and, the harness being dead, write the run's verdict.

The "gateway" here is a small HTTP server run from the active prefix (a real process on a real
port, started from `current` the way the local driver starts one): /healthz and /readyz answer
200 only in the known-good, and its chat endpoint quotes the nonce of the prompt the way the
model lab does. The same guardian against the real OpenClaw: tests/test_interrupt_e2e.py and
`make drill`; under systemd: test_systemd_acceptance.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from harness.procedure.guardian import holds_port, lapsed, pid_namespace, port_holders
from harness.targets.gateway import _free_port

GATEWAY = r"""
import json, re, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
version = Path("current/version").read_text()
class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        healthy = version == "v1" and self.path in ("/healthz", "/readyz")
        self._send(200 if healthy or self.path == "/version" else 503, {"version": version})
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        nonces = re.findall(r"nonce-[0-9a-f]{12}", body["messages"][-1]["content"])
        self._send(200, {"choices": [{"message": {"content": " ".join(nonces)}}]})
HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""

HARNESS_SIDE = r"""
import json, os, sys, time
from pathlib import Path
from harness.procedure.guard import Guard

spec = json.loads(sys.argv[1])
root = Path(spec["root"])
guard = Guard(root / "guard", current=root / "current", api=spec["api"], mode="local",
              local_spec=spec["local"], lease_s=3, run=spec["run"],
              max_down_s=spec.get("max_down_s", 2400))
guard.on_lost = lambda why: print(f"lease lost: {why}", flush=True)
guard.prepare(root / "v1", "1", root / "state", ["config.json", "sessions"])
print(json.dumps(guard.arm("before stopping the test gateway")), flush=True)
then = spec["then"]
if then == "disarm":
    guard.disarm("ready")
    guard.close()
    print("closed", flush=True)
    sys.exit(0)
if then == "proven":
    guard.stand_down("candidate", "1")
    print("proven", flush=True)
    time.sleep(600)
if then == "upgrade":  # the candidate active, its config written, a session of its own
    tmp = root / ".cur"
    tmp.symlink_to(root / "v2")
    os.replace(tmp, root / "current")
    (root / "state" / "config.json").write_text('{"version": 2, "breaks_v1": true}')
    (root / "state" / "sessions" / "new.json").write_text("{}")
print("acting", flush=True)
while True:
    time.sleep(0.2)
    if not guard.owns():
        print("stopped acting", flush=True)
        print(json.dumps(guard.wait_trip(timeout_s=60)), flush=True)
        time.sleep(600)
"""


def layout(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "deployment"
    for version in ("v1", "v2"):
        (root / version).mkdir(parents=True)
        (root / version / "version").write_text(version)
    (root / "current").symlink_to(root / "v1")
    (root / "state" / "sessions").mkdir(parents=True)
    (root / "state" / "config.json").write_text('{"version": 1}')
    (root / "state" / "sessions" / "old.json").write_text('{"kept": true}')
    (root / "gateway.py").write_text(GATEWAY)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    port = _free_port()
    local = {"argv": [sys.executable, str(root / "gateway.py"), str(port)],
             "env": dict(os.environ), "cwd": str(root), "log": str(root / "gateway.log"),
             "pid_file": str(root / "gateway.pid")}
    api = {"base_url": f"http://127.0.0.1:{port}", "live": "/healthz", "ready": "/readyz",
           "chat": "/v1/chat/completions", "token": "t", "headers": {}, "model_prefix": "m/",
           "agent": "a"}
    run = {"run_id": "test-run", "run_dir": str(run_dir), "known_good": "1", "candidate": "2",
           "embedded": True, "alert": {"command": [sys.executable, "-c",
                                                   "import sys; open(sys.argv[1], 'w').write("
                                                   "sys.stdin.read())",
                                                   str(tmp_path / "alert.json")]}}
    return root, {"root": str(root), "api": api, "local": local, "run": run, "port": port}


def start_gateway(spec: dict) -> subprocess.Popen[bytes]:
    local = spec["local"]
    proc = subprocess.Popen(local["argv"], cwd=local["cwd"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    Path(local["pid_file"]).write_text(str(proc.pid))
    return proc


def harness_side(spec: dict, then: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", HARNESS_SIDE, json.dumps({**spec,
                                                                           "then": then})],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)


def wait_file(path: Path, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.1)
    raise AssertionError(f"no {path.name} within {timeout:g} s")


def cleanup(root: Path, *procs: subprocess.Popen) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for pid_file in (root / "gateway.pid", root / "guard" / "guard.pid"):
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "transitions.jsonl").read_text().splitlines()]


def test_a_killed_harness_leaves_the_known_good_restored_proven_and_a_verdict(
        tmp_path: Path) -> None:
    root, spec = layout(tmp_path)
    gateway = start_gateway(spec)
    harness = harness_side(spec, "upgrade")
    try:
        armed = json.loads(harness.stdout.readline())
        assert armed["guard"] == "armed" and armed["state_files"] == 2
        # not a child of the harness: double-forked, adopted by init (or a subreaper)
        stat = Path(f"/proc/{armed['pid']}/stat").read_text()
        assert int(stat.rsplit(")", 1)[1].split()[1]) != harness.pid
        assert harness.stdout.readline().strip() == "acting"
        os.killpg(harness.pid, signal.SIGKILL)
        killed = time.monotonic()
        harness.wait(timeout=10)
        verdict = wait_file(tmp_path / "run" / "verdict.json", timeout=60)
        took = time.monotonic() - killed
        wait_file(tmp_path / "alert.json")
    finally:
        cleanup(root, harness, gateway)
    log = (root / "guard" / "guard.log").read_text()
    result = json.loads((root / "guard" / "result.json").read_text())
    # a dead owner's lease lapses at once: no waiting out the 3 s lease
    assert "the harness (PID" in result["why"] and "is gone" in result["why"], log
    assert result["action"] == "restored" and result["ready"] and result["proven"], result
    assert result["state_diff"] == {"missing": [], "added": [], "changed": []}
    assert (root / "current").resolve().name == "v1"
    assert json.loads((root / "state" / "config.json").read_text()) == {"version": 1}
    assert sorted(p.name for p in (root / "state" / "sessions").iterdir()) == ["old.json"]
    assert took < 30, log
    # the guard is the last one alive: it wrote the verdict, the transitions and the alert
    assert verdict["outcome"] == "interrupted" and verdict["exit_code"] == 17
    assert verdict["written_by"] == "guard"
    final = verdict["final_state"]
    assert final["version"] == "1" and final["proven"] is True and "stopped by the guard" in \
        final["after_run"]
    assert "no claim about 2" in verdict["claim"], verdict["claim"]
    # the alert command writes alert.json; the guard records the alert once it has returned
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if len(records(tmp_path / "run")) >= 6:
                break
        except ValueError:  # a line half written
            pass
        time.sleep(0.05)
    steps = [(r["state"], r["event"]) for r in records(tmp_path / "run")]
    assert steps == [("guard", "took_over"), ("guard", "restore"), ("guard", "proven"),
                     ("guard", "stopped"), ("outcome", "interrupted"), ("alert", "alert_sent")]
    assert json.loads((tmp_path / "alert.json").read_text())["alert"] == "interrupted"
    # embedded: the guard stopped the gateway it proved, so nothing is left running
    assert not (root / "gateway.pid").exists()
    assert not port_holders(spec["port"])


def test_a_stalled_harness_loses_its_lease_and_stops_acting(tmp_path: Path) -> None:
    root, spec = layout(tmp_path)
    gateway = start_gateway(spec)
    harness = harness_side(spec, "upgrade")
    try:
        json.loads(harness.stdout.readline())
        assert harness.stdout.readline().strip() == "acting"
        os.killpg(harness.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        result = wait_file(root / "guard" / "result.json", timeout=60)
        assert time.monotonic() - stopped > 3  # not before the lease lapsed
        os.killpg(harness.pid, signal.SIGCONT)
        lost = harness.stdout.readline().strip()
        acted = harness.stdout.readline().strip()
        assert "the harness's lease expired" in result["why"], result
        assert result["action"] == "restored" and result["proven"], result
        assert lost.startswith("lease lost: ") and "expired" in lost, lost
        assert acted == "stopped acting"
        assert json.loads(harness.stdout.readline()) == result  # wait_trip: the guard's result
        # the harness is alive: the run's verdict is its own to write, the gateway serves on
        assert not (tmp_path / "run" / "verdict.json").exists()
        assert httpx.get(spec["api"]["base_url"] + "/version", trust_env=False
                         ).json()["version"] == "v1"
        lease = json.loads((root / "guard" / "lease.json").read_text())
        assert lease["owner"] == "guard"
    finally:
        cleanup(root, harness, gateway)


def test_a_known_good_serving_on_its_own_is_left_alone(tmp_path: Path) -> None:
    root, spec = layout(tmp_path)
    harness = harness_side(spec, "serving")
    gateway = None
    try:
        json.loads(harness.stdout.readline())
        assert harness.stdout.readline().strip() == "acting"
        gateway = start_gateway(spec)  # the known-good came back on its own (its restart)
        os.killpg(harness.pid, signal.SIGKILL)
        harness.wait(timeout=10)
        result = wait_file(root / "guard" / "result.json", timeout=60)
        assert result["action"] == "left alone" and result["pid"] == gateway.pid, result
        assert result["proven"] is True
        # nothing restored, so no restore's diff is claimed; the state as it moved is recorded
        assert result["state_diff"] is None
        assert result["state_since_first_stop"] == {"missing": [], "added": [], "changed": []}
        assert ("guard", "left_alone") in [(r["state"], r["event"])
                                           for r in records(tmp_path / "run")]
    finally:
        cleanup(root, harness, *([gateway] if gateway else []))


def test_after_the_run_proved_a_version_the_guard_only_witnesses(tmp_path: Path) -> None:
    root, spec = layout(tmp_path)
    gateway = start_gateway(spec)
    harness = harness_side(spec, "proven")
    try:
        json.loads(harness.stdout.readline())
        assert harness.stdout.readline().strip() == "proven"
        (root / "state" / "sessions" / "during-soak.json").write_text("{}")
        os.killpg(harness.pid, signal.SIGKILL)
        harness.wait(timeout=10)
        verdict = wait_file(tmp_path / "run" / "verdict.json", timeout=60)
        assert verdict["outcome"] == "interrupted" and verdict["written_by"] == "guard"
        assert verdict["guard_trips"][0]["action"] == "left in place"
        assert verdict["final_state"]["proven"] is True
        assert "had proven 1" in verdict["claim"]
        # nothing restored: the proven version's state stays as it was
        assert (root / "state" / "sessions" / "during-soak.json").exists()
    finally:
        cleanup(root, harness, gateway)


def test_a_disarmed_guard_exits_and_never_trips(tmp_path: Path) -> None:
    root, spec = layout(tmp_path)
    harness = harness_side(spec, "disarm")
    out, _ = harness.communicate(timeout=60)
    armed = json.loads(out.splitlines()[0])
    assert out.splitlines()[1] == "closed" and harness.returncode == 0
    # a guard still watching would trip once the lease lapsed; one that has exited never can
    deadline = time.monotonic() + 5
    while Path(f"/proc/{armed['pid']}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{armed['pid']}").exists()
    assert not (root / "guard" / "result.json").exists()
    log = (root / "guard" / "guard.log").read_text()
    assert "disarmed: exiting" in log and "tripped" not in log


def test_readiness_is_judged_by_the_pid_that_holds_the_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert os.getpid() in port_holders(port)
        assert holds_port(os.getpid(), port) is True
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                                 start_new_session=True)
        try:
            assert holds_port(other.pid, port) is False  # it answers nothing: not ready
        finally:
            other.kill()
            other.wait()
    assert holds_port(os.getpid(), port) is None  # nobody listens: this host cannot tell


def test_a_lease_lapses_when_it_expires_or_its_owner_is_gone() -> None:
    now = time.time()
    me = {"owner": "harness", "pid": os.getpid(), "start_time": None,
          "pid_ns": pid_namespace(), "renewed": now, "expires": now + 15}
    assert lapsed(me, now, now, 15) is None
    assert "expired" in lapsed({**me, "expires": now - 5}, now, now, 15)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert "is gone" in lapsed({**me, "pid": gone.pid}, now, now, 15)
    # another PID namespace (a container's guard): only the expiry counts
    assert lapsed({**me, "pid": gone.pid, "pid_ns": "pid:[1]"}, now, now, 15) is None
    assert lapsed({**me, "owner": "guard"}, now, now, 15) == "the lease is held by guard"


def test_a_gateway_down_too_long_trips_a_guard_whose_lease_holds(tmp_path: Path) -> None:
    """The harness lives and renews its lease, but nothing serves for longer than max_down_s
    (a hung main thread): the guard takes over; a long soak of a serving gateway never would."""
    root, spec = layout(tmp_path)
    harness = harness_side({**spec, "max_down_s": 2}, "serving")
    try:
        json.loads(harness.stdout.readline())
        assert harness.stdout.readline().strip() == "acting"
        result = wait_file(root / "guard" / "result.json", timeout=60)
        assert "down for more than 2 s" in result["why"], result
        assert result["action"] == "restored" and result["proven"], result
        assert harness.stdout.readline().startswith("lease lost: the gateway has been down")
    finally:
        cleanup(root, harness)
