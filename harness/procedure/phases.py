"""The upgrade procedure, phase by phase, speaking only to the gateway facade.

Each phase returns a `PhaseResult` (it never raises for a product failure), so the pytest
fixtures can chain them and later phases can say which earlier phase stopped them. Every phase
shows its evidence through the evidence port (harness.procedure.evidence: steps and
attachments) and keeps its outcome in the run's typed records (harness.procedure.records).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from harness.common import http, waits
from harness.common.errors import ExitCode, HarnessError
from harness.common.nonce import new_nonce
from harness.judge import assess
from harness.judge.judge import Judge
from harness.judge.policy import Window
from harness.judge.recovery_time import recovery
from harness.procedure import evidence as evidence_port
from harness.procedure.backup import compare_selected, restore_paths, selected
from harness.procedure.evidence import Evidence
from harness.procedure.gate import RestartGate
from harness.procedure.records import NodeFit, RollbackPath, SoakRecord
from harness.procedure.run import RunRecord, RunSettings
from harness.procedure.safety import BY_UPDATER, Prepared, Safety
from harness.reporting.evidence import capture
from harness.signals.signatures import catalogue
from harness.soak.driver import Progress, SoakDriver, SoakRun, check, known_durations
from harness.soak.scenarios import Scenario
from harness.targets import semver
from harness.targets.client import ChatOutcome
from harness.targets.config import patch_json_file
from harness.targets.gateway import Gateway
from harness.targets.registry import Release
from harness.targets.runtime import Installation, NodeRuntime, Runtime

MIN_FREE_BYTES = 2 * 1024**3
# after a rollback: judged by whether every path works and the pattern is gone, not by samples
POST_ROLLBACK = ("smoke", "watch", "late_watch")
HEALTH_PATIENCE_S = 30.0  # how long a just-started gateway may take to answer a health path
SMOKE_FAST_S = 30.0  # a path the known-good's baseline finished within this is a fast one
Note = Callable[[str, bool, Any, Any], None]  # one preflight check: name, ok, observed, expected


@dataclass
class PhaseResult:
    name: str
    ok: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    started_at: float = 0.0  # unix time


class PhaseError(Exception):
    """A phase stopped on an error of the harness or its infrastructure, not on a check."""


def report_phase(result: PhaseResult, evidence: Evidence | None = None) -> None:
    """The test body of a phase: its summary is the test's message. A phase that stopped on
    an error is reported as broken (an error, not a failed check of the product)."""
    (evidence or evidence_port.current()).label("story", result.name)
    if not result.ok and result.details.get("error"):
        raise PhaseError(f"harness error in phase {result.name} "
                         f"({result.details['error']}): {result.summary}")
    assert result.ok, result.summary


def _timed(name: str, body: Callable[[], PhaseResult],
           evidence: Evidence | None = None) -> PhaseResult:
    """Run a phase; any error becomes a failed result, so the procedure can go on to restore
    service (a failed fresh backup must never keep the rollback from running)."""
    shown = evidence or evidence_port.current()
    started = time.monotonic()
    started_at = time.time()
    with shown.step(f"phase {name}"):
        try:
            result = body()
        except HarnessError as exc:
            result = PhaseResult(name, False, str(exc), {"error": type(exc).__name__})
        except Exception as exc:  # noqa: BLE001 - reported with its traceback, never swallowed
            shown.attach_text(f"{name} error", traceback.format_exc())
            result = PhaseResult(name, False, f"{type(exc).__name__}: {exc}",
                                 {"error": type(exc).__name__})
        result.seconds = round(time.monotonic() - started, 3)
        result.started_at = round(started_at, 3)
        shown.attach_json(f"{name} result", result.__dict__)
    return result


class Procedure:
    """Upgrade, soak and rollback of one gateway, with the evidence of each step."""

    # a fleet's member: its seat (harness.fleet.seat.FleetSeat, given by the pytest layer)
    fleet_seat: Any = None

    def __init__(self, settings: RunSettings, record: RunRecord, runtime: Runtime,
                 node: NodeRuntime | None, gateway: Gateway, progress: Progress | None = None,
                 gate: RestartGate | None = None, evidence: Evidence | None = None) -> None:
        self.settings = settings
        self.evidence = evidence or evidence_port.current()
        self.record = record
        self.runtime = runtime
        self.node = node
        self.gateway = gateway
        self.progress = progress
        self.soaks: dict[str, SoakRun] = {}
        self._inconclusive: dict[str, str] = {}
        self.backup_dir = settings.cache_dir / "runs" / settings.run_id / "backups"
        self.safety = Safety(settings, record, runtime, node, gateway, self.backup_dir, gate,
                             evidence=self.evidence)
        self.prepared: dict[str, Prepared] = {}
        self.timeline: dict[str, PhaseResult] = {}  # the latest result of each phase by name

    def _timed(self, name: str, body: Callable[[], PhaseResult]) -> PhaseResult:
        return _timed(name, body, self.evidence)

    # -- upgrade ------------------------------------------------------------------------
    def preflight(self) -> PhaseResult:
        return self._timed("preflight", self._preflight)

    def _preflight(self) -> PhaseResult:
        s = self.settings
        checks: list[dict[str, Any]] = []
        self.evidence.attach_json("release lock", self.safety.lock)
        self.evidence.attach_text(f"policy {s.policy.path.name} sha256:{s.policy.sha256[:16]}",
                                  s.policy.text)

        def note(name: str, ok: bool, observed: Any, expected: Any) -> None:
            with self.evidence.step(f"{'ok' if ok else 'FAILED'}: {name}"):
                checks.append({"check": name, "ok": ok, "observed": observed,
                               "expected": expected})

        for role, release in (("candidate", s.candidate), ("known_good", s.known_good)):
            self._runs_on(role, release, note)
        free = shutil.disk_usage(s.cache_dir).free
        note("free disk space for the candidate install", free >= MIN_FREE_BYTES,
             f"{free / 1024**3:.1f} GiB", f">= {MIN_FREE_BYTES / 1024**3:.0f} GiB")
        note("known-good gateway serving", self.gateway.is_serving(),
             f"PID {self.gateway.pid}", "/healthz 200")
        active = self.gateway.active_version()
        note("active version is the declared known-good", active == s.known_good.version,
             active, s.known_good.version)
        for lint in self.gateway.config_lint():  # e.g. the gateway's own auto-update is off
            note(lint["check"], lint["ok"], lint["observed"], lint["expected"])
        self._as_the_registry_ships(active, note)
        failed = [c["check"] for c in checks if not c["ok"]]
        summary = "all checks passed" if not failed else "failed: " + "; ".join(failed)
        return PhaseResult("preflight", not failed, summary, {"checks": checks})

    def _runs_on(self, role: str, release: Release, note: Note) -> None:
        """`release` resolved with its hash, and the runtime it will run on fits it."""
        note(f"{role} {release.label} resolved with its integrity hash",
             bool(release.integrity), release.integrity or "none", "registry dist.integrity")
        if release.ecosystem != "npm":  # its Requires-Python against the harness's Python
            check = self.safety.packages.engine(release, None)
            note(check.line, check.ok, check.observed, check.expected)
            return
        engine = release.node_engine or "*"
        try:  # each version on its own Node.js (the profile's pin, or its engines)
            node = self.safety.node_for(release).version
        except HarnessError as exc:
            node = f"none ({exc.message})"
        fits = node[0].isdigit() and semver.satisfies(node, engine)
        self.record.installs.node[role] = NodeFit(release.version, release.node_engine, node,
                                                  fits)
        note(f"Node.js {node} {'satisfies' if fits else 'does not satisfy'} "
             f"{release.label} engines.node {engine!r}", fits, node, engine)

    def _as_the_registry_ships(self, active: str | None, note: Note) -> None:
        """The registry's own packages, fetched now so a rollback needs no network later, and
        the known-good install checked against its package."""
        s = self.settings
        prefix = self.gateway.active_prefix()
        for role, release in (("candidate", s.candidate), ("known_good", s.known_good)):
            what = "tarball" if release.ecosystem == "npm" else "resolved set"
            try:
                truth = self.safety.package_truth(release)
                note(f"{role} {what} matches the registry's integrity ({truth})", True,
                     release.integrity, "dist.integrity" if release.ecosystem == "npm"
                     else "each file's sha256 from the index")
            except HarnessError as exc:
                note(f"{role} {what} matches the registry's integrity", False, str(exc),
                     "dist.integrity")
        if prefix is not None and active == s.known_good.version:
            findings = self.safety.verify_install(s.known_good, prefix, "known-good (preflight)")
            note(f"the known-good install is {s.known_good.label} as the registry ships it",
                 not findings.corrupt, findings.summary(), "every shipped file, identical")

    def backup(self) -> PhaseResult:
        return self._timed("backup", lambda: self._backup("pre-upgrade", decides=True))

    def _backup(self, label: str, decides: bool) -> PhaseResult:
        assessed = self.safety.backup(label, decides)
        details = assessed.as_dict()
        if not assessed.go:  # before a rollback it is reported, and never blocks the rollback
            return PhaseResult(label, False, assessed.no_go() if decides else assessed.line(),
                               details)
        return PhaseResult(label, True, assessed.line(), details)

    def install(self) -> PhaseResult:
        return self._timed("install", self._install_candidate)

    def _install_candidate(self) -> PhaseResult:
        """The candidate into its own prefix beside the running known-good: no interruption."""
        check = self.safety.lock_holds("install")
        if not check.ok:
            return PhaseResult("install", False, check.message(self.safety.lock),
                               check.as_dict())
        release = self.settings.candidate
        prepared = self.safety.prepare(release, "candidate (install)")
        self.prepared["candidate"] = prepared
        marker = self.safety.packages.installed_integrity(prepared.installation)
        ok = prepared.ok and marker["matches"]
        how = {"kept prefix": "existing prefix reused, no download",
               "download": f"downloaded and installed in {prepared.installation.seconds:.0f} s"
               }.get(prepared.path, prepared.path)
        summary = f"{release.label} ready beside the known-good ({how}); " \
            f"{prepared.findings.summary()}"
        if not marker["matches"]:
            summary += f"; the install's recorded integrity {marker['installed']} is not the " \
                "registry's"
        return PhaseResult("install", ok, summary, {**prepared.as_dict(), "integrity": marker})

    def restart_gate(self, purpose: str) -> PhaseResult:
        return self._kept(self._timed(f"restart gate ({purpose})",
                                 lambda: self._restart_gate(purpose)))

    def _restart_gate(self, purpose: str) -> PhaseResult:
        s = self.settings
        rollback = self.record.rollback_started
        going, coming = (s.candidate, s.known_good) if rollback else (s.known_good, s.candidate)
        prepared = self.prepared.get("known_good" if rollback else "candidate")
        plan = {
            "interrupts": f"{going.label} serving at {self.gateway.endpoint.base_url} "
                          f"(PID {self.gateway.pid})",
            "then": f"switch to {coming.label} ({prepared.path if prepared else 'prefix'}, "
                    "verified against the registry) and start it",
            "backup": self.record.backups.posture_line,
            "health": f"{self.gateway.endpoint.base_url}{s.target.api.live}",
        }
        decision = self.safety.ask(purpose, plan, halt_on_refusal=not rollback)
        summary = decision.summary()
        if not decision.approved:
            still = self.gateway.is_serving()
            summary += f"; {going.version} {'still serving' if still else 'NOT serving'}"
            if rollback:  # the failed candidate stays: a person must decide, and soon
                summary += (f"; the rollback to {coming.version} is prepared and not done: the "
                            "person who holds the restart gate must decide")
        return PhaseResult("restart_gate", decision.approved, summary, decision.as_dict())

    def stop(self) -> PhaseResult:
        return self._timed("stop", self._stop)

    def _stop(self) -> PhaseResult:
        """The interruption: re-check the lock and the backup, stop, switch to the candidate."""
        check = self.safety.lock_holds("stop")
        if not check.ok:
            return PhaseResult("stop", False, check.message(self.safety.lock), check.as_dict())
        fresh = self.safety.refresh("pre-upgrade")
        if fresh.weakened:
            reason = (f"the state changed since the pre-upgrade backup and taking it again "
                      f"gave posture {fresh.posture}: refusing to stop on a weaker backup")
            self.record.halt("backup_no_go", ExitCode.BACKUP_NO_GO, reason)
            return PhaseResult("stop", False, reason, fresh.as_dict())
        pid = self.gateway.pid
        self.record.changed = True
        with self.evidence.step(f"stop gateway PID {pid}"):
            was_running = self.gateway.stop()
        if self.gateway.is_running():
            return PhaseResult("stop", False, f"gateway PID {pid} still running",
                               {"was_running": was_running})
        prepared = self.prepared["candidate"]
        with self.evidence.step(f"switch the active install to {self.settings.candidate.version}"):
            self.gateway.activate(prepared.installation)
        summary = (f"gateway PID {pid} stopped; active install switched to "
                   f"{self.gateway.active_version()}")
        details: dict[str, Any] = {"was_running": was_running, "backup_refresh": fresh.as_dict(),
                                   "prefix": str(prepared.installation.prefix)}
        patch = self.settings.candidate_config
        if patch:
            config = self.gateway.state_dir / self.settings.target.state.config
            with self.evidence.step(f"apply the candidate's config change to {config.name}"):
                patch_json_file(config, patch)
                self.evidence.attach_json("candidate config patch", patch)
            details["config_patch"] = patch
            summary += f"; config patched with {json.dumps(patch)}"
        ok = self.gateway.active_version() == self.settings.candidate.version
        return PhaseResult("stop", ok, summary, details)

    def start(self) -> PhaseResult:
        return self._kept(self._timed("start", self._start))

    def _start(self) -> PhaseResult:
        pid = self.gateway.start()
        with self.evidence.step(f"gateway started as PID {pid}; waiting for /healthz and /readyz"):
            ready = self.gateway.wait_ready()
        if not ready.ready:
            self.evidence.attach_text("gateway log tail", self.gateway.log_tail(40))
            return PhaseResult("start", False, f"gateway never became ready: {ready.reason}",
                               {"pid": pid, "live": ready.live, "ready": ready.readyz})
        return PhaseResult("start", True, f"PID {pid} ready in {ready.seconds:.1f} s",
                           {"pid": pid, "version": self.gateway.active_version(),
                            "ready_s": round(ready.seconds, 2)})

    def health(self) -> PhaseResult:
        return self._timed("health", self._health)

    def _health(self) -> PhaseResult:
        api = self.settings.target.api
        live, live_said = self._probe_until_200(api.live)
        ready, ready_said = self._probe_until_200(api.ready)
        nonce = new_nonce()
        with self.evidence.step(f"one real reply from agent {api.health_agent}"):
            outcome = one_reply(self.gateway, api.health_agent,
                                f"Health check: quote the reference tag {nonce} verbatim.")
        verdict, reason = check(outcome, (nonce,))
        ok = live[0] == 200 and ready[0] == 200 and verdict == "good"
        return PhaseResult("health", ok, f"{api.live} {live_said}, {api.ready} {ready_said}, "
                           f"reply: {reason}", {"live": live, "ready": ready,
                                                "reply_excerpt": outcome.content[:200]})

    def _probe_until_200(self, path: str) -> tuple[tuple[int | None, str], str]:
        """A health path as a client sees it, and how it reads in the summary. A gateway that
        has just started may be too busy (loading its plugins on its one thread) to answer at
        once, so a probe that gets no answer or no 200 is asked again, for at most
        HEALTH_PATIENCE_S; the last answer stands, with its reason."""
        seen: list[tuple[int | None, str]] = []

        def answered() -> bool:
            seen.append(self.gateway.endpoint.probe(path))
            return seen[-1][0] == 200

        began = time.monotonic()
        waits.poll(answered, timeout_s=HEALTH_PATIENCE_S, interval_s=0.5)
        status, text = seen[-1]
        said = str(status) if status == 200 else f"{status} ({text[:160]})"
        if len(seen) > 1:
            said += f" after {len(seen)} probes in {time.monotonic() - began:.1f} s"
        return seen[-1], said

    # -- baseline and soak -----------------------------------------------------------------
    def baseline(self) -> PhaseResult:
        return self._timed("baseline", self._baseline)

    def _baseline(self) -> PhaseResult:
        window = self.settings.baseline
        if window is None:
            return PhaseResult("baseline", True, "no baseline soak declared (policy [baseline] "
                               "or --baseline SECONDS): candidate judged by the policy alone")
        run = self._soak("baseline", window, list(self.settings.scenarios.scenarios))
        verdict = self.record.soaks["baseline"].verdict
        self.evidence.soak(run)
        self.evidence.attach_text("baseline verdict", "\n".join(verdict["reasons"]))
        classes = {k: v for k, v in assess.class_counts(run).items() if v}
        numbers = {"requests": run.request_count(), "classes": classes}
        if verdict["verdict"] == "fail":
            return PhaseResult("baseline", False, "the known-good fails this policy already, so "
                               "an upgrade cannot be judged against it: "
                               + "; ".join(verdict["reasons"]), numbers)
        note = "" if verdict["verdict"] == "pass" else (
            " (inconclusive as a soak of its own: " + "; ".join(verdict["reasons"]) + ")")
        return PhaseResult("baseline", True, f"known-good soaked for {window.window_s:g} s: "
                           f"{numbers['requests']} requests, signature classes seen: "
                           f"{classes or 'none'}{note}", numbers)

    def inconclusive_mode(self, run: SoakRun) -> str:
        """fail or pass for an inconclusive path of this soak; asked once at the manual gate
        when the run says `ask`."""
        if run.label in self._inconclusive:
            return self._inconclusive[run.label]
        soaked = self.record.soak_of(run.label)
        verdict = str(soaked.verdict.get("verdict", ""))

        def ask() -> tuple[bool, dict[str, Any]]:
            unsure = [sid for sid, v in soaked.verdict["scenarios"].items()
                      if v["verdict"] == "inconclusive"]
            gate = RestartGate("manual", self.settings.run_dir, self.settings.gate_timeout_s,
                               terminal=self.safety.gate.terminal, say=self.safety.gate.say)
            decision = gate.ask(f"accept an inconclusive {run.label} of "
                                f"{self.gateway.active_version()} (too few samples on "
                                f"{', '.join(unsure)})", {"paths": unsure})
            return decision.approved, decision.as_dict()

        mode, decision = assess.inconclusive_mode(self.settings.on_inconclusive, verdict, ask)
        if decision is not None:
            soaked.inconclusive_decision = decision
        self._inconclusive[run.label] = mode
        return mode

    def soak(self, label: str, window: Window) -> SoakRun:
        """The whole scenario mix (the slow reasoner's paths included) for the window: the
        soak, the baseline, and after a rollback its early and its later watch."""
        return self._soak(label, window, list(self.settings.scenarios.scenarios))

    def fleet_hold(self) -> PhaseResult:
        """A fleet member's hold after its own verdict, until the fleet's word."""
        return self.fleet_seat.hold(self.record)

    def smoke(self) -> SoakRun:
        """Once each, after the rollback, the paths the known-good's baseline showed fast: the
        slow reasoner's are left to the early watch, which waits for them anyway. Without a
        baseline: one normal reply and one panel."""
        mix = self.settings.scenarios.scenarios
        baseline = self.soaks.get("baseline")
        known = known_durations(baseline) if baseline is not None else {}
        chosen = [s for s in mix if known.get(s.id, SMOKE_FAST_S + 1) <= SMOKE_FAST_S]
        if not chosen:
            chosen = [first for kind in ("reply", "panel")
                      if (first := next((s for s in mix if s.kind == kind), None)) is not None]
        chosen = [replace(s, concurrency=1, pause_s=0.0, rate_per_min=None) for s in chosen]
        timeout = max(s.timeout_s for s in chosen) * 2
        smoke = self._soak("smoke", Window(0.0, timeout), chosen, once=True)
        self.record.rollback.recovery = recovery(self.soaks.get("soak"), self.timeline, smoke)
        if self.record.rollback_started:  # the lock re-checked, once service is back
            check = self.safety.lock_holds("rollback", refuse=False)
            if not check.ok:
                self.record.locks.rollback_note = check.message(self.safety.lock)
        return smoke

    def _kept(self, result: PhaseResult) -> PhaseResult:
        """A phase's result kept by name (the latest one), for the recovery's breakdown."""
        self.timeline[result.name] = result
        return result

    def _soak(self, label: str, window: Window, scenarios: list[Scenario],
              once: bool = False) -> SoakRun:
        s = self.settings
        signatures = s.policy.signatures + catalogue(s.target.kind)
        watcher = self.gateway.log_watcher(signatures)
        baseline = self.soaks.get("baseline") if label != "baseline" else None
        driver = SoakDriver(self.gateway.endpoint, scenarios, Judge(s.policy, baseline),
                            watcher, progress=self.progress,
                            known_s=known_durations(baseline) if baseline else None,
                            # the candidate's soak after a change: a decision rolls back
                            decision_rolls_back=label == "soak" and self.record.changed,
                            records=s.run_dir / "requests")  # each request as it ends
        with self.evidence.step(f"{label}: {', '.join(f'{x.id} ({x.load()})' for x in scenarios)} "
                         f"for {window.window_s:g} s (drain up to {window.drain_s:g} s)"), watcher:
            run = driver.run(label, window, once=once)
        run.matches = watcher.snapshot()
        run.context = capture(run, watcher)  # evidence lines with their neighbours
        self.soaks[label] = run
        soaked = SoakRecord(label, assess.summary(run),
                            log_source=self.gateway.log_report(watcher, run.started))
        if label in POST_ROLLBACK:  # judged as its test judges it: every path shown working
            soaked.verdict = assess.watch_verdict(run)
        else:
            soaked.verdict = assess.soak_verdict(run, s.min_samples(), baseline)
        if baseline is not None:
            soaked.comparison = assess.compare(baseline, run)
        self.record.soaks[label] = soaked
        return run

    # -- rollback -----------------------------------------------------------------------
    def rollback_backup(self) -> PhaseResult:
        self.record.rollback_started = True
        return self._kept(self._timed("rollback backup",
                                 lambda: self._backup("pre-rollback", decides=False)))

    def rollback_prepare(self) -> PhaseResult:
        return self._kept(self._timed("prepare known-good", self._rollback_prepare))

    def _rollback_prepare(self) -> PhaseResult:
        """The known-good back in place beside the candidate, before anything is interrupted:
        its kept prefix (no download) when it is there and intact, else a reinstall."""
        self.record.rollback_started = True
        # The rollback goes to the locked known-good whatever the specs say now; a moved
        # candidate is recorded once the known-good has replied (the smoke), as the registry's
        # answer is not worth a second on the way back, and its being unreachable is no matter.
        release = self.settings.known_good
        candidate = self.prepared.get("candidate")
        if self.settings.rollback_path == "updater" and candidate is not None:
            prepared = self.safety.prepare_by_updater(candidate.installation, release,
                                                      "known-good (rollback)")
        else:
            prepared = self.safety.prepare(release, "known-good (rollback)")
        self.prepared["known_good"] = prepared
        path = rollback_path(prepared, self.settings.candidate.label)
        self.record.rollback.path = RollbackPath(prepared.as_dict(), prepared.path, path)
        summary = f"{path}; {prepared.findings.summary()}"
        if prepared.updater is not None:
            summary += f". The updater: {prepared.updater.summary}"
        return PhaseResult("rollback_prepare", prepared.ok, summary, prepared.as_dict())

    def rollback_restore(self) -> PhaseResult:
        return self._kept(self._timed("restore known-good", self._rollback_restore))

    def _rollback_restore(self) -> PhaseResult:
        return self.restore_known_good(self.prepared["known_good"].installation)

    def restore_known_good(self, installation: Installation) -> PhaseResult:
        """Stop whatever runs, switch `current` to the known-good and give its state back from
        the pre-upgrade backup, hash by hash: the rollback's restore, and the one a harness
        that is interrupted before any version was proven does itself
        (harness.procedure.recovery)."""
        fresh = self.safety.refresh("pre-rollback")  # insurance only: it never blocks
        with self.evidence.step("stop the candidate gateway (if it is running)"):
            self.gateway.stop()
        with self.evidence.step(f"switch the active install to {self.settings.known_good.version}"):
            self.gateway.activate(installation)
        active = self.gateway.active_version()
        backup = self.safety.backup_of("pre-upgrade")
        globs = self.settings.target.state.restore
        held = [g for g in globs if backup and any(selected(p, [g]) for p in backup.manifest)]
        if self.safety.assessments.get("pre-upgrade") is not None and \
                self.safety.assessments["pre-upgrade"].posture == "full":
            held = list(globs)  # a full backup holds all of it, even what did not exist yet
        unheld = [g for g in globs if g not in held]
        restored: list[str] = []
        diff = {"missing": [], "added": [], "changed": []}
        if backup is not None and held:
            with self.evidence.step(f"restore {held} from the pre-upgrade backup"):
                restored = restore_paths(backup, self.gateway.state_dir, held)
                diff = compare_selected(backup, self.gateway.state_dir, held)
        same = not any(diff.values())
        self.record.rollback.state_diff = diff
        if unheld:
            self.record.rollback.not_restored = unheld
        details = {"active_version": active, "restored_files": len(restored),
                   "state_diff": diff, "not_in_backup": unheld, "backup_refresh": fresh,
                   "rollback_path": self.record.rollback.path.path
                   if self.record.rollback.path else None}
        if active != self.settings.known_good.version:
            return PhaseResult("restore", False, f"active version is {active}, not "
                               f"{self.settings.known_good.version}", details)
        if not same:
            return PhaseResult("restore", False, f"state differs from the backup: {diff}",
                               details)
        how = details["rollback_path"] or "its kept prefix"
        summary = (f"{self.settings.known_good.label} active ({how}); {len(restored)} state "
                   "files equal the pre-upgrade backup")
        if unheld:
            summary += f"; not restored, the backup does not hold them: {', '.join(unheld)}"
        return PhaseResult("restore", True, summary, details)


def rollback_path(prepared: Prepared, candidate: str) -> str:
    """How the known-good was made ready, in the words of the report and the claim."""
    seconds = prepared.installation.seconds
    path = {"kept prefix": "prefix switch: the kept known-good prefix, no download",
            BY_UPDATER: f"the target's own updater, run by {candidate} on a copy of its "
                        f"install ({seconds:.0f} s)"
            }.get(prepared.path, f"reinstall from the registry ({prepared.path}, "
                                 f"{seconds:.0f} s)")
    if prepared.updater is not None and not prepared.updater.used:
        path += " (the target's own updater was tried: its result was not used)"
    return path


def one_reply(gateway: Gateway, agent: str, prompt: str, timeout: float = 180.0) -> ChatOutcome:
    async def go() -> ChatOutcome:
        async with http.async_client() as client:
            return await gateway.endpoint.chat(client, agent, prompt, False, timeout)

    return asyncio.run(go())
