"""The target's own updater as a rollback path, judged against the package's ground truth.

Two kinds of test: the recorded JSON report of a real `openclaw update --tag 2026.3.28` run by
2026.4.1 (paths replaced by placeholders) read with the OpenClaw profile's own patterns; and the
whole path through `Safety.prepare_by_updater` with a small updater of the same shape (a
package's CLI that replaces its global install as npm does, then runs a verifier whose list
belongs to the version that runs it). The real updater on the real packages runs in
tests/test_safety_e2e.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.judge.policy import load_policy
from harness.procedure.gate import RestartGate
from harness.procedure.phases import rollback_path
from harness.procedure.run import RunRecord, RunSettings
from harness.procedure.safety import BY_UPDATER, Safety
from harness.soak.scenarios import load_scenarios
from harness.targets.groundtruth import PackageTruth, judge_report
from harness.targets.profile import UpdaterSpec, load_target
from harness.targets.registry import Release
from harness.targets.runtime import MARKER, Installation, NodeRuntime, Runtime
from harness.targets.updater import lay_out_global, run_updater

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "tests" / "data" / "openclaw-2026.4.1-update-to-2026.3.28.json"
PROFILE = load_target(ROOT / "scenarios" / "targets" / "local-openclaw.toml")


def test_openclaws_recorded_downgrade_report_names_two_sidecars_3_28_never_shipped(
        tmp_path: Path) -> None:
    report = RECORDED.read_text()
    assert json.loads(report)["reason"] == "global install verify"  # it calls itself failed
    root = tmp_path / "lib" / "node_modules" / "openclaw"
    (root / "dist" / "extensions" / "discord").mkdir(parents=True)
    (root / "dist" / "extensions" / "discord" / "runtime-api.js").write_text("x")
    truth = PackageTruth("openclaw", "2026.3.28", "sha512-x", {
        "dist/extensions/discord/runtime-api.js": (1, hashlib.sha256(b"x").hexdigest())})
    judged = judge_report([report, ""], truth, root, PROFILE.package.verifier_patterns)
    assert judged.verdict == "benign", judged.summary()
    assert {f.path: f.classification for f in judged.findings} == {
        "dist/extensions/diffs/runtime-api.js": "benign",
        "dist/extensions/qqbot/runtime-api.js": "benign"}
    # the same words about a file 3.28 does ship, and which is gone, are damage
    damaged = report.replace("extensions/qqbot/", "extensions/discord/")
    (root / "dist" / "extensions" / "discord" / "runtime-api.js").unlink()
    judged = judge_report(damaged, truth, root, PROFILE.package.verifier_patterns)
    assert judged.verdict == "corrupt"
    assert {f.path: f.classification for f in judged.findings}[
        "dist/extensions/discord/runtime-api.js"] == "corrupt"


# -- a small updater of the same shape -------------------------------------------------------
UPDATER = """#!{python}
import json, os, shutil, subprocess, sys, time
tag = sys.argv[sys.argv.index("--tag") + 1]
root = os.path.join(os.environ["npm_config_prefix"], "lib", "node_modules", "tool")
before = json.load(open(os.path.join(root, "package.json")))["version"]
if os.environ.get("FAKE_HANG"):  # a stuck install, with a child of its own (npm's, say)
    child = subprocess.Popen(["sleep", "300"])
    open(os.environ["FAKE_HANG"], "w").write(str(child.pid))
    time.sleep(300)
aside = root + ".retired"  # as npm does: the old folder aside, the new one fresh, then rm
os.rename(root, aside)
shutil.copytree(os.path.join(os.environ["FAKE_REGISTRY"], tag), root)
shutil.rmtree(aside)
# its verifier's list is the running version's, not the installed one's
sidecars = ["dist/ext/a/runtime.js", "dist/ext/b/runtime.js"]
errors = ["missing bundled runtime sidecar " + p for p in sidecars
          if not os.path.exists(os.path.join(root, p))]
verify = {{"name": "global install verify", "stderrTail": "\\n".join(errors)}}
print(json.dumps({{"status": "error" if errors else "ok",
                  "reason": "global install verify" if errors else None,
                  "before": {{"version": before}}, "after": {{"version": tag}},
                  "steps": [verify]}}))
sys.exit(1 if errors else 0)
"""
KNOWN = Release("tool", "1.0.0", "1.0.0", "sha512-known", None)
CANDIDATE = Release("tool", "2.0.0", "2.0.0", "sha512-cand", None)


def package_files(version: str, drop: tuple[str, ...] = ()) -> dict[str, str]:
    files = {"package.json": json.dumps({"name": "tool", "version": version}),
             "cli.py": UPDATER.format(python=sys.executable),
             "dist/ext/a/runtime.js": f"a {version}"}
    if version == "2.0.0":
        files["dist/ext/b/runtime.js"] = "b, new in 2.0.0"
    return {k: v for k, v in files.items() if k not in drop}


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "cli.py").chmod(0o755)


def kept_prefix(runtime: Runtime, release: Release) -> Installation:
    prefix = runtime.prefix_for(release)
    write_tree(prefix / "node_modules" / "tool", package_files(release.version))
    (prefix / "node_modules" / ".bin").mkdir()
    (prefix / "node_modules" / ".bin" / "tool").symlink_to(Path("..") / "tool" / "cli.py")
    (prefix / MARKER).write_text(json.dumps(release.as_dict()))
    truth = runtime.root / "groundtruth" / "tool" / f"{release.version}.json"
    truth.parent.mkdir(parents=True, exist_ok=True)
    truth.write_text(json.dumps({
        "package": "tool", "version": release.version, "integrity": release.integrity,
        "files": {rel: [len(text.encode()), hashlib.sha256(text.encode()).hexdigest()]
                  for rel, text in package_files(release.version).items()}}))
    return Installation(release, prefix, True, 0.0)


def digests(root: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                       p.stat().st_ino) for p in root.rglob("*") if p.is_file()}


def rollback_by_updater(tmp_path: Path, drop: tuple[str, ...] = (),
                        env: dict[str, str] | None = None, timeout_s: float = 60):
    runtime = Runtime(tmp_path / "runtime")
    kept_prefix(runtime, KNOWN)
    candidate = kept_prefix(runtime, CANDIDATE)
    registry = tmp_path / "registry" / KNOWN.version
    write_tree(registry, package_files(KNOWN.version, drop))
    updater = UpdaterSpec(["update", "--tag", "{version}", "--yes", "--json"],
                          {"FAKE_REGISTRY": str(tmp_path / "registry"), "HOME": "{scratch}/home",
                           **(env or {})}, timeout_s)
    target = replace(PROFILE, package=replace(PROFILE.package, name="tool", bin="tool",
                                              install_env={}, updater=updater))
    policy = load_policy(ROOT / "scenarios" / "policy.toml")
    settings = RunSettings(
        run_id="t", run_dir=tmp_path / "run", cache_dir=tmp_path / "cache", target=target,
        policy=policy, scenarios=load_scenarios(ROOT / "scenarios" / "soak"),
        known_good=KNOWN, candidate=CANDIDATE, soak=policy.soak, watch=policy.watch,
        restart_gate="auto", rollback_path="updater")
    record = RunRecord()
    node = NodeRuntime("0", tmp_path / "no-node")
    safety = Safety(settings, record, runtime, node,
                    SimpleNamespace(state_dir=tmp_path / "state", run_cli=None),  # type: ignore[arg-type]
                    tmp_path / "backups", RestartGate("auto", tmp_path / "run", 5))
    before = digests(candidate.prefix / "node_modules" / "tool")
    prepared = safety.prepare_by_updater(candidate, KNOWN, "known-good (rollback)")
    after = digests(candidate.prefix / "node_modules" / "tool")
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}, \
        "the candidate's kept prefix must never change"
    return prepared, record, runtime


def test_a_rollback_by_the_updater_uses_its_result_and_judges_its_warning_benign(
        tmp_path: Path) -> None:
    prepared, record, runtime = rollback_by_updater(tmp_path)
    assert prepared.path == BY_UPDATER and prepared.ok
    installed = prepared.installation
    assert installed.prefix == tmp_path / "cache" / "runs" / "t" / "updater" / "prefix" / "lib"
    assert installed.bin("tool").resolve() == installed.prefix / "node_modules" / "tool" / \
        "cli.py"  # through npm's own global bin link
    marker = json.loads((installed.prefix / MARKER).read_text())
    assert marker["version"] == "1.0.0" and marker["installed_by"] == BY_UPDATER
    updater = record.as_dict()["updater"]
    assert updater["exit_code"] == 1 and updater["its_reason"] == "global install verify"
    assert updater["its_before"] == {"version": "2.0.0"} and updater["used"] is True
    assert updater["verifier"]["verdict"] == "benign"
    assert [(f["path"], f["classification"]) for f in updater["verifier"]["findings"]] == [
        ("dist/ext/b/runtime.js", "benign")]
    assert updater["ground_truth"]["verdict"] == "intact"
    assert "dist/ext/b/runtime.js: benign" in updater["summary"]
    assert "`tool update --tag 1.0.0 --yes --json` exit 1, status error (global install " \
           "verify)" in updater["summary"]
    assert record.as_dict()["ground_truth"]["known-good (rollback) by the updater"]["verdict"] == \
        "intact"
    assert rollback_path(prepared, "tool@2.0.0").startswith(
        "the target's own updater, run by tool@2.0.0 on a copy of its install (")


def test_a_corrupt_result_of_the_updater_is_not_used_the_kept_prefix_is(tmp_path: Path) -> None:
    prepared, record, runtime = rollback_by_updater(tmp_path, drop=("dist/ext/a/runtime.js",))
    assert prepared.path == "kept prefix" and prepared.ok
    assert prepared.installation.prefix == runtime.prefix_for(KNOWN)
    updater = record.as_dict()["updater"]
    assert updater["used"] is False and updater["verifier"]["verdict"] == "corrupt"
    assert {f["path"]: f["classification"] for f in updater["verifier"]["findings"]} == {
        "dist/ext/a/runtime.js": "corrupt", "dist/ext/b/runtime.js": "benign"}
    assert updater["ground_truth"]["missing"]["paths"] == ["dist/ext/a/runtime.js"]
    assert prepared.as_dict()["updater"]["used"] is False
    assert rollback_path(prepared, "tool@2.0.0") == (
        "prefix switch: the kept known-good prefix, no download (the target's own updater was "
        "tried: its result was not used)")


def test_an_updater_past_its_time_limit_is_killed_with_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    prepared, record, _ = rollback_by_updater(tmp_path, env={"FAKE_HANG": str(pid_file)},
                                              timeout_s=2)
    assert time.monotonic() - started < 30
    assert record.as_dict()["updater"]["exit_code"] is None
    assert record.as_dict()["updater"]["used"] is False and prepared.path == "kept prefix"
    assert "killed at its time limit" in record.as_dict()["updater"]["summary"]
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # killed with the group, then reaped by init
    state = Path(f"/proc/{child}/stat").read_text().split()[2] \
        if Path(f"/proc/{child}").exists() else "gone"
    assert state in ("gone", "Z"), state


def test_the_copy_is_hard_links_and_the_global_layout_npm_expects(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path / "runtime")
    candidate = kept_prefix(runtime, CANDIDATE)
    package = replace(PROFILE.package, name="tool", bin="tool")
    root = lay_out_global(candidate, package, tmp_path / "global")
    assert root == tmp_path / "global" / "lib" / "node_modules" / "tool"
    source = candidate.prefix / "node_modules" / "tool" / "dist" / "ext" / "a" / "runtime.js"
    assert (root / "dist" / "ext" / "a" / "runtime.js").stat().st_ino == source.stat().st_ino
    assert (tmp_path / "global" / "bin" / "tool").resolve() == root / "cli.py"


def test_a_profile_without_an_updater_cannot_roll_back_by_one(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path / "runtime")
    candidate = kept_prefix(runtime, CANDIDATE)
    with pytest.raises(Exception, match="declares no \\[package.updater\\]"):
        run_updater(candidate, KNOWN, replace(PROFILE.package, updater=None),
                    NodeRuntime("0", tmp_path), tmp_path / "work", {})


@pytest.mark.parametrize(("old", "new", "key"), [
    ('"{version}", "--yes"', '"--yes"', "package.updater.command"),
    ('HOME = "{scratch}/home"', 'HOME = "{home}/x"', "package.updater.env.HOME"),
    ("timeout_s = 900", "timeout_s = 0", "package.updater.timeout_s"),
    ("[package.updater]", "[package.updater]\nlayout = \"pnpm\"", "package.updater.layout"),
])
def test_a_malformed_updater_names_file_and_key(tmp_path: Path, old: str, new: str,
                                                key: str) -> None:
    from harness.common.errors import InputError

    source = ROOT / "scenarios" / "targets"
    (tmp_path / "openclaw").symlink_to(source / "openclaw")
    text = (source / "local-openclaw.toml").read_text()
    assert old in text
    path = tmp_path / "t.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(InputError) as caught:
        load_target(path)
    assert str(caught.value).startswith(f"{path}: {key}: "), str(caught.value)


def test_the_shipped_profile_declares_openclaws_own_updater() -> None:
    updater = PROFILE.package.updater
    assert updater is not None
    assert updater.argv("2026.3.28") == ["update", "--tag", "2026.3.28", "--yes",
                                         "--no-restart", "--json"]
    env = updater.environment(Path("/s"))
    assert env["HOME"] == "/s/home" and env["OPENCLAW_STATE_DIR"] == "/s/state"
    assert os.path.commonpath([env["OPENCLAW_CONFIG_PATH"], "/s"]) == "/s"
