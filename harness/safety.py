"""The safety steps the procedure's phases are built from: the release lock re-check, backups
with an honest posture, package ground truth after every install, and the restart gate.

Each step writes its evidence to the report (Allure steps and attachments) and to the run's
facts in verdict.json:
    release_lock, lock_checks      the lock and every re-check before a change
    backup_posture, backups        the pre-upgrade posture (the claim's first words), every backup
    backup_refreshes               right before each interruption: did the state outgrow it?
    ground_truth                   each install judged against the registry's package
    restart_decisions              who or what approved each restart, and when
    rollback_path                  prefix switch (no download) or reinstall from the registry
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import allure

from harness.backup import Backup, diff_manifests, manifest_of, selected
from harness.errors import ExitCode
from harness.gate import Decision, RestartGate
from harness.lock import LockCheck, Resolver, read_lock, recheck
from harness.posture import Assessment, BackupTaker
from harness.run import RunRecord, RunSettings
from harness.target.gateway import Gateway
from harness.target.groundtruth import (
    GroundTruth,
    InstallFindings,
    PackageTruth,
    check_installed,
    package_root,
)
from harness.target.registry import Release
from harness.target.runtime import Installation, NodeRuntime, Runtime


def _attach(name: str, payload: Any) -> None:
    allure.attach(json.dumps(payload, indent=2, default=str), name=name,
                  attachment_type=allure.attachment_type.JSON)


@dataclass
class Prepared:
    """An install made ready beside the running one, and how it got there."""

    installation: Installation
    findings: InstallFindings
    path: str  # "kept prefix" | "download" | "reinstall over a damaged prefix"
    first: InstallFindings | None = None  # the damaged prefix's findings, when reinstalled

    @property
    def ok(self) -> bool:
        return not self.findings.corrupt

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "prefix": str(self.installation.prefix),
                "seconds": round(self.installation.seconds, 3),
                "ground_truth": self.findings.as_dict(),
                "damaged_prefix": self.first.as_dict() if self.first else None}


class Safety:
    def __init__(self, settings: RunSettings, record: RunRecord, runtime: Runtime,
                 node: NodeRuntime | None, gateway: Gateway, backup_dir: Path,
                 gate: RestartGate | None = None, resolve: Resolver | None = None) -> None:
        self.settings = settings
        self.record = record
        self.runtime = runtime
        self.node = node
        self.gateway = gateway
        self.gate = gate or RestartGate(settings.restart_gate, settings.run_dir,
                                        settings.gate_timeout_s)
        self.resolve: Resolver = resolve or runtime.registry.resolve
        self.truths = GroundTruth(runtime.root, runtime.npm_env())
        self.lock = read_lock(settings.run_dir) or settings.lock()
        self.taker = BackupTaker(settings.target.state, gateway.state_dir, backup_dir,
                                 gateway.run_cli, settings.target.package.bin)
        self.assessments: dict[str, Assessment] = {}

    # -- the release lock ---------------------------------------------------------------
    def lock_holds(self, before: str, refuse: bool = True) -> LockCheck:
        """Resolve both locked specs again; a moved one refuses the step (when `refuse`)."""
        check = recheck(self.lock, self.resolve, before)
        self.record.facts.setdefault("lock_checks", []).append(check.as_dict())
        with allure.step(f"{'ok' if check.ok else 'STALE'}: release lock before {before}"):
            _attach(f"lock check before {before}", check.as_dict())
        if not check.ok and refuse:
            self.record.halt("stale_lock", ExitCode.STALE_LOCK, check.message(self.lock))
        return check

    # -- backups ------------------------------------------------------------------------
    def backup(self, label: str, decides: bool) -> Assessment:
        """Take and assess a backup; when it `decides`, a posture below the accepted floor
        halts the run before any change."""
        with allure.step(f"back up the state ({label}): full first, test restore, posture"):
            assessed = self.taker.take(label, self.settings.accept_backup_posture)
        self.assessments[label] = assessed
        self.record.facts.setdefault("backups", {})[label] = assessed.as_dict()
        if decides:
            self.record.facts["backup_posture"] = assessed.as_dict()
        if assessed.backup is not None:
            _attach(f"backup manifest ({label})", {**assessed.backup.summary(),
                                                   "manifest": assessed.backup.manifest})
        _attach(f"backup posture ({label})", assessed.as_dict())
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

    def refresh(self, label: str) -> dict[str, Any]:
        """Right before an interruption: if the state changed since the backup `label` (the
        gateway kept serving while a person decided), take it again so it is not stale."""
        backup = self.backup_of(label)
        if backup is None:
            return {"label": label, "checked": False}
        globs = self.covered_globs(label)
        live = {p: h for p, h in manifest_of(self.gateway.state_dir).items()
                if selected(p, globs)}
        diff = diff_manifests({p: h for p, h in backup.manifest.items() if selected(p, globs)},
                              live)
        changed = {k: v for k, v in diff.items() if v}
        if not changed:
            result: dict[str, Any] = {"label": label, "checked": True, "changed": {},
                                      "retaken": False}
            self.record.facts.setdefault("backup_refreshes", []).append(result)
            return result
        floor = self.assessments[label]
        with allure.step(f"the state changed since the {label} backup: take it again"):
            again = self.taker.take(label, self.settings.accept_backup_posture)
        if again.backup is not None and again.posture == floor.posture:
            self.assessments[label] = again
            self.record.facts.setdefault("backups", {})[label] = again.as_dict()
        result = {"label": label, "checked": True, "changed": changed, "retaken": True,
                  "posture": again.posture, "kept_posture": again.posture == floor.posture}
        self.record.facts.setdefault("backup_refreshes", []).append(result)
        return result

    # -- package ground truth -----------------------------------------------------------
    def truth(self, release: Release) -> PackageTruth:
        with allure.step(f"registry ground truth for {release.label} (tarball checked against "
                         f"{release.integrity[:16]}...)"):
            return self.truths.truth(release)

    def verify_install(self, release: Release, prefix: Path, name: str) -> InstallFindings:
        truth = self.truth(release)
        with allure.step(f"installed files of {release.label} against its package"):
            findings = check_installed(truth, package_root(prefix, release.package))
        self.record.facts.setdefault("ground_truth", {})[name] = findings.as_dict()
        _attach(f"ground truth {release.label} ({name})", findings.as_dict())
        return findings

    def prepare(self, release: Release, name: str) -> Prepared:
        """Make `release` ready in its own prefix beside the active one, verified against the
        registry's package; a kept prefix found damaged is reinstalled from the registry."""
        env = self.settings.target.package.install_env
        with allure.step(f"{release.label} into its own prefix (kept if there, else download)"):
            installation = self.runtime.install(release, self.node, env)
        findings = self.verify_install(release, installation.prefix, name)
        path = "kept prefix" if installation.reused else "download"
        if not findings.corrupt or not installation.reused:
            return Prepared(installation, findings, path)
        with allure.step(f"the kept prefix of {release.label} is damaged: reinstall it"):
            again = self.runtime.install(release, self.node, env, force=True)
        return Prepared(again, self.verify_install(release, again.prefix, name),
                        "reinstall over a damaged prefix", findings)

    # -- the restart gate ---------------------------------------------------------------
    def ask(self, purpose: str, plan: dict[str, Any],
            halt_on_refusal: bool = True) -> Decision:
        with allure.step(f"restart gate ({self.settings.restart_gate}): {purpose}"):
            decision = self.gate.ask(purpose, plan)
        self.record.facts.setdefault("restart_decisions", []).append(decision.as_dict())
        _attach(f"restart decision ({purpose})", decision.as_dict())
        if not decision.approved and halt_on_refusal:
            self.record.halt("no_approval", ExitCode.NO_APPROVAL, decision.summary())
        return decision

