"""The external supervisor in a container booting systemd: `harness supervisor install` writes a
system .timer and oneshot .service (outside the gateway's user unit); the timer fires, the
service runs the acceptance suite on the "staging host" (the container: local runner, the
gateway as user gw's service), and a failed run fires the profile's alert hook.

The run fails for a reason seed 002 names: the deployment's own config has the gateway's
auto-update on (`update.auto.enabled: true`), which the profile's preflight refuses, so the run
aborts before anything is stopped (exit 12) and the alert command gets the verdict; the
service's failure unit (OnFailure=) sees the run's own verdict code and stays quiet. A run that
cannot alert (its main process SIGKILLed, or out of time) is alerted by that failure unit.

The container gets this project folder read-write at its own path (the harness, its virtualenv
and cache), the Python the virtualenv was made from (read-only, unless it is the system's), and
the host's npm and its /etc/npmrc (read-only, with the cached Node.js on the units' PATH), as a
staging host has them.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.container.engine import DockerEngine
from harness.container.systemd import SystemdContainer
from harness.targets.runtime import Runtime
from tests.conftest import CACHE, ROOT, STARTED

# one worker boots this module's containers and runs its tests in order (pytest-xdist)
pytestmark = [pytest.mark.e2e, pytest.mark.systemd, pytest.mark.timeout(900),
              pytest.mark.xdist_group("supervisor")]

NAME = "grh-supervisor-test"
NPMRC = Path("/etc/npmrc")


def _npm_root() -> Path | None:
    npm = shutil.which("npm")
    if npm is None:
        return None
    cli = Path(npm).resolve()  # .../node_modules/npm/bin/npm-cli.js
    return cli.parents[1] if cli.parent.name == "bin" else None


@pytest.fixture(scope="module")
def host(engine: DockerEngine, image: str) -> Iterator[SystemdContainer]:
    ro = [Path(sys.base_prefix).resolve()] if not sys.base_prefix.startswith("/usr") else []
    npm = _npm_root()
    if npm is None:
        pytest.skip("no npm on this machine to lend the container")
    # the machine's npm settings (which registry), as a staging host has its own
    ro += [NPMRC] if NPMRC.is_file() else []
    # The service's user must traverse the harness folder (docs/systemd.md asks the same of a
    # staging host); a clone made by `mktemp -d` is 0700, so traversal is granted meanwhile.
    mode = ROOT.stat().st_mode
    ROOT.chmod(mode | 0o001)
    try:
        with SystemdContainer(engine, image, mounts=[(ROOT, str(ROOT))],
                              same_path_ro=[*ro, npm]) as booted:
            assert booted.container_id is not None
            STARTED.append(booted.container_id)
            done = booted.exec(["ln", "-sf", str(npm / "bin" / "npm-cli.js"),
                                "/usr/local/bin/npm"])
            assert done.returncode == 0, done.stderr
            yield booted
    finally:
        ROOT.chmod(mode)


def test_the_timer_runs_the_suite_and_a_failed_run_fires_the_alert(
        host: SystemdContainer, tmp_path: Path) -> None:
    work = CACHE / f"supervisor-{secrets.token_hex(4)}"
    (work / "targets").mkdir(parents=True)
    try:
        source = ROOT / "scenarios" / "targets"
        (work / "targets" / "openclaw").mkdir()
        template = (source / "openclaw" / "openclaw.template.json").read_text()
        assert '"auto": { "enabled": false }' in template
        (work / "targets" / "openclaw" / "openclaw.template.json").write_text(
            template.replace('"auto": { "enabled": false }', '"auto": { "enabled": true }'))
        alerts = work / "alerts.jsonl"
        target = work / "targets" / "systemd-openclaw.toml"
        target.write_text((source / "systemd-openclaw.toml").read_text() + (
            f'\n[alert]\ncommand = ["sh", "-c", "cat >> {alerts}; echo >> {alerts}"]\n'))
        node = Runtime(CACHE / "runtime").node("22")
        path = f"{node.bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        run_dir = work / "run"
        install = host.exec([str(ROOT / ".venv" / "bin" / "harness"), "supervisor", "install",
                             "--name", NAME, "--target", str(target), "--on-active", "2",
                             "--env", f"PATH={path}",
                             "--env", f"NPM_CONFIG_GLOBALCONFIG={NPMRC}",
                             "--", "--run-dir", str(run_dir), "--baseline", "0"], timeout=120)
        assert install.returncode == 0, install.stdout + install.stderr
        assert f"/etc/systemd/system/{NAME}.timer" in install.stdout

        # the timer fires on its own; wait for the oneshot service to have run and ended
        deadline = time.monotonic() + 600
        shown: dict[str, str] = {}
        while time.monotonic() < deadline:
            text = host.exec(["systemctl", "show", f"{NAME}.service", "-p", "ActiveState",
                              "-p", "Result", "-p", "ExecMainStatus", "-p",
                              "ExecMainStartTimestamp", "-p", "FragmentPath"]).stdout
            shown = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
            if shown.get("ExecMainStartTimestamp") and shown.get("ActiveState") in (
                    "failed", "inactive"):
                break
            time.sleep(2)
        journal = host.exec(["journalctl", "-u", f"{NAME}.service", "--no-pager", "-o", "cat"]
                            ).stdout
        assert shown.get("ActiveState") == "failed", (shown, journal[-3000:])
        assert shown["Result"] == "exit-code" and shown["ExecMainStatus"] == "12", \
            (shown, journal[-3000:])
        assert shown["FragmentPath"] == f"/etc/systemd/system/{NAME}.service"
        timer = host.exec(["systemctl", "show", f"{NAME}.timer", "-p", "LastTriggerUSec"]).stdout
        assert "LastTriggerUSec=" in timer and "n/a" not in timer, timer
        assert "harness: aborted (exit 12)" in journal, journal[-3000:]

        verdict = json.loads((run_dir / "verdict.json").read_text())
        assert verdict["outcome"] == "aborted"
        preflight = next(p for p in verdict["phases"] if p["name"] == "preflight")
        assert "update.auto.enabled" in preflight["reason"], preflight
        sent = [json.loads(line) for line in alerts.read_text().splitlines() if line.strip()]
        assert [a["alert"] for a in sent] == ["failure"], sent
        assert sent[0]["outcome"] == "aborted" and sent[0]["exit_code"] == 12
        assert sent[0]["failed"] == ["preflight"]
        # nothing was changed: the known-good never stopped, so the guard never armed
        assert not any(e["what"] == "armed" for e in verdict.get("guard", []))
        recs = [json.loads(line) for line in
                (run_dir / "transitions.jsonl").read_text().splitlines()]
        print("\n" + "\n".join(f"[supervised run] {r['at']} {r['state']} {r['event']}"
                                for r in recs if r["event"] != "skipped"))
        acted = [(r["state"], r["event"]) for r in recs
                 if r["event"] in ("passed", "failed") and r["state"] not in ("alert",)]
        assert acted == [("preflight", "failed")], acted  # every later phase: skipped
        assert all(r.get("journal") is True for r in recs if r["state"] != "alert")

        # the failure unit ran too, saw the run's own verdict (exit 12), and stayed quiet
        alert_unit = wait_ran(host, f"{NAME}-alert.service")
        assert alert_unit["Result"] == "success", alert_unit
        said = host.exec(["journalctl", "-u", f"{NAME}-alert.service", "--no-pager", "-o",
                          "cat"]).stdout
        assert "harness: no alert: " in said and "exit 12" in said, said
        sent = [json.loads(line) for line in alerts.read_text().splitlines() if line.strip()]
        assert [a["alert"] for a in sent] == ["failure"], sent  # once, by the run itself
    finally:
        host.exec([str(ROOT / ".venv" / "bin" / "harness"), "supervisor", "remove",
                   "--name", NAME], timeout=180)
        shutil.rmtree(work, ignore_errors=True)


def show(host: SystemdContainer, unit: str) -> dict[str, str]:
    text = host.exec(["systemctl", "show", unit, "-p", "ActiveState", "-p", "Result", "-p",
                      "ExecMainStatus", "-p", "ExecMainStartTimestamp", "-p", "MainPID"]).stdout
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def wait_ran(host: SystemdContainer, unit: str, timeout_s: float = 120) -> dict[str, str]:
    """Until a oneshot unit has started and ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        shown = show(host, unit)
        if shown.get("ExecMainStartTimestamp") and shown.get("ActiveState") in ("inactive",
                                                                                "failed"):
            return shown
        assert time.monotonic() < deadline, (unit, shown)
        time.sleep(0.5)


def failing_target(work: Path, alerts: Path) -> Path:
    """The shipped systemd profile with an alert command that appends what it gets."""
    source = ROOT / "scenarios" / "targets"
    (work / "targets").mkdir(parents=True)
    (work / "targets" / "openclaw").symlink_to(source / "openclaw")
    target = work / "targets" / "systemd-openclaw.toml"
    target.write_text((source / "systemd-openclaw.toml").read_text() + (
        f'\n[alert]\ncommand = ["sh", "-c", "cat >> {alerts}; echo >> {alerts}"]\n'))
    return target


@pytest.mark.parametrize("how", ["sigkill", "timeout"])
def test_a_run_that_dies_is_alerted_by_the_supervisors_failure_unit(
        host: SystemdContainer, how: str) -> None:
    """The supervised run is SIGKILLed mid-run: it can neither judge nor call the hook, so the
    service's OnFailure= unit runs the profile's alert hook. A run past TimeoutStartSec gets
    systemd's SIGTERM: it ends as interrupted (exit 17) and alerts itself, once, and the
    failure unit stays quiet and says why."""
    work = CACHE / f"supervisor-{secrets.token_hex(4)}"
    name = f"{NAME}-{how}"
    alerts = work / "alerts.jsonl"
    try:
        target = failing_target(work, alerts)
        node = Runtime(CACHE / "runtime").node("22")
        path = f"{node.bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        install = host.exec([str(ROOT / ".venv" / "bin" / "harness"), "supervisor", "install",
                             "--name", name, "--target", str(target), "--on-active", "1",
                             *(["--timeout", "8"] if how == "timeout" else []),
                             "--env", f"PATH={path}", "--env", f"NPM_CONFIG_GLOBALCONFIG={NPMRC}",
                             "--", "--run-dir", str(work / "run"), "--baseline", "0"],
                            timeout=120)
        assert install.returncode == 0, install.stdout + install.stderr
        assert f"/etc/systemd/system/{name}-alert.service" in install.stdout

        # the timer starts the run; wait until its main process is the suite
        deadline = time.monotonic() + 120
        while True:
            shown = show(host, f"{name}.service")
            pid = shown.get("MainPID", "0")
            if pid != "0" and "pytest" in host.exec(["cat", f"/proc/{pid}/cmdline"]).stdout:
                break
            assert time.monotonic() < deadline, shown
            time.sleep(0.2)
        if how == "sigkill":
            time.sleep(2)  # well inside the run: it is collecting and resolving versions
            killed = host.exec(["kill", "-KILL", pid])
            assert killed.returncode == 0, killed.stderr

        alert_unit = wait_ran(host, f"{name}-alert.service", timeout_s=180)
        service = show(host, f"{name}.service")
        assert service["ActiveState"] == "failed", service
        expected = {"sigkill": ("signal", "its main process was killed by SIGKILL"),
                    "timeout": ("timeout", "")}[how]
        assert service["Result"] == expected[0], service
        said = host.exec(["journalctl", "-u", f"{name}-alert.service", "--no-pager", "-o",
                          "cat"]).stdout
        assert alert_unit["Result"] == "success", (alert_unit, said)
        sent = [json.loads(line) for line in alerts.read_text().splitlines() if line.strip()]
        if how == "timeout":  # the run judged its own interruption and alerted, once
            assert service["ExecMainStatus"] == "17", service
            assert [a["alert"] for a in sent] == ["interrupted"], sent
            assert "the run's own verdict: its own alert hook has reported it" in said, said
            verdict = json.loads((work / "run" / "verdict.json").read_text())
            assert verdict["outcome"] == "interrupted" and verdict["exit_code"] == 17, verdict
            return
        assert "harness: alert sent (command sh -c" in said, said
        assert [a["alert"] for a in sent] == ["supervisor_failed"], sent
        body = sent[0]
        assert body["unit"] == f"{name}.service" and body["target"] == "systemd-openclaw"
        assert body["result"] == expected[0] and expected[1] in body["summary"], body
        assert body["journal"].startswith(f"journalctl -u {name}.service _SYSTEMD_INVOCATION_ID=")
        # the journal it points at is the dead run's own
        invocation = body["journal"].rsplit("=", 1)[1]
        run_log = host.exec(["journalctl", "-u", f"{name}.service", "--no-pager", "-o", "cat",
                             f"_SYSTEMD_INVOCATION_ID={invocation}"]).stdout
        assert run_log.strip(), body["journal"]
    finally:
        host.exec([str(ROOT / ".venv" / "bin" / "harness"), "supervisor", "remove",
                   "--name", name], timeout=180)
        # whatever the dead run had started as the gateway's user stays its business: stop it
        host.exec_as_user(["sh", "-c", "systemctl --user stop openclaw-gateway.service "
                           "'grh-guard-*' 2>/dev/null; true"], timeout=120)
        shutil.rmtree(work, ignore_errors=True)
