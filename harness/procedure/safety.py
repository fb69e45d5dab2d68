"""The safety steps the procedure's phases are built from: the release lock re-check, backups
with an honest posture, package ground truth after every install, and the restart gate.

Each step shows its evidence through the evidence port (harness.procedure.evidence: steps and
attachments) and keeps its outcome in the run's typed records (harness.procedure.records),
which verdict.json is written from:
    record.locks        the lock and every re-check before a change (lock_checks)
    record.backups      the pre-upgrade posture (the claim's first words), every backup, and
                        right before each interruption: did the state outgrow it?
    record.installs     each install judged against the registry's package (ground_truth), and
                        the target's own updater when it did the rollback (`--rollback-path
                        updater`): its run, each file its verifier named judged against the package
    record.restarts     who or what approved each restart, and when (restart_decisions)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.common.errors import ExitCode, HarnessError
from harness.procedure import evidence as evidence_port
from harness.procedure.backup import Backup, diff_manifests, manifest_of, selected
from harness.procedure.evidence import Evidence
from harness.procedure.gate import Decision, RestartGate
from harness.procedure.lock import LockCheck, Resolver, read_lock, recheck
from harness.procedure.posture import Assessment, BackupTaker
from harness.procedure.records import Refresh, UpdaterRecord
from harness.procedure.run import RunRecord, RunSettings
from harness.targets.gateway import Gateway
from harness.targets.groundtruth import (
    GroundTruth,
    InstallFindings,
    PackageTruth,
    ReportJudgement,
    judge_report,
)
from harness.targets.packages import ecosystem_for
from harness.targets.registry import Release
from harness.targets.runtime import Installation, NodeRuntime, Runtime
from harness.targets.updater import UpdaterRun, as_installation, run_updater

BY_UPDATER = "the target's own updater"


@dataclass
class Prepared:
    """An install made ready beside the running one, and how it got there."""

    installation: Installation
    findings: InstallFindings
    path: str  # "kept prefix" | "download" | "reinstall over a damaged prefix" | BY_UPDATER
    first: InstallFindings | None = None  # the damaged prefix's findings, when reinstalled
    # the target's own updater, when it was asked to do the rollback: its run and the files
    # its verifier named, judged against the package (used or not)
    updater: UpdaterRecord | None = None

    @property
    def ok(self) -> bool:
        return not self.findings.corrupt

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "prefix": str(self.installation.prefix),
                "seconds": round(self.installation.seconds, 3),
                "ground_truth": self.findings.as_dict(),
                "damaged_prefix": self.first.as_dict() if self.first else None,
                **({"updater": {"used": self.updater.used, "summary": self.updater.summary}}
                   if self.updater is not None else {})}


class Safety:
    def __init__(self, settings: RunSettings, record: RunRecord, runtime: Runtime,
                 node: NodeRuntime | None, gateway: Gateway, backup_dir: Path,
                 gate: RestartGate | None = None, resolve: Resolver | None = None,
                 evidence: Evidence | None = None) -> None:
        self.settings = settings
        self.evidence = evidence or evidence_port.current()
        self.record = record
        self.runtime = runtime
        self.node = node
        self.gateway = gateway
        self.gate = gate or RestartGate(settings.restart_gate, settings.run_dir,
                                        settings.gate_timeout_s)
        package = settings.target.package
        # where the target's versions live (harness.targets.packages): npm, or PyPI
        self.packages = ecosystem_for(runtime, package.ecosystem, package.extras,
                                      settings.target.kind, package.install_removes)
        self.resolve: Resolver = resolve or self.packages.resolve
        self.truths = GroundTruth(runtime.root, runtime.npm_env())
        self.lock = read_lock(settings.run_dir) or settings.lock()
        self.taker = BackupTaker(settings.target.state, gateway.state_dir, backup_dir,
                                 gateway.run_cli, settings.target.package.bin)
        self.assessments: dict[str, Assessment] = {}

    # -- the release lock ---------------------------------------------------------------
    def lock_holds(self, before: str, refuse: bool = True) -> LockCheck:
        """Resolve both locked specs again; a moved one refuses the step (when `refuse`)."""
        check = recheck(self.lock, self.resolve, before)
        self.record.locks.checks.append(check)
        with self.evidence.step(f"{'ok' if check.ok else 'STALE'}: release lock before {before}"):
            self.evidence.attach_json(f"lock check before {before}", check.as_dict())
        if not check.ok and refuse:
            self.record.halt("stale_lock", ExitCode.STALE_LOCK, check.message(self.lock))
        return check

    # -- backups ------------------------------------------------------------------------
    def backup(self, label: str, decides: bool) -> Assessment:
        """Take and assess a backup; when it `decides`, a posture below the accepted floor
        halts the run before any change."""
        with self.evidence.step(f"back up the state ({label}): full first, test restore, "
                                "posture"):
            assessed = self.taker.take(label, self.settings.accept_backup_posture)
        self.assessments[label] = assessed
        self.record.backups.taken[label] = assessed
        if decides:
            self.record.backups.posture = assessed
        if assessed.backup is not None:
            self.evidence.attach_json(f"backup manifest ({label})", {
                **assessed.backup.summary(), "manifest": assessed.backup.manifest})
        self.evidence.attach_json(f"backup posture ({label})", assessed.as_dict())
        if decides and not assessed.go:
            self.record.halt("backup_no_go", ExitCode.BACKUP_NO_GO, assessed.no_go())
        return assessed

    def backup_of(self, label: str) -> Backup | None:
        found = self.assessments.get(label)
        return found.backup if found else None

    def covered_globs(self, label: str) -> list[str]:
        """The declared state globs of the kinds the backup `label` holds."""
        found = self.assessments.get(label)
        if found is None or found.backup is None:
            return []
        return [g for kind, c in found.coverage.items() if c["covered"]
                for g in c["declared"]]

    def refresh(self, label: str) -> Refresh:
        """Right before an interruption: if the state changed since the backup `label` (the
        gateway kept serving while a person decided), take it again so it is not stale."""
        backup = self.backup_of(label)
        if backup is None:
            return Refresh(label, checked=False)
        globs = self.covered_globs(label)
        live = {p: h for p, h in manifest_of(self.gateway.state_dir).items()
                if selected(p, globs)}
        diff = diff_manifests({p: h for p, h in backup.manifest.items() if selected(p, globs)},
                              live)
        changed = {k: v for k, v in diff.items() if v}
        if not changed:
            result = Refresh(label)
            self.record.backups.refreshes.append(result)
            return result
        floor = self.assessments[label]
        with self.evidence.step(f"the state changed since the {label} backup: take it again"):
            again = self.taker.take(label, self.settings.accept_backup_posture)
        if again.backup is not None and again.posture == floor.posture:
            self.assessments[label] = again
            self.record.backups.taken[label] = again
        result = Refresh(label, True, changed, True, again.posture,
                         again.posture == floor.posture)
        self.record.backups.refreshes.append(result)
        return result

    # -- package ground truth -----------------------------------------------------------
    def truth(self, release: Release) -> PackageTruth:
        with self.evidence.step(f"registry ground truth for {release.label} (tarball checked "
                                f"against {release.integrity[:16]}...)"):
            return self.truths.truth(release)

    def package_truth(self, release: Release) -> str:
        """The registry's own account of `release`, fetched before anything changes: npm's
        tarball checked against its integrity (cached, so a rollback needs no network), or
        the set pip resolved, each distribution with its file's sha256."""
        if release.ecosystem == "npm":
            return f"{len(self.truth(release).files)} files"
        return f"{len(release.resolved)} distributions, each with its file's sha256"

    def verify_install(self, release: Release, prefix: Path, name: str) -> InstallFindings:
        against = ("its package" if release.ecosystem == "npm"
                   else "the resolved set and each wheel's RECORD")
        with self.evidence.step(f"installed files of {release.label} against {against}"):
            # an npm tree checked before in this run is read again only where it changed since
            findings = self.packages.verify(release, prefix)
        self.record.installs.ground_truth[name] = findings
        self.evidence.attach_json(f"ground truth {release.label} ({name})", findings.as_dict())
        return findings

    def node_for(self, release: Release) -> NodeRuntime | None:
        """The Node.js `release` runs on (the profile's pin, or its own engines.node); none for
        a PyPI package (its virtualenv has its Python)."""
        if release.ecosystem != "npm":
            return None
        return self.runtime.node_for(release, self.settings.target.package.node_major)

    def prepare(self, release: Release, name: str) -> Prepared:
        """Make `release` ready in its own prefix beside the active one, verified against the
        registry's package; a kept prefix found damaged is reinstalled from the registry."""
        env = self.settings.target.package.install_env
        with self.evidence.step(f"{release.label} into its own prefix (kept if there, else "
                                "download)"):
            installation = self.runtime.install(release, self.node_for(release), env)
        findings = self.verify_install(release, installation.prefix, name)
        path = "kept prefix" if installation.reused else "download"
        if not findings.corrupt or not installation.reused:
            return Prepared(installation, findings, path)
        with self.evidence.step(f"the kept prefix of {release.label} is damaged: reinstall it"):
            again = self.runtime.install(release, self.node_for(release), env, force=True)
        return Prepared(again, self.verify_install(release, again.prefix, name),
                        "reinstall over a damaged prefix", findings)

    def prepare_by_updater(self, candidate: Installation, release: Release,
                           name: str) -> Prepared:
        """`release` made ready by the target's own updater, run by the candidate against a
        copy of its install. The result is judged against the registry's package, and so is
        every file the updater's verifier says is missing; a result that is not `release`
        intact, or an updater that broke, is not used: the kept prefix (or a reinstall) is,
        and the report says why. The optional path never keeps the rollback from running."""
        try:
            updater, installation = self._by_updater(candidate, release, name)
        except (HarnessError, OSError) as exc:
            installation = None
            updater = UpdaterRecord(False, f"the updater could not be run or read: {exc}",
                                    error=f"{type(exc).__name__}: {exc}")
        self.record.installs.updater = updater
        if installation is not None and updater.ground_truth is not None:
            return Prepared(installation, updater.ground_truth, BY_UPDATER, updater=updater)
        with self.evidence.step(f"the updater's result is not {release.label} intact: not "
                                "used"):
            fallback = self.prepare(release, name)
        fallback.updater = updater
        return fallback

    def _by_updater(self, candidate: Installation, release: Release,
                    name: str) -> tuple[UpdaterRecord, Installation | None]:
        """Run the updater on a copy and judge what it did; the install only when usable."""
        package = self.settings.target.package
        work = self.settings.cache_dir / "runs" / self.settings.run_id / "updater"
        with self.evidence.step(f"{candidate.release.label}'s own updater takes a copy of its "
                                f"install to {release.version}"):
            run = run_updater(candidate, release, package,
                              candidate.node or self.node_for(candidate.release), work,
                              self.runtime.npm_env())
            self.evidence.attach_text("updater stdout", run.stdout or "(nothing)")
            self.evidence.attach_text("updater stderr", run.stderr or "(nothing)")
        truth = self.truth(release)
        with self.evidence.step(f"the updater's verifier output, path by path, against "
                                f"{release.label}'s package"):
            judged = judge_report([run.stdout, run.stderr], truth, run.root,
                                  package.verifier_patterns)
            self.evidence.attach_json(f"updater verifier output judged against "
                                      f"{release.label}", judged.as_dict())
        findings = self.verify_install(release, run.prefix / "lib", f"{name} by the updater")
        usable = not findings.corrupt and judged.verdict != "corrupt"
        updater = UpdaterRecord(usable, updater_summary(run, judged, findings, release),
                                run.as_dict(), judged, findings)
        installation = (as_installation(run, release, package, self.node_for(release))
                        if usable else None)
        return updater, installation

    # -- the restart gate ---------------------------------------------------------------
    def ask(self, purpose: str, plan: dict[str, Any],
            halt_on_refusal: bool = True) -> Decision:
        with self.evidence.step(f"restart gate ({self.settings.restart_gate}): {purpose}"):
            decision = self.gate.ask(purpose, plan)
        self.record.restarts.append(decision)
        self.evidence.attach_json(f"restart decision ({purpose})", decision.as_dict())
        if not decision.approved and halt_on_refusal:
            self.record.halt("no_approval", ExitCode.NO_APPROVAL, decision.summary())
        return decision



def updater_summary(run: UpdaterRun, judged: ReportJudgement, findings: InstallFindings,
                    release: Release) -> str:
    """One paragraph: what the updater said, and what each file it named really is."""
    own = run.report() or {}
    said = f"exit {run.exit_code}" if run.exit_code is not None else \
        "killed at its time limit"
    if own.get("status"):
        said += f", status {own['status']}" + (f" ({own['reason']})" if own.get("reason")
                                                else "")
    named = "; ".join(f"{f.path}: {f.classification}" for f in judged.findings)
    verifier = (f"its verifier named {len(judged.findings)} file(s), judged against "
                f"{release.label}'s package: {judged.verdict} ({named})" if judged.findings
                else "its output names no file")
    shown = " ".join([Path(run.argv[0]).name, *run.argv[1:]])
    return (f"`{shown}` {said} after {run.seconds:.0f} s; {verifier}; its result: "
            f"{findings.summary()}")
