"""The question users ask most: "is the newest release safe for us?" `--candidate latest` upgrades
real OpenClaw 2026.3.28 to whatever the registry's `latest` is today and reports what it finds.

Whatever the product does, the harness raises no alarm of its own: the dist-tag is resolved and
said, each version runs on the Node.js its own `engines` asks for (2026.9.6 wants >= 24.16, the
known-good runs on 22), the install is judged intact (2026.9's postinstall deletes a marker it
ships), the candidate's first reply through the gateway carries its nonce (2026.9 appends a user
message of its own after the prompt) and every failed phase is a finding about the product, not
a harness error. The verdict itself (passed, rolled back, or a rollback a person must look at)
is the product's and is only checked to be one of those."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.targets import semver
from harness.targets.runtime import Runtime
from tests.test_acceptance_e2e import ROOT, phase, run_suite


@pytest.mark.e2e
@pytest.mark.soaks(minutes=4)  # held in CI, for the order (tests/conftest.py)
def test_the_registrys_latest_runs_on_the_node_it_asks_for_and_raises_no_alarm_of_our_own(
        tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, output, verdict = run_suite(
        run, "--candidate", "latest", "--soak", "60", "--baseline", "15", "--watch", "20",
        "--late-watch", "20", "--late-watch-delay", "2")
    assert code in (0, 10, 11), output[-3000:]  # passed, rolled back and proven, or a person
    latest = Runtime(ROOT / ".cache" / "runtime").registry.resolve("openclaw", "latest", "test")
    candidate = verdict["lock"]["candidate"]
    assert candidate["spec"] == "latest" and candidate["version"] == latest.version
    assert f"-> {latest.version}" in (run / "summary.md").read_text().splitlines()[0]

    # each version on its own Node.js, chosen from its own engines and said in the verdict
    for role, release in (("known_good", verdict["lock"]["known_good"]), ("candidate", candidate)):
        node = verdict["node"][role]
        assert node["satisfies"] and semver.satisfies(node["node"], release["node_engine"] or "*")
    assert verdict["node"]["known_good"]["node"].startswith("22.")

    # what used to be the harness's own false alarms
    assert phase(verdict, "preflight")["outcome"] == "passed", phase(verdict, "preflight")
    assert phase(verdict, "baseline")["outcome"] == "passed", phase(verdict, "baseline")
    install = phase(verdict, "install")
    assert install["outcome"] == "passed" and " intact: " in install["reason"], install
    health = phase(verdict, "health")
    assert health["outcome"] == "passed", health  # a real reply through latest, nonce echoed
    broken = [p for p in verdict["phases"] if p["outcome"] == "broken"
              or "harness error" in p.get("reason", "")]
    assert not broken, json.dumps(broken, indent=1)

    # the product's verdict, whatever it is, matches what serves at the end
    final = verdict["final_state"]
    if code == 0:
        assert final["version"] == latest.version and final["proven"], final
    else:
        assert phase(verdict, "rollback_start")["outcome"] == "passed", verdict["phases"]
        assert final["version"] == "2026.3.28" and final["serving"], final
    print(f"\nlatest = {latest.version}: {verdict['outcome']} (exit {code}): {verdict['claim']}")
