"""One acceptance run: its settings, what happened in it, and the verdict a CI job reads.

Settings are resolved once (command line over files), before any test runs; phases and
scenarios read the typed `RunSettings`. `RunRecord` collects the outcome of every phase and
soak; `verdict()` turns it into `passed`, `rolled_back`, `rollback_failed`, `aborted` or
`interrupted` (a signal or a phase past its time limit: never a pass, whatever ran before).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness import __version__
from harness.common.errors import ExitCode
from harness.judge.policy import Policy, Window
from harness.procedure.gate import Decision
from harness.procedure.records import AttachedRecord, Records
from harness.reporting.landing import properties
from harness.reporting.redact import redact
from harness.soak.scenarios import ScenarioSet
from harness.targets.profile import TargetProfile
from harness.targets.registry import Release

ROLLBACK_PATHS = ("prefix", "updater")


@dataclass(frozen=True)
class RunSettings:
    run_id: str
    run_dir: Path
    cache_dir: Path
    target: TargetProfile
    policy: Policy
    scenarios: ScenarioSet
    known_good: Release | None  # None for an attached deployment: the run installs nothing
    candidate: Release | None
    soak: Window
    watch: Window
    restart_gate: str
    candidate_config: dict[str, Any] = field(default_factory=dict)
    baseline: Window | None = None
    on_inconclusive: str = "fail"
    gate_timeout_s: float = 600.0  # how long a manual restart gate waits for a person
    accept_backup_posture: str | None = None  # a posture below full accepted up front
    late_watch: Window | None = None  # the later, short watch after the early one (None: none)
    # how a rollback gets the known-good back: its kept prefix (else a reinstall), or the
    # target's own updater run by the candidate ([package.updater] of the profile)
    rollback_path: str = "prefix"
    # a fleet's member: the fleet's lock its releases came from (file, sha256, fleet, when)
    fleet_lock: dict[str, Any] | None = None

    def min_samples(self) -> dict[str, int]:
        """Per scenario: its own minimum, else the policy's."""
        return {s.id: s.min_samples or self.policy.min_samples
                for s in self.scenarios.scenarios}

    def lock(self) -> dict[str, Any]:
        """What this run's review was locked against, before anything changed."""
        attached = None
        if self.target.attached is not None:
            from harness.targets.attached import attached_lock

            attached = attached_lock(self.target)
        return {
            "run_id": self.run_id, "harness_version": __version__, "host": socket.gethostname(),
            "target": {"name": self.target.name, "kind": self.target.kind,
                       "file": str(self.target.path), "sha256": self.target.sha256},
            "known_good": self.known_good.as_dict() if self.known_good else None,
            "candidate": self.candidate.as_dict() if self.candidate else None,
            "attached": attached,
            "policy": {"name": self.policy.name, "file": str(self.policy.path),
                       "sha256": self.policy.sha256},
            "scenarios": {"path": str(self.scenarios.path), "sha256": self.scenarios.sha256,
                          "files": self.scenarios.files, "ids": self.scenarios.ids(),
                          "min_samples": self.min_samples()},
            "soak_window_s": self.soak.window_s, "watch_window_s": self.watch.window_s,
            "late_watch_window_s": self.late_watch.window_s if self.late_watch else None,
            "late_watch_delay_s": self.late_watch.delay_s if self.late_watch else None,
            "baseline_window_s": self.baseline.window_s if self.baseline else None,
            "on_inconclusive": self.on_inconclusive,
            "restart_gate": self.restart_gate, "candidate_config": self.candidate_config,
            "rollback_path": self.rollback_path,
            "gate_timeout_s": self.gate_timeout_s,
            "accept_backup_posture": self.accept_backup_posture,
            **({"fleet_lock": self.fleet_lock} if self.fleet_lock else {}),
        }


@dataclass(frozen=True)
class Windows:
    soak: Window
    watch: Window
    baseline: Window | None
    late_watch: Window | None


def with_windows(policy: Policy, soak_s: float | None = None, watch_s: float | None = None,
                 baseline_s: float | None = None, late_watch_s: float | None = None,
                 late_delay_s: float | None = None) -> Windows:
    """The policy's windows, with the command line's lengths where given. A baseline or later
    watch of 0 s means none; one the policy does not declare drains like the soak (a baseline)
    or like the early watch (a later watch, which then starts at once unless a delay is given).
    """
    soak = replace(policy.soak, window_s=soak_s) if soak_s else policy.soak
    watch = replace(policy.watch, window_s=watch_s) if watch_s else policy.watch
    baseline = policy.baseline
    if baseline_s is not None:
        baseline = replace(baseline or policy.soak, window_s=baseline_s) if baseline_s else None
    late = policy.late_watch
    if late_watch_s is not None:
        late = replace(late or policy.watch, window_s=late_watch_s) if late_watch_s else None
    if late is not None and late_delay_s is not None:
        late = replace(late, delay_s=late_delay_s)
    return Windows(soak, watch, baseline, late)


@dataclass
class PhaseOutcome:
    family: str
    name: str
    outcome: str  # passed | failed | skipped
    seconds: float
    reason: str = ""


@dataclass
class RunRecord(Records):
    """The run as it went: its phases, whether it changed the host, the typed records of every
    step (harness.procedure.records), and what served at the end."""

    started: float = field(default_factory=time.time)
    phases: list[PhaseOutcome] = field(default_factory=list)
    changed: bool = False  # something on the host was stopped or switched
    rollback_started: bool = False
    final_state: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_code: ExitCode | None = None
    # a refusal before anything changed: (outcome, exit code, reason), e.g. a stale lock
    halted: tuple[str, ExitCode, str] | None = None
    # SIGINT, SIGTERM or a phase's time limit (harness.procedure.interrupt.Interruption.as_dict())
    interruption: dict[str, Any] | None = None
    # told once the run proves a version (`candidate` or `known_good`): the guard stands down
    on_proven: Callable[[str], None] | None = field(default=None, repr=False)

    def halt(self, outcome: str, code: ExitCode, reason: str) -> None:
        if not self.changed and self.halted is None:
            self.halted = (outcome, code, reason)

    def failures(self, *families: str) -> list[PhaseOutcome]:
        return [p for p in self.phases if p.outcome == "failed" and p.family in families]

    def proven(self) -> str | None:
        """Which version this run proved once something changed: `candidate` (it passed every
        phase and the soak), `known_good` (after a rollback, its watches passed; after an
        interruption, the restored one answered a real reply), or None."""
        if self.after_interruption.proven:
            return "known_good"
        ran = {p.name: p.outcome for p in self.phases}
        if self.rollback_started:
            watched = ran.get("rollback_watch") == "passed" and \
                ran.get("rollback_late_watch", "skipped") != "failed"
            return "known_good" if watched else None
        if ran.get("soak_policy") == "passed" and not self.failures("upgrade", "soak"):
            return "candidate"
        return None

    def unproven_change(self) -> bool:
        """Something was changed and no version has been proven since: the window in which a
        harness that stops must put the known-good back itself."""
        return self.changed and self.proven() is None

    def needs_rollback(self) -> bool:
        return self.changed and bool(self.failures("upgrade", "soak"))

    def outcome(self) -> tuple[str, ExitCode | int]:
        if self.error_code is not None:
            return "error", self.error_code
        if self.interruption is not None:
            return "interrupted", ExitCode.INTERRUPTED
        if self.halted is not None and not self.changed:
            return self.halted[0], self.halted[1]
        if self.rollback_started:
            if self.failures("rollback"):
                return "rollback_failed", ExitCode.ROLLBACK_FAILED
            return "rolled_back", ExitCode.ROLLED_BACK
        if self.failures("soak") and not any(p.family == "upgrade" for p in self.phases):
            return "soak_failed", ExitCode.SOAK_FAILED
        if self.failures("upgrade", "soak"):
            if not self.changed:
                return "aborted", ExitCode.ABORTED
            # a failure the rollback tests did not act on (e.g. they were deselected)
            return "rollback_failed", ExitCode.ROLLBACK_FAILED
        if not self.phases:
            return "no_tests", 5
        return "passed", ExitCode.PASSED


def build_verdict(record: RunRecord, lock: dict[str, Any] | None) -> dict[str, Any]:
    outcome, code = record.outcome()
    verdict = {
        "outcome": outcome, "exit_code": int(code), "error": record.error,
        "started": round(record.started, 3), "ended": round(time.time(), 3),
        "lock": lock,
        "phases": [p.__dict__ for p in record.phases],
        **record.as_dict(record.interruption),
        "final_state": record.final_state,
        "claim": _claim(outcome, lock, record),
    }
    # the backup posture leads every claim about a run that got going; a run stopped on an
    # error before any backup was taken has no posture to state
    if record.error is None or record.backups.posture is not None:
        verdict["claim"] = f"{posture_line(record)}. {verdict['claim']}"
    return verdict


def posture_line(record: RunRecord) -> str:
    """The first words of every claim: how safe the run's backup was."""
    line = record.backups.posture_line
    if line:
        return line[0].upper() + line[1:]
    return "Backup posture: none taken (no backup phase ran)"


def write_verdict(path: Path, record: RunRecord, lock: dict[str, Any] | None) -> dict[str, Any]:
    verdict = build_verdict(record, lock)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(json.dumps(verdict, indent=2, default=str)))  # no secret on disk
    return verdict


def allure_environment(lock: dict[str, Any], record: Records | None = None) -> str:
    """The report's environment panel: what was upgraded (or soaked as found), under which
    declared policy."""
    rows: dict[str, Any] = {"target": f"{lock['target']['name']} ({lock['target']['kind']})"}
    attached = lock.get("attached")
    if attached:
        found = (record.attached.before if record and record.attached else None) or {}
        rows["attached"] = f"{attached['unit']} on {attached['host']} at {attached['url']}"
        rows["running_version"] = f"{attached['package']} {found.get('version')}"
        rows["upgrade"] = "none attempted: soaked as found"
    else:
        rows["known_good"] = f"{lock['known_good']['version']} {lock['known_good']['integrity']}"
        rows["candidate"] = f"{lock['candidate']['version']} {lock['candidate']['integrity']}"
    rows.update({
        "policy": f"{lock['policy']['name']} sha256:{lock['policy']['sha256']}",
        "soak_window_s": lock["soak_window_s"], "host": lock["host"],
        "harness_version": lock["harness_version"], "run_id": lock["run_id"],
    })
    return properties(rows)


def _claim(outcome: str, lock: dict[str, Any] | None, record: RunRecord) -> str:
    """What this run shows, and no more (the seed's 'what I am not claiming')."""
    if record.error is not None:
        return f"No claim: the run stopped on an error before judging anything: {record.error}"
    if lock is None and outcome == "interrupted":
        by = (record.interruption or {}).get("by") or "a signal"
        return (f"Interrupted by {by} before the run had locked its review: no claim, and "
                "nothing had been started or changed.")
    if lock is None:
        return "No claim: the run stopped before its inputs were valid."
    if lock.get("attached"):
        return _attached_claim(outcome, lock, record)
    cand = resolved(lock["candidate"])
    good = resolved(lock["known_good"])
    policy = lock["policy"]["name"]
    failed = ", ".join(sorted({p.name for p in record.failures("upgrade", "soak")}))
    if outcome == "interrupted":
        return _interrupted(record, cand, good)
    if record.halted is not None and outcome == record.halted[0]:
        return (f"No claim about {cand}: {record.halted[2]}. Stopped before any change; {good} "
                "was left serving.")
    if not any(p.family == "upgrade" for p in record.phases):
        running = record.final_state.get("version") or good
        verb = "passed" if outcome == "passed" else f"failed ({failed})"
        return (f"The running {running} {verb} the soak on this host under policy {policy!r}; "
                "no upgrade was part of this run.")
    return _upgrade_claim(outcome, lock, record, cand, good, failed)


def _upgrade_claim(outcome: str, lock: dict[str, Any], record: RunRecord, cand: str,
                   good: str, failed: str) -> str:
    """The claim of a run that upgraded (or set out to)."""
    policy = lock["policy"]["name"]
    paths = ", ".join(lock.get("scenarios", {}).get("ids", [])) or "the declared paths"
    if outcome == "passed":
        soak = record.soak_of("soak")
        if soak.inconclusive:
            by = soak.accepted_by
            accepted = f"by {by} at the manual gate" if by else "for this run"
            return (f"{cand} passed every phase on this host under policy {policy!r}, but the "
                    f"soak was inconclusive on {', '.join(soak.inconclusive)} (too few "
                    f"samples; accepted {accepted}); no claim about those paths.")
        return (f"{cand} passed every phase and the soak ({paths}) on this host under policy "
                f"{policy!r}; no claim beyond these paths and this window.")
    if outcome == "rolled_back":
        return (f"{cand} failed {failed} on this host under policy {policy!r} (paths: "
                f"{paths}); {good} was restored{_by_updater(record)}; {_watches(record)}. "
                "No claim that the release is bad elsewhere.")
    if outcome == "rollback_failed":
        return _rollback_failed(record, cand, good, failed, policy, lock)
    if outcome == "aborted":
        return f"Stopped before any change ({failed}); {good} was left as it was."
    return "No claim."


def resolved(release: dict[str, Any]) -> str:
    """A version as asked for and as resolved: `2026.3 -> 2026.3.31` when a range, a partial
    version or a dist-tag named something else than the exact version."""
    spec, version = str(release.get("spec") or ""), str(release.get("version"))
    return version if not spec or spec == version else f"{spec} -> {version}"


def _attached_claim(outcome: str, lock: dict[str, Any], record: RunRecord) -> str:
    """A soak of a deployment the run found running: what ran, that nothing was changed, and
    whether it stayed as found."""
    at = lock["attached"]
    seen = record.attached or AttachedRecord()
    found = seen.before or {}
    version = found.get("version") or "an unknown version"
    labels = found.get("labels") or {"main_pid": "MainPID", "active_since": "ActiveEnterTimestamp"}
    identity = [k for k in ("container_id", "main_pid", "active_since") if k in labels]
    spoken = {"MainPID": "PID", "ActiveEnterTimestamp": "active since", "StartedAt": "started"}
    seen_as = "".join(f", {spoken.get(labels[k], labels[k])} {found.get(k)}" for k in identity)
    what = f"the running {at['unit']} on {at['host']} ({at['package']} {version}{seen_as})"
    policy = lock["policy"]["name"]
    paths = ", ".join(lock.get("scenarios", {}).get("ids", [])) or "the declared paths"
    if outcome == "passed":
        unsure = record.soak_of("soak").inconclusive
        verdict = f"passed the soak ({paths})"
        if unsure:
            verdict += f", inconclusive on {', '.join(unsure)} (too few samples; accepted)"
    else:
        failed = ", ".join(sorted({p.name for p in record.failures("soak")})) or outcome
        verdict = f"failed {failed}"
    if seen.changes is None:
        after = "its state after the soak was not read"
    elif seen.changes:
        after = f"it did not stay as found: {'; '.join(seen.changes)}"
    else:
        names = [{"ActiveEnterTimestamp": "start time", "StartedAt": "start time"}.get(
            labels[k], labels[k]) for k in identity] or ["live probe"]
        same = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        after = f"it was left as found (same {same}, serving)"
    notes = found.get("notes") or []
    caveat = f" Version sources disagree: {'; '.join(notes)}." if notes else ""
    return (f"Attached to {what}: it {verdict} on this host under policy {policy!r}. No upgrade "
            f"was attempted: nothing was installed, stopped or restarted; {after}.{caveat} No "
            "claim beyond these paths and this window.")


def _watches(record: RunRecord) -> str:
    """What the post-rollback watches showed, each by its own verdict."""
    early = record.soak_of("watch").outcome
    late = record.soaks.get("late_watch")
    if late is None:
        ran = {p.name: p for p in record.phases if p.family == "rollback"}
        why = ran["rollback_late_watch"].reason if "rollback_late_watch" in ran else "not run"
        return f"its watch {_verb(early)} (no later watch: {why})"
    return (f"its early watch {_verb(early)}, and its later watch after {late.delay_s:g} s of "
            f"quiet {_verb(late.outcome)}")


def _by_updater(record: RunRecord) -> str:
    """When the target's own updater did the rollback: what its warnings really were."""
    updater = record.installs.updater
    if updater is None or not updater.used:
        return ""
    if not updater.named or updater.verifier is None:
        return " by the target's own updater"
    verifier = updater.verifier
    return (f" by the target's own updater, whose verifier named {updater.named} file(s) "
            f"missing: {verifier.verdict} against {verifier.package}@{verifier.version}'s own "
            "package")


def _verb(verdict: str) -> str:
    return {"pass": "passed", "fail": "failed"}.get(verdict, verdict)


def _rollback_failed(record: RunRecord, cand: str, good: str, failed: str,
                     policy: str, lock: dict[str, Any]) -> str:
    """The rollback did not prove healthy: which step stopped it, and why."""
    steps = record.failures("rollback")
    decision = record.restarts[-1] if record.restarts else None
    if any(p.name == "rollback_restart_gate" for p in steps) and decision is not None \
            and decision.approved is False:  # not a gate that broke before deciding
        return _rollback_not_approved(record, decision, cand, good, failed, policy,
                                      lock.get("gate_timeout_s"))
    which = "; ".join(f"{p.name}: {p.reason.splitlines()[0][:200]}" if p.reason else p.name
                      for p in steps) or "no rollback step ran"
    return (f"{cand} failed {failed}, and the rollback to {good} did not prove healthy "
            f"({which}): a person must look now.")


def _rollback_not_approved(record: RunRecord, decision: Decision, cand: str,
                           good: str, failed: str, policy: str,
                           timeout_s: float | None) -> str:
    """The rollback's restart gate got no approval: nothing was interrupted, so the failed
    candidate kept running. Say so, and who must decide."""
    if decision.channel == "timeout":
        waited = timeout_s if timeout_s is not None else decision.waited_s
        how = f"nobody approved its restart within {waited:g} s"
    else:
        how = (f"{decision.by} refused its restart via {decision.channel} "
               f"({decision.reason or 'no reason given'})")
    prepared = record.rollback.path.path if record.rollback.path else "prepared"
    state = record.final_state
    left = (f"The failed {state.get('version')} kept serving until the run ended"
            if state.get("serving") else "The gateway was NOT serving when the run ended")
    return (f"{cand} failed {failed} on this host under policy {policy!r}; its rollback to "
            f"{good} was prepared ({prepared}) but not done: {how} at the manual restart gate, "
            f"and without an approval the harness interrupts nothing. {left}. The person who "
            f"holds this run's restart gate must decide now: roll back to {good}, or keep the "
            f"failed {cand} knowingly.")


def _interrupted(record: RunRecord, cand: str, good: str) -> str:
    """What an interrupted run shows: what stopped it, where, what the harness did about it,
    and what served at the end. Never a claim about the candidate."""
    stop = record.interruption or {}
    signals = stop.get("signals") or []
    later = f" ({len(signals) - 1} more signal(s) during the teardown)" if len(signals) > 1 \
        else ""
    head = (f"Interrupted by {stop.get('by')} during {stop.get('during') or 'the session'}"
            f"{later}: no claim about {cand}.")
    state = record.final_state
    if state.get("serving"):
        tested = "proven" if state.get("proven") else "NOT proven"
        left = f"At the end {state.get('version')} was serving ({tested})"
    else:
        left = f"At the end nothing was serving (active install {state.get('version')})"
    after = state.get("after_run")
    return (f"{head} {_after_interruption(record, cand, good)} {left}"
            f"{f'; {after}' if after else ''}.")


def _after_interruption(record: RunRecord, cand: str, good: str) -> str:
    """What the harness (or its guard) did once interrupted."""
    restore = record.after_interruption.restore
    guard = record.after_interruption.guard
    if not record.changed:
        return f"Nothing had been changed: {good} was left as it was."
    if guard is not None:
        return ("This harness had stalled past its lease, so its guard took the gateway over "
                "and the harness stopped acting on it: the guard "
                f"{guard.get('summary') or 'gave no result'}.")
    if restore is None:
        which = {"candidate": f"{cand} had passed the soak", "known_good":
                 f"{good} had passed its watches"}.get(record.proven() or "",
                                                       "no version was proven")
        return f"{which}; the harness left it in place."
    return (f"{cand} was not proven, so the harness put {good} back itself: "
            f"{restore.get('summary')}.")
