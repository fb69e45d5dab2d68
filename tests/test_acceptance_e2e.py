"""The acceptance suite run as a user runs it, against the real OpenClaw packages.

Each test starts `pytest scenarios` in a subprocess (the real command line, exit code and
verdict.json), which installs Node.js and both gateway versions into the project's cache on
first use, runs the model lab, and provisions a gateway on loopback of its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.reporting import redact
from harness.reporting.browser import look_at_graphs, look_at_report, look_at_verdict
from harness.reporting.headline import run_of
from harness.targets.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
RUNS: dict[str, Path] = {}  # real runs of this session, kept for the comparison test
PLANTED = 'stage "planted-by-the-e2e-test" threw: Authorization: Bearer '


def run_suite(run_dir: Path, *args: str, timeout: float = 1500) -> tuple[int, str, dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios", "-q", "--run-dir", str(run_dir), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )
    verdict_path = run_dir / "verdict.json"
    verdict = json.loads(verdict_path.read_text()) if verdict_path.exists() else {}
    return proc.returncode, proc.stdout + proc.stderr, verdict


def target_variant(tmp_path: Path, name: str, *replacements: tuple[str, str]) -> Path:
    """A copy of the shipped target file with some text replaced, beside its config template."""
    source = ROOT / "scenarios" / "targets"
    target = tmp_path / "targets" / f"{name}.toml"
    target.parent.mkdir()
    (target.parent / "openclaw").symlink_to(source / "openclaw")
    text = (source / "local-openclaw.toml").read_text()
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    target.write_text(text)
    return target


def phase(verdict: dict, name: str) -> dict:
    return next(p for p in verdict["phases"] if p["name"] == name)


def assert_the_headline(run: Path, title: str, accepted: bool) -> None:
    """A rendered run's first screen in headless Chromium: the title says target, versions and
    outcome; the quality gate release-accepted, as Allure evaluated it, says the same."""
    seen = look_at_verdict(run / "html", run / "screenshots", Runtime(ROOT / ".cache" / "runtime"))
    status = "passed" if accepted else "failed"
    assert seen["title"] == title, seen
    assert seen["gateTabStatus"] == status, seen
    gates = {g["rule"]: g["status"] for g in seen["gates"]}
    assert gates == {"release-accepted/maxFailures": status,
                     "release-accepted/minTestsCount": "passed"}, seen
    code = json.loads((run / "verdict.json").read_text())["exit_code"]
    assert seen["under"].endswith(f"with exit code {int(not accepted)} (original {code})"), seen
    assert (run / "screenshots" / "verdict.png").stat().st_size > 10_000


def plant_token_in_the_candidates_log(run_dir: Path, stop: threading.Event) -> None:
    """Once the candidate runs (its deployment's log has a second start), append every 10 s a
    line of the kind the gateway logs (a warning-class signature, which no trigger counts)
    that carries the run's gateway token: the soak's log excerpts in the report will hold it.
    Only this run's own deployment (its run id is in the lock it writes at the start): runs of
    other tests go on beside it on other workers."""
    while not stop.wait(1.0):
        try:
            run_id = json.loads((run_dir / "release.lock.json").read_text())["run_id"]
        except (OSError, ValueError, KeyError):
            continue
        log = ROOT / ".cache" / "runs" / run_id / "deployment" / "logs" / "gateway.log"
        if not log.exists() or log.read_text().count("--- harness: starting") < 2:
            continue
        token = json.loads((log.parents[1] / "state" / "openclaw.json").read_text())[
            "gateway"]["auth"]["token"]
        for _ in range(9):  # from the candidate's start to past the soak's early stop
            if stop.wait(10.0):
                return
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime())
            with open(log, "a") as handle:
                handle.write(f"{stamp} [gateway-http] {PLANTED}{token}\n")
        return


@pytest.mark.e2e
@pytest.mark.xdist_group("real-runs")  # the comparison and the trend use both runs
@pytest.mark.soaks
def test_regressing_candidate_is_caught_by_the_soak_and_rolled_back(tmp_path: Path) -> None:
    stop = threading.Event()
    planter = threading.Thread(target=plant_token_in_the_candidates_log,
                               args=(tmp_path / "run", stop), daemon=True)
    planter.start()
    # the window outlasts the first slow replies (about 60 s), so a trigger stops it early
    try:
        code, output, verdict = run_suite(tmp_path / "run", "--soak", "90", "--watch", "20",
                                          "--late-watch", "10", "--late-watch-delay", "5",
                                          "--baseline", "20")
    finally:
        stop.set()
        planter.join(timeout=15)
    assert code == 10, output[-3000:]
    assert verdict["outcome"] == "rolled_back"
    # the outcome line stands on its own line, not glued to pytest's "[100%]"
    assert any(line.startswith("harness: rolled_back (exit 10): Backup posture full")
               for line in output.splitlines()), output[-3000:]
    assert verdict["lock"]["candidate"]["version"] == "2026.4.1"
    assert verdict["lock"]["candidate"]["integrity"].startswith("sha512-")
    # green startup checks on the candidate were not enough
    assert phase(verdict, "health")["outcome"] == "passed"
    assert phase(verdict, "soak_policy")["outcome"] == "failed"
    soak = verdict["soak"]
    # The deciding triggers see the same failures at about the same second (a timed-out run
    # logs its failover line as its empty reply arrives); whichever decides first stops the soak.
    deciding = {d["trigger"] for d in soak["decisions"] if d["decides"]}
    assert soak["stopped_by"] in deciding
    assert {"timeout-failover-burst", "new-timeouts-vs-baseline"} & deciding
    # stopped early, not at the end of the window and drain: what was in flight had its grace
    assert soak["seconds"] < 90 + soak["stop_grace_s"]
    logged = next(d for d in soak["decisions"] if d["trigger"] == "timeout-failover-burst")
    # the evidence is the real gateway's own failover lines for the slow model
    assert logged["observed"] >= 1
    assert all("decision=surface_error reason=timeout provider=lab/slow-reasoner" in line
               for line in logged["evidence"]), logged["evidence"]
    assert soak["signature_counts"]["failover-decision"] >= 1
    assert soak["scenarios"]["reply-streaming"]["good"] == 0
    assert soak["scenarios"]["reply-plain"]["good"] == 0
    assert soak["scenarios"]["reply-quick"]["good"] > 0  # fast replies stayed fine on 4.1
    RUNS["rolled_back"] = tmp_path / "run"
    # the verdict says why, against the known-good's own baseline under the same mix
    assert phase(verdict, "baseline")["outcome"] == "passed"
    baseline = verdict["baseline"]
    assert baseline["class_counts"]["failover"] == 0
    assert baseline["scenarios"]["reply-streaming"]["good"] >= 1
    assert soak["comparison"]["classes"]["failover"]["new"] is True
    assert soak["verdict"]["verdict"] == "fail"
    paths = soak["verdict"]["scenarios"]
    assert paths["reply-plain"]["verdict"] == "fail"
    assert paths["panel-3-reviewers"]["verdict"] == "fail"
    # a streamed slow reply may still be open when the soak stops: not judged, and said so
    assert paths["reply-streaming"]["verdict"] in ("fail", "inconclusive")
    assert paths["reply-quick"]["verdict"] == "pass"  # fast replies stayed fine on 4.1
    versus = next(d for d in soak["decisions"] if d["trigger"] == "new-timeouts-vs-baseline")
    assert versus["observed"] >= 1 and "the baseline had none" in versus["note"]
    assert all(d["policy_sha256"] == verdict["lock"]["policy"]["sha256"]
               for d in soak["decisions"])
    # rollback: every step passed, state equals the pre-upgrade backup
    rollback = [p for p in verdict["phases"] if p["family"] == "rollback"]
    assert rollback and all(p["outcome"] == "passed" for p in rollback), rollback
    assert verdict["rollback_state_diff"] == {"missing": [], "added": [], "changed": []}
    # once the decision rolled back, what was in flight was cut at once, not waited for, and
    # no path whose requests were cut passed on too little
    recovery = verdict["recovery"]
    assert recovery["decided_by"] == soak["stopped_by"]
    assert recovery["grace_s"] < soak["stop_grace_s"] and recovery["cut_by_decision"] >= 1
    assert {"backup_s", "prepare_s", "restore_s", "start_s", "first_reply_s", "total_s"} <= \
        set(recovery), recovery
    for sid, stats in soak["scenarios"].items():
        if stats["cut_by_decision"] and stats["finished"] < 2:
            assert soak["verdict"]["scenarios"][sid]["verdict"] != "pass", sid
    # the smoke proved the fast paths and left the slow reasoner to the early watch
    smoke = verdict["smoke"]["scenarios"]
    assert smoke and not {"reply-plain", "reply-streaming", "panel-3-reviewers"} & set(smoke)
    # both watches, the early one and the later one after a quiet delay, saw every path of the
    # mix, slow-reasoner replies included, succeed through 2026.3.28: not just a live process
    for label, delay in (("watch", 0), ("late_watch", 5)):
        watched = verdict[label]
        assert watched["verdict"]["verdict"] == "pass", (label, watched["verdict"])
        assert watched["delay_s"] == delay and watched["class_counts"]["failover"] == 0
        paths = watched["scenarios"]
        assert set(paths) == set(soak["scenarios"]), label  # the whole mix
        assert all(p["good"] >= 1 and p["bad"] == 0 and p["cut"] == 0 for p in paths.values())
        assert paths["reply-streaming"]["max_s"] > 60, (label, paths["reply-streaming"])
        assert paths["panel-3-reviewers"]["max_s"] > 60, (label, paths["panel-3-reviewers"])
    assert "its early watch passed, and its later watch after 5 s of quiet passed" \
        in verdict["claim"]
    assert "### Later watch after rollback: pass (5 s of quiet first" in \
        (tmp_path / "run" / "summary.md").read_text()
    assert verdict["final_state"]["serving"] is True
    assert verdict["final_state"]["version"] == "2026.3.28"
    # the run's Allure results render to HTML with the real Allure CLI
    render = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(tmp_path / "run")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert render.returncode == 0, render.stderr
    summary = json.loads((tmp_path / "run" / "html" / "summary.json").read_text())
    assert summary["stats"]["failed"] >= 1 and summary["stats"]["passed"] >= 13
    run = tmp_path / "run"
    assert {"junit.xml", "summary.md"} <= {p.name for p in run.iterdir()}
    assert "**rolled_back** (exit 10)" in (run / "summary.md").read_text()
    # the report in headless Chromium: the failed soak, the passed rollback, the evidence
    deciding = next(d["trigger"] for d in soak["decisions"]
                    if d["decides"] and d["kind"] in ("log", "baseline"))
    seen = look_at_report(run / "html", run / "screenshots", Runtime(ROOT / ".cache" / "runtime"),
                          attachment=f"trigger {deciding} evidence")
    assert seen["failed"].split() == ["Failed", str(summary["stats"]["failed"])]
    tests = {t["title"]: t for t in seen["tests"]}
    assert tests["test_soak_policy"]["status"] == "failed"
    assert tests["test_soak_policy"]["groups"] == ["local-openclaw", "soak", "policy"]
    rollback = [t for t in seen["tests"] if t["groups"][:2] == ["local-openclaw", "rollback"]]
    phases = [p for p in verdict["phases"] if p["family"] == "rollback"]
    # backup, prepare, gate, restore, start, smoke, the early and the later watch
    assert len(rollback) == len(phases) == 8, rollback
    assert all(t["status"] == "passed" for t in rollback), rollback
    assert f"{deciding} fired: observed" in seen["evidenceText"]
    assert "'>' marks the match" in seen["evidenceText"]  # its log lines with their context
    assert "decision=surface_error reason=timeout" in seen["evidenceText"]
    assert "Product regression: a trigger fired" in seen["categories"]
    for shot in ("overview.png", "soak-policy.png", "trigger-evidence.png", "categories.png"):
        assert (run / "screenshots" / shot).stat().st_size > 10_000, shot
    # the first screen says the verdict: the title, and Allure's own quality gate failed on
    # the run's verdict result, as the job's exit code 10 says
    assert tests["release verdict"] == {**tests["release verdict"], "status": "failed",
                                        "groups": ["local-openclaw", "verdict"]}
    assert_the_headline(run, "local-openclaw 2026.3.28 -> 2026.4.1: rolled back (exit 10)",
                        accepted=False)
    # the run's secrets (gateway token, provider key, credentials) reach no file of the report
    # (results, HTML, verdict, JUnit, summary, screenshots), and the token planted in the
    # gateway's log shows redacted in the report's log excerpt
    state = ROOT / ".cache" / "runs" / verdict["lock"]["run_id"] / "deployment" / "state"
    token = json.loads((state / "openclaw.json").read_text())["gateway"]["auth"]["token"]
    secrets = {token: "gateway-token", **dict(redact.state_dir_secrets(state))}
    assert "sk-modellab-local" in secrets
    assert redact.scan(run, secrets) == []
    excerpts = [p.read_text() for p in (run / "allure-results").glob("*-attachment.txt")]
    assert any(PLANTED + "[REDACTED:gateway-token]" in text for text in excerpts)


@pytest.mark.e2e
@pytest.mark.xdist_group("real-runs")  # the comparison and the trend use both runs
@pytest.mark.soaks
def test_a_candidate_that_does_not_regress_passes_without_rollback(tmp_path: Path) -> None:
    # every path needs min_samples (2) finished iterations: the sequence's second one starts
    # after its first (up to 26 s on a loaded machine) and a pause, well inside 60 s
    code, output, verdict = run_suite(tmp_path / "run", "--candidate", "2026.3.28",
                                      "--soak", "60", "--watch", "20", "--baseline", "20",
                                      "--late-watch", "10", "--late-watch-delay", "5")
    assert code == 0, output[-3000:]
    assert verdict["outcome"] == "passed"
    assert all(p["outcome"] == "skipped" for p in verdict["phases"]
               if p["family"] == "rollback")
    soak = verdict["soak"]
    assert soak["stopped_by"] is None
    assert not any(d["fired"] for d in soak["decisions"])
    # the soak waited for the slow reasoner and saw it answer correctly
    assert soak["scenarios"]["reply-streaming"]["good"] >= 1
    assert soak["scenarios"]["reply-streaming"]["max_s"] > 60
    assert soak["scenarios"]["panel-3-reviewers"]["good"] >= 1
    # a pass says why: every path's numbers, against the baseline, and every trigger's peak
    assert soak["verdict"]["verdict"] == "pass", soak["verdict"]["reasons"]
    for sid, stats in soak["scenarios"].items():
        assert stats["finished"] >= 2 and stats["bad"] == 0, (sid, stats)
        assert any(r.startswith(f"{sid}: pass: {stats['good']} good") and "baseline p95" in r
                   for r in soak["verdict"]["reasons"]), soak["verdict"]["reasons"]
    assert soak["comparison"]["classes"]["failover"] == {**soak["comparison"]["classes"][
        "failover"], "baseline": 0, "candidate": 0, "new": False}
    assert verdict["final_state"] == {**verdict["final_state"], "serving": True,
                                      "version": "2026.3.28"}
    RUNS["passed"] = tmp_path / "run"  # its report's headline: in the trend test below


@pytest.mark.e2e
@pytest.mark.xdist_group("real-runs")  # the comparison and the trend use both runs
def test_two_real_runs_compare_by_scenario_and_signature_class() -> None:
    """The passing 3.28 run beside the rolled-back 4.1 run of this session."""
    if set(RUNS) != {"passed", "rolled_back"}:
        pytest.skip("needs both real runs above in this session")
    done = subprocess.run([sys.executable, "-m", "harness.cli", "compare", str(RUNS["passed"]),
                           str(RUNS["rolled_back"])], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    changed = next(line for line in done.stdout.splitlines() if line.startswith("Changed: "))
    scenarios, classes = changed.removeprefix("Changed: scenarios ").split("; signature classes ")
    assert {"reply-plain", "panel-3-reviewers"} <= set(scenarios.split(", ")), changed
    assert "failover" in classes, changed  # none in the passing run, several in the other


@pytest.mark.e2e
@pytest.mark.xdist_group("real-runs")  # the comparison and the trend use both runs
def test_the_trend_follows_real_runs_rendered_from_one_reports_folder(tmp_path: Path) -> None:
    """Yesterday's rolled-back 4.1 run, then today's passing run, rendered from one reports
    folder: the second report's trend has both runs, and a test's history shows the change."""
    if set(RUNS) != {"passed", "rolled_back"}:
        pytest.skip("needs both real runs above in this session")
    reports = tmp_path / "reports"
    for name, label in (("1-rolled-back", "rolled_back"), ("2-passed", "passed"),
                        ("3-rolled-back-again", "rolled_back")):
        shutil.copytree(RUNS[label] / "allure-results", reports / name / "allure-results")
        for kept in ("verdict.json", "summary.md"):  # the report's name and verdict come from them
            shutil.copy(RUNS[label] / kept, reports / name / kept)
    rolled_back = "local-openclaw 2026.3.28 -> 2026.4.1: rolled back (exit 10)"
    passed = "local-openclaw 2026.3.28 -> 2026.3.28: passed (exit 0)"

    def render(name: str) -> dict[str, dict]:
        done = subprocess.run([sys.executable, "-m", "harness.cli", "report",
                               str(reports / name)], cwd=ROOT, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        charts = json.loads((reports / name / "html" / "widgets" / "charts.json").read_text())
        return {chart["type"]: chart for chart in charts["general"].values()}

    def history() -> list[tuple[str, str | None]]:
        """Each point's report name and the run it belongs to."""
        entries = [json.loads(line)
                   for line in (reports / "history.jsonl").read_text().splitlines()]
        return [(entry["name"], run_of(entry)) for entry in entries]

    first = render("1-rolled-back")
    assert [p["id"] for p in first["statusDynamics"]["data"]] == ["current"]  # no past yet
    second = render("2-passed")
    assert_the_headline(reports / "2-passed", passed, accepted=True)  # the passing run's
    points = second["statusDynamics"]["data"]
    assert [p["name"] for p in points] == [rolled_back, "current"]
    assert points[0]["statistic"]["failed"] > 0 and points[1]["statistic"].get("failed", 0) == 0
    assert second["statusTransitions"]["data"][-1]["fixed"] > 0  # failed then, passed now
    # the soak of the reply path: failed in the first run, passed in the second
    results = reports / "2-passed" / "html" / "data" / "test-results"
    plain = next(json.loads(p.read_text()) for p in results.glob("*.json")
                 if json.loads(p.read_text())["name"] == "test_soak[reply-plain]")
    assert plain["status"] == "passed"
    assert [h["status"] for h in plain["history"]] == ["failed"], plain["history"]
    # and in a real browser: the Graphs section draws both runs (its "Status transitions"
    # chart wants more than one past run before it draws anything; the data above has it)
    seen = look_at_graphs(reports / "2-passed" / "html", reports / "2-passed" / "screenshots",
                          Runtime(ROOT / ".cache" / "runtime"))
    charts = {chart["title"]: chart for chart in seen["charts"]}
    assert charts["Status dynamics"]["columns"][-1] == "Latest", charts["Status dynamics"]
    assert len(charts["Status dynamics"]["columns"]) == 2, charts["Status dynamics"]
    assert (reports / "2-passed" / "screenshots" / "graphs.png").stat().st_size > 10_000
    # rendering the second run again replaces its point in the history, it does not add one
    assert history() == [(rolled_back, "1-rolled-back"), (passed, "2-passed")]
    render("2-passed")
    assert history() == [(rolled_back, "1-rolled-back"), (passed, "2-passed")]
    # another run with the same target, versions and outcome has the same name, and a point
    # of its own; rendering either again replaces only its own point
    render("3-rolled-back-again")
    render("1-rolled-back")
    assert history() == [(passed, "2-passed"), (rolled_back, "3-rolled-back-again"),
                         (rolled_back, "1-rolled-back")]


def test_a_malformed_policy_stops_before_anything_starts(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text((ROOT / "scenarios" / "policy.toml").read_text().replace(
        "count = 3", "count = 0", 1))
    code, output, verdict = run_suite(tmp_path / "run", "--policy", str(policy), timeout=120)
    assert code == 20
    errors = [line for line in output.splitlines() if line.startswith("harness: error: ")]
    assert errors == [f"harness: error: {policy}: triggers[0].count: expected an integer of "
                      "at least 1, got 0"]
    assert verdict["outcome"] == "error" and verdict["phases"] == []
    assert not (ROOT / ".cache" / "runs" / verdict.get("run_id", "none")).exists()


@pytest.mark.e2e  # asks the real npm registry
def test_an_unknown_version_is_refused_before_anything_starts(tmp_path: Path) -> None:
    code, output, verdict = run_suite(tmp_path / "run", "--candidate", "2099.1.1", timeout=120)
    assert code == 21
    assert "harness: error: --candidate: openclaw@2099.1.1 is not a version the registry " \
           "knows" in output
    assert verdict["outcome"] == "error" and verdict["phases"] == []


def test_a_malformed_target_file_names_file_and_key(tmp_path: Path) -> None:
    target = target_variant(tmp_path, "broken", ('driver = "local"', 'driver = "ssh-someday"'))
    code, output, _ = run_suite(tmp_path / "run", "--target", str(target), timeout=120)
    assert code == 20
    assert f"harness: error: {target}: target.driver: expected one of local" in output


@pytest.mark.e2e
def test_a_gateway_that_never_becomes_healthy_is_a_distinct_error(tmp_path: Path) -> None:
    target = target_variant(tmp_path, "unbootable",
                            ('"--bind", "loopback"', '"--bind", "no-such-bind-mode"'),
                            ("ready_timeout_s = 90", "ready_timeout_s = 30"))
    code, output, verdict = run_suite(tmp_path / "run", "--target", str(target), timeout=600)
    assert code == 22, output[-2000:]
    errors = [line for line in output.splitlines() if line.startswith("harness: error: ")]
    assert len(errors) == 1 and "never became ready" in errors[0], errors
    assert verdict["outcome"] == "error"
    assert verdict["final_state"]["serving"] is False  # nothing left running either


@pytest.mark.e2e
@pytest.mark.soaks(minutes=4)  # held in CI, for the order (tests/conftest.py)
def test_a_candidate_that_never_becomes_healthy_is_rolled_back(tmp_path: Path) -> None:
    # The upgrade carries 2026.4.1's fix (agents.defaults.llm.idleTimeoutSeconds = 0) to a
    # 2026.3.28 candidate, which rejects the unknown key and never boots. Rollback must restore
    # the pre-upgrade config from the backup, or the known-good would not boot either.
    patch = ROOT / "scenarios" / "targets" / "openclaw" / "idle-timeout-off.json"
    code, output, verdict = run_suite(tmp_path / "run", "--candidate", "2026.3.28",
                                      "--candidate-config", str(patch), "--watch", "10",
                                      "--late-watch", "5", "--late-watch-delay", "2",
                                      "--baseline", "0")
    assert code == 10, output[-3000:]
    start = phase(verdict, "start")
    assert start["outcome"] == "failed" and "exited" in start["reason"], start
    assert phase(verdict, "health")["outcome"] == "skipped"
    assert all(p["outcome"] == "skipped" for p in verdict["phases"] if p["family"] == "soak")
    rollback = [p for p in verdict["phases"] if p["family"] == "rollback"]
    assert len(rollback) == 8 and all(p["outcome"] == "passed" for p in rollback), rollback
    assert verdict["rollback_state_diff"] == {"missing": [], "added": [], "changed": []}
    assert verdict["final_state"]["serving"] is True
