"""What a run recorded besides its phases, typed: the lock and its re-checks, the backups and
their posture, the installs judged against the registry, every restart decision, each soak and
watch, the rollback, the guard, an attached deployment as found, and what an interruption left.

The claim and `Procedure` read these fields; `Records.as_dict()` writes them under the keys
verdict.json has always had (readers of that file, people and tests, see no difference):

    release_lock, lock_checks, rollback_lock_note         LockRecords
    backups, backup_posture, backup_refreshes             BackupRecords
    node, ground_truth, updater                           InstallRecords
    restart_decisions                                     Records.restarts
    baseline, soak, smoke, watch, late_watch              SoakRecord (Records.soaks)
    recovery, rollback_path, rollback_state_diff,
    rollback_state_not_restored                           RollbackRecords
    lease_lost, guard, guard_trips                        GuardRecords
    attached                                              AttachedRecord
    interruption                                          the signal, and InterruptionRecords
    resumed_cleanup                                       Records.resumed_cleanup

A key is written only once something was recorded under it, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.procedure.gate import Decision
from harness.procedure.lock import LockCheck
from harness.procedure.posture import Assessment
from harness.targets.groundtruth import InstallFindings, ReportJudgement

Json = dict[str, Any]


def _present(pairs: list[tuple[str, Any]]) -> Json:
    """The pairs that were recorded (None is 'never recorded', an empty list is not)."""
    return {key: value for key, value in pairs if value is not None}


# -- the release lock ---------------------------------------------------------------------
@dataclass
class LockRecords:
    release: Json | None = None  # where the review was locked: file, locked_at, reused
    checks: list[LockCheck] = field(default_factory=list)  # every re-check before a change
    rollback_note: str | None = None  # the re-check after the rollback, when it moved

    def as_dict(self) -> Json:
        return _present([("release_lock", self.release),
                         ("lock_checks", [c.as_dict() for c in self.checks] or None),
                         ("rollback_lock_note", self.rollback_note)])


# -- backups ------------------------------------------------------------------------------
@dataclass
class Refresh:
    """Right before an interruption: did the state outgrow the backup, and was it retaken?"""

    label: str
    checked: bool = True  # False: there was no backup of this label to compare with
    changed: dict[str, list[str]] = field(default_factory=dict)
    retaken: bool = False
    posture: str | None = None  # of the backup taken again
    kept_posture: bool | None = None

    @property
    def weakened(self) -> bool:
        """Taken again, and the new backup is below the one the run decided on."""
        return self.retaken and not self.kept_posture

    def as_dict(self) -> Json:
        if not self.checked:
            return {"label": self.label, "checked": False}
        found: Json = {"label": self.label, "checked": True, "changed": self.changed,
                       "retaken": self.retaken}
        if self.retaken:
            found.update(posture=self.posture, kept_posture=self.kept_posture)
        return found


@dataclass
class BackupRecords:
    taken: dict[str, Assessment] = field(default_factory=dict)  # the latest of each label
    posture: Assessment | None = None  # the pre-upgrade one: it decides, and leads the claim
    refreshes: list[Refresh] = field(default_factory=list)

    @property
    def posture_line(self) -> str | None:
        return self.posture.line() if self.posture is not None else None

    def as_dict(self) -> Json:
        return _present([
            ("backups", {k: a.as_dict() for k, a in self.taken.items()} or None),
            ("backup_posture", self.posture.as_dict() if self.posture else None),
            ("backup_refreshes", [r.as_dict() for r in self.refreshes] or None)])


# -- installs -----------------------------------------------------------------------------
@dataclass
class NodeFit:
    """The Node.js a version runs on, against its own engines.node."""

    version: str
    engines_node: str | None
    node: str
    satisfies: bool

    def as_dict(self) -> Json:
        return dict(self.__dict__)


@dataclass
class UpdaterRecord:
    """The target's own updater, asked to do the rollback: its run, and what each file its
    verifier named really is. `used`: its result became the known-good install."""

    used: bool
    summary: str
    run: Json | None = None  # UpdaterRun.as_dict(), as it was right after the run
    verifier: ReportJudgement | None = None
    ground_truth: InstallFindings | None = None
    error: str | None = None  # it could not be run or read

    @property
    def named(self) -> int:
        """How many files its verifier said were missing."""
        return len(self.verifier.findings) if self.verifier is not None else 0

    def as_dict(self) -> Json:
        if self.error is not None:
            return {"used": self.used, "error": self.error, "summary": self.summary}
        return {**(self.run or {}),
                "verifier": self.verifier.as_dict() if self.verifier else None,
                "ground_truth": self.ground_truth.as_dict() if self.ground_truth else None,
                "used": self.used, "summary": self.summary}


@dataclass
class InstallRecords:
    node: dict[str, NodeFit] = field(default_factory=dict)  # by role, at the preflight
    ground_truth: dict[str, InstallFindings] = field(default_factory=dict)  # by install
    updater: UpdaterRecord | None = None

    def as_dict(self) -> Json:
        return _present([
            ("node", {role: n.as_dict() for role, n in self.node.items()} or None),
            ("ground_truth", {k: f.as_dict() for k, f in self.ground_truth.items()} or None),
            ("updater", self.updater.as_dict() if self.updater else None)])


# -- soaks and watches --------------------------------------------------------------------
@dataclass
class SoakRecord:
    """A soak, baseline, smoke or watch: its numbers (harness.judge.assess.summary), where its
    log came from, its verdict, beside the baseline, and who accepted it inconclusive."""

    label: str
    numbers: Json = field(default_factory=dict)
    verdict: Json = field(default_factory=dict)  # verdict, reasons, scenarios
    log_source: Json | None = None
    comparison: Json | None = None
    inconclusive_decision: Json | None = None  # the manual gate's, when it was asked

    @property
    def outcome(self) -> str:
        """pass, fail or inconclusive ('not run' when it gave none)."""
        return str(self.verdict.get("verdict", "not run"))

    @property
    def reasons(self) -> list[str]:
        return list(self.verdict.get("reasons", []))

    @property
    def inconclusive(self) -> list[str]:
        """The paths judged inconclusive (too few samples), sorted."""
        return sorted(sid for sid, v in self.verdict.get("scenarios", {}).items()
                      if v.get("verdict") == "inconclusive")

    @property
    def accepted_by(self) -> str | None:
        return (self.inconclusive_decision or {}).get("by")

    @property
    def delay_s(self) -> float:
        return float(self.numbers.get("delay_s") or 0)

    @property
    def stopped_by(self) -> str | None:
        return self.numbers.get("stopped_by")

    def as_dict(self) -> Json:
        found = {**self.numbers}
        if self.log_source is not None:
            found["log_source"] = self.log_source
        found["verdict"] = self.verdict
        if self.comparison is not None:
            found["comparison"] = self.comparison
        if self.inconclusive_decision is not None:
            found["inconclusive_decision"] = self.inconclusive_decision
        return found


SOAK_LABELS = ("baseline", "soak", "smoke", "watch", "late_watch")


# -- rollback -----------------------------------------------------------------------------
@dataclass
class RollbackPath:
    """How the known-good was made ready: `how` is Prepared.path (kept prefix, download, ...),
    `path` the sentence the report and the claim use."""

    prepared: Json  # Prepared.as_dict()
    how: str
    path: str

    def as_dict(self) -> Json:
        return {**self.prepared, "how": self.how, "path": self.path}


@dataclass
class RollbackRecords:
    recovery: Json | None = None  # harness.judge.recovery_time: how long service was down
    path: RollbackPath | None = None
    state_diff: dict[str, list[str]] | None = None  # restored state against the backup
    not_restored: list[str] | None = None  # declared globs the backup does not hold

    def as_dict(self) -> Json:
        return _present([("recovery", self.recovery),
                         ("rollback_path", self.path.as_dict() if self.path else None),
                         ("rollback_state_diff", self.state_diff),
                         ("rollback_state_not_restored", self.not_restored)])


# -- the deployment over the whole run ----------------------------------------------------
@dataclass
class GuardRecords:
    lease_lost: Json | None = None  # this harness stalled past its lease: the guard's account
    log: list[Json] | None = None  # the guard's own events, read at the end ("guard")
    trips: list[Json] | None = None  # each time it took over while the run lived

    def as_dict(self) -> Json:
        return _present([("lease_lost", self.lease_lost), ("guard", self.log),
                         ("guard_trips", self.trips)])


@dataclass
class AttachedRecord:
    """An attached deployment: what the lock says it is, as found, and as left."""

    lock: Json = field(default_factory=dict)  # RunSettings.lock()["attached"]
    before: Json | None = None  # harness.targets.attached.Observation.as_dict()
    after: Json | None = None
    changes: list[str] | None = None  # what differs from `before` (empty: as found)
    after_error: str | None = None  # it could not be read again
    left_as_found: bool | None = None

    def as_dict(self) -> Json:
        return {**self.lock, **_present([
            ("before", self.before), ("after", self.after), ("changes", self.changes),
            ("after_error", self.after_error), ("left_as_found", self.left_as_found)])}


@dataclass
class InterruptionRecords:
    """What was done after a signal stopped the run: this harness's own restore
    (harness.procedure.recovery), or the guard's, when the guard had taken over."""

    restore: Json | None = None  # filled in while the restore goes on
    guard: Json | None = None

    @property
    def proven(self) -> bool:
        """The restored known-good answered a real reply."""
        return bool((self.restore or {}).get("proven") or (self.guard or {}).get("proven"))

    def as_dict(self, signal: Json | None) -> Json | None:
        if signal is None and self.restore is None and self.guard is None:
            return None
        return {**(signal or {}), **_present([("restore", self.restore),
                                              ("guard", self.guard)])}


@dataclass
class Records:
    """Everything a run records besides its phases (RunRecord adds the phases and outcome)."""

    locks: LockRecords = field(default_factory=LockRecords)
    backups: BackupRecords = field(default_factory=BackupRecords)
    installs: InstallRecords = field(default_factory=InstallRecords)
    restarts: list[Decision] = field(default_factory=list)  # every restart gate's decision
    soaks: dict[str, SoakRecord] = field(default_factory=dict)  # by label (SOAK_LABELS)
    rollback: RollbackRecords = field(default_factory=RollbackRecords)
    guard: GuardRecords = field(default_factory=GuardRecords)
    attached: AttachedRecord | None = None
    after_interruption: InterruptionRecords = field(default_factory=InterruptionRecords)
    resumed_cleanup: Json | None = None  # an earlier run in this run dir that had died
    fleet: Json | None = None  # a fleet's member: its name and the fleet's (harness.fleet)

    def attached_deployment(self, lock: Json | None = None) -> AttachedRecord:
        """The attached deployment's record, made on first use."""
        if self.attached is None:
            self.attached = AttachedRecord(lock or {})
        return self.attached

    def soak_of(self, label: str) -> SoakRecord:
        """The record of soak `label`, empty when it did not run."""
        return self.soaks.get(label) or SoakRecord(label)

    def as_dict(self, interruption: Json | None = None) -> Json:
        """The records under verdict.json's keys, in the order a run records them;
        `interruption` is the signal's own account (RunRecord.interruption), which leads that
        key."""
        found: Json = {
            **_present([("fleet", self.fleet), ("resumed_cleanup", self.resumed_cleanup),
                        ("attached", self.attached.as_dict() if self.attached else None),
                        ("restart_decisions",
                         [d.as_dict() for d in self.restarts] or None)]),
            **self.locks.as_dict(), **self.installs.as_dict(), **self.backups.as_dict(),
            **{label: soak.as_dict() for label, soak in self.soaks.items()},
            **self.rollback.as_dict(), **self.guard.as_dict(),
            **_present([("interruption", self.after_interruption.as_dict(interruption))])}
        return {key: found[key] for key in [*ORDER, *found] if key in found}


# verdict.json's keys in the order a run writes them (the facts dict kept insertion order)
ORDER = ("fleet", "resumed_cleanup", "release_lock", "attached", "node", "ground_truth", "backups",
         "backup_posture", "baseline", "lock_checks", "restart_decisions", "backup_refreshes",
         "soak", "updater", "rollback_path", "rollback_state_diff",
         "rollback_state_not_restored", "smoke", "recovery", "rollback_lock_note", "watch",
         "late_watch", "lease_lost", "guard", "guard_trips", "interruption")
