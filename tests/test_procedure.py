"""The upgrade procedure phase by phase, on the in-memory driver (tests/fake_driver.py) behind
the real gateway facade, with the real model lab answering (time scale 0.05) and the real
judge, backups, lock re-checks and restart gate. Each failure branch is told to the driver (or
to the shelf of installs) and judged by its outcome: the verdict's outcome and exit code, its
claim, and the gateway's transitions (which version was switched to, started, stopped).

The versions come from a shelf in a temporary folder instead of a registry (ShelfRuntime,
Shelf): prefixes with the install marker, which the shelf can be told not to install or to
find damaged. Nothing here reaches the network."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from harness.common.errors import InfrastructureError
from harness.judge import assess
from harness.judge.policy import load_policy
from harness.modellab import ModelLab
from harness.procedure.gate import RestartGate
from harness.procedure.phases import PhaseResult, Procedure
from harness.procedure.run import PhaseOutcome, RunRecord, RunSettings, build_verdict
from harness.soak.scenarios import load_scenarios
from harness.targets.client import GatewayEndpoint
from harness.targets.gateway import Gateway
from harness.targets.groundtruth import InstallFindings
from harness.targets.packages import EngineCheck
from harness.targets.profile import ApiSpec, StateSpec, load_target
from harness.targets.registry import Release
from harness.targets.runtime import MARKER, Installation, NodeRuntime, Runtime
from tests.fake_driver import InMemoryDriver

ROOT = Path(__file__).resolve().parents[1]
KG, CAND = "2026.3.28", "2026.4.1"
TIMEOUT_LINE = ("[agent/embedded] embedded run timeout: runId=r-{n} sessionId=s timeoutMs=60000 "
                "provider=lab/slow-reasoner")
POLICY = """
[policy]
name = "unit-procedure"
min_samples = 1
[soak]
window_s = 2
drain_s = 10
stop_grace_s = 1
[watch]
window_s = 1.5
drain_s = 10
[[triggers]]
name = "any-timeout"
kind = "log"
classes = ["timeout"]
count = 1
within_s = 60
interval_s = 0.5
"""
SCENARIOS = """
[[scenarios]]
id = "reply-fast"
kind = "reply"
agent = "fast-chat"
stream = true
concurrency = 1
pause_s = 0.2
latency_budget_s = 20
"""


def release(version: str) -> Release:
    return Release("openclaw", version, version, f"shelf-{version}", None, ecosystem="shelf")


class ShelfRuntime(Runtime):
    """Installs from a shelf: a prefix per version with the install marker; told versions
    fail to install."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.broken: set[str] = set()

    def install(self, release: Release, node: NodeRuntime | None,
                extra_env: dict[str, str] | None = None, force: bool = False) -> Installation:
        if release.version in self.broken:
            raise InfrastructureError(f"install {release.label} failed: the shelf has no "
                                      "such package")
        prefix = self.prefix_for(release)
        reused = (prefix / MARKER).exists() and not force
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / MARKER).write_text(json.dumps(release.as_dict()))
        return Installation(release, prefix, reused, 0.01, None)


@dataclass
class Shelf:
    """The package ecosystem of the shelf: every version resolves to itself; `damaged` ones
    are found corrupt by their ground truth."""

    damaged: set[str]

    def resolve(self, package: str, spec: str, origin: str) -> Release:
        return release(spec)

    def engine(self, release: Release, node: NodeRuntime | None) -> EngineCheck:
        return EngineCheck(True, f"{release.label} runs here", "here", "anywhere")

    def verify(self, release: Release, prefix: Path) -> InstallFindings:
        bad = release.version in self.damaged
        return InstallFindings("openclaw", release.version, release.integrity, str(prefix),
                               release.version, 3, missing=["dist/index.js"] if bad else [])

    def installed_integrity(self, installation: Installation) -> dict[str, Any]:
        recorded = json.loads((installation.prefix / MARKER).read_text())["integrity"]
        return {"registry": installation.release.integrity, "installed": recorded,
                "matches": recorded == installation.release.integrity, "source": MARKER}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelLab]:
    with ModelLab(log_path=tmp_path_factory.mktemp("lab") / "modellab.log",
                  time_scale=0.05) as running:
        yield running


@dataclass
class Run:
    procedure: Procedure
    driver: InMemoryDriver
    runtime: ShelfRuntime
    shelf: Shelf
    settings: RunSettings
    said: dict[str, str]  # each phase's summary, for a failing assertion to show

    @property
    def record(self) -> RunRecord:
        return self.procedure.record


@pytest.fixture
def run(tmp_path: Path, lab: ModelLab) -> Run:
    (tmp_path / "policy.toml").write_text(POLICY)
    (tmp_path / "scenarios.toml").write_text(SCENARIOS)
    policy = load_policy(tmp_path / "policy.toml")
    profile = load_target(ROOT / "scenarios" / "targets" / "local-openclaw.toml")
    profile = replace(
        profile,
        api=ApiSpec(live="/lab/health", ready="/lab/health", chat="/v1/chat/completions",
                    headers={}, model_prefix="", health_agent="fast-chat",
                    agents=("fast-chat",)),
        state=StateSpec(config="openclaw.json", config_template=None,
                        restore=["openclaw.json", "agents"],
                        paths={"config": ["openclaw.json"], "credentials": ["agents/*/agent"],
                               "sessions": ["agents/*/sessions"], "state": ["*"]}))
    settings = RunSettings(
        run_id="unit", run_dir=tmp_path / "run", cache_dir=tmp_path / "cache", target=profile,
        policy=policy, scenarios=load_scenarios(tmp_path / "scenarios.toml"),
        known_good=release(KG), candidate=release(CAND), soak=policy.soak, watch=policy.watch,
        restart_gate="auto")
    settings.run_dir.mkdir(parents=True)
    settings.cache_dir.mkdir(parents=True)
    deployment = tmp_path / "deployment"
    config = json.dumps({"update": {"auto": {"enabled": False}, "checkOnStart": False}})
    for rel, text in {"openclaw.json": config, "agents/main/sessions/s.jsonl": "one\n",
                      "agents/main/agent/auth-profiles.json": "{}"}.items():
        (deployment / "state" / rel).parent.mkdir(parents=True, exist_ok=True)
        (deployment / "state" / rel).write_text(text)
    driver = InMemoryDriver(deployment)
    runtime = ShelfRuntime(tmp_path / "runtime")
    endpoint = GatewayEndpoint(base_url=lab.url, token="unit-token", headers={},
                               chat_path="/v1/chat/completions", model_prefix="")
    gateway = Gateway(profile, runtime, None, driver, endpoint, deployment / "state")
    gateway.activate(runtime.install(release(KG), None))  # the known-good, as found serving
    gateway.start()
    assert gateway.wait_ready(5).ready
    procedure = Procedure(settings, RunRecord(), runtime, None, gateway,
                          gate=RestartGate("auto", settings.run_dir, 5))
    shelf = Shelf(set())
    # the shelf is this run's package ecosystem: it resolves, checks engines and ground truth
    procedure.safety.packages = shelf
    procedure.safety.resolve = shelf.resolve
    return Run(procedure, driver, runtime, shelf, settings, {})


def walk(run: Run) -> tuple[str, int]:
    """The phases in the order and with the skips of scenarios/conftest.py, each recorded as
    the suite's hook records it; returns the run's outcome and exit code."""
    proc, record, settings = run.procedure, run.record, run.settings

    def note(family: str, name: str, ok: bool | None) -> bool:
        outcome = "skipped" if ok is None else "passed" if ok else "failed"
        record.phases.append(PhaseOutcome(family, name, outcome, 0.0))
        return bool(ok)

    def chain(family: str, steps: list[tuple[str, Any]]) -> bool:
        going = True
        for name, step in steps:
            result: PhaseResult | None = step() if going else None
            if result is not None:
                run.said[name] = result.summary
            going = note(family, name, None if result is None else result.ok) and going
        return going

    healthy = chain("upgrade", [
        ("preflight", proc.preflight), ("backup", proc.backup), ("baseline", proc.baseline),
        ("install", proc.install),
        ("restart_gate", lambda: proc.restart_gate("stop the known-good, start the candidate")),
        ("stop", proc.stop), ("start", proc.start), ("health", proc.health)])
    if healthy:
        soak = proc.soak("soak", settings.soak)
        for scenario in settings.scenarios.scenarios:
            note("soak", f"soak[{scenario.id}]", assess.scenario(
                soak, scenario.id, settings.min_samples()[scenario.id], None).ok)
        note("soak", "soak_policy", assess.policy(soak).ok)
    if record.needs_rollback():
        note("rollback", "rollback_backup", proc.rollback_backup().ok)
        restored = chain("rollback", [
            ("rollback_prepare", proc.rollback_prepare),
            ("rollback_restart_gate",
             lambda: proc.restart_gate("stop the candidate and start the known-good version")),
            ("rollback_restore", proc.rollback_restore), ("rollback_start", proc.start)])
        if restored and note("rollback", "rollback_smoke", assess.watch(proc.smoke()).ok):
            note("rollback", "rollback_watch",
                 assess.watch(proc.soak("watch", settings.watch)).ok)
    outcome, code = record.outcome()
    return outcome, int(code)


def verdict(run: Run) -> dict[str, Any]:
    return build_verdict(run.record, run.settings.lock())


def steps(run: Run) -> list[tuple[str, str, str]]:
    """The gateway's transitions after the known-good was first started."""
    return run.driver.transitions[2:]


def test_a_candidate_that_holds_is_left_serving(run: Run) -> None:
    assert walk(run) == ("passed", 0), run.said
    assert steps(run) == [("stop", KG, "ok"), ("activate", CAND, "ok"), ("start", CAND, "ok")]
    assert run.procedure.gateway.active_version() == CAND and run.driver.is_running()
    assert [p.name for p in run.record.phases if p.family == "rollback"] == []
    assert verdict(run)["exit_code"] == 0


def test_an_install_that_fails_stops_the_run_before_any_change(run: Run) -> None:
    run.runtime.broken.add(CAND)
    assert walk(run) == ("aborted", 12)
    assert steps(run) == []  # nothing stopped, nothing switched
    assert run.driver.running is not None and run.driver.running.release.version == KG
    failed = [p.name for p in run.record.phases if p.outcome == "failed"]
    assert failed == ["install"]
    assert f"{KG} was left" in verdict(run)["claim"]


def test_a_damaged_candidate_install_is_not_switched_to(run: Run) -> None:
    run.shelf.damaged.add(CAND)
    assert walk(run) == ("aborted", 12)
    assert steps(run) == []


def test_a_candidate_that_never_becomes_healthy_is_rolled_back(run: Run) -> None:
    run.driver.fail("ready", CAND, "cannot parse its config")
    assert walk(run) == ("rolled_back", 10)
    assert steps(run) == [("stop", KG, "ok"), ("activate", CAND, "ok"),
                          ("start", CAND, "exited"), ("activate", KG, "ok"),
                          ("start", KG, "ok")]
    ran = {p.name: p.outcome for p in run.record.phases}
    assert ran["start"] == "failed" and ran["health"] == "skipped"
    assert ran["rollback_smoke"] == ran["rollback_watch"] == "passed"
    assert run.procedure.gateway.active_version() == KG and run.driver.is_running()
    claim = verdict(run)["claim"]
    assert f"{CAND} failed start" in claim and f"{KG} was restored" in claim


def test_a_soak_trigger_rolls_the_candidate_back(run: Run) -> None:
    run.driver.logs(CAND, TIMEOUT_LINE)  # the regressing release times out while it runs
    assert walk(run) == ("rolled_back", 10)
    ran = {p.name: p.outcome for p in run.record.phases}
    assert ran["health"] == "passed" and ran["soak_policy"] == "failed"
    assert steps(run)[-3:] == [("stop", CAND, "ok"), ("activate", KG, "ok"), ("start", KG, "ok")]
    decided = [d for d in run.procedure.soaks["soak"].deciding()]
    assert [d.label for d in decided] == ["any-timeout"]
    assert f"{CAND} failed" in verdict(run)["claim"]
    # every request of each soak is in the run dir, one JSON line each, as verdict.json counts
    for label, soaked in run.record.soaks.items():
        lines = (run.settings.run_dir / "requests" / f"{label}.jsonl").read_text().splitlines()
        requests = [json.loads(line) for line in lines if '"step"' in line]
        assert len(requests) == soaked.numbers["requests"] > 0, label
        assert verdict(run)[label]["requests"] == len(requests)  # what verdict.json says


def test_a_known_good_that_times_out_once_back_is_a_rollback_not_proven(run: Run) -> None:
    run.driver.fail("ready", CAND)
    run.driver.logs(KG, TIMEOUT_LINE)  # back, it times out too: the rollback is not proven
    assert walk(run) == ("rollback_failed", 11)
    ran = {p.name: p.outcome for p in run.record.phases}
    assert ran["rollback_start"] == "passed"
    # its one quick reply may come before its first timeout line; the watch cannot miss it
    assert "failed" in (ran["rollback_smoke"], ran.get("rollback_watch"))
    assert run.driver.running is not None and run.driver.running.release.version == KG
    assert verdict(run)["exit_code"] == 11


def test_a_rollback_whose_restore_fails_is_rollback_failed(run: Run) -> None:
    run.driver.logs(CAND, TIMEOUT_LINE)
    run.driver.fail("activate", KG, "current is on a read-only file system")
    assert walk(run) == ("rollback_failed", 11)
    ran = {p.name: p.outcome for p in run.record.phases}
    assert ran["rollback_restore"] == "failed" and ran["rollback_start"] == "skipped"
    assert ("activate", KG, "failed") in steps(run)
    assert not run.driver.is_running()  # the candidate was stopped; nothing serves: look now
    assert verdict(run)["exit_code"] == 11


def test_a_candidate_that_cannot_start_is_rolled_back(run: Run) -> None:
    run.driver.fail("start", CAND, "port in use")
    assert walk(run) == ("rolled_back", 10)
    assert ("start", CAND, "failed") in steps(run)
    assert run.procedure.gateway.active_version() == KG and run.driver.is_running()
