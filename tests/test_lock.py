"""The release lock: written at the start, re-checked before changes, refused when it moved."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from harness.common.errors import InfrastructureError, StaleLockError, UnknownVersionError
from harness.procedure.lock import read_lock, recheck, take
from harness.targets.registry import Release

ROOT = Path(__file__).resolve().parents[1]
LOCKED = Release("openclaw", "latest", "2026.4.1", "sha512-AAAA", ">=22.14.0")
KNOWN = Release("openclaw", "2026.3.28", "2026.3.28", "sha512-BBBB", ">=22.14.0")


def lock_doc(candidate: Release = LOCKED) -> dict:
    return {"candidate": candidate.as_dict(), "known_good": KNOWN.as_dict(),
            "policy": {"sha256": "p"}, "scenarios": {"sha256": "s"}, "target": {"sha256": "t"},
            "candidate_config": {}, "soak_window_s": 600.0, "watch_window_s": 120.0}


def registry(**answers: Release | Exception):
    """A stand-in for the registry's answers (spec -> release): the registry itself cannot be
    made to move a dist-tag, so the unit tests say what it answers."""
    def resolve(package: str, spec: str, origin: str) -> Release:
        answer = answers[spec]
        if isinstance(answer, Exception):
            raise answer
        return answer
    return resolve


def test_the_lock_holds_while_both_specs_resolve_as_locked() -> None:
    check = recheck(lock_doc(), registry(latest=LOCKED, **{"2026.3.28": KNOWN}), "stop")
    assert check.ok and check.as_dict()["moved"] == []


def test_a_moved_dist_tag_makes_the_review_stale() -> None:
    moved = replace(LOCKED, version="2026.4.2", integrity="sha512-CCCC")
    check = recheck(lock_doc(), registry(latest=moved, **{"2026.3.28": KNOWN}), "stop")
    assert not check.ok
    message = check.message(lock_doc())
    assert message.startswith("review is stale: candidate openclaw@latest now resolves to "
                              "openclaw@2026.4.2")
    assert "Re-run the review and re-lock; refused before stop" in message


def test_an_unpublished_candidate_is_stale_and_an_unreachable_registry_is_unchecked() -> None:
    gone = recheck(lock_doc(), registry(latest=UnknownVersionError("E404"),
                                        **{"2026.3.28": KNOWN}), "install")
    assert gone.moved and "no longer resolves" in gone.moved[0]
    offline = recheck(lock_doc(), registry(latest=InfrastructureError("ENOTFOUND"),
                                           **{"2026.3.28": KNOWN}), "install")
    assert not offline.ok and not offline.moved and "ENOTFOUND" in offline.message(lock_doc())


def test_a_locked_run_dir_accepts_the_same_review_and_refuses_another(tmp_path: Path) -> None:
    locked, reused = take(tmp_path, lock_doc())
    assert not reused and read_lock(tmp_path)["locked_at"] == locked["locked_at"]
    again, reused = take(tmp_path, lock_doc())
    assert reused and again["locked_at"] == locked["locked_at"]
    other = replace(LOCKED, spec="2026.4.2", version="2026.4.2", integrity="sha512-CCCC")
    with pytest.raises(StaleLockError, match="review is stale: .* candidate was "
                       r"openclaw@2026.4.1 .*this run names '2026.4.2'"):
        take(tmp_path, lock_doc(other))


def run_suite(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "scenarios", "-q", "--run-dir",
                           str(run_dir), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.e2e  # the suite resolves both versions in the real npm registry
def test_the_suite_locks_its_review_at_the_start(tmp_path: Path) -> None:
    done = run_suite(tmp_path / "run", "--collect-only")
    assert done.returncode == 0, done.stdout + done.stderr
    lock = json.loads((tmp_path / "run" / "release.lock.json").read_text())
    assert lock["candidate"]["version"] == "2026.4.1"
    assert lock["candidate"]["integrity"].startswith("sha512-")
    assert lock["known_good"]["version"] == "2026.3.28"
    assert all(len(lock[f]["sha256"]) == 64 for f in ("policy", "scenarios", "target"))


@pytest.mark.e2e  # the real npm registry
def test_naming_another_version_for_a_locked_run_dir_is_refused(tmp_path: Path) -> None:
    assert run_suite(tmp_path / "run", "--collect-only").returncode == 0
    done = run_suite(tmp_path / "run", "--candidate", "2026.4.2")
    assert done.returncode == 14, done.stdout + done.stderr
    error = [x for x in done.stderr.splitlines() if x.startswith("harness: error: ")]
    assert len(error) == 1 and "review is stale" in error[0], done.stderr
    assert "this run names '2026.4.2' = openclaw@2026.4.2" in error[0]
    assert "Re-run the review and re-lock" in error[0]
    verdict = json.loads((tmp_path / "run" / "verdict.json").read_text())
    assert verdict["outcome"] == "error" and verdict["exit_code"] == 14
    assert verdict["phases"] == []  # refused before anything ran


@pytest.mark.e2e  # the real npm registry, whose latest has moved
def test_a_dist_tag_that_moved_since_the_lock_is_refused(tmp_path: Path) -> None:
    """The lock of a review taken when `latest` was 2026.4.1 (it was, on 2026-04-02); the real
    registry's `latest` has moved on since, so running that review again is refused."""
    assert run_suite(tmp_path / "run", "--collect-only", "--candidate", "2026.4.1").returncode == 0
    path = tmp_path / "run" / "release.lock.json"
    lock = json.loads(path.read_text())
    lock["candidate"]["spec"] = "latest"
    path.write_text(json.dumps(lock))
    done = run_suite(tmp_path / "run", "--candidate", "latest")
    assert done.returncode == 14, done.stdout + done.stderr
    assert "candidate was openclaw@2026.4.1" in done.stderr
    assert "this run names 'latest' = openclaw@2026." in done.stderr


def test_a_moved_dependency_of_a_pypi_release_makes_the_review_stale() -> None:
    from harness.targets.packages.pypi import set_digest

    locked_set = (("httpx", "0.28.1", "a" * 64), ("litellm", "1.80.0", "b" * 64))
    moved_set = (("httpx", "0.28.2", "c" * 64), ("litellm", "1.80.0", "b" * 64))
    locked = Release("litellm", "1.80.0", "1.80.0", set_digest(locked_set), None, "pypi",
                     locked_set)
    now = replace(locked, integrity=set_digest(moved_set), resolved=moved_set)
    check = recheck(lock_doc(locked), registry(**{"1.80.0": now, "2026.3.28": KNOWN}), "stop")
    assert not check.ok
    assert check.moved[0].startswith("candidate litellm@1.80.0 now resolves to litellm@1.80.0 ")
    assert check.moved[0].endswith("(its resolved set moved: httpx 0.28.1 -> 0.28.2)")
