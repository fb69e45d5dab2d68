"""State-transition records and the alert hook, with a real command and a real HTTP receiver."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.procedure.transitions import Transitions, state_of
from harness.targets.gateway import _free_port
from harness.targets.profile import AlertSpec, load_target

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def receiver():  # noqa: ANN201
    bodies: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["content-length"]))
            bodies.append({"type": self.headers["content-type"], "body": json.loads(body)})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    server.shutdown()
    server.server_close()


def transitions(tmp_path: Path, alert: AlertSpec) -> Transitions:
    t = Transitions("run-1", tmp_path / "run")
    t.alert_spec = alert
    return t


def lines(t: Transitions) -> list[dict]:
    return [json.loads(line) for line in t.path.read_text().splitlines()]


def test_records_are_json_lines_written_as_they_happen(tmp_path: Path) -> None:
    t = transitions(tmp_path, AlertSpec())
    t.emit("stop", "enter", step="stop")
    assert lines(t)[-1]["state"] == "stop"  # on disk at once: a killed run keeps it
    t.emit("stop", "passed", step="stop", summary="gateway PID 7 stopped")
    recs = lines(t)
    assert [(r["state"], r["event"]) for r in recs] == [("stop", "enter"), ("stop", "passed")]
    assert all(r["run_id"] == "run-1" and r["at"].endswith("+00:00") for r in recs)
    assert recs[1]["summary"] == "gateway PID 7 stopped"


def test_states_of_tests() -> None:
    assert state_of("upgrade", "stop") == "stop"
    assert state_of("soak", "soak[reply-quick]") == "soak"
    assert state_of("rollback", "rollback_restore") == "rollback"


def test_the_alert_hook_runs_the_command_and_posts_the_webhook(tmp_path: Path,
                                                              receiver) -> None:  # noqa: ANN001
    url, bodies = receiver
    out = tmp_path / "alert.json"
    env_out = tmp_path / "alert.env"
    t = transitions(tmp_path, AlertSpec(
        command=("sh", "-c", f"cat > {out}; echo \"$HARNESS_ALERT $HARNESS_OUTCOME\" > {env_out}"),
        webhook=url))
    results = t.alert("failure", {"outcome": "rollback_failed", "exit_code": 11,
                                  "summary": "look now"})
    assert [r["event"] for r in results] == ["alert_sent", "alert_sent"], results
    sent = json.loads(out.read_text())
    assert sent["alert"] == "failure" and sent["outcome"] == "rollback_failed"
    assert env_out.read_text().split() == ["failure", "rollback_failed"]
    assert bodies == [{"type": "application/json", "body": sent}]
    assert t.alert("failure", {"outcome": "again"}) == []  # once per kind
    assert [r["state"] for r in lines(t)] == ["alert", "alert"]


def test_an_alert_that_cannot_be_delivered_is_a_record_too(tmp_path: Path) -> None:
    t = transitions(tmp_path, AlertSpec(command=("sh", "-c", "echo no pager >&2; exit 3"),
                                        webhook=f"http://127.0.0.1:{_free_port()}/none"))
    results = t.alert("failure", {"outcome": "error"})
    assert [r["event"] for r in results] == ["alert_failed", "alert_failed"]
    assert "exit 3: no pager" in results[0]["detail"]
    assert "ConnectError" in results[1]["detail"]


def test_no_journal_on_this_host_is_noted_not_fatal(tmp_path: Path) -> None:
    profile = load_target(ROOT / "scenarios" / "targets" / "local-openclaw.toml")
    t = Transitions("run-2", tmp_path / "run", profile)
    record = t.emit("preflight", "enter")
    has_journal = Path("/run/systemd/journal/socket").is_socket()
    assert record["journal"] is has_journal
    if not has_journal:
        assert t.journal is not None and t.journal.why == "no journal on the target"


def test_a_failed_suite_run_fires_the_alert_with_the_verdict(tmp_path: Path,
                                                            receiver) -> None:  # noqa: ANN001
    """The real suite, stopped by a bad input before anything ran: outcome `error`, alerted."""
    url, bodies = receiver
    source = ROOT / "scenarios" / "targets"
    (tmp_path / "openclaw").symlink_to(source / "openclaw")
    target = tmp_path / "t.toml"
    target.write_text((source / "local-openclaw.toml").read_text()
                      + f'\n[alert]\nwebhook = "{url}"\n')
    policy = tmp_path / "policy.toml"
    policy.write_text((ROOT / "scenarios" / "policy.toml").read_text().replace(
        "count = 3", "count = 0", 1))
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "pytest", "scenarios", "-q", "--run-dir",
                           str(run_dir), "--target", str(target), "--policy", str(policy)],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 20, done.stdout[-2000:] + done.stderr[-2000:]
    recs = [json.loads(line) for line in (run_dir / "transitions.jsonl").read_text().splitlines()]
    assert recs[0]["state"] == "outcome" and recs[0]["event"] == "error"
    assert [b["body"]["alert"] for b in bodies] == ["failure"]
    assert bodies[0]["body"]["outcome"] == "error" and "count" in bodies[0]["body"]["error"]
