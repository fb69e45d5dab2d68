"""The private docker engine dies with the process that started it.

An interrupted e2e run once left a worker's dockerd and its container running: the worker was
killed without its teardown. The engine now gets SIGTERM when its starter dies, however it dies,
and the next engine on the same cache clears what the killed one left (bridge, run dir).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.container.engine import DockerEngine

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

STARTER = """
import sys, time
from pathlib import Path
from harness.container.engine import DockerEngine
engine = DockerEngine(Path(sys.argv[1]))
engine.start()
print(engine.pid, engine.bridge, engine.run_dir, flush=True)
time.sleep(600)
"""


def _links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def test_an_engine_whose_starter_is_killed_stops_and_the_next_one_clears_its_leftovers(
        tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(cache)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout is not None
        line = starter.stdout.readline().split()
        assert len(line) == 3, f"the starter did not start an engine: {line}"
        pid, bridge, run_dir = int(line[0]), line[1], Path(line[2])
        assert Path(f"/proc/{pid}").exists() and bridge in _links() and run_dir.is_dir()
        starter.send_signal(signal.SIGKILL)  # no teardown, no finally: as a killed worker
        starter.wait()
        deadline = time.monotonic() + 60
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not Path(f"/proc/{pid}").exists(), f"dockerd {pid} outlived its starter"
    finally:
        starter.kill()
        starter.wait()
    # what a killed starter cannot clean up, the next engine on this cache does
    assert bridge in _links() and run_dir.is_dir()
    with DockerEngine(cache) as engine:
        assert engine.bridge != bridge and bridge not in _links()
        assert not run_dir.exists()
    assert engine.bridge is None and not any(
        m.startswith(str(cache)) for m in engine.mounts([cache]))
    assert os.listdir(cache / "docker")  # the data root stays for the next run: it is a cache
