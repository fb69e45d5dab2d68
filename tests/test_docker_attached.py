"""Soaking a staging gateway that Docker runs: `pytest scenarios -m soak --target <profile with
driver = "docker">` against OpenClaw 2026.3.28 in a container of the private docker engine,
started the way a user starts one (`docker run -d --name ...`, its config and token in its
state folder, the model lab on this host's loopback as its provider). The harness reads it
with the docker CLI only: its version from the image's label, its log from `docker logs`, its
token from its config inside the container; at the end it must be the same container (id,
StartedAt, no restart) and still serving.

No registry can be reached, so the image is built here: FROM the systemd test image (a Debian
root file system), labelled with the version; Node.js and the OpenClaw prefix come from the
runtime cache, mounted read-only at the same path.

Run: .venv/bin/pytest tests/test_docker_attached.py -m e2e -v
"""

from __future__ import annotations

import json
import os
import secrets
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.common.nonce import new_nonce
from harness.container.engine import LABEL, DockerEngine, docker_cli
from harness.modellab import ModelLab
from harness.targets.gateway import _free_port
from harness.targets.runtime import Runtime
from tests.conftest import CACHE, ROOT, STARTED

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900),
              pytest.mark.xdist_group("docker-attached")]

VERSION = "2026.3.28"
SAMPLE = ROOT / "scenarios" / "targets" / "staging-docker-openclaw.toml"
STATE = "/srv/openclaw"  # the gateway's state folder, inside the container


@dataclass
class Running:
    name: str
    port: int
    token: str
    engine: DockerEngine

    def inspect(self) -> dict:
        done = self.engine.docker("inspect", self.name)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)[0]

    def healthz(self) -> int | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=3,
                             trust_env=False).status_code
        except httpx.HTTPError:
            return None


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelLab]:
    with ModelLab(log_path=tmp_path_factory.mktemp("lab") / "modellab.log",
                  time_scale=0.1) as running:
        yield running


@pytest.fixture(scope="module")
def gateway_image(engine: DockerEngine, image: str, tmp_path_factory: pytest.TempPathFactory
                  ) -> str:
    """The gateway's image as a user's would carry its version: a label (and a tag)."""
    context = tmp_path_factory.mktemp("image")
    (context / "Dockerfile").write_text(
        f"FROM {image}\nLABEL org.opencontainers.image.version={VERSION} {LABEL}.image=gateway\n")
    tag = f"local/grh-openclaw:{VERSION}"
    done = subprocess.run([docker_cli(), "-H", engine.host, "build", "-q", "-t", tag,
                           str(context)], env={**os.environ, "DOCKER_BUILDKIT": "0"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return tag


@pytest.fixture(scope="module")
def running(engine: DockerEngine, gateway_image: str, lab: ModelLab,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """OpenClaw in its container, as `docker run -d` leaves it: serving, warmed by one reply."""
    runtime = Runtime(CACHE / "runtime")
    node = runtime.node("22")
    release = runtime.registry.resolve("openclaw", VERSION, "test")
    install = runtime.install(release, node, {"OPENCLAW_DISABLE_BUNDLED_PLUGIN_POSTINSTALL": "1"})
    cache = (CACHE / "runtime").resolve()
    state = tmp_path_factory.mktemp("state")
    port, token = _free_port(), secrets.token_urlsafe(24)
    template = ROOT / "scenarios" / "targets" / "openclaw" / "openclaw.template.json"
    (state / "openclaw.json").write_text(string.Template(template.read_text()).substitute(
        port=port, token=token, state_dir=STATE, model_lab=lab.base_url))
    name = f"grh-openclaw-{secrets.token_hex(3)}"
    binary = os.path.realpath(install.bin("openclaw"))
    env = {"HOME": f"{STATE}/home", "OPENCLAW_STATE_DIR": STATE,
           "OPENCLAW_CONFIG_PATH": f"{STATE}/openclaw.json", "NO_COLOR": "1",
           "OPENCLAW_DISABLE_BONJOUR": "1", "OPENCLAW_NO_RESPAWN": "1",
           "PATH": f"{os.path.realpath(node.bin_dir)}:/usr/local/bin:/usr/bin:/bin"}
    done = engine.docker(
        "run", "-d", "--name", name, "--network", "host", "--label", f"{LABEL}=gateway",
        "-v", f"{cache}:{cache}:ro", "-v", f"{state}:{STATE}",
        *(w for k, v in env.items() for w in ("-e", f"{k}={v}")),
        gateway_image, binary, "gateway", "run", "--port", str(port), "--bind", "loopback",
        timeout=120)
    assert done.returncode == 0, done.stderr
    STARTED.append(done.stdout.strip())
    found = Running(name, port, token, engine)
    try:
        deadline = time.monotonic() + 90
        while found.healthz() != 200:
            assert time.monotonic() < deadline, engine.docker("logs", "--tail", "30", name).stdout
            time.sleep(0.5)
        nonce = new_nonce()  # a deployment in use has its workspace: one reply, in sequence
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=120,
                           trust_env=False, json={
                               "model": "openclaw/quick", "stream": False,
                               "messages": [{"role": "user", "content": f"Quote {nonce}."}]},
                           headers={"Authorization": f"Bearer {token}",
                                    "x-openclaw-scopes": "operator.write"})
        assert reply.status_code == 200 and nonce in reply.text, reply.text[:500]
        yield found
    finally:
        engine.docker("rm", "-f", name, timeout=60)


def target_file(tmp_path: Path, running: Running, **changes: str) -> Path:
    """The shipped sample, pointed at this container."""
    text = SAMPLE.read_text()
    for old, new in (('container = "openclaw-gateway"', f'container = "{running.name}"'),
                     ("http://127.0.0.1:18789", f"http://127.0.0.1:{running.port}"),
                     ("/home/node/.openclaw", STATE), *changes.items()):
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "staging-docker-openclaw.toml"
    path.write_text(text)
    return path


def run_suite(engine: DockerEngine, target: Path, run_dir: Path, *args: str
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios", "-q", "-m", "soak", "--run-dir",
         str(run_dir), "--target", str(target), *args],
        cwd=ROOT, env={**os.environ, "DOCKER_HOST": engine.host}, capture_output=True,
        text=True, timeout=900)


@pytest.mark.soaks
@pytest.mark.timeout(2400)  # with the wait for a soak slot
def test_a_soak_of_a_gateway_in_a_container_leaves_it_as_found(
        running: Running, engine: DockerEngine, tmp_path: Path) -> None:
    before = running.inspect()
    assert before["State"]["Running"]
    run_dir = tmp_path / "run"
    started = time.monotonic()
    done = run_suite(engine, target_file(tmp_path, running), run_dir, "--soak", "20",
                     "--scenarios", str(ROOT / "scenarios" / "soak" / "reply-quick.toml"))
    print(f"\n[docker attached soak] exit {done.returncode} in {time.monotonic() - started:.0f} s")
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]

    after = running.inspect()  # the same container, the same start, no restart, serving
    assert (after["Id"], after["State"]["StartedAt"], after["RestartCount"]) == \
        (before["Id"], before["State"]["StartedAt"], before["RestartCount"])
    assert after["State"]["Running"] and running.healthz() == 200

    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert verdict["outcome"] == "passed" and verdict["exit_code"] == 0
    phases = {p["name"]: p["outcome"] for p in verdict["phases"]}
    assert phases == {"soak[reply-quick]": "passed", "soak_policy": "passed",
                      "soak_left_as_found": "passed", "soak_log_source": "passed"}, phases
    attached = verdict["attached"]
    assert attached["driver"] == "docker" and attached["unit"] == f"container {running.name}"
    found = attached["before"]
    assert found["version"] == VERSION and found["notes"] == []
    assert found["sources"]["image"] == {"name": f"local/grh-openclaw:{VERSION}",
                                         "label": VERSION, "tag": VERSION}
    assert found["container_id"] == before["Id"]
    assert found["active_since"] == before["State"]["StartedAt"]
    assert attached["changes"] == [] and attached["left_as_found"] is True
    assert verdict["final_state"]["version"] == VERSION
    assert f"Attached to the running container {running.name} on local://" in verdict["claim"]

    # the soak's evidence came from docker logs, every line dated by the engine
    log = verdict["soak"]["log_source"]
    assert log["source"] == "docker" and log["trusted"] is True, log
    assert log["docker"]["container"] == running.name and log["docker"]["lines"] > 0, log
    assert verdict["soak"]["scenarios"]["reply-quick"]["good"] >= 2

    # the token, read from the gateway's config inside the container, is in no file of the run
    token = running.token.encode()
    leaked = [p for p in run_dir.rglob("*") if p.is_file() and token in p.read_bytes()]
    assert not leaked, leaked


def test_a_stopped_container_is_not_started_by_the_harness(
        running: Running, engine: DockerEngine, tmp_path: Path) -> None:
    """Last in the module: stops the gateway's container as a person would, then the soak."""
    done = engine.docker("stop", "-t", "10", running.name, timeout=60)
    assert done.returncode == 0, done.stderr
    stopped = running.inspect()["State"]
    done = run_suite(engine, target_file(tmp_path, running), tmp_path / "run")
    assert done.returncode == 22, (done.stdout + done.stderr)[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1, done.stderr
    assert f"attached container {running.name} on local:// is inactive/exited" in errors[0]
    assert running.inspect()["State"] == stopped  # still stopped, untouched
