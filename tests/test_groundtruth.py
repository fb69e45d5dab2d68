"""Ground truth logic on a small package built here: what counts as corrupt, extra or benign.

The same checks run against the real OpenClaw packages in `test_safety_e2e.py`.
"""

import base64
import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path

import pytest

from harness.common.errors import InputError
from harness.targets.groundtruth import (
    PackageTruth,
    check_installed,
    judge_report,
    read_tarball,
    sri_matches,
)
from harness.targets.profile import load_target

ROOT = Path(__file__).resolve().parents[1]
FILES = {
    "package.json": json.dumps({"name": "gw", "version": "1.0.0"}),
    "dist/index.js": "console.log('hi')\n",
    "dist/extensions/chat/runtime-api.js": "export {}\n",
}
SIDECAR = ("missing bundled runtime sidecar (?P<path>\\S+)",)


def build(tmp_path: Path) -> tuple[Path, PackageTruth, Path]:
    """A tarball laid out as npm publishes one, its truth, and an install of it."""
    tarball = tmp_path / "gw-1.0.0.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name, text in FILES.items():
            data = text.encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    sri = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    truth = PackageTruth("gw", "1.0.0", sri, read_tarball(tarball))
    root = tmp_path / "prefix" / "node_modules" / "gw"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return tarball, truth, root


def test_the_tarball_is_checked_against_the_registry_integrity(tmp_path: Path) -> None:
    tarball, truth, _ = build(tmp_path)
    assert sri_matches(tarball, truth.integrity)
    assert not sri_matches(tarball, "sha512-" + base64.b64encode(b"x" * 64).decode())
    assert not sri_matches(tarball, "")
    assert set(truth.files) == set(FILES)  # the tarball's package/ folder, stripped


def test_an_install_equal_to_the_package_is_intact(tmp_path: Path) -> None:
    _, truth, root = build(tmp_path)
    (root / "node_modules" / "dep").mkdir(parents=True)  # a dependency: not the package
    (root / "node_modules" / "dep" / "index.js").write_text("x")
    findings = check_installed(truth, root)
    assert findings.verdict == "intact", findings.summary()
    assert findings.dependency_dirs == ["node_modules"]
    assert findings.extra == []


def test_missing_or_altered_shipped_files_are_corrupt_and_extras_are_listed(
        tmp_path: Path) -> None:
    _, truth, root = build(tmp_path)
    (root / "dist/extensions/chat/runtime-api.js").unlink()
    (root / "dist/index.js").write_text("tampered\n")
    (root / "dist/leftover.js").write_text("from an older version\n")
    findings = check_installed(truth, root)
    assert findings.verdict == "corrupt"
    assert findings.missing == ["dist/extensions/chat/runtime-api.js"]
    assert findings.changed == ["dist/index.js"]
    assert findings.extra == ["dist/leftover.js"]
    assert "1 shipped file(s) missing (dist/extensions/chat/runtime-api.js)" in findings.summary()


def test_a_marker_the_packages_own_install_script_deletes_is_no_corruption_when_declared(
        tmp_path: Path) -> None:
    """OpenClaw 2026.8+ ships `.openclaw-lifecycle-pending`, which its postinstall deletes:
    declared by the profile, it is said as removed; undeclared, it is corrupt as before; any
    other missing file is still corrupt."""
    _, truth, root = build(tmp_path)
    (root / "dist/index.js").unlink()  # as if the install script had deleted it
    declared = check_installed(truth, root, removed_by_install=["dist/index.js"])
    assert declared.verdict == "intact", declared.summary()
    assert declared.removed_by_install == ["dist/index.js"] and declared.missing == []
    assert "all 2 files" in declared.summary()
    assert "dist/index.js removed by its own install script, as declared" in declared.summary()
    assert declared.as_dict()["removed_by_install"]["count"] == 1
    assert check_installed(truth, root).missing == ["dist/index.js"]  # undeclared: corrupt
    (root / "dist/extensions/chat/runtime-api.js").unlink()
    other = check_installed(truth, root, removed_by_install=["dist/index.js"])
    assert other.verdict == "corrupt" and other.missing == ["dist/extensions/chat/runtime-api.js"]
    (root / "dist/index.js").write_text("changed by the script\n")  # present: judged as usual
    assert check_installed(truth, root, removed_by_install=["dist/index.js"]).changed == [
        "dist/index.js"]


def test_the_default_profile_declares_openclaws_lifecycle_marker() -> None:
    target = load_target(ROOT / "scenarios" / "targets" / "local-openclaw.toml")
    assert target.package.install_removes == (".openclaw-lifecycle-pending",)
    assert target.package.node_major == "auto"


def test_a_different_version_in_place_is_corrupt(tmp_path: Path) -> None:
    _, truth, root = build(tmp_path)
    (root / "package.json").write_text(json.dumps({"name": "gw", "version": "0.9.0"}))
    findings = check_installed(truth, root)
    assert findings.corrupt and "installed package.json says 0.9.0" in findings.summary()


def test_a_recheck_reads_only_what_changed_since_the_check_that_found_it_identical(
        tmp_path: Path) -> None:
    """The rollback re-checks the kept known-good prefix that preflight hashed: untouched
    files are trusted by their fingerprint, and a file written since is hashed again, even
    when the write kept its size and its mtime was set back (its ctime still moved)."""
    _, truth, root = build(tmp_path)
    hashed: dict = {}
    fresh = check_installed(truth, root, hashed)  # written just now: not trusted yet
    assert fresh.verdict == "intact" and hashed == {}
    time.sleep(0.05)  # past the file system's timestamp tick
    first = check_installed(truth, root, hashed, trust_before_ns=time.time_ns())
    assert first.verdict == "intact" and first.unchanged == 0 and len(hashed) == len(FILES)
    again = check_installed(truth, root, hashed)
    assert again.verdict == "intact" and again.unchanged == len(FILES)
    assert "untouched since this run found them identical" in again.summary()
    target = root / "dist/index.js"
    before = target.stat()
    time.sleep(0.05)
    target.write_text("console.log('ho')\n")  # same size
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    damaged = check_installed(truth, root, hashed)
    assert damaged.changed == ["dist/index.js"] and damaged.unchanged == len(FILES) - 1
    assert "dist/index.js" not in hashed  # never trusted again until found identical
    (root / "dist/extensions/chat/runtime-api.js").unlink()
    gone = check_installed(truth, root, hashed)
    assert gone.missing == ["dist/extensions/chat/runtime-api.js"]
    assert gone.as_dict()["hashed"] == 1  # the altered file, read again


def updater_json(root: Path, *missing: str) -> str:
    """Shaped like `openclaw update --json` after its install verifier complained."""
    return json.dumps({"status": "error", "reason": "global install verify", "steps": [
        {"name": "global update", "command": "npm i -g gw@1.0.0", "exitCode": 0,
         "stdoutTail": "changed 3 packages", "stderrTail": "npm notice"},
        {"name": "global install verify", "command": f"verify {root}", "exitCode": 1,
         "stderrTail": "\n".join(f"missing bundled runtime sidecar {p}" for p in missing)}]})


def test_a_warning_about_files_the_version_never_shipped_is_benign(tmp_path: Path) -> None:
    _, truth, root = build(tmp_path)
    text = updater_json(root, "dist/extensions/qq/runtime-api.js",
                        "dist/extensions/diffs/runtime-api.js")
    judged = judge_report(text, truth, root, SIDECAR)
    assert judged.verdict == "benign"
    assert [f.path for f in judged.findings] == ["dist/extensions/qq/runtime-api.js",
                                                 "dist/extensions/diffs/runtime-api.js"]
    assert judged.findings[0].explanation.startswith(
        "benign: gw@1.0.0 does not ship dist/extensions/qq/runtime-api.js")


def test_the_same_warning_about_a_shipped_file_that_is_gone_is_corrupt(tmp_path: Path) -> None:
    _, truth, root = build(tmp_path)
    (root / "dist/extensions/chat/runtime-api.js").unlink()
    text = updater_json(root, "dist/extensions/qq/runtime-api.js",
                        "dist/extensions/chat/runtime-api.js")
    judged = judge_report(text, truth, root, SIDECAR)
    assert judged.verdict == "corrupt"
    assert [f.classification for f in judged.findings] == ["benign", "corrupt"]


def test_a_warning_the_install_contradicts_is_not_confirmed(tmp_path: Path) -> None:
    _, truth, root = build(tmp_path)
    judged = judge_report(f"missing bundled runtime sidecar {root}/dist/index.js", truth, root,
                          SIDECAR)
    assert judged.findings[0].path == "dist/index.js"  # an absolute path under the install
    assert judged.verdict == "not-confirmed"


def test_without_declared_patterns_a_missing_relative_path_is_still_found(
        tmp_path: Path) -> None:
    _, truth, root = build(tmp_path)
    judged = judge_report("ERROR: file missing: dist/extensions/qq/runtime-api.js\nall ok\n",
                          truth, root)
    assert [f.classification for f in judged.findings] == ["benign"]
    assert judge_report("all ok\n", truth, root).verdict == "nothing-named"


@pytest.mark.parametrize(("pattern", "problem"), [
    ("missing (?P<path>\\\\S+", "not a pattern the linear-time engine (RE2) accepts"),
    ("(?P<path>\\\\S+)(?=x)", "not a pattern the linear-time engine (RE2) accepts"),
    ("missing (\\\\S+)", "needs a named group (?P<path>...)"),
])
def test_a_bad_verifier_pattern_names_file_and_key(tmp_path: Path, pattern: str,
                                                   problem: str) -> None:
    target = ROOT / "scenarios" / "targets" / "local-openclaw.toml"
    path = tmp_path / "t.toml"
    text = target.read_text()
    line = next(x for x in text.splitlines() if x.startswith("verifier_patterns"))
    path.write_text(text.replace(line, f"verifier_patterns = ['{pattern}']"))
    (tmp_path / "openclaw").symlink_to(target.parent / "openclaw")
    with pytest.raises(InputError) as caught:
        load_target(path)
    assert str(caught.value).startswith(f"{path}: package.verifier_patterns[0]: {problem}")
