"""Soaking a staging gateway however it runs: a systemd unit (tests/test_attached.py), a docker
container, or only a URL. Their settings are checked at load with file and key (exit 20 through
the suite); what a container's inspection and its `docker logs` say is read as the driver reads
it; a gateway known by its URL is observed over HTTP (a real server here). The container e2e
is tests/test_docker_attached.py."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.common.errors import InputError
from harness.signals.dockerlogs import DockerLogsWatcher, rfc3339
from harness.signals.signatures import catalogue
from harness.targets.attached import AttachedUrl
from harness.targets.client import GatewayEndpoint
from harness.targets.docker import DOCKER_LABELS, AttachedContainer
from harness.targets.driver import ATTACHED, Observation, driver_class
from harness.targets.profile import load_target
from harness.targets.runner import LocalRunner

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ROOT / "scenarios" / "targets"
DOCKER = TARGETS / "staging-docker-openclaw.toml"
URL = TARGETS / "staging-url-litellm.toml"
SYSTEMD = TARGETS / "staging-systemd-openclaw.toml"


def edited(tmp_path: Path, sample: Path, *edits: tuple[str, str], append: str = "") -> Path:
    text = sample.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / sample.name
    path.write_text(text + append)
    return path


def test_the_sample_profiles_name_each_way_a_gateway_runs() -> None:
    docker, url = load_target(DOCKER), load_target(URL)
    assert (docker.driver, docker.log_source, docker.attached.container) == \
        ("docker", "docker", "openclaw-gateway")
    assert docker.attached.what == "container openclaw-gateway" and docker.systemd is None
    assert (url.driver, url.log_source, url.log_file) == \
        ("url", "file", "/var/log/litellm/proxy.log")
    assert url.api.live == "/health/liveliness"  # the kind's, as the profile says none
    assert {name: driver_class("attached", name).__name__ for name in ATTACHED} == {
        "systemd": "AttachedUnit", "docker": "AttachedContainer", "url": "AttachedUrl"}


@pytest.mark.parametrize(("sample", "edits", "append", "key", "words"), [
    (DOCKER, (('driver = "docker"', 'driver = "kubernetes"'),), "", "target.driver",
     "a systemd unit, a docker container or a URL"),
    (DOCKER, (('container = "openclaw-gateway"', 'container = "open claw"'),), "",
     "attached.container", "container's name"),
    (DOCKER, (('container = "openclaw-gateway"', ""),), "", "attached.container", "missing"),
    (DOCKER, (('container = "openclaw-gateway"', 'unit = "oc.service"'),), "",
     "attached.unit", 'only for target.driver = "systemd"'),
    (DOCKER, (), '\n[systemd]\nuser = "gw"\n', "systemd", 'only for target.driver = "systemd"'),
    (DOCKER, (('source = "docker"', 'source = "journal"'),), "", "logs.source",
     "use 'docker' (its console) or \"file\""),
    (DOCKER, (('state_dir = "/home/node/.openclaw" # inside the container', ""),), "",
     "attached.config", "needs state_dir"),
    (DOCKER, (('[attached]', '[attached]\nversion_env = "V"'),), "", "attached.version_env",
     'only for target.driver = "systemd"'),
    (URL, (('source = "file"', 'source = "docker"'),), "", "logs.source", "use 'file'"),
    (URL, (('file = "/var/log/litellm/proxy.log"', ""),), "", "logs.file",
     "no console the harness could read"),
    (URL, (('[attached]', '[attached]\ncontainer = "x"'),), "", "attached.container",
     'only for target.driver = "docker"'),
    (URL, (('url = "http://127.0.0.1:4000"', 'url = "127.0.0.1:4000"'),), "", "attached.url",
     "HOST[:PORT]"),
    (SYSTEMD, (('[attached]', '[attached]\ncontainer = "x"'),), "", "attached.container",
     'only for target.driver = "docker"'),
])
def test_a_bad_attach_setting_names_file_and_key(tmp_path: Path, sample: Path,
                                                 edits: tuple[tuple[str, str], ...],
                                                 append: str, key: str, words: str) -> None:
    path = edited(tmp_path, sample, *edits, append=append)
    with pytest.raises(InputError) as caught:
        load_target(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert words in message and "\n" not in message


def test_a_bad_attach_setting_ends_the_suite_with_one_line_and_exit_20(tmp_path: Path) -> None:
    target = edited(tmp_path, DOCKER, ('container = "openclaw-gateway"', 'container = "a b"'))
    done = subprocess.run([sys.executable, "-m", "pytest", "scenarios", "-q", "-m", "soak",
                           "--run-dir", str(tmp_path / "run"), "--target", str(target)],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 20, done.stdout[-2000:] + done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("harness: error:")]
    assert errors == [f"harness: error: {target}: attached.container: expected a container's "
                      "name or id, got 'a b'"], done.stderr
    assert "Traceback" not in done.stdout + done.stderr


# -- a container, as docker inspect and docker logs say it ------------------------------------
def test_a_containers_version_is_its_images_label_or_tag() -> None:
    box = AttachedContainer(LocalRunner(), "oc")
    version, sources, notes = box._version("local/oc:2026.3.28",  # noqa: SLF001
                                           {"org.opencontainers.image.version": "2026.3.28"})
    assert version == "2026.3.28" and notes == []
    assert sources["image"] == {"name": "local/oc:2026.3.28", "label": "2026.3.28",
                                "tag": "2026.3.28"}
    version, _, notes = box._version("registry:5000/oc:v2026.4.1", {})  # noqa: SLF001
    assert version == "2026.4.1" and notes == []
    version, _, notes = box._version("oc:latest", {  # noqa: SLF001
        "org.opencontainers.image.version": "2026.3.28"})
    assert version == "2026.3.28"
    version, _, notes = box._version("oc:2026.4.1", {  # noqa: SLF001
        "org.opencontainers.image.version": "2026.3.28"})
    assert version == "2026.3.28" and notes == [
        "version sources disagree: image label 2026.3.28, image tag 2026.4.1"]
    version, _, notes = box._version("registry:5000/oc", {})  # noqa: SLF001
    assert version is None and "no version found" in notes[0]


def test_a_replaced_or_restarted_container_is_not_as_found() -> None:
    def seen(cid: str, started: str, restarts: int) -> Observation:
        return Observation("oc", "active", "running", 4242, started, restarts, "2026.3.28",
                           container_id=cid, labels=dict(DOCKER_LABELS))

    before = seen("c0ffee", "2026-12-01T03:00:00.1Z", 0)
    assert seen("c0ffee", "2026-12-01T03:00:00.1Z", 0).changes_since(before) == []
    assert seen("c0ffee", "2026-12-01T03:05:00.2Z", 1).changes_since(before) == [
        "StartedAt 2026-12-01T03:00:00.1Z -> 2026-12-01T03:05:00.2Z", "RestartCount 0 -> 1"]
    assert seen("beef", "2026-12-01T03:00:00.1Z", 0).changes_since(before)[0] == \
        "container id c0ffee -> beef"


def test_docker_logs_lines_are_dated_by_the_engine_and_read_once() -> None:
    watcher = DockerLogsWatcher(LocalRunner(), "oc", catalogue("openclaw"), cursor="0")
    first = ["2026-12-01T03:00:00.000000001Z gateway listening",
             "2026-12-01T03:00:01.500000000Z [agent/embedded] embedded run timeout: runId=r-1 "
             "sessionId=s timeoutMs=60000",
             "Error response from daemon: not a line of the container's"]
    assert watcher._read(first) == 2  # noqa: SLF001
    # the next poll asks --since the newest stamp, which docker includes again
    again = [first[1], "2026-12-01T03:00:02.000000000Z reply sent"]
    assert watcher._read(again) == 1  # noqa: SLF001
    assert watcher.lines == ["gateway listening", first[1].split(" ", 1)[1], "reply sent"]
    assert [m.signature for m in watcher.since(0)] == ["embedded-run-timeout"]  # as judged
    assert watcher.matches[0].logged_at == "2026-12-01T03:00:01.500000000Z"
    assert watcher.newest_timestamp() == rfc3339("2026-12-01T03:00:02.000000000Z")
    assert rfc3339("2026-12-01T03:00:02.25+01:00") == rfc3339("2026-12-01T02:00:02.25Z")
    assert rfc3339("gateway") is None


# -- a gateway known only by its URL ------------------------------------------------------------
class _Proxy(BaseHTTPRequestHandler):
    version = "1.79.3"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/health/liveliness":
            body: object = "I'm alive!"
        elif self.path == "/health/readiness" and \
                self.headers.get("Authorization") == "Bearer sk-unit":
            body = {"status": "healthy", "litellm_version": self.version}
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_gateway_known_by_its_url_is_observed_over_http(proxy: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = edited(tmp_path, URL, ('url = "http://127.0.0.1:4000"', f'url = "{proxy}"'))
    profile = load_target(path)
    driver = AttachedUrl.for_profile(profile)
    driver.endpoint = GatewayEndpoint(proxy, "sk-unit", {}, "/v1/chat/completions", "")
    found = driver.observe()
    assert found.running and found.version == "1.79.3" and driver.active_version() == "1.79.3"
    assert found.sources["endpoint"] == {"path": "/health/readiness", "key": "litellm_version",
                                         "version": "1.79.3"}
    with pytest.raises(Exception, match="never stops it"):
        driver.stop(5)
    monkeypatch.setattr(_Proxy, "version", "1.80.0")  # upgraded under the soak by someone
    assert driver.observe().changes_since(found) == ["version 1.79.3 -> 1.80.0"]
    driver.endpoint = GatewayEndpoint(proxy, "sk-wrong", {}, "/v1/chat/completions", "")
    wrong = driver.observe()
    assert wrong.version is None and "did not answer with JSON" in wrong.notes[0]
