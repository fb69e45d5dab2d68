"""The safety procedure against the real OpenClaw packages from the registry.

Ground truth: the registry's own tarball for an exact version is the judge of an install and of
the warnings a tool prints about it.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from harness.targets.groundtruth import (
    GroundTruth,
    check_installed,
    copy_package,
    judge_report,
    package_root,
)
from harness.targets.profile import load_target
from harness.targets.runtime import NodeRuntime, Runtime

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


# -- the procedure's safety steps, through `pytest scenarios` as a user runs it ------------
def start_suite(run_dir: Path, *args: str, env: dict[str, str] | None = None
                ) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "scenarios", "-q", "--run-dir", str(run_dir), *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})})


def finish(proc: subprocess.Popen[str], run_dir: Path, timeout: float = 1500
           ) -> tuple[int, str, dict]:
    output, _ = proc.communicate(timeout=timeout)
    verdict_path = run_dir / "verdict.json"
    verdict = json.loads(verdict_path.read_text()) if verdict_path.exists() else {}
    return proc.returncode, output, verdict


def run_suite(run_dir: Path, *args: str, env: dict[str, str] | None = None,
              timeout: float = 1500) -> tuple[int, str, dict]:
    return finish(start_suite(run_dir, *args, env=env), run_dir, timeout)


def phase(verdict: dict, name: str) -> dict:
    return next(p for p in verdict["phases"] if p["name"] == name)


def outcomes(verdict: dict, *names: str) -> list[str]:
    return [phase(verdict, n)["outcome"] for n in names]


def wait_for_gate(run_dir: Path, proc: subprocess.Popen[str], timeout: float = 600) -> dict:
    """The gate's request, once the run waits on it (the run still going)."""
    request = run_dir / "restart-gate.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if request.exists():
            return json.loads(request.read_text())
        assert proc.poll() is None, "the run ended before its restart gate opened"
        time.sleep(0.25)
    raise AssertionError("the restart gate never opened")


def serving(url: str) -> bool:
    try:
        return httpx.get(url, timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def allure_attachment(run: Path, name: str) -> str:
    """The text of the run's Allure attachment called `name`, in a test's steps or in a
    fixture's (a phase runs in its session fixture: Allure keeps it in a container file)."""
    def walk(node: dict) -> list[dict]:
        found = list(node.get("attachments", []))
        for child in node.get("steps", []) + node.get("befores", []) + node.get("afters", []):
            found += walk(child)
        return found

    results = run / "allure-results"
    # only Allure's own result and container files: the folder also holds the run's
    # categories.json (a list), written beside them
    for result in [*results.glob("*-result.json"), *results.glob("*-container.json")]:
        for attachment in walk(json.loads(result.read_text())):
            if attachment["name"] == name:
                return (run / "allure-results" / attachment["source"]).read_text()
    raise AssertionError(f"no attachment {name!r} in the run's Allure results")


@pytest.mark.e2e
@pytest.mark.soaks
def test_a_rollback_by_the_targets_own_updater_judges_its_sidecar_warning_benign(
        tmp_path: Path, runtime: Runtime) -> None:
    """The seed's rollback in a run: 2026.4.1's own `openclaw update --tag 2026.3.28` takes a
    copy of its install back, calls its own downgrade a failure, and its verifier names bundled
    sidecars missing. The harness judges each named file against 2026.3.28's package (none is
    part of it: benign), checks the result file by file, and serves 2026.3.28 from it. To keep
    the run about the updater, the candidate fails at start (a config key 2026.4.1 refuses),
    and the watches see the quick path only."""
    patch = tmp_path / "refused-key.json"
    patch.write_text(json.dumps({"agents": {"defaults": {"harnessE2eUnknownKey": True}}}))
    run = tmp_path / "run"
    code, output, verdict = run_suite(
        run, "--rollback-path", "updater", "--candidate-config", str(patch),
        "--scenarios", str(ROOT / "scenarios" / "soak" / "reply-quick.toml"),
        "--baseline", "0", "--watch", "5", "--late-watch", "5", "--late-watch-delay", "2")
    assert code == 10, output[-3000:]
    copy = ROOT / ".cache" / "runs" / verdict["lock"]["run_id"] / "updater"
    try:
        check_the_rollback_by_the_updater(run, verdict, runtime)
    finally:  # the updater's result is a whole install (about 650 MB): not kept after the test
        shutil.rmtree(copy, ignore_errors=True)


def check_the_rollback_by_the_updater(run: Path, verdict: dict, runtime: Runtime) -> None:
    assert phase(verdict, "start")["outcome"] == "failed"
    updater = verdict["updater"]
    # the updater itself calls its successful downgrade an error
    assert updater["exit_code"] == 1 and updater["its_status"] == "error"
    assert updater["its_reason"] == "global install verify", updater
    assert updater["its_before"] == {"version": CANDIDATE}
    assert updater["its_after"] == {"version": KNOWN_GOOD}
    assert updater["command"][1:] == ["update", "--tag", KNOWN_GOOD, "--yes", "--no-restart",
                                      "--json"]
    # each file its verifier named, judged against 2026.3.28's own package: never shipped
    judged = updater["verifier"]
    assert judged["verdict"] == "benign" and judged["version"] == KNOWN_GOOD, judged
    named = {f["path"]: f for f in judged["findings"]}
    assert "dist/extensions/qqbot/runtime-api.js" in named, sorted(named)
    assert all(p.startswith("dist/extensions/") and p.endswith("/runtime-api.js") and
               f["classification"] == "benign" and not f["shipped"]
               for p, f in named.items())
    assert all("missing bundled runtime sidecar" in f["line"] for f in named.values())
    # and its result is 2026.3.28 as the registry ships it, which the gateway now runs
    assert updater["ground_truth"]["verdict"] == "intact" and updater["used"] is True
    assert verdict["ground_truth"]["known-good (rollback) by the updater"]["verdict"] == \
        "intact"
    assert verdict["rollback_path"]["how"] == "the target's own updater"
    deployment = ROOT / ".cache" / "runs" / verdict["lock"]["run_id"]
    assert (deployment / "deployment" / "current").resolve() == \
        deployment / "updater" / "prefix" / "lib"
    assert verdict["final_state"]["serving"] is True
    assert verdict["final_state"]["version"] == KNOWN_GOOD
    rollback = [p for p in verdict["phases"] if p["family"] == "rollback"]
    assert len(rollback) == 8 and all(p["outcome"] == "passed" for p in rollback), rollback
    # every finding in the phase's summary, the report and the claim
    prepare = phase(verdict, "rollback_prepare")["reason"]
    assert all(f"{p}: benign" in prepare for p in named), prepare
    attached = json.loads(allure_attachment(
        run, f"updater verifier output judged against openclaw@{KNOWN_GOOD}"))
    assert attached == judged
    assert f"by the target's own updater, whose verifier named {len(named)} file(s) missing: " \
           f"benign against openclaw@{KNOWN_GOOD}'s own package" in verdict["claim"]
    assert "dist/extensions/qqbot/runtime-api.js`: **benign**" in \
        (run / "summary.md").read_text()
    # the candidate's kept prefix, whose binary ran the updater, is untouched
    release = runtime.registry.resolve("openclaw", CANDIDATE, "test")
    truth = GroundTruth(runtime.root, runtime.npm_env()).truth(release)
    assert check_installed(truth, package_root(runtime.prefix_for(release), "openclaw")
                           ).verdict == "intact"


@pytest.mark.e2e
@pytest.mark.soaks(minutes=5.5)  # held in CI, for the order (tests/conftest.py)
def test_the_manual_gate_waits_and_each_restart_proceeds_on_approval(tmp_path: Path) -> None:
    """2026.3.28 -> 2026.4.1 with a person approving both interruptions, upgrade and rollback."""
    run = tmp_path / "run"
    proc = start_suite(run, "--restart-gate", "manual", "--gate-timeout", "300",
                       "--soak", "40", "--watch", "20", "--late-watch", "5",
                       "--late-watch-delay", "2", "--baseline", "0")
    approvals = []
    for who in ("ops-alice", "ops-bob"):
        request = wait_for_gate(run, proc)
        time.sleep(2)  # the gate really waits: nothing stops while nobody has answered
        assert (run / "restart-gate.json").exists() and serving(request["plan"]["health"])
        done = harness_cli("approve", str(run), "--by", who)
        assert done.returncode == 0, done.stderr
        approvals.append(request)
        while (run / "restart-gate.json").exists():
            time.sleep(0.1)
    code, output, verdict = finish(proc, run)
    assert code == 10, output[-3000:]
    assert approvals[0]["purpose"] == "stop the known-good and start the candidate"
    assert "openclaw@2026.3.28 serving at" in approvals[0]["plan"]["interrupts"]
    assert approvals[1]["purpose"] == "stop the candidate and start the known-good version"
    decisions = verdict["restart_decisions"]
    assert [(d["by"], d["channel"], d["approved"]) for d in decisions] == [
        ("ops-alice", "harness approve", True), ("ops-bob", "harness approve", True)]
    assert all(d["waited_s"] >= 2 for d in decisions)
    assert phase(verdict, "restart_gate")["outcome"] == "passed"
    # the rollback switched back to the kept prefix and restored the state
    assert verdict["rollback_path"]["path"].startswith("prefix switch")
    assert outcomes(verdict, "rollback_prepare", "rollback_restart_gate", "rollback_restore",
                    "rollback_start") == ["passed"] * 4
    assert verdict["ground_truth"]["known-good (rollback)"]["verdict"] == "intact"
    assert verdict["ground_truth"]["candidate (install)"]["verdict"] == "intact"
    assert verdict["final_state"]["version"] == "2026.3.28" and verdict["final_state"]["serving"]
    assert verdict["claim"].startswith("Backup posture full: openclaw backup create --verify")


@pytest.mark.e2e
def test_without_approval_the_gate_times_out_and_the_known_good_keeps_serving(
        tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = start_suite(run, "--restart-gate", "manual", "--gate-timeout", "8",
                       "--baseline", "0")  # the gate is the subject: no soak before it
    request = wait_for_gate(run, proc)
    served = []
    while (run / "restart-gate.json").exists():
        served.append(serving(request["plan"]["health"]))
        time.sleep(0.5)
    code, output, verdict = finish(proc, run)
    assert code == 16, output[-3000:]
    assert served and all(served)  # the known-good served all the while the gate waited
    assert verdict["outcome"] == "no_approval"
    gate = phase(verdict, "restart_gate")
    assert gate["outcome"] == "failed"
    assert "no approval within 8 s; nothing was interrupted; 2026.3.28 still serving" \
        in gate["reason"]
    assert outcomes(verdict, "stop", "start", "health") == ["skipped"] * 3
    assert all(p["outcome"] == "skipped" for p in verdict["phases"] if p["family"] != "upgrade")
    assert verdict["final_state"]["serving"] is True
    assert verdict["final_state"]["version"] == "2026.3.28"
    assert "2026.3.28 was left serving" in verdict["claim"]


@pytest.mark.e2e
@pytest.mark.soaks(minutes=2)
def test_a_rollback_gate_without_approval_interrupts_nothing_and_says_who_must_decide(
        tmp_path: Path) -> None:
    """2026.4.1 fails its soak; a person approved the upgrade's restart, and nobody answers the
    rollback's. Without an approval nothing is interrupted: the failed candidate keeps serving
    while the gate waits and until the run ends (then the harness stops the deployment it
    provisioned), the run ends rollback_failed (exit 11: look now), and the verdict, summary
    and claim say the rollback was prepared and not done, and who must decide. An approval
    that comes after the gate closed opens nothing."""
    run = tmp_path / "run"
    proc = start_suite(run, "--restart-gate", "manual", "--gate-timeout", "20",
                       "--soak", "90", "--baseline", "0")
    upgrade = wait_for_gate(run, proc)
    assert upgrade["purpose"] == "stop the known-good and start the candidate"
    assert harness_cli("approve", str(run), "--by", "ops-alice").returncode == 0
    while (run / "restart-gate.json").exists():
        time.sleep(0.1)
    rollback = wait_for_gate(run, proc, timeout=900)  # once the soak has failed
    assert rollback["purpose"] == "stop the candidate and start the known-good version"
    assert f"openclaw@{CANDIDATE} serving at" in rollback["plan"]["interrupts"]
    run_id = json.loads((run / "release.lock.json").read_text())["run_id"]
    current = ROOT / ".cache" / "runs" / run_id / "deployment" / "current"
    served = []
    while (run / "restart-gate.json").exists():  # nobody answers
        served.append((serving(rollback["plan"]["health"]), current.resolve().name))
        time.sleep(0.5)
    late = harness_cli("approve", str(run), "--by", "ops-late")
    code, output, verdict = finish(proc, run)
    assert code == 11, output[-3000:]
    assert served and all(s == (True, CANDIDATE) for s in served), served
    assert late.returncode != 0 and "no restart is waiting for approval" in late.stderr
    assert verdict["outcome"] == "rollback_failed"
    assert phase(verdict, "soak_policy")["outcome"] == "failed"
    decisions = [(d["by"], d["channel"], d["approved"]) for d in verdict["restart_decisions"]]
    assert decisions == [("ops-alice", "harness approve", True), ("nobody", "timeout", False)]
    gate = phase(verdict, "rollback_restart_gate")
    assert gate["outcome"] == "failed"
    assert (f"no approval within 20 s; nothing was interrupted; {CANDIDATE} still serving; the "
            f"rollback to {KNOWN_GOOD} is prepared and not done: the person who holds the "
            "restart gate must decide") in gate["reason"]
    assert outcomes(verdict, "rollback_backup", "rollback_prepare") == ["passed"] * 2
    assert outcomes(verdict, "rollback_restore", "rollback_start", "rollback_smoke",
                    "rollback_watch", "rollback_late_watch") == ["skipped"] * 5
    assert verdict["final_state"]["serving"] is True
    assert verdict["final_state"]["version"] == CANDIDATE
    claim = verdict["claim"]
    assert f"its rollback to {KNOWN_GOOD} was prepared (prefix switch" in claim
    assert ("but not done: nobody approved its restart within 20 s at the manual restart gate, "
            "and without an approval the harness interrupts nothing. The failed "
            f"{CANDIDATE} kept serving until the run ended. The person who holds this run's "
            f"restart gate must decide now: roll back to {KNOWN_GOOD}, or keep the failed "
            f"{CANDIDATE} knowingly.") in claim
    summary = (run / "summary.md").read_text()
    assert "**rollback_failed** (exit 11)" in summary and claim in summary
    assert "| rollback: rollback_restart_gate | " in summary
    ledger = [json.loads(line) for line in
              (run / "restart-decisions.jsonl").read_text().splitlines()]
    assert [d["approved"] for d in ledger] == [True, False]


@pytest.mark.e2e
def test_a_dist_tag_that_moves_while_the_gate_waits_voids_the_review(tmp_path: Path) -> None:
    """`latest` is 2026.4.1 when the review is locked and 2026.4.2 by the time a person approves
    the restart (see tests/seams/moving_dist_tag.py: the registry cannot be moved for a test)."""
    run, moved = tmp_path / "run", tmp_path / "tag-moved"
    proc = start_suite(run, "-p", "tests.seams.moving_dist_tag", "--candidate", "latest",
                       "--restart-gate", "manual", "--gate-timeout", "300",
                       "--baseline", "0",  # the lock at the gate is the subject: no soak
                       env={"SEAM_TAG_BEFORE": CANDIDATE, "SEAM_TAG_AFTER": "2026.4.2",
                            "SEAM_TAG_MOVES_WHEN": str(moved)})
    wait_for_gate(run, proc)
    moved.touch()
    assert harness_cli("approve", str(run), "--by", "ops-alice").returncode == 0
    code, output, verdict = finish(proc, run)
    assert code == 14, output[-3000:]
    assert verdict["outcome"] == "stale_lock"
    assert verdict["lock"]["candidate"]["version"] == CANDIDATE
    stop = phase(verdict, "stop")
    assert stop["outcome"] == "failed"
    assert "review is stale: candidate openclaw@latest now resolves to openclaw@2026.4.2" \
        in stop["reason"] and "Re-run the review and re-lock" in stop["reason"]
    assert [c["ok"] for c in verdict["lock_checks"]] == [True, False]  # install, then stop
    assert outcomes(verdict, "start", "health") == ["skipped", "skipped"]
    assert verdict["final_state"]["serving"] is True
    assert verdict["final_state"]["version"] == KNOWN_GOOD


@pytest.mark.e2e
def test_a_corrupted_backup_is_caught_by_the_test_restore_before_anything_stops(
        tmp_path: Path) -> None:
    """OpenClaw's own `backup create --verify` writes and verifies its archive, the harness then
    writes its own; a byte of each rots on disk (tests/seams/rotting_storage.py). The harness's
    test restore catches both."""
    run = tmp_path / "run"
    code, output, verdict = run_suite(run, "-p", "tests.seams.rotting_storage", timeout=900)
    assert code == 15, output[-3000:]
    attempts = verdict["backups"]["pre-upgrade"]["attempts"]
    full = [a for a in attempts if a["scope"] == "full"]
    assert [a["tool"] for a in full] == ["openclaw backup create --verify --json",
                                         "harness archive"]
    assert all(not a["ok"] and a["why"].startswith("test restore does not match the manifest")
               for a in full), full
    assert [a["ok"] for a in attempts if a["scope"] == "config-only"] == [True]
    # only the config could be shown safe, and nobody accepted that up front
    assert verdict["backup_posture"]["posture"] == "config-only"
    assert verdict["outcome"] == "backup_no_go"
    assert phase(verdict, "backup")["outcome"] == "failed"
    assert outcomes(verdict, "install", "restart_gate", "stop") == ["skipped"] * 3
    assert verdict["final_state"]["serving"] is True
    assert verdict["final_state"]["version"] == KNOWN_GOOD
    assert verdict["claim"].startswith("Backup posture config-only (degraded)")


def config_only_target(tmp_path: Path) -> Path:
    """The shipped target, knowing only where the config is (no credentials, sessions, state)."""
    source = ROOT / "scenarios" / "targets"
    target = tmp_path / "targets" / "config-only.toml"
    target.parent.mkdir()
    (target.parent / "openclaw").symlink_to(source / "openclaw")
    lines = (source / "local-openclaw.toml").read_text().splitlines()
    start = lines.index("[state.paths]")
    kept = [x for x in lines[start + 1:] if not x.startswith(("credentials", "sessions",
                                                               "state ="))]
    target.write_text("\n".join(lines[:start + 1] + kept) + "\n")
    return target


@pytest.mark.e2e
@pytest.mark.soaks
def test_a_config_only_posture_stops_the_run_unless_accepted_up_front(tmp_path: Path) -> None:
    target = config_only_target(tmp_path)
    code, output, verdict = run_suite(tmp_path / "refused", "--target", str(target),
                                      timeout=900)
    assert code == 15, output[-3000:]
    reason = phase(verdict, "backup")["reason"]
    assert "no-go: backup posture config-only (degraded): openclaw backup create" in reason
    assert "credentials is not declared in the target profile" in reason
    assert "re-running with --accept-backup-posture config-only" in reason
    assert outcomes(verdict, "install", "stop") == ["skipped", "skipped"]
    assert verdict["final_state"]["serving"] is True

    code, output, verdict = run_suite(tmp_path / "accepted", "--target", str(target),
                                      "--accept-backup-posture", "config-only",
                                      "--candidate", KNOWN_GOOD, "--soak", "10",
                                      # the subject is the posture: a 10 s soak is too short
                                      # to judge every path, so its inconclusive is accepted
                                      "--inconclusive", "pass", "--baseline", "0")
    assert code == 0, output[-3000:]
    assert verdict["claim"].startswith("Backup posture config-only (degraded): ")
    assert "accepted up front by --accept-backup-posture config-only" in verdict["claim"]
    assert verdict["lock"]["accept_backup_posture"] == "config-only"


@pytest.mark.e2e
@pytest.mark.soaks
def test_a_name_typed_at_the_terminal_approves_the_restart(tmp_path: Path) -> None:
    """`pytest scenarios` on a terminal (a pseudo-terminal here) prompts at the gate and reads
    the answer from stdin, past pytest's own capture of stdin."""
    run = tmp_path / "run"
    leader, follower = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "scenarios", "-q", "--run-dir", str(run),
         "--restart-gate", "manual", "--gate-timeout", "300", "--candidate", KNOWN_GOOD,
         "--soak", "10", "--inconclusive", "pass", "--baseline", "0"],  # the gate is the subject
        cwd=ROOT, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    shown = b""
    answered = False
    while proc.poll() is None:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                shown += os.read(leader, 65536)
            except OSError:
                break
        if not answered and b"Type your name to approve, 'no' to refuse" in shown:
            assert (run / "restart-gate.json").exists()
            os.write(leader, b"ops-dana\n")
            answered = True
    proc.wait(timeout=60)
    os.close(leader)
    assert answered, shown.decode(errors="replace")[-2000:]
    assert proc.returncode == 0, shown.decode(errors="replace")[-3000:]
    verdict = json.loads((run / "verdict.json").read_text())
    decision = verdict["restart_decisions"][0]
    assert decision["channel"] == "tty" and decision["by"].startswith("ops-dana")
    assert decision["approved"] and verdict["outcome"] == "passed"
