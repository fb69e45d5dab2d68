"""A fleet of attached gateways, soaked at once and changed in nothing:
`pytest scenarios -m soak --fleet staging.toml -n 2` against two OpenClaw 2026.3.28 gateways
that run already, started here as a user starts one (`openclaw gateway run` on loopback, its
config and token in its state folder, its console written to a file, the model lab as its
provider), each attached by its URL and token file, its log that console file (the canary's).

The two members (a canary and a member of the next wave) are soaked at the same time: with
nothing changed, nothing waits for the canary's verdict. The second member's profile names a
log the gateway no longer writes (yesterday's rotated console, as seed 002's stale log): its
soak cannot be shown clean, so it fails, alone: the canary passes, the fleet is soak_failed
(13), and nothing is rolled back. At the end each is the same process (same PID, still
serving, the 2026.3.28 this test started), both soaked and judged, one fleet verdict. A URL
is the cheapest real way to attach (no container, no systemd): the harness then sees no PID,
so the PID is this test's to check; the harness checks what a URL shows.

Run: .venv/bin/pytest tests/test_fleet_attached_e2e.py -m e2e -v
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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from harness.common.commands import die_with_parent
from harness.common.nonce import new_nonce
from harness.modellab import ModelLab
from harness.targets.gateway import _free_port
from harness.targets.runtime import Runtime
from tests.conftest import CACHE, ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]  # with the wait for two soak slots

VERSION = "2026.3.28"
TEMPLATE = ROOT / "scenarios" / "targets" / "openclaw" / "openclaw.template.json"
QUICK = ROOT / "scenarios" / "soak" / "reply-quick.toml"


@dataclass
class Running:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    state: Path
    console: Path
    package: Path  # the package.json of what it runs

    def version(self) -> str:
        return json.loads(self.package.read_text())["version"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthz(self) -> int | None:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=3, trust_env=False).status_code
        except httpx.HTTPError:
            return None


@contextmanager
def running_gateway(name: str, lab: ModelLab, folder: Path) -> Iterator[Running]:
    """OpenClaw as a user runs it on this host: started, serving, warmed by one reply;
    stopped by its PID at the end (it also dies with this process)."""
    runtime = Runtime(CACHE / "runtime")
    node = runtime.node("22")
    install = runtime.install(runtime.registry.resolve("openclaw", VERSION, "test"), node,
                              {"OPENCLAW_DISABLE_BUNDLED_PLUGIN_POSTINSTALL": "1"})
    state = folder / "state"
    state.mkdir(parents=True)
    port, token = _free_port(), secrets.token_urlsafe(24)
    (state / "openclaw.json").write_text(string.Template(TEMPLATE.read_text()).substitute(
        port=port, token=token, state_dir=state, model_lab=lab.base_url))
    env = {"HOME": str(folder / "home"), "OPENCLAW_STATE_DIR": str(state),
           "OPENCLAW_CONFIG_PATH": str(state / "openclaw.json"), "NO_COLOR": "1",
           "OPENCLAW_DISABLE_BONJOUR": "1", "OPENCLAW_NO_RESPAWN": "1",
           "PATH": f"{node.bin_dir}:/usr/local/bin:/usr/bin:/bin"}
    console = folder / "console.log"
    with open(console, "wb") as out:
        process = subprocess.Popen(  # noqa: S603
            [install.bin("openclaw"), "gateway", "run", "--port", str(port), "--bind",
             "loopback"], env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent())  # noqa: PLW1509
    package = install.prefix / "node_modules" / "openclaw" / "package.json"
    found = Running(name, process, port, state, console, package)
    try:
        deadline = time.monotonic() + 120
        while found.healthz() != 200:
            assert process.poll() is None and time.monotonic() < deadline, \
                console.read_text()[-3000:]
            time.sleep(0.5)
        nonce = new_nonce()  # a gateway in use has its workspace: one reply first
        reply = httpx.post(f"{found.url}/v1/chat/completions", timeout=120, trust_env=False,
                           json={"model": "openclaw/quick", "stream": False, "messages": [
                               {"role": "user", "content": f"Quote {nonce}."}]},
                           headers={"Authorization": f"Bearer {token}",
                                    "x-openclaw-scopes": "operator.write"})
        assert reply.status_code == 200 and nonce in reply.text, reply.text[:500]
        yield found
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def profile(folder: Path, gateway: Running, log: Path) -> Path:
    """The member's target profile: attached by its URL, its token in its own config."""
    path = folder / f"{gateway.name}.toml"
    path.write_text(f"""[target]
name = "staging-{gateway.name}"
kind = "openclaw"
driver = "url"
provision = "attached"
host = "local://"

[package]
name = "openclaw"

[attached]
url = "{gateway.url}"
state_dir = "{gateway.state}"
config = "openclaw.json"
token_file = "{gateway.state / 'openclaw.json'}"
token_key = "gateway.auth.token"

[api]
live = "/healthz"
ready = "/readyz"
chat = "/v1/chat/completions"
model_prefix = "openclaw/"
health_agent = "quick"
agents = ["main", "quick", "reviewer-a", "reviewer-b", "reviewer-c", "synth"]
headers = {{ "x-openclaw-scopes" = "operator.write" }}
stream_finish_reason = false

[logs]
source = "file"
file = "{log}"
""")
    return path


@pytest.fixture
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Running]]:
    """Function-scoped: started only once the test holds its two soak slots (autouse)."""
    with ExitStack() as stack:
        lab = stack.enter_context(ModelLab(
            log_path=tmp_path_factory.mktemp("lab") / "modellab.log", time_scale=0.1))
        yield [stack.enter_context(running_gateway(name, lab, tmp_path_factory.mktemp(name)))
               for name in ("canary", "team")]


def rotated(gateway: Running) -> Path:
    """A log the gateway wrote once and writes no more: its console's first line, a day old."""
    first = gateway.console.read_text().splitlines()[0]
    stamp = first.split(" ", 1)[0]
    old = (datetime.fromisoformat(stamp) - timedelta(days=1)).isoformat(timespec="milliseconds")
    path = gateway.console.with_name("console.log.1")
    path.write_text(f"{old} {first.split(' ', 1)[1]}\n")
    return path


@pytest.mark.soaks(gateways=2)
def test_a_fleet_of_attached_gateways_is_soaked_at_once_one_fails_alone_all_left_as_found(
        gateways: list[Running], tmp_path: Path) -> None:
    before = {g.name: (g.process.pid, g.version()) for g in gateways}
    assert {v for _, v in before.values()} == {VERSION}
    canary, team = gateways
    logs = {"canary": canary.console, "team": rotated(team)}
    fleet = tmp_path / "staging.toml"
    fleet.write_text('[fleet]\nname = "staging"\nmax_parallel = 1\n' + "".join(
        f'[[members]]\nname = "{g.name}"\ntarget = "{profile(tmp_path, g, logs[g.name])}"\n'
        + ("canary = true\n" if g.name == "canary" else "") for g in gateways))
    run_dir = tmp_path / "run"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios", "-q", "-m", "soak", "--fleet", str(fleet),
         "-n", "2", "--run-dir", str(run_dir), "--soak", "20", "--scenarios", str(QUICK)],
        cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=900)
    print(f"\n[attached fleet soak] exit {done.returncode} in {time.monotonic() - started:.0f} s")
    assert done.returncode == 13, (done.stdout + done.stderr)[-5000:]

    # left as found: the same processes, still the version this test started, serving
    for g in gateways:
        assert g.process.poll() is None, g.name
        assert (g.process.pid, g.version()) == before[g.name], g.name
        assert g.healthz() == 200, g.name

    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert (verdict["outcome"], verdict["exit_code"], verdict["soak_only"]) == \
        ("soak_failed", 13, True)
    assert verdict["waves"] == [["canary"], ["team"]] and verdict["not_reached"] == []
    assert verdict["fleet_rollbacks"] == {}
    assert "Passed: canary. Failed: team (soak_failed)." in verdict["claim"]
    rows = {r["member"]: r for r in verdict["members"]}
    outcome = {"canary": "passed", "team": "soak_failed"}
    soaks = {}
    for g in gateways:
        row = rows[g.name]
        assert (row["outcome"], row["observed"], row["left_as_found"], row["fleet_word"]) == \
            (outcome[g.name], True, True, None), row
        assert row["what_happened"].startswith(f"soaked, {outcome[g.name]}; left as found"), row
        own = json.loads((run_dir / "members" / g.name / "verdict.json").read_text())
        # soaked and judged, and nothing else: no install, stop, start, hold or rollback
        phases = {p["name"]: p["outcome"] for p in own["phases"]}
        trusted = g.name == "canary"
        assert phases == {"soak[reply-quick]": "passed", "soak_policy": "passed",
                          "soak_left_as_found": "passed",
                          "soak_log_source": "passed" if trusted else "failed"}, phases
        assert own["attached"]["changes"] == [] and own["attached"]["left_as_found"] is True
        assert own["attached"]["before"]["version"] == own["attached"]["after"]["version"]
        assert own["soak"]["scenarios"]["reply-quick"]["good"] >= 2, own["soak"]["scenarios"]
        assert own["soak"]["log_source"]["trusted"] is trusted, own["soak"]["log_source"]
        assert own["fleet"] == {"member": g.name, "fleet": "staging"}
        soaks[g.name] = soak_window(run_dir / "members" / g.name)
    assert "older than the soak start" in " ".join(
        json.loads((run_dir / "members" / "team" / "verdict.json").read_text())
        ["soak"]["log_source"]["reasons"])
    # at once: the team member's soak began before the canary's ended (no wave gate)
    (c0, c1), (t0, t1) = soaks["canary"], soaks["team"]
    assert t0 < c1 and c0 < t1, soaks

    summary = (run_dir / "summary.md").read_text()
    assert summary.startswith("# Fleet staging: soak_failed (exit 13)")
    assert "| canary (canary) | 0 | unknown | unknown | passed |" in summary
    assert "| team | 1 | unknown | unknown | soak_failed (failed: soak_log_source) |" in summary
    parents = {label["value"] for path in (run_dir / "allure-results").glob("*-result.json")
               for label in json.loads(path.read_text())["labels"]
               if label["name"] == "parentSuite"}
    assert parents == {"canary", "team"}


def soak_window(member_dir: Path) -> tuple[float, float]:
    """When the member's soak sent its first and its last request (its own transitions)."""
    events = [json.loads(line) for line in
              (member_dir / "transitions.jsonl").read_text().splitlines() if line.strip()]
    soak = [e["ts"] for e in events if "soak" in str(e.get("state", ""))]
    assert soak, events[:5]
    return min(soak), max(soak)
