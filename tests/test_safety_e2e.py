"""The safety procedure against the real OpenClaw packages from the registry.

Ground truth: the registry's own tarball for an exact version is the judge of an install and of
the warnings a tool prints about it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.target.groundtruth import (
    GroundTruth,
    check_installed,
    copy_package,
    judge_report,
    package_root,
)
from harness.target.profile import load_target
from harness.target.runtime import NodeRuntime, Runtime

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "scenarios" / "targets" / "local-openclaw.toml"
KNOWN_GOOD, CANDIDATE = "2026.3.28", "2026.4.1"


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return Runtime(ROOT / ".cache" / "runtime")


@pytest.fixture(scope="module")
def node(runtime: Runtime) -> NodeRuntime:
    return runtime.node("22")


def harness_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.e2e
def test_a_deleted_shipped_file_is_corrupt_and_a_never_shipped_one_is_benign(
        tmp_path: Path, runtime: Runtime, node: NodeRuntime) -> None:
    profile = load_target(TARGET)
    release = runtime.registry.resolve("openclaw", KNOWN_GOOD, "test")
    prefix = runtime.install(release, node, profile.package.install_env).prefix
    truth = GroundTruth(runtime.root, runtime.npm_env()).truth(release)
    shipped = "dist/extensions/discord/runtime-api.js"
    assert truth.ships(shipped) and not truth.ships("dist/extensions/qqbot/runtime-api.js")
    # a private copy: the shared cache's prefix is never damaged
    root = copy_package(prefix, "openclaw", tmp_path / "copy")
    assert check_installed(truth, root).verdict == "intact"
    (root / shipped).unlink()
    findings = check_installed(truth, root)
    assert findings.verdict == "corrupt"
    assert findings.missing == [shipped] and findings.changed == [] and findings.extra == []
    # the updater's wording, about the deleted file and about one 2026.3.28 never had
    warning = (f"missing bundled runtime sidecar {shipped}\n"
               "missing bundled runtime sidecar dist/extensions/qqbot/runtime-api.js\n")
    judged = judge_report(warning, truth, root, profile.package.verifier_patterns)
    assert judged.verdict == "corrupt"
    assert {f.path: f.classification for f in judged.findings} == {
        shipped: "corrupt", "dist/extensions/qqbot/runtime-api.js": "benign"}
    # the command a person runs in the incident says the same, and fails
    done = harness_cli("groundtruth", f"openclaw@{KNOWN_GOOD}", str(tmp_path / "copy"),
                       "--verifier-output", "-", "--target", str(TARGET), stdin=warning)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"corrupt: openclaw@{KNOWN_GOOD} ships {shipped} and it is missing" in done.stdout


@pytest.mark.e2e
def test_the_updaters_sidecar_warning_after_a_downgrade_is_judged_benign(
        tmp_path: Path, runtime: Runtime, node: NodeRuntime) -> None:
    """The incident's moment, for real: 2026.4.1's own `openclaw update` downgrades a global
    install to 2026.3.28 and its verifier reports bundled sidecars missing. The harness judges
    each named file against 2026.3.28's package: none of them is part of it."""
    profile = load_target(TARGET)
    glob = tmp_path / "global"
    home, state = tmp_path / "home", tmp_path / "state"
    for folder in (home, state):
        folder.mkdir()
    env = {**os.environ, **runtime.npm_env(), **profile.package.install_env,
           "PATH": f"{glob / 'bin'}{os.pathsep}{node.path_env()}",
           "npm_config_prefix": str(glob), "npm_config_prefer_offline": "true",
           "HOME": str(home), "OPENCLAW_STATE_DIR": str(state), "NO_COLOR": "1",
           "OPENCLAW_DISABLE_BONJOUR": "1", "OPENCLAW_NO_RESPAWN": "1"}
    subprocess.run(["npm", "install", "-g", "--no-audit", "--no-fund", "--loglevel=error",
                    f"openclaw@{CANDIDATE}"], env=env, check=True, capture_output=True,
                   timeout=900)
    update = subprocess.run(
        [str(glob / "bin" / "openclaw"), "update", "--tag", KNOWN_GOOD, "--yes",
         "--no-restart", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=900)
    report = json.loads(update.stdout)
    # the updater itself calls its own successful downgrade a failure
    assert update.returncode == 1 and report["reason"] == "global install verify", update.stdout
    assert report["after"]["version"] == KNOWN_GOOD
    verify = next(s for s in report["steps"] if s["name"] == "global install verify")
    assert "missing bundled runtime sidecar dist/extensions/" in verify["stderrTail"]
    (tmp_path / "update.json").write_text(update.stdout)

    done = harness_cli("groundtruth", f"openclaw@{KNOWN_GOOD}", str(glob), "--json",
                       "--verifier-output", str(tmp_path / "update.json"),
                       "--target", str(TARGET))
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["install"]["verdict"] == "intact", out["install"]["summary"]
    judged = out["verifier_output"]
    assert judged["verdict"] == "benign"
    named = {f["path"] for f in judged["findings"]}
    assert named and all(p.startswith("dist/extensions/") for p in named)
    assert named == {line.removeprefix("missing bundled runtime sidecar ")
                     for line in verify["stderrTail"].splitlines()}
    assert all(f["classification"] == "benign" and not f["shipped"] for f in judged["findings"])
    # and the package the updater left really is 2026.3.28, byte for byte
    release = runtime.registry.resolve("openclaw", KNOWN_GOOD, "test")
    truth = GroundTruth(runtime.root, runtime.npm_env()).truth(release)
    assert check_installed(truth, package_root(glob / "lib", "openclaw")).verdict == "intact"
