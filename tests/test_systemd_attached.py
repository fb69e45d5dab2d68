"""Soaking a staging host's own gateway, attached: `pytest scenarios -m soak --target <staging
profile>` against OpenClaw 2026.3.28 that runs already as a systemd user service, set up the way
a user has it: its config in ~gw/.openclaw/openclaw.json (token in gateway.auth.token, the model
lab on this host's loopback as its provider) and `openclaw gateway install`, which writes, enables
and starts OpenClaw's own unit. The harness never wrote that unit, and must leave it as found.

Shape: a container booting real systemd (host networking: the gateway binds the host's loopback
and reaches the model lab there); the harness runs on this host with `--target-host
docker://ID`, every command through `docker exec`; Node.js and the OpenClaw prefix come from the
runtime cache, mounted read-only at the same path.

Run: .venv/bin/pytest tests/test_systemd_attached.py -v   (marked e2e and systemd)
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
from harness.container.engine import DockerEngine
from harness.container.image import USER
from harness.container.systemd import SystemdContainer
from harness.modellab import ModelLab
from harness.signals.journal import JournalWatcher
from harness.targets.gateway import _free_port
from harness.targets.runner import SshRunner, systemd_user_env
from harness.targets.runtime import Installation, NodeRuntime, Runtime
from tests.conftest import CACHE, ROOT, STARTED

# one worker boots this module's containers and runs its tests in order (pytest-xdist)
pytestmark = [pytest.mark.e2e, pytest.mark.systemd, pytest.mark.timeout(900),
              pytest.mark.xdist_group("systemd-attached")]

VERSION = "2026.3.28"
UNIT = "openclaw-gateway.service"
HOME = f"/home/{USER}"
STATE = f"{HOME}/.openclaw"
SAMPLE = ROOT / "scenarios" / "targets" / "staging-systemd-openclaw.toml"


@dataclass
class Staging:
    box: SystemdContainer
    port: int
    token: str

    def show(self) -> dict[str, str]:
        done = self.box.exec_as_user(["systemctl", "--user", "show", UNIT, "-p",
                                      "MainPID,ActiveEnterTimestamp,NRestarts,ActiveState"])
        return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)

    def unit_file(self) -> str:
        return self.box.exec_as_user(["cat", f"{HOME}/.config/systemd/user/{UNIT}"]).stdout

    def healthz(self) -> int | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=3,
                             trust_env=False).status_code
        except httpx.HTTPError:
            return None


@pytest.fixture(scope="module")
def install() -> tuple[NodeRuntime, Installation]:
    runtime = Runtime((CACHE / "runtime").resolve())  # the path the container mounts
    node = runtime.node("22")
    release = runtime.registry.resolve("openclaw", VERSION, "test")
    return node, runtime.install(release, node, {"OPENCLAW_DISABLE_BUNDLED_PLUGIN_POSTINSTALL":
                                                 "1"})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelLab]:
    with ModelLab(log_path=tmp_path_factory.mktemp("lab") / "modellab.log") as running:
        yield running


@pytest.fixture(scope="module")
def staging(engine: DockerEngine, image: str, install: tuple[NodeRuntime, Installation],
            lab: ModelLab) -> Iterator[Staging]:
    """OpenClaw installed and started by its own `gateway install`, as user gw would."""
    node, installation = install
    with SystemdContainer(engine, image, same_path_ro=[CACHE / "runtime"]) as box:
        assert box.container_id is not None
        STARTED.append(box.container_id)
        port, token = _free_port(), secrets.token_urlsafe(24)
        template = ROOT / "scenarios" / "targets" / "openclaw" / "openclaw.template.json"
        config = string.Template(template.read_text()).substitute(
            port=port, token=token, state_dir=STATE, model_lab=lab.base_url)
        env = {"HOME": HOME, "PATH": f"{node.bin_dir}:/usr/local/bin:/usr/bin:/bin"}
        done = box.exec_as_user(["sh", "-c", "umask 077 && mkdir -p ~/.openclaw && cat > "
                                 "~/.openclaw/openclaw.json"], env=env, input=config)
        assert done.returncode == 0, done.stderr
        binary = str(installation.bin("openclaw"))
        done = box.exec_as_user([binary, "gateway", "install", "--port", str(port)], env=env,
                                timeout=180)
        assert done.returncode == 0 and "Installed systemd service" in done.stdout, \
            done.stdout + done.stderr
        dep = Staging(box, port, token)
        try:
            deadline = time.monotonic() + 90
            while dep.healthz() != 200:
                assert time.monotonic() < deadline, box.exec_as_user(
                    ["journalctl", "--user", "-u", UNIT, "--no-pager", "-n", "30"]).stdout
                time.sleep(0.5)
            # a deployment in use has its workspace; one reply, as its user once sent one
            nonce = new_nonce()
            reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=120,
                               trust_env=False, json={
                                   "model": "openclaw/quick", "stream": False,
                                   "messages": [{"role": "user", "content": f"Quote {nonce}."}]},
                               headers={"Authorization": f"Bearer {token}",
                                        "x-openclaw-scopes": "operator.write"})
            assert reply.status_code == 200 and nonce in reply.text, reply.text[:500]
            yield dep
        finally:
            box.exec_as_user([binary, "gateway", "uninstall"], env=env, timeout=120)


def target_file(tmp_path: Path, staging: Staging, url_port: int | None = None) -> Path:
    """The shipped sample staging profile, pointed at this deployment (user gw's home)."""
    text = SAMPLE.read_text()
    for old, new in (('user = "openclaw"', f'user = "{USER}"'), ("/home/openclaw/", f"{HOME}/"),
                     ("http://127.0.0.1:18789", f"http://127.0.0.1:{url_port or staging.port}")):
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "staging-systemd-openclaw.toml"
    path.write_text(text)
    return path


def run_suite(staging: Staging, engine: DockerEngine, target: Path, run_dir: Path,
              *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios", "-q", "-m", "soak", "--run-dir",
         str(run_dir), "--target", str(target), "--target-host",
         f"docker://{staging.box.container_id}", *args],
        cwd=ROOT, env={**os.environ, "DOCKER_HOST": engine.host}, capture_output=True,
        text=True, timeout=900)


@pytest.mark.soaks
@pytest.mark.timeout(2400)  # with the wait for a soak slot
def test_a_soak_of_the_running_deployment_leaves_it_as_found(
        staging: Staging, engine: DockerEngine, tmp_path: Path) -> None:
    before, unit_before = staging.show(), staging.unit_file()
    assert before["ActiveState"] == "active" and int(before["MainPID"]) > 0
    assert f"OPENCLAW_SERVICE_VERSION={VERSION}" in unit_before  # OpenClaw's own unit
    assert "gateway-release-harness" not in unit_before
    run_dir = tmp_path / "run"
    started = time.monotonic()
    done = run_suite(staging, engine, target_file(tmp_path, staging), run_dir, "--soak", "20",
                     "--scenarios", str(ROOT / "scenarios" / "soak" / "reply-quick.toml"))
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    print(f"\n[attached soak] exit {done.returncode} in {seconds:.0f} s")
    assert done.returncode == 0, output[-5000:]

    # the deployment is exactly as found: same process, same start, no restart, same unit
    after = staging.show()
    assert (after["MainPID"], after["ActiveEnterTimestamp"], after["NRestarts"]) == \
        (before["MainPID"], before["ActiveEnterTimestamp"], before["NRestarts"]), (before, after)
    assert after["ActiveState"] == "active" and staging.healthz() == 200
    assert staging.unit_file() == unit_before
    guards = staging.box.exec_as_user(["systemctl", "--user", "list-units", "--all", "--plain",
                                       "--no-legend", "grh-guard-*"]).stdout
    assert "grh-guard-" not in guards, guards

    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert verdict["outcome"] == "passed" and verdict["exit_code"] == 0
    assert {p["family"] for p in verdict["phases"]} == {"soak"}
    phases = {p["name"]: p["outcome"] for p in verdict["phases"]}
    assert phases == {"soak[reply-quick]": "passed", "soak_policy": "passed",
                      "soak_left_as_found": "passed", "soak_log_source": "passed"}, phases
    attached = verdict["attached"]
    assert attached["unit"] == UNIT and attached["user"] == USER
    assert attached["before"]["version"] == VERSION
    assert attached["before"]["main_pid"] == int(before["MainPID"])
    assert attached["before"]["active_since"] == before["ActiveEnterTimestamp"]
    sources = attached["before"]["sources"]
    assert sources["package"]["version"] == VERSION
    assert sources["package"]["path"].endswith(f"openclaw/{VERSION}/node_modules/openclaw")
    assert sources["unit_env"]["version"] == sources["process_env"]["version"] == VERSION
    assert attached["before"]["notes"] == []
    assert attached["changes"] == [] and attached["left_as_found"] is True
    assert verdict["lock"]["known_good"] is None and verdict["lock"]["candidate"] is None
    assert verdict["final_state"]["version"] == VERSION
    assert verdict["final_state"]["pid"] == int(before["MainPID"])
    claim = verdict["claim"]
    assert f"Attached to the running {UNIT} on docker://" in claim, claim
    assert f"(openclaw {VERSION}, PID {before['MainPID']}" in claim, claim
    assert "No upgrade was attempted: nothing was installed, stopped or restarted" in claim
    assert "it was left as found" in claim

    # the soak's evidence came from the unit's journal
    log = verdict["soak"]["log_source"]
    assert log["source"] == "journal" and log["trusted"] is True, log
    assert log["journal"]["unit"] == UNIT and log["journal"]["lines"] > 0, log
    assert verdict["soak"]["scenarios"]["reply-quick"]["good"] >= 2
    summary = (run_dir / "summary.md").read_text()
    assert f"openclaw {VERSION} (attached)" in summary and "no upgrade attempted" in summary
    environment = (run_dir / "allure-results" / "environment.properties").read_text()
    assert f"running_version=openclaw {VERSION}" in environment

    # no phase but the soak's was entered; nothing was stopped, installed or guarded
    recs = [json.loads(line) for line in (run_dir / "transitions.jsonl").read_text().splitlines()]
    assert [r["state"] for r in recs if r["event"] == "enter"] == ["soak"]
    assert next(r for r in recs if r["state"] == "outcome")["event"] == "passed"
    assert "guard" not in verdict

    # the token, read from the deployment's own config, is in no file of the run
    token = staging.token.encode()
    leaked = [p for p in run_dir.rglob("*") if p.is_file() and token in p.read_bytes()]
    assert not leaked, leaked


def test_an_attached_gateway_that_does_not_answer_is_one_line_and_exit_22(
        staging: Staging, engine: DockerEngine, tmp_path: Path) -> None:
    before = staging.show()
    closed = _free_port()  # nothing listens there: the profile's URL is wrong
    target = target_file(tmp_path, staging, url_port=closed)
    done = run_suite(staging, engine, target, tmp_path / "run")
    assert done.returncode == 22, (done.stdout + done.stderr)[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1, done.stderr
    assert "does not answer /healthz" in errors[0] and "attached.url" in errors[0], errors
    assert f"runs as PID {before['MainPID']}" in errors[0]
    assert staging.show()["MainPID"] == before["MainPID"]


def test_the_journal_watch_reads_nothing_new_without_an_error(staging: Staging) -> None:
    """The watch starts at the journal's newest entry, which need not be the unit's (here a
    transition record of the harness, as `logger --journald` writes it). Until the unit logs
    again there is nothing new: that is an empty poll, not a failed one (journalctl 252, asked
    for a cursor it cannot name, used to exit 1 without a word, and the soak's journal then
    counted as untrusted)."""
    box = staging.box
    done = box.exec_as_user(["logger", "--journald"], input="MESSAGE=harness soak enter\n"
                            "SYSLOG_IDENTIFIER=gateway-release-harness\n")
    assert done.returncode == 0, done.stderr
    watcher = JournalWatcher.from_now(box.runner(), UNIT, (), user=USER, uid=box.uid)
    newest = json.loads(box.exec_as_user(["journalctl", "--user", "-n", "1", "-o", "json"]
                                         ).stdout)
    assert newest.get("_SYSTEMD_USER_UNIT") != UNIT, newest  # the cursor is not the unit's
    for _ in range(3):
        assert watcher.poll() == 0
    assert watcher.errors == [] and watcher.lines == []
    assert staging.healthz() == 200
    for _ in range(20):  # the gateway logs a line per reply; the watch then reads it
        if watcher.poll():
            break
        httpx.post(f"http://127.0.0.1:{staging.port}/v1/chat/completions", timeout=60,
                   trust_env=False, json={"model": "openclaw/quick", "stream": False,
                                          "messages": [{"role": "user", "content": "Hi."}]},
                   headers={"Authorization": f"Bearer {staging.token}",
                            "x-openclaw-scopes": "operator.write"})
    assert watcher.lines and watcher.errors == [], (watcher.lines, watcher.errors)


@dataclass
class Sshd:
    config: Path  # an ssh_config with Host grh-staging: the container's sshd, its key pinned
    host: str = "grh-staging"


@pytest.fixture(scope="module")
def sshd(staging: Staging, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """The staging container's own sshd (the image's, its ssh.service masked) on the host's
    loopback at a free port, root's login by a key made here; the host key pinned."""
    box = staging.box
    folder = tmp_path_factory.mktemp("ssh")
    key = folder / "id_ed25519"
    made = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "grh-test",
                           "-f", str(key)], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    done = box.runner().run(["sh", "-c", "install -d -m 700 /root/.ssh && cat > /root/.ssh/"
                             "authorized_keys && chmod 600 /root/.ssh/authorized_keys"],
                            input=(folder / "id_ed25519.pub").read_text())
    assert done.returncode == 0, done.stderr
    port = _free_port()
    done = box.exec(["systemd-run", "--unit=grh-sshd", "-p", "RuntimeDirectory=sshd",
                     "/usr/sbin/sshd", "-D", "-e", "-p", str(port), "-o",
                     "ListenAddress=127.0.0.1", "-o", "PasswordAuthentication=no", "-o",
                     "PermitRootLogin=prohibit-password"])
    assert done.returncode == 0, done.stderr
    host_key = box.exec(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.split()[:2]
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_key)}\n")
    config = folder / "config"
    config.write_text(f"Host grh-staging\n  HostName 127.0.0.1\n  Port {port}\n  User root\n"
                      f"  IdentityFile {key}\n  IdentitiesOnly yes\n"
                      f"  UserKnownHostsFile {folder / 'known_hosts'}\n"
                      "  StrictHostKeyChecking yes\n")
    try:
        deadline = time.monotonic() + 30
        while SshRunner("grh-staging", config=str(config)).run(["true"]).returncode != 0:
            assert time.monotonic() < deadline, box.exec(
                ["journalctl", "-u", "grh-sshd", "--no-pager"]).stdout
            time.sleep(0.3)
        yield Sshd(config)
    finally:
        box.exec(["systemctl", "stop", "grh-sshd"], timeout=60)


def test_the_ssh_runner_keeps_the_runner_contract(staging: Staging, sshd: Sshd) -> None:
    runner = SshRunner(sshd.host, config=str(sshd.config))
    done = runner.run(["sh", "-c", 'id -un; echo "$GRH_X"; pwd; cat'], env={"GRH_X": "a b;$c"},
                      cwd="/tmp", input="from stdin\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "root\na b;$c\n/tmp\nfrom stdin\n"
    done = runner.run(["sh", "-c", "id -un; echo $XDG_RUNTIME_DIR"], user=USER,
                      env={"XDG_RUNTIME_DIR": "/run/user/1000"})
    assert done.stdout.split() == [USER, "/run/user/1000"], done.stderr
    assert runner.run(["sh", "-c", "exit 7"]).returncode == 7
    started = time.monotonic()
    done = runner.run(["sh", "-c", "echo grh-sleeper; exec sleep 300"], timeout=2)
    assert done.returncode == 124 and "timed out" in done.stderr
    assert time.monotonic() - started < 15
    left = staging.box.exec(["pgrep", "-f", "[s]leep 300"])  # not pgrep's own wrapper
    assert left.returncode == 1, left.stdout  # killed on the target, not only the client
    gone = SshRunner("127.0.0.1", port=_free_port(), config=str(sshd.config)).run(["true"])
    assert gone.returncode == 255 and gone.stderr  # ssh's own failure, never a raise
    # the user's manager and journal, through ssh, as the attached soak reads them
    shown = runner.run(["systemctl", "--user", "show", UNIT, "-p", "ActiveState"], user=USER,
                       env=systemd_user_env(1000))
    assert shown.stdout.strip() == "ActiveState=active", shown.stderr


@pytest.mark.soaks
@pytest.mark.timeout(2400)  # with the wait for a soak slot
def test_the_attached_soak_runs_over_ssh(staging: Staging, sshd: Sshd, engine: DockerEngine,
                                         tmp_path: Path) -> None:
    """The same soak with `--target-host ssh://grh-staging`: a staging host reached by ssh."""
    before = staging.show()
    run_dir = tmp_path / "run"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios", "-q", "-m", "soak", "--run-dir",
         str(run_dir), "--target", str(target_file(tmp_path, staging)), "--target-host",
         f"ssh://{sshd.host}", "--soak", "20", "--scenarios",
         str(ROOT / "scenarios" / "soak" / "reply-quick.toml")],
        cwd=ROOT, env={**os.environ, "HARNESS_SSH_CONFIG": str(sshd.config)},
        capture_output=True, text=True, timeout=900)
    print(f"\n[attached soak over ssh] exit {done.returncode} in "
          f"{time.monotonic() - started:.0f} s")
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    after = staging.show()
    assert (after["MainPID"], after["ActiveEnterTimestamp"], after["NRestarts"]) == \
        (before["MainPID"], before["ActiveEnterTimestamp"], before["NRestarts"])
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert verdict["outcome"] == "passed" and verdict["attached"]["host"] == "ssh://grh-staging"
    assert verdict["attached"]["before"]["version"] == VERSION
    assert f"Attached to the running {UNIT} on ssh://grh-staging (openclaw {VERSION}" in \
        verdict["claim"]
    log = verdict["soak"]["log_source"]
    assert log["source"] == "journal" and log["trusted"] is True and log["journal"]["lines"] > 0
    recs = [json.loads(line) for line in (run_dir / "transitions.jsonl").read_text().splitlines()]
    assert all(r.get("journal") is True for r in recs if r["state"] != "alert"), recs[:3]


def test_an_attached_unit_that_is_stopped_is_not_started_by_the_harness(
        staging: Staging, engine: DockerEngine, tmp_path: Path) -> None:
    """Last in the module: stops the user's gateway as a person would, then runs the soak."""
    unit_before = staging.unit_file()
    done = staging.box.exec_as_user(["systemctl", "--user", "stop", UNIT], timeout=60)
    assert done.returncode == 0, done.stderr
    done = run_suite(staging, engine, target_file(tmp_path, staging), tmp_path / "run")
    assert done.returncode == 22, (done.stdout + done.stderr)[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1 and f"attached {UNIT} on docker://" in errors[0], done.stderr
    assert "is inactive/dead, not running" in errors[0], errors
    after = staging.show()
    assert after["ActiveState"] == "inactive" and after["MainPID"] == "0"  # still stopped
    assert staging.unit_file() == unit_before
