"""The upgrade procedure, phase by phase, speaking only to the gateway facade.

Each phase returns a `PhaseResult` (it never raises for a product failure), so the pytest
fixtures can chain them and later phases can say which earlier phase stopped them. Every phase
writes its evidence to the report as steps and attachments.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import allure
import httpx

from harness.backup import Backup, compare_selected, create_backup, restore_paths, verify_by_restore
from harness.errors import HarnessError
from harness.nonce import new_nonce
from harness.policy import Window
from harness.reporting import evidence
from harness.run import RunRecord, RunSettings
from harness.signals.logwatch import LogWatcher
from harness.signals.signatures import catalogue
from harness.soak import assess
from harness.soak.driver import Progress, SoakDriver, SoakRun, check
from harness.soak.judge import Judge
from harness.soak.report import report_soak
from harness.soak.scenarios import Scenario
from harness.target import semver
from harness.target.client import ChatOutcome
from harness.target.config import patch_json_file
from harness.target.gateway import Gateway
from harness.target.registry import Release
from harness.target.runtime import Installation, NodeRuntime, Runtime

MIN_FREE_BYTES = 2 * 1024**3


@dataclass
class PhaseResult:
    name: str
    ok: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


class PhaseError(Exception):
    """A phase stopped on an error of the harness or its infrastructure, not on a check."""


def report_phase(result: PhaseResult) -> None:
    """The test body of a phase: its summary is the test's message. A phase that stopped on
    an error is reported as broken (an error, not a failed check of the product)."""
    allure.dynamic.story(result.name)
    if not result.ok and result.details.get("error"):
        raise PhaseError(f"harness error in phase {result.name} "
                         f"({result.details['error']}): {result.summary}")
    assert result.ok, result.summary


def attach_json(name: str, payload: Any) -> None:
    allure.attach(json.dumps(payload, indent=2, default=str), name=name,
                  attachment_type=allure.attachment_type.JSON)


def _timed(name: str, body: Callable[[], PhaseResult]) -> PhaseResult:
    """Run a phase; any error becomes a failed result, so the procedure can go on to restore
    service (a failed fresh backup must never keep the rollback from running)."""
    started = time.monotonic()
    with allure.step(f"phase {name}"):
        try:
            result = body()
        except HarnessError as exc:
            result = PhaseResult(name, False, str(exc), {"error": type(exc).__name__})
        except Exception as exc:  # noqa: BLE001 - reported with its traceback, never swallowed
            allure.attach(traceback.format_exc(), name=f"{name} error",
                          attachment_type=allure.attachment_type.TEXT)
            result = PhaseResult(name, False, f"{type(exc).__name__}: {exc}",
                                 {"error": type(exc).__name__})
        result.seconds = round(time.monotonic() - started, 3)
        attach_json(f"{name} result", result.__dict__)
    return result


class Procedure:
    """Upgrade, soak and rollback of one gateway, with the evidence of each step."""

    def __init__(self, settings: RunSettings, record: RunRecord, runtime: Runtime,
                 node: NodeRuntime, gateway: Gateway, progress: Progress | None = None) -> None:
        self.settings = settings
        self.record = record
        self.runtime = runtime
        self.node = node
        self.gateway = gateway
        self.progress = progress
        self.backups: dict[str, Backup] = {}
        self.soaks: dict[str, SoakRun] = {}
        self.backup_dir = settings.cache_dir / "runs" / settings.run_id / "backups"

    # -- upgrade ------------------------------------------------------------------------
    def preflight(self) -> PhaseResult:
        return _timed("preflight", self._preflight)

    def _preflight(self) -> PhaseResult:
        s = self.settings
        checks: list[dict[str, Any]] = []
        attach_json("release lock", s.lock())
        allure.attach(s.policy.text, name=f"policy {s.policy.path.name} "
                      f"sha256:{s.policy.sha256[:16]}", attachment_type=allure.attachment_type.TEXT)

        def note(name: str, ok: bool, observed: Any, expected: Any) -> None:
            with allure.step(f"{'ok' if ok else 'FAILED'}: {name}"):
                checks.append({"check": name, "ok": ok, "observed": observed,
                               "expected": expected})

        for role, release in (("candidate", s.candidate), ("known_good", s.known_good)):
            note(f"{role} {release.label} resolved with its integrity hash",
                 bool(release.integrity), release.integrity or "none", "registry dist.integrity")
            engine = release.node_engine or "*"
            note(f"Node.js {self.node.version} satisfies {release.label} engines.node",
                 semver.satisfies(self.node.version, engine), self.node.version, engine)
        free = shutil.disk_usage(s.cache_dir).free
        note("free disk space for the candidate install", free >= MIN_FREE_BYTES,
             f"{free / 1024**3:.1f} GiB", f">= {MIN_FREE_BYTES / 1024**3:.0f} GiB")
        note("known-good gateway serving", self.gateway.is_serving(),
             f"PID {self.gateway.pid}", "/healthz 200")
        active = self.gateway.active_version()
        note("active version is the declared known-good", active == s.known_good.version,
             active, s.known_good.version)
        failed = [c["check"] for c in checks if not c["ok"]]
        summary = "all checks passed" if not failed else "failed: " + "; ".join(failed)
        return PhaseResult("preflight", not failed, summary, {"checks": checks})

    def backup(self) -> PhaseResult:
        return _timed("backup", lambda: self._backup("pre-upgrade"))

    def _backup(self, label: str) -> PhaseResult:
        with allure.step(f"archive state dir with a SHA-256 manifest ({label})"):
            backup = create_backup(self.gateway.state_dir, self.backup_dir, label)
        with allure.step("test restore into a scratch folder and compare every hash"):
            problems = verify_by_restore(backup)
        self.backups[label] = backup
        attach_json(f"backup manifest ({label})", {**backup.summary(),
                                                   "manifest": backup.manifest})
        bad = {k: v for k, v in problems.items() if v}
        if bad:
            return PhaseResult(label, False, f"test restore does not match the manifest: {bad}",
                               backup.summary())
        return PhaseResult(label, True, f"{len(backup.manifest)} files archived and verified "
                           "by a test restore", backup.summary())

    def stop(self) -> PhaseResult:
        return _timed("stop", self._stop)

    def _stop(self) -> PhaseResult:
        pid = self.gateway.pid
        self.record.changed = True
        with allure.step(f"stop gateway PID {pid}"):
            was_running = self.gateway.stop()
        down = not self.gateway.is_running()
        return PhaseResult("stop", down, f"gateway PID {pid} stopped" if down
                           else f"gateway PID {pid} still running", {"was_running": was_running})

    def install(self) -> PhaseResult:
        return _timed("install", self._install_candidate)

    def _install_candidate(self) -> PhaseResult:
        result = self._install(self.settings.candidate, "install")
        patch = self.settings.candidate_config
        if result.ok and patch:
            config = self.gateway.state_dir / self.settings.target.state.config
            with allure.step(f"apply the candidate's config change to {config.name}"):
                patch_json_file(config, patch)
                attach_json("candidate config patch", patch)
            result.details["config_patch"] = patch
            result.summary += f"; config patched with {json.dumps(patch)}"
        return result

    def _install(self, release: Release, name: str) -> PhaseResult:
        with allure.step(f"install {release.label} into its own prefix"):
            installation = self.runtime.install(release, self.node,
                                                self.settings.target.package.install_env)
        with allure.step(f"switch the active install to {release.version}"):
            self.gateway.activate(installation)
        findings = installed_integrity(installation)
        active = self.gateway.active_version()
        ok = active == release.version and findings["matches"]
        how = "existing prefix reused, no download" if installation.reused \
            else f"downloaded and installed in {installation.seconds:.0f} s"
        return PhaseResult(name, ok, f"{release.label} active ({how})", {
            "prefix": str(installation.prefix), "reused": installation.reused,
            "active_version": active, "integrity": findings})

    def restart_gate(self, purpose: str) -> PhaseResult:
        return _timed(f"restart gate ({purpose})", lambda: self._restart_gate(purpose))

    def _restart_gate(self, purpose: str) -> PhaseResult:
        # The manual gate (a person approving each restart) comes with the safety procedure;
        # here the run approves for itself and says so.
        approved = {"mode": self.settings.restart_gate, "by": "--restart-gate auto",
                    "at": time.time(), "purpose": purpose}
        return PhaseResult("restart_gate", True, f"restart approved automatically ({purpose})",
                           approved)

    def start(self) -> PhaseResult:
        return _timed("start", self._start)

    def _start(self) -> PhaseResult:
        pid = self.gateway.start()
        with allure.step(f"gateway started as PID {pid}; waiting for /healthz and /readyz"):
            ready = self.gateway.wait_ready()
        if not ready.ready:
            allure.attach(self.gateway.log_tail(40), name="gateway log tail",
                          attachment_type=allure.attachment_type.TEXT)
            return PhaseResult("start", False, f"gateway never became ready: {ready.reason}",
                               {"pid": pid, "live": ready.live, "ready": ready.readyz})
        return PhaseResult("start", True, f"PID {pid} ready in {ready.seconds:.1f} s",
                           {"pid": pid, "version": self.gateway.active_version(),
                            "ready_s": round(ready.seconds, 2)})

    def health(self) -> PhaseResult:
        return _timed("health", self._health)

    def _health(self) -> PhaseResult:
        api = self.settings.target.api
        live = self.gateway.endpoint.probe(api.live)
        ready = self.gateway.endpoint.probe(api.ready)
        nonce = new_nonce()
        with allure.step(f"one real reply from agent {api.health_agent}"):
            outcome = one_reply(self.gateway, api.health_agent,
                                f"Health check: quote the reference tag {nonce} verbatim.")
        verdict, reason = check(outcome, (nonce,))
        ok = live[0] == 200 and ready[0] == 200 and verdict == "good"
        return PhaseResult("health", ok, f"{api.live} {live[0]}, {api.ready} {ready[0]}, "
                           f"reply: {reason}", {"live": live, "ready": ready,
                                                "reply_excerpt": outcome.content[:200]})

    # -- baseline and soak -----------------------------------------------------------------
    def baseline(self) -> PhaseResult:
        return _timed("baseline", self._baseline)

    def _baseline(self) -> PhaseResult:
        window = self.settings.baseline
        if window is None:
            return PhaseResult("baseline", True, "no baseline soak declared (policy [baseline] "
                               "or --baseline SECONDS): candidate judged by the policy alone")
        run = self._soak("baseline", window, list(self.settings.scenarios.scenarios))
        verdict = self.record.facts["baseline"]["verdict"]
        report_soak(run)
        allure.attach("\n".join(verdict["reasons"]), name="baseline verdict",
                      attachment_type=allure.attachment_type.TEXT)
        classes = {k: v for k, v in assess.class_counts(run).items() if v}
        numbers = {"requests": len(run.exchanges()), "classes": classes}
        if verdict["verdict"] == "fail":
            return PhaseResult("baseline", False, "the known-good fails this policy already, so "
                               "an upgrade cannot be judged against it: "
                               + "; ".join(verdict["reasons"]), numbers)
        note = "" if verdict["verdict"] == "pass" else (
            " (inconclusive as a soak of its own: " + "; ".join(verdict["reasons"]) + ")")
        return PhaseResult("baseline", True, f"known-good soaked for {window.window_s:g} s: "
                           f"{numbers['requests']} requests, signature classes seen: "
                           f"{classes or 'none'}{note}", numbers)

    def soak(self, label: str, window: Window) -> SoakRun:
        return self._soak(label, window, list(self.settings.scenarios.scenarios))

    def smoke(self) -> SoakRun:
        """One normal reply and one panel, once each, after the rollback."""
        chosen = []
        for kind in ("reply", "panel"):
            first = next((s for s in self.settings.scenarios.scenarios if s.kind == kind), None)
            if first is not None:
                chosen.append(replace(first, concurrency=1, pause_s=0.0, rate_per_min=None))
        timeout = max(s.timeout_s for s in chosen) * 2
        return self._soak("smoke", Window(0.0, timeout), chosen, once=True)

    def _soak(self, label: str, window: Window, scenarios: list[Scenario],
              once: bool = False) -> SoakRun:
        s = self.settings
        signatures = s.policy.signatures + catalogue(s.target.kind)
        watcher = LogWatcher.from_end(self.gateway.log_path, signatures)
        baseline = self.soaks.get("baseline") if label != "baseline" else None
        driver = SoakDriver(self.gateway.endpoint, scenarios, Judge(s.policy, baseline),
                            watcher, progress=self.progress)
        with allure.step(f"{label}: {', '.join(f'{x.id} ({x.load()})' for x in scenarios)} "
                         f"for {window.window_s:g} s (drain up to {window.drain_s:g} s)"), watcher:
            run = driver.run(label, window, once=once)
        run.matches = watcher.snapshot()
        run.context = evidence.capture(run, watcher)  # evidence lines with their neighbours
        self.soaks[label] = run
        facts = assess.summary(run)
        facts["verdict"] = assess.soak_verdict(run, s.min_samples(), baseline)
        if baseline is not None:
            facts["comparison"] = assess.compare(baseline, run)
        self.record.facts[label] = facts
        return run

    # -- rollback -----------------------------------------------------------------------
    def rollback_backup(self) -> PhaseResult:
        self.record.rollback_started = True
        return _timed("rollback backup", lambda: self._backup("pre-rollback"))

    def rollback_restore(self) -> PhaseResult:
        return _timed("restore known-good", self._rollback_restore)

    def _rollback_restore(self) -> PhaseResult:
        with allure.step("stop the candidate gateway (if it is running)"):
            self.gateway.stop()
        result = self._install(self.settings.known_good, "restore")
        globs = self.settings.target.state.restore
        with allure.step(f"restore {globs} from the pre-upgrade backup"):
            restored = restore_paths(self.backups["pre-upgrade"], self.gateway.state_dir, globs)
            diff = compare_selected(self.backups["pre-upgrade"], self.gateway.state_dir, globs)
        same = not any(diff.values())
        result.details.update({"restored_files": len(restored), "state_diff": diff})
        self.record.facts["rollback_state_diff"] = diff
        if not same:
            return replace(result, ok=False, summary=f"state differs from the backup: {diff}")
        return replace(result, summary=f"{result.summary}; {len(restored)} state files equal "
                       "the pre-upgrade backup")


def one_reply(gateway: Gateway, agent: str, prompt: str, timeout: float = 180.0) -> ChatOutcome:
    async def go() -> ChatOutcome:
        async with httpx.AsyncClient() as client:
            return await gateway.endpoint.chat(client, agent, prompt, False, timeout)

    return asyncio.run(go())


def installed_integrity(installation: Installation) -> dict[str, Any]:
    """Compare the installed package's recorded integrity with the registry's."""
    release = installation.release
    lock = installation.prefix / "node_modules" / ".package-lock.json"
    recorded = None
    try:
        packages = json.loads(lock.read_text()).get("packages", {})
        recorded = packages.get(f"node_modules/{release.package}", {}).get("integrity")
    except (OSError, json.JSONDecodeError):
        pass
    return {"registry": release.integrity, "installed": recorded,
            "matches": recorded == release.integrity, "source": str(Path(lock).name)}
