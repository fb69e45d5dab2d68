"""The detached guard in local mode, with real processes: the harness side runs in a child
process that is SIGKILLed while armed; the double-forked guardian must then switch `current`
back, restore the saved config, start the known-good and see it healthy.

The "gateway" here is Python's own http.server serving a `healthz` file from the active prefix
(a real process on a real port, started from `current` the way the local driver starts one);
the same guardian against the real OpenClaw under systemd is in test_systemd_acceptance.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from harness.target.gateway import _free_port

HARNESS_SIDE = r"""
import json, os, sys, time
from pathlib import Path
from harness.guard import Guard

spec = json.loads(sys.argv[1])
root = Path(spec["root"])
guard = Guard(root / "guard", current=root / "current", health_url=spec["health"],
              mode="local", local_spec=spec["local"], stale_s=3)
guard.prepare(root / "v1", "1", [root / "state" / "config.json"])
print(json.dumps(guard.arm("before stopping the test gateway")), flush=True)
if spec["then"] == "disarm":
    guard.disarm("ready")
    guard.close()
    print("closed", flush=True)
    sys.exit(0)
# the "upgrade" the harness was doing when it died: candidate active, its config written
tmp = root / ".cur"
tmp.symlink_to(root / "v2")
os.replace(tmp, root / "current")
(root / "state" / "config.json").write_text('{"version": 2, "breaks_v1": true}')
print("upgrading", flush=True)
time.sleep(600)
"""


def layout(tmp_path: Path) -> tuple[Path, int, dict]:
    root = tmp_path / "deployment"
    for version in ("v1", "v2"):
        (root / version / "www").mkdir(parents=True)
        (root / version / "www" / "version").write_text(version)
    (root / "v1" / "www" / "healthz").write_text("ok")  # only the known-good is healthy
    (root / "current").symlink_to(root / "v1")
    (root / "state").mkdir()
    (root / "state" / "config.json").write_text('{"version": 1}')
    port = _free_port()
    local = {"argv": [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                      "--directory", str(root / "current" / "www")],
             "env": dict(os.environ), "cwd": str(root), "log": str(root / "gateway.log"),
             "pid_file": str(root / "gateway.pid")}
    spec = {"root": str(root), "health": f"http://127.0.0.1:{port}/healthz", "local": local}
    return root, port, spec


def harness_side(spec: dict, then: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", HARNESS_SIDE, json.dumps({**spec,
                                                                           "then": then})],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)


def kill_pid_file(path: Path) -> None:
    try:
        os.killpg(int(path.read_text()), signal.SIGKILL)
    except (OSError, ValueError):
        pass


def test_a_killed_harness_leaves_the_known_good_running(tmp_path: Path) -> None:
    root, port, spec = layout(tmp_path)
    harness = harness_side(spec, "upgrade")
    guard_pid = None
    try:
        armed = json.loads(harness.stdout.readline())
        guard_pid = armed["pid"]
        assert armed["guard"] == "armed" and armed["mode"] == "local"
        assert harness.stdout.readline().strip() == "upgrading"
        assert (root / "current").resolve().name == "v2"
        # not a child of the harness: double-forked, adopted by init (or a subreaper)
        stat = Path(f"/proc/{guard_pid}/stat").read_text()
        assert int(stat.rsplit(")", 1)[1].split()[1]) != harness.pid
        os.kill(harness.pid, signal.SIGKILL)
        killed = time.monotonic()
        harness.wait(timeout=10)
        healthy_after = None
        while time.monotonic() - killed < 30:
            try:
                if httpx.get(spec["health"], timeout=1, trust_env=False).status_code == 200:
                    healthy_after = time.monotonic() - killed
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert healthy_after is not None, (root / "guard" / "guard.log").read_text()
        assert healthy_after > 3  # not before the heartbeat went stale
        assert (root / "current").resolve().name == "v1"
        assert json.loads((root / "state" / "config.json").read_text()) == {"version": 1}
        assert httpx.get(f"http://127.0.0.1:{port}/version", trust_env=False).text == "v1"
        deadline = time.monotonic() + 10  # written once the guardian saw it healthy too
        while not (root / "guard" / "result.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        result = json.loads((root / "guard" / "result.json").read_text())
        assert result["healthy"] and "heartbeat" in result["why"]
    finally:
        if harness.poll() is None:
            harness.kill()
        kill_pid_file(root / "gateway.pid")
        if guard_pid is not None:
            try:
                os.kill(guard_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_disarmed_guard_exits_and_never_trips(tmp_path: Path) -> None:
    root, _, spec = layout(tmp_path)
    harness = harness_side(spec, "disarm")
    out, _ = harness.communicate(timeout=60)
    armed = json.loads(out.splitlines()[0])
    assert out.splitlines()[1] == "closed" and harness.returncode == 0
    # a guard still watching would trip after stale_s (3 s); one that has exited never can
    deadline = time.monotonic() + 5
    while Path(f"/proc/{armed['pid']}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{armed['pid']}").exists()
    assert not (root / "guard" / "result.json").exists()
    assert not (root / "gateway.pid").exists()
    log = (root / "guard" / "guard.log").read_text()
    assert "disarmed: exiting" in log and "tripped" not in log
