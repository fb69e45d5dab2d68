"""The reports: redaction of the run's secrets, categories, charts, evidence, summary, compare.

The planted-token test runs a real pytest session (allure-pytest writing its results, the
harness's plugins loaded as a user's run loads them) in which a real soak against the model
lab watches a gateway log that carries the run's gateway token; nothing of the token may reach
any file of the run folder, and the evidence must still be readable.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.cli import main as cli
from harness.common.errors import InfrastructureError
from harness.procedure.phases import PhaseError, PhaseResult, _timed, report_phase
from harness.reporting import charts, redact
from harness.reporting.categories import CATEGORIES, allure3_categories, allure_config, categorize
from harness.reporting.compare import compare_runs
from harness.reporting.summary import summary_markdown
from harness.signals.logwatch import LogWatcher
from harness.signals.signatures import OPENCLAW
from harness.targets.gateway import Gateway
from harness.targets.profile import load_target
from harness.targets.runtime import NodeRuntime, Runtime

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "Zq3-planted_TOKEN-9f8e7d6c5b4a"


# -- redaction ------------------------------------------------------------------------------
def test_a_secret_is_replaced_by_what_it_was_in_every_form_it_is_written() -> None:
    r = redact.Redactor()
    r.add(TOKEN, "gateway-token")
    r.add("sk/key with spaces+plus", "api-key:lab")
    r.add("short", "nothing")  # too short to be a secret: never shreds the text
    text = (f"Authorization: Bearer {TOKEN}\n{json.dumps({'k': 'sk/key with spaces+plus'})}\n"
            "url ?key=sk%2Fkey%20with%20spaces%2Bplus short")
    clean = r.redact(text)
    assert TOKEN not in clean and "spaces" not in clean
    assert "Bearer [REDACTED:gateway-token]" in clean
    assert clean.count("[REDACTED:api-key:lab]") == 2 and clean.endswith(" short")


def test_the_gateways_secrets_are_found_in_its_config_credentials_and_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_PROVIDER_API_KEY", "sk-from-the-harness-environment")
    target = load_target(ROOT / "scenarios" / "targets" / "local-openclaw.toml")
    gateway = Gateway.embedded(target, Runtime(tmp_path / "runtime"),
                               NodeRuntime("22", tmp_path / "node"), tmp_path / "deployment",
                               "http://127.0.0.1:9/v1")
    state = gateway.state_dir
    profiles = state / "agents" / "main" / "agent"
    profiles.mkdir(parents=True)
    (profiles / "auth-profiles.json").write_text(json.dumps({"version": 1, "profiles": {
        "openai:default": {"type": "api_key", "provider": "openai", "key": "sk-profile-key-1"},
        "anthropic:me": {"type": "oauth", "access": "oauth-access-2", "refresh": "refresh-3x",
                         "expires": 1790000000}}}))
    (state / "credentials").mkdir()
    (state / "credentials" / "telegram.json").write_text('{"botToken": "123456:telegram-bot"}')
    r = redact.Redactor()
    r.add_source(redact.gateway_secrets(gateway))
    secrets = r.secrets
    token = json.loads((state / "openclaw.json").read_text())["gateway"]["auth"]["token"]
    assert secrets[token] == "gateway-token"
    assert secrets["sk-modellab-local"] == "api-key:lab"
    assert secrets["sk-profile-key-1"] == "auth-profile:openai:default"
    assert secrets["oauth-access-2"] == secrets["refresh-3x"] == "auth-profile:anthropic:me"
    assert secrets["123456:telegram-bot"] == "auth-profile:telegram.json"
    assert secrets["sk-from-the-harness-environment"] == "env:SOME_PROVIDER_API_KEY"
    assert "1790000000" not in secrets  # not a secret field
    # the gateway writes a new credential while it runs: the next refresh knows it
    (state / "credentials" / "late.json").write_text('{"token": "late-token-value"}')
    r.refresh()
    assert "late-token-value" in r.secrets


INNER_TEST = '''
import json, threading, time
from pathlib import Path

import allure
from harness.modellab import ModelLab
from harness.judge.policy import Window, load_policy
from harness.reporting import evidence, redact
from harness.procedure.run import RunRecord, write_verdict
from harness.signals.logwatch import LogWatcher
from harness.signals.signatures import OPENCLAW
from harness.judge import assess
from harness.soak.driver import SoakDriver
from harness.judge.judge import Judge
from harness.procedure.records import SoakRecord
from harness.reporting.allure_evidence import AllureEvidence
from harness.soak.scenarios import load_scenarios
from harness.targets.client import GatewayEndpoint

RUN_DIR = Path({run_dir!r})
TOKEN = {token!r}
LINE = ("2026-04-02T10:11:12.345+00:00 [agent/embedded] embedded run failover decision: "
        "runId=run-{{n}} stage=assistant decision=surface_error reason=timeout "
        "provider=lab/slow-reasoner profile=- auth=Bearer " + TOKEN)


class FakeGateway:
    class endpoint:
        token = TOKEN


def test_a_soak_whose_log_carries_the_token(tmp_path):
    redact.watch_gateway(FakeGateway())
    (tmp_path / "mix.toml").write_text(\"\"\"
[[scenarios]]
id = "quick"
kind = "reply"
agent = "fast-chat"
concurrency = 1
pause_s = 0.1
\"\"\")
    (tmp_path / "policy.toml").write_text(\"\"\"
[policy]
name = "planted"
min_samples = 1
[soak]
window_s = 3
drain_s = 5
[watch]
window_s = 1
drain_s = 5
[[triggers]]
name = "failover-burst"
kind = "log"
interval_s = 0.3
classes = ["failover"]
count = 3
within_s = 60
\"\"\")
    policy = load_policy(tmp_path / "policy.toml")
    scenarios = load_scenarios(tmp_path / "mix.toml")
    log = tmp_path / "gateway.log"
    log.write_text("")
    watcher = LogWatcher.from_end(log, OPENCLAW)

    def gateway_logs():
        for n in range(3):
            time.sleep(0.3)
            with open(log, "a") as handle:
                handle.write(f"2026-04-02T10:11:1{{n}}.000+00:00 [gateway] before {{n}}\\n")
                handle.write(LINE.format(n=n) + "\\n")
                handle.write(f"2026-04-02T10:11:1{{n}}.500+00:00 [gateway] after {{n}}\\n")

    with ModelLab(time_scale=0.01) as lab:
        endpoint = GatewayEndpoint(base_url=lab.url, token=TOKEN, headers={{}},
                                   chat_path="/v1/chat/completions", model_prefix="")
        driver = SoakDriver(endpoint, scenarios.scenarios, Judge(policy), watcher)
        writer = threading.Thread(target=gateway_logs)
        writer.start()
        with watcher:
            run = driver.run("soak", Window(3, 5))
        writer.join()
    run.matches = watcher.snapshot()
    run.context = evidence.capture(run, watcher)
    shown = AllureEvidence()  # the procedure's evidence port, as a run of the suite has it
    shown.soak(run)
    shown.attach_json("endpoint", {{"endpoint": repr(endpoint)}})
    record = RunRecord()
    record.soaks["soak"] = SoakRecord("soak", {{**assess.summary(run), "planted": LINE}},
                                      assess.soak_verdict(run, {{"quick": 1}}))
    write_verdict(RUN_DIR / "verdict.json", record, None)
    (RUN_DIR / "modellab.log").write_text(f"request with Authorization: Bearer {{TOKEN}}\\n")
    assert run.stopped_by == "failover-burst", run.stopped_by
    assert False, f"the gateway said: {{LINE}}"
'''


def test_a_planted_token_reaches_no_file_of_the_run_and_the_evidence_stays_readable(
        tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_planted.py").write_text(INNER_TEST.format(run_dir=str(run_dir), token=TOKEN))
    yesterday = tmp_path / "yesterday.json"
    yesterday.write_text(json.dumps(_verdict(_soak({"quick": "pass"}, {}, {"failover": 0}, 10,
                                                   []))))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(suite / "test_planted.py"), "-q", "-p",
         "no:cacheprovider", "--rootdir", str(suite), "--run-dir", str(run_dir),
         "--alluredir", str(run_dir / "allure-results"), "--junitxml",
         str(run_dir / "junit.xml"), "--compare-with", str(yesterday)],
        cwd=suite, capture_output=True, text=True, timeout=300)
    # the inner test fails on purpose, with the token in its assertion message
    assert proc.returncode == 1 and "1 failed" in proc.stdout, proc.stdout[-3000:] + proc.stderr
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {"verdict.json", "junit.xml", "modellab.log", "summary.md"} <= {p.name for p in files}
    leaks = redact.scan(run_dir, {TOKEN: "gateway-token"})
    assert leaks == [], [str(leak) for leak in leaks]
    texts = {p: p.read_text(errors="replace") for p in files}
    redacted = [p for p, text in texts.items() if "[REDACTED:gateway-token]" in text]
    assert {"verdict.json", "junit.xml", "modellab.log"} <= {p.name for p in redacted}
    results = run_dir / "allure-results"
    result = next(json.loads(p.read_text()) for p in results.glob("*-result.json"))
    assert "auth=Bearer [REDACTED:gateway-token]" in result["statusDetails"]["message"]
    attachments = {a["name"]: (results / a["source"]).read_text()
                   for a in result["attachments"]}
    evidence = attachments["trigger failover-burst evidence"]
    assert "auth=Bearer [REDACTED:gateway-token]" in evidence
    # each matching line among its neighbours, the match marked
    assert "[gateway] before 0" in evidence and "[gateway] after 0" in evidence
    assert any(line.startswith(">") and "runId=run-0" in line
               for line in evidence.splitlines())
    assert "[REDACTED:gateway-token]" in attachments["endpoint"]
    assert attachments["soak latency over time"].startswith("<svg")
    assert ">3 in all, peak " in attachments["soak signatures over time"]  # the 3 failovers
    assert json.loads((results / "categories.json").read_text()) == CATEGORIES
    # --compare-with: this run's soak beside another run's, in comparison.md and summary.md
    comparison = (run_dir / "comparison.md").read_text()
    assert "| failover | 0 -> 3 |" in comparison and "**new in B**" in comparison
    assert comparison in (run_dir / "summary.md").read_text()


# -- categories -----------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "message", "category"), [
    ("failed", "AssertionError: trigger timeout-failover-burst fired: observed 3 (>= 3 distinct "
     "runs of timeout, failover within 300 s), 3 samples\nassert False",
     "Product regression: a trigger fired"),
    ("failed", "AssertionError: this path was hit while new-timeouts-vs-baseline fired: 0 good",
     "Product regression: a trigger fired"),
    ("failed", "AssertionError: trigger bad-replies fired (observed 3); reply-plain: 2 bad "
     "iterations", "Product regression: a trigger fired"),
    ("failed", "Failed: inconclusive, failing closed (on_inconclusive = fail): only 0 finished",
     "Inconclusive: too few samples to judge"),
    ("skipped", "Skipped: inconclusive, accepted by on_inconclusive = pass: only 1 finished",
     "Inconclusive: too few samples to judge"),
    ("broken", "harness.procedure.phases.PhaseError: harness error in phase install"
     " (InfrastructureError): npm install openclaw@2026.4.1 failed: ENOTFOUND",
     "Harness or infrastructure error"),
    ("broken", "FileNotFoundError: state/agents", "Harness or infrastructure error"),
    ("failed", "AssertionError: gateway never became ready: gateway process exited (code 1)",
     "Phase check failed"),
    ("failed", "AssertionError: restart not approved (stop the candidate and start the "
     "known-good version): no approval within 20 s; nothing was interrupted; 2026.4.1 still "
     "serving", "Waiting on a person: a restart was not approved"),
    ("failed", "release not accepted: rolled_back (exit 10)", "Release not accepted"),
    ("passed", "", None),
    ("skipped", "Skipped: not needed: the candidate passed every phase and the soak", None),
])
def test_categories_tell_a_regression_from_a_harness_error_from_inconclusive(
        status: str, message: str, category: str | None) -> None:
    assert categorize(status, message) == category


def test_allure3_reads_the_same_rules_in_its_own_form() -> None:
    rules = allure3_categories()
    assert [r["name"] for r in rules] == list(dict.fromkeys(c["name"] for c in CATEGORIES))
    harness = next(r for r in rules if r["name"].startswith("Harness"))
    assert harness["matchers"][0] == {"statuses": ["broken"]}
    config = allure_config(Path("/reports/history.jsonl"), "Release acceptance x")
    assert config["historyPath"] == "/reports/history.jsonl"
    assert config["plugins"]["awesome"]["options"]["groupBy"] == ["epic", "feature", "story"]


def test_a_phase_that_errored_is_broken_and_a_failed_check_fails() -> None:
    def refuse() -> PhaseResult:
        raise InfrastructureError("npm install openclaw@2026.4.1 failed: E404")

    with pytest.raises(PhaseError, match=r"harness error in phase install "
                       r"\(InfrastructureError\): npm install"):
        report_phase(_timed("install", refuse))
    with pytest.raises(AssertionError, match="never became ready"):
        report_phase(PhaseResult("start", False, "gateway never became ready: exited"))


# -- charts and evidence --------------------------------------------------------------------
def _request(sid: str, started: float, seconds: float, verdict: str = "good") -> dict:
    return {"scenario": sid, "step": "reply", "started": started, "ended": started + seconds,
            "seconds": seconds, "verdict": verdict}


def test_the_latency_chart_shows_every_request_bad_ones_as_crosses() -> None:
    requests = [_request("quick", 100 + i, 0.5) for i in range(5)]
    requests += [_request("slow", 100, 60.0, "bad"), _request("slow", 101, 61.0, "bad")]
    svg = charts.latency_svg(requests, 100.0, "soak: latency", [(62.0, "stopped: burst")],
                             ["quick", "slow", "streaming"])
    root = ET.fromstring(svg)  # well-formed SVG
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f".//{ns}circle")) == 5
    assert len([g for g in root.findall(f"{ns}g") if g.find(f"{ns}path") is not None]) == 2
    text = " ".join(t.text or "" for t in root.iter(f"{ns}text"))
    assert "quick (5)" in text and "slow (2, 2 bad)" in text and "stopped: burst" in text
    assert "streaming (0)" in text  # a path with no finished request is still named


def test_the_signature_chart_has_a_lane_for_every_class_with_its_total() -> None:
    matches = [{"seen": 100 + i, "class": "warning"} for i in range(40)]
    matches += [{"seen": 170.0, "class": "failover"}, {"seen": 171.0, "class": "failover"}]
    svg = charts.signatures_svg(matches, 100.0, 180.0, "soak: signatures")
    root = ET.fromstring(svg)
    text = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for klass in ("timeout", "failover", "fallback", "error", "warning"):
        assert klass in text
    assert "2 in all, peak 2 per 2 s" in text and "40 in all, peak 1 per 2 s" not in text
    assert text.count("0 in all") == 3


def test_evidence_shows_each_matching_line_with_its_neighbours(tmp_path: Path) -> None:
    from harness.judge.policy import Decision, load_policy
    from harness.reporting.evidence import capture, decision_text

    log = tmp_path / "gateway.log"
    lines = [f"2026-04-02T10:11:{n:02d}.000+00:00 [gateway] line {n}" for n in range(10)]
    failover = ("2026-04-02T10:11:05.000+00:00 [agent/embedded] embedded run failover decision:"
                " runId=r1 stage=assistant decision=surface_error reason=timeout")
    lines[5] = failover
    log.write_text("\n".join(lines) + "\n")
    with LogWatcher(log, OPENCLAW) as watcher:
        pass
    policy = load_policy(ROOT / "scenarios" / "policy.toml")

    class Run:
        matches = watcher.snapshot()
        decisions = [Decision(policy.triggers[0], True, 1, 1, None, None, (failover,))]
        context: dict = {}

    Run.context = capture(Run, watcher)
    text = decision_text(Run, Run.decisions[0])
    body = text.splitlines()
    marked = [line for line in body if line.startswith(">")]
    assert len(marked) == 1 and marked[0].split()[:2] == [">", "6"]
    assert any("line 2" in line for line in body) and any("line 8" in line for line in body)
    assert not any("line 1 " in line or line.endswith("line 1") for line in body)


# -- summary and comparison -----------------------------------------------------------------
def _soak(verdicts: dict[str, str], bad: dict[str, int], classes: dict[str, int],
          requests: int, fired: list[str]) -> dict:
    return {
        "window_s": 90.0, "seconds": 80.0, "requests": requests,
        "stopped_by": fired[0] if fired else None,
        "scenarios": {sid: {"finished": 10, "good": 10 - bad.get(sid, 0), "bad": bad.get(sid, 0),
                            "cut": 0, "error_ratio": bad.get(sid, 0) / 10, "p50_s": 1.0,
                            "p95_s": 2.0, "max_s": 3.0} for sid in verdicts},
        "class_counts": classes,
        "decisions": [{"trigger": t, "fired": True, "decides": True, "observed": 3,
                       "threshold": ">= 3", "samples": 3, "scenario": None} for t in fired],
        "verdict": {"verdict": "fail" if fired else "pass",
                    "scenarios": {sid: {"verdict": v} for sid, v in verdicts.items()}},
    }


def _verdict(soak: dict, outcome: str = "passed") -> dict:
    return {"outcome": outcome, "exit_code": 0 if outcome == "passed" else 10,
            "claim": "a claim", "phases": [], "soak": soak,
            "lock": {"run_id": "r", "target": {"name": "t"}, "known_good": {"version": "1"},
                     "candidate": {"version": "2"}, "policy": {"name": "p", "sha256": "ab"}}}


def test_a_comparison_marks_the_scenario_and_the_signature_class_that_changed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _verdict(_soak({"plain": "pass", "quick": "pass"}, {},
                            {"timeout": 0, "failover": 0, "warning": 10}, 100, []))
    after = _verdict(_soak({"plain": "fail", "quick": "pass"}, {"plain": 4},
                           {"timeout": 0, "failover": 3, "warning": 11}, 100, ["burst"]),
                     "rolled_back")
    cmp = compare_runs(before, after)
    assert cmp["scenarios"]["plain"]["changed"] == ["verdict pass -> fail", "bad 0 -> 4"]
    assert cmp["scenarios"]["quick"]["changed"] == []
    assert cmp["classes"]["failover"]["changed"] == ["new in B"]
    assert cmp["classes"]["warning"]["changed"] == [] and cmp["classes"]["timeout"]["changed"] == []
    faster = compare_runs(after, _verdict(_soak({"plain": "fail", "quick": "pass"}, {"plain": 4},
                                                {"failover": 6}, 100, ["burst"])))
    assert faster["classes"]["failover"]["changed"] == ["rate 3 -> 6 per 100 requests"]
    for name, verdict in (("a", before), ("b", after)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "verdict.json").write_text(json.dumps(verdict))
    assert cli(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "| plain | pass -> fail |" in out and "**verdict pass -> fail; bad 0 -> 4**" in out
    assert "| failover | 0 -> 3 | 0 -> 3 | **new in B** |" in out
    assert "Changed: scenarios plain; signature classes failover." in out


def test_compare_refuses_bad_input_with_one_line_naming_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert cli(["compare", str(broken), str(broken)]) == 20
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"harness: error: {broken}: not a readable")
    no_soak = tmp_path / "aborted.json"
    no_soak.write_text(json.dumps({"outcome": "aborted", "phases": []}))
    assert cli(["compare", str(no_soak), str(no_soak)]) == 20
    assert f"{no_soak}: soak: this run has no soak" in capsys.readouterr().err


@pytest.mark.parametrize(("change", "key"), [
    (lambda v: v["soak"].update(scenarios="plain"), "soak.scenarios"),
    (lambda v: v["soak"].update(scenarios=3), "soak.scenarios"),
    (lambda v: v["soak"].update(scenarios=["plain"]), "soak.scenarios"),
    (lambda v: v["soak"]["scenarios"].update(plain="x"), "soak.scenarios.plain"),
    (lambda v: v["soak"]["scenarios"]["plain"].update(p95_s="slow"),
     "soak.scenarios.plain.p95_s"),
    (lambda v: v["soak"].update(class_counts=[1]), "soak.class_counts"),
    (lambda v: v["soak"]["class_counts"].update(failover="3"), "soak.class_counts.failover"),
    (lambda v: v["soak"].update(decisions={"a": 1}), "soak.decisions"),
    (lambda v: v["soak"].update(verdict="fail"), "soak.verdict"),
    (lambda v: v["soak"].update(requests="many"), "soak.requests"),
    (lambda v: v.update(outcome=3), "outcome"),
    (lambda v: v.update(lock="x"), "lock"),
])
def test_compare_refuses_what_is_not_a_verdict_naming_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], change, key: str) -> None:
    good = _verdict(_soak({"plain": "pass"}, {"plain": 0}, {"failover": 3}, 100, []), "passed")
    change(good)
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(good))
    assert cli(["compare", str(path), str(path)]) == 20
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"harness: error: {path}: {key}: expected "), err


def test_the_summary_says_outcome_claim_paths_and_triggers() -> None:
    verdict = _verdict(_soak({"plain": "fail", "quick": "pass"}, {"plain": 4},
                             {"failover": 3}, 100, ["burst"]), "rolled_back")
    verdict["phases"] = [{"family": "soak", "name": "soak[plain]", "outcome": "failed",
                          "reason": "AssertionError: this path was hit while burst fired"}]
    text = summary_markdown(verdict)
    assert text.startswith("## Release acceptance: t 1 -> 2: **rolled_back** (exit 10)")
    assert "> a claim" in text and "| soak: soak[plain] | AssertionError: this path" in text
    assert "| plain | **fail** | 6 | 4 |" in text and "| quick | pass | 10 | 0 |" in text
    assert "| burst | all | 3 | >= 3 | 3 | yes |" in text
