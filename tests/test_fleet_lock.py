"""One release lock for a fleet: the controller reviews once and writes the fleet's lock; each
member's run takes its releases from that file (no registry look-up of its own) and refuses a
release the fleet did not review. Real files, real member runs as subprocesses."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from harness.common.errors import InputError, StaleLockError
from harness.fleet.ledger import Ledger
from harness.fleet.plan import load_fleet
from harness.fleet.release import fleet_lock_path, review_fleet
from harness.fleet.verdict import write_fleet_report
from harness.procedure.lock import locked_release, read_lock
from harness.procedure.review import lock_review
from harness.procedure.settings import CommandLine, Defaults, Settings, resolve_settings
from harness.targets.packages.npm import installed_integrity
from harness.targets.registry import Release
from harness.targets.runtime import Installation

ROOT = Path(__file__).resolve().parents[1]
OPENCLAW = ROOT / "scenarios" / "targets" / "local-openclaw.toml"
CANDIDATE = Release("openclaw", "2026.4.1", "2026.4.1", "sha512-CAND" + "A" * 80, ">=22.14.0")
KNOWN = Release("openclaw", "2026.3.28", "2026.3.28", "sha512-KNOWN" + "B" * 80, ">=22.14.0")


def fleet_file(tmp_path: Path) -> Path:
    body = '[fleet]\nname = "f"\non_failure = "rollback-all"\nmax_parallel = 2\n'
    for i, name in enumerate(("canary", "a", "b")):
        body += f'[[members]]\nname = "{name}"\ntarget = "{OPENCLAW}"\n'
        body += "canary = true\n" if i == 0 else ""
    (tmp_path / "fleet.toml").write_text(body)
    return tmp_path / "fleet.toml"


def settings(tmp_path: Path, **given: str) -> Settings:
    """A member's settings as its run resolves them; its cache has no Node.js and no npm, so
    a look-up in the registry could not happen without failing."""
    defaults = Defaults(root=ROOT, cache=str(tmp_path / "empty-cache"))
    return resolve_settings(CommandLine(target=str(OPENCLAW), **given), defaults)


class Registry:
    """The registry's answers for the fleet's review, counted: the registry itself cannot be
    asked in a unit test, and cannot be made to move a version."""

    def __init__(self, known_good: Release = KNOWN, candidate: Release = CANDIDATE) -> None:
        self.answers = (known_good, candidate)
        self.asked = 0

    def __call__(self, s: Settings, say: object) -> tuple[Release, Release]:
        self.asked += 1
        return self.answers


def test_the_controller_reviews_once_and_writes_the_fleets_lock(tmp_path: Path) -> None:
    plan = load_fleet(fleet_file(tmp_path))
    registry, said = Registry(), []
    lock = review_fleet(plan, settings(tmp_path), tmp_path / "run", said.append, registry)
    assert registry.asked == 1
    written = json.loads(fleet_lock_path(tmp_path / "run").read_text())
    assert written == lock
    assert written["candidate"] == CANDIDATE.as_dict() and written["known_good"] == KNOWN.as_dict()
    assert written["members"] == ["canary", "a", "b"] and written["fleet_sha256"] == plan.sha256
    assert said == ["harness: fleet f: one review for its 3 member(s): openclaw@2026.4.1 over "
                    "openclaw@2026.3.28, locked in release.lock.json"]
    # the same release again in the same run dir keeps the lock; another one is refused
    again = review_fleet(plan, settings(tmp_path), tmp_path / "run", said.append, registry)
    assert again["locked_at"] == lock["locked_at"]
    moved = replace(CANDIDATE, version="2026.4.2", integrity="sha512-MOVED")
    with pytest.raises(StaleLockError, match="review is stale: .* was locked for fleet f, "
                       "and now candidate was openclaw@2026.4.1"):
        review_fleet(plan, settings(tmp_path), tmp_path / "run", said.append, Registry(
            candidate=moved))
    assert json.loads(fleet_lock_path(tmp_path / "run").read_text()) == lock


def write_fleet_lock(tmp_path: Path, candidate: Release = CANDIDATE) -> Path:
    plan = load_fleet(fleet_file(tmp_path))
    review_fleet(plan, settings(tmp_path), tmp_path / "run", lambda line: None,
                 Registry(candidate=candidate))
    return fleet_lock_path(tmp_path / "run")


def test_a_member_takes_the_fleets_release_without_asking_the_registry(tmp_path: Path) -> None:
    fleet_lock = write_fleet_lock(tmp_path)
    said: list[str] = []
    member_dir = tmp_path / "run" / "members" / "a"
    resolved, record = lock_review(settings(tmp_path), "run-a", member_dir, said.append,
                                   fleet_lock)
    assert resolved.candidate == CANDIDATE and resolved.known_good == KNOWN
    own = read_lock(member_dir)  # the member's own lock, with the fleet's releases in it
    assert own["candidate"] == CANDIDATE.as_dict() and own["known_good"] == KNOWN.as_dict()
    assert own["fleet_lock"]["sha256"] == hashlib.sha256(fleet_lock.read_bytes()).hexdigest()
    assert own["fleet_lock"]["fleet"] == "f"
    assert record["reused"] is False
    assert any("as the fleet's lock has them (not looked up again)" in line for line in said)


def test_a_member_whose_release_is_not_the_fleets_is_refused(tmp_path: Path) -> None:
    fleet_lock = write_fleet_lock(tmp_path)
    member_dir = tmp_path / "run" / "members" / "a"
    with pytest.raises(StaleLockError) as refused:
        lock_review(settings(tmp_path, candidate="2026.4.2"), "run-a", member_dir,
                    lambda line: None, fleet_lock)
    assert refused.value.exit_code == 14
    assert "this member's candidate is openclaw@2026.4.2, and the fleet's lock " \
        "release.lock.json" in refused.value.message
    assert "reviewed openclaw@2026.4.1 = openclaw@2026.4.1" in refused.value.message
    assert not member_dir.exists()  # refused before its own lock: nothing written, nothing run


def test_a_missing_or_unreadable_fleet_lock_refuses_the_member(tmp_path: Path) -> None:
    member_dir = tmp_path / "members" / "a"
    with pytest.raises(StaleLockError, match="the fleet's release lock is missing"):
        lock_review(settings(tmp_path), "run-a", member_dir, lambda line: None,
                    tmp_path / "release.lock.json")
    (tmp_path / "release.lock.json").write_text('{"candidate": {"package": "openclaw"}}')
    with pytest.raises(StaleLockError, match="unreadable fleet lock"):
        lock_review(settings(tmp_path), "run-a", member_dir, lambda line: None,
                    tmp_path / "release.lock.json")


def test_a_version_the_members_target_denies_is_refused_even_from_the_fleets_lock(
        tmp_path: Path) -> None:
    fleet_lock = write_fleet_lock(tmp_path)
    target = tmp_path / "targets" / "denying.toml"
    target.parent.mkdir()
    (target.parent / "openclaw").symlink_to(ROOT / "scenarios" / "targets" / "openclaw")
    target.write_text(OPENCLAW.read_text().replace(
        '[gateway]\n', '[[versions.deny]]\nversion = "2026.4.1"\nreason = "a test says so"\n\n'
        '[gateway]\n', 1))
    denying = resolve_settings(CommandLine(target=str(target)),
                               Defaults(root=ROOT, cache=str(tmp_path / "empty-cache")))
    with pytest.raises(InputError, match="the fleet's lock release.lock.json resolves to "
                       "openclaw@2026.4.1, which is denied: a test says so"):
        lock_review(denying, "run-a", tmp_path / "members" / "a", lambda line: None,
                    fleet_lock)


def test_an_install_that_is_not_the_fleets_reviewed_tarball_does_not_match(
        tmp_path: Path) -> None:
    """The install phase holds the member's install to the release it was handed: the fleet's
    (npm's own record of what it installed, against the fleet's integrity)."""
    fleet_lock = write_fleet_lock(tmp_path)
    release = locked_release(json.loads(fleet_lock.read_text())["candidate"])
    prefix = tmp_path / "prefix"
    (prefix / "node_modules").mkdir(parents=True)
    record = prefix / "node_modules" / ".package-lock.json"
    for integrity, matches in ((CANDIDATE.integrity, True), ("sha512-ANOTHER-TARBALL", False)):
        record.write_text(json.dumps({"packages": {"node_modules/openclaw": {
            "version": "2026.4.1", "integrity": integrity}}}))
        found = installed_integrity(Installation(release, prefix, False, 0.0))
        assert found["matches"] is matches and found["registry"] == CANDIDATE.integrity


def member_run(tmp_path: Path, fleet_lock: Path, *args: str) -> tuple[int, str, Path]:
    plan = load_fleet(tmp_path / "fleet.toml")
    ledger = Ledger.create(tmp_path / "run" / "ledger.json", plan)
    member_dir = tmp_path / "run" / "members" / "a"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios", "-q", "-p", "no:xdist", "--target",
         str(OPENCLAW), "--run-dir", str(member_dir), "--fleet-member", "a", "--fleet-ledger",
         str(ledger.path), "--fleet-lock", str(fleet_lock), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr, member_dir


def test_a_members_run_refuses_a_release_the_fleet_did_not_review(tmp_path: Path) -> None:
    fleet_lock = write_fleet_lock(tmp_path)
    code, output, member_dir = member_run(tmp_path, fleet_lock, "--candidate", "2026.4.2")
    assert code == 14, output[-2000:]
    assert "harness: error: this member's candidate is openclaw@2026.4.2" in output
    verdict = json.loads((member_dir / "verdict.json").read_text())
    assert verdict["exit_code"] == 14 and verdict["lock"] is None
    assert "the fleet's lock release.lock.json" in verdict["error"]
    assert not (member_dir / "release.lock.json").exists()
    assert verdict["phases"] == []  # nothing installed, nothing stopped


def test_a_members_run_locks_the_fleets_release_as_its_own(tmp_path: Path) -> None:
    fleet_lock = write_fleet_lock(tmp_path)
    code, output, member_dir = member_run(tmp_path, fleet_lock, "--collect-only")
    assert code == 0, output[-2000:]
    assert "openclaw@2026.4.1 (sha512-CANDAAAAAAAAAAAA...) and openclaw@2026.3.28, as " \
        "the fleet's lock has them" in output
    own = read_lock(member_dir)
    assert own["candidate"] == CANDIDATE.as_dict()
    assert own["fleet_lock"]["file"] == str(fleet_lock)


def test_the_fleets_verdict_names_its_lock_and_whether_each_member_took_it(
        tmp_path: Path) -> None:
    fleet_lock = write_fleet_lock(tmp_path)
    plan = load_fleet(tmp_path / "fleet.toml")
    run = tmp_path / "run"
    ledger = Ledger.create(run / "ledger.json", plan)
    sha = hashlib.sha256(fleet_lock.read_bytes()).hexdigest()
    for name, taken in (("canary", {"sha256": sha}), ("a", {"sha256": "0" * 64}), ("b", None)):
        ledger.update(name, state="ended", so_far=0, word="keep", exit=0)
        folder = run / "members" / name
        folder.mkdir(parents=True)
        lock = {"known_good": KNOWN.as_dict(), "candidate": CANDIDATE.as_dict(),
                **({"fleet_lock": taken} if taken else {})}
        (folder / "verdict.json").write_text(json.dumps(
            {"outcome": "passed", "lock": lock, "final_state": {"version": "2026.4.1"}}))
    verdict = write_fleet_report(plan, ledger.read(), run)
    assert verdict["lock"]["sha256"] == sha
    assert verdict["lock"]["candidate"] == f"openclaw@2026.4.1 {CANDIDATE.integrity}"
    rows = {r["member"]: r["fleet_lock"] for r in verdict["members"]}
    assert rows["canary"] == "matches"
    assert rows["a"].startswith("differs: the member took sha256 000000000000...")
    assert rows["b"].startswith("not taken")
    summary = (run / "summary.md").read_text()
    assert f"One release lock for the fleet (release.lock.json, sha256 {sha[:12]}...)" in summary


def test_a_refused_review_is_the_fleets_verdict_and_no_member_started(tmp_path: Path) -> None:
    plan = load_fleet(fleet_file(tmp_path))
    run = tmp_path / "run"
    ledger = Ledger.create(run / "ledger.json", plan)
    verdict = write_fleet_report(plan, ledger.read(), run, (21, "--candidate: openclaw@9.9.9 "
                                                                "is not a version the registry "
                                                                "knows"))
    assert (verdict["outcome"], verdict["exit_code"]) == ("unknown_version", 21)
    assert verdict["not_reached"] == ["canary", "a", "b"]
    assert verdict["claim"].startswith("Fleet f: unknown_version, before any member started")
    assert all(r["what_happened"].startswith("not reached: the fleet's review refused")
               and not r["observed"] for r in verdict["members"])
