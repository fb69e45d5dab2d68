"""The gateway facade: the one object phases speak to, whatever driver is behind it."""

from __future__ import annotations

import secrets
import socket
import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.common import commands
from harness.common.errors import InputError, LeaseLostError
from harness.targets.client import GatewayEndpoint
from harness.targets.driver import Driver, driver_class
from harness.targets.profile import TargetProfile
from harness.targets.runtime import Installation, NodeRuntime, Runtime

if TYPE_CHECKING:
    from harness.targets.attached import Attached


READY_POLL_S = 0.05  # a start is measured to the probe that sees it ready: probe often


@dataclass
class Readiness:
    ready: bool
    seconds: float
    live: tuple[int | None, str]
    readyz: tuple[int | None, str]
    reason: str = ""


class Gateway:
    def __init__(self, profile: TargetProfile, runtime: Runtime | None, node: NodeRuntime | None,
                 driver: Driver, endpoint: GatewayEndpoint, state_dir: Path | None) -> None:
        self.profile = profile
        self.runtime = runtime
        self.node = node
        self.driver = driver
        self.endpoint = endpoint
        self.state_dir = state_dir  # an attached deployment's is where it runs (or unknown)
        self.guard: Any = None  # harness.procedure.guard.Guard, once keep_known_good() prepared it
        self.guard_evidence: list[dict[str, Any]] = []
        self.config_document: Any = None  # an attached gateway's config, read for redaction

    @property
    def attached(self) -> bool:
        """A deployment the run found running: soaked, never stopped or changed."""
        return self.profile.provision == "attached"

    # -- building one -------------------------------------------------------------------
    @classmethod
    def embedded(cls, profile: TargetProfile, runtime: Runtime, node: NodeRuntime,
                 deployment: Path, model_lab_url: str) -> Gateway:
        """A fresh deployment owned by this run: own state dir, port and token, on loopback."""
        port = profile.gateway.port or _free_port()
        token = profile.gateway.token_prefix + secrets.token_urlsafe(24)
        state_dir = deployment / "state"
        values = {"port": str(port), "state_dir": str(state_dir), "home": str(deployment / "home"),
                  "deployment": str(deployment), "model_lab": model_lab_url, "token": token}
        argv = [_render(arg, values, profile, "gateway.start") for arg in profile.gateway.start]
        env = {k: _render(v, values, profile, f"gateway.env.{k}")
               for k, v in profile.gateway.env.items()}
        env[profile.gateway.token_env] = token
        assert profile.state.config_template is not None
        template = profile.state.config_template
        try:
            config = string.Template(template.read_text()).substitute(values)
        except (KeyError, ValueError) as exc:
            raise InputError(str(template), "", f"unknown or malformed placeholder {exc}") from None
        config_path = state_dir / profile.state.config
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(config)
        driver = driver_class("embedded", profile.driver).for_profile(
            profile, deployment, argv, env, node)
        endpoint = GatewayEndpoint(
            base_url=f"http://127.0.0.1:{port}", token=token, headers=profile.api.headers,
            chat_path=profile.api.chat, model_prefix=profile.api.model_prefix,
            stream_finish_reason=profile.api.stream_finish_reason,
        )
        return cls(profile, runtime, node, driver, endpoint, state_dir)

    @classmethod
    def attach(cls, profile: TargetProfile, found: Attached) -> Gateway:
        """The facade over a deployment that runs already (harness.targets.attached.attach)."""
        assert profile.attached is not None
        state_dir = profile.attached.state_dir
        gateway = cls(profile, None, None, found.driver, found.endpoint,
                      Path(state_dir) if state_dir else None)
        gateway.config_document = found.config_document
        return gateway

    # -- versions -----------------------------------------------------------------------
    def active_version(self) -> str | None:
        """The version that is active: its install's marker, or what an attached deployment
        was observed to run."""
        return self.driver.active_version()

    def active_prefix(self) -> Path | None:
        """The active install's prefix (None: none of the harness's, as when attached)."""
        return self.driver.active_prefix()

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.driver.pid

    @property
    def log_path(self) -> Path | None:
        return self.driver.log_path

    def _acting(self, what: str) -> None:
        """One owner of the gateway at a time: once the guard took it over (this harness
        stalled past its lease), the harness does nothing to it."""
        if self.guard is not None and not self.guard.owns():
            raise LeaseLostError(f"not {what}: the guard took the gateway over "
                                 f"({(self.guard.lost or {}).get('why', 'lease lost')})")

    def activate(self, install: Installation) -> None:
        self._acting(f"switching to {install.release.version}")
        self.driver.activate(install)

    def start(self) -> int:
        self._acting("starting the gateway")
        return self.driver.start()

    def stop(self) -> bool:
        """Every stop of a prepared deployment is guarded (harness.procedure.guard): the guard is
        armed
        from the first stop until the run proves a version."""
        self._acting(f"stopping PID {self.pid}")
        if self.guard is not None:
            self.guard_evidence.append(self.guard.arm(f"before stopping PID {self.pid}"))
        return self.driver.stop(self.profile.gateway.stop_timeout_s)

    def proven(self, which: str, version: str) -> None:
        """The run proved a version: the guard restores nothing from now on (it only writes
        the verdict, should the harness die before it does)."""
        if self.guard is not None:
            self.guard.stand_down(which, version)

    def keep_known_good(self, installation: Installation,
                        run: dict[str, Any] | None = None) -> None:
        """While the known-good serves: prepare the detached guard that brings it back if the
        harness dies or stalls before the run has proven a version. `run` is what the guard
        needs to end the run itself when the harness died
        (harness.procedure.guardian.finish_run)."""
        from harness.procedure.guard import Guard

        assert self.driver.deployment is not None, "an attached deployment is never guarded"
        deployment = Path(self.driver.deployment)
        api = self.profile.api
        self.guard = Guard(deployment / "guard", current=deployment / "current",
                           api={"base_url": self.endpoint.base_url, "live": api.live,
                                "ready": api.ready, "chat": api.chat,
                                "token": self.endpoint.token, "headers": dict(api.headers),
                                "model_prefix": api.model_prefix, "agent": api.health_agent},
                           run=run, **self.driver.guard_terms(installation, self.node))
        self.guard.prepare(installation.prefix, installation.release.version, self.state_dir,
                           list(self.profile.state.restore))

    def shutdown(self) -> list[dict[str, Any]]:
        """End of the run: the guard ends first (it must not restart what we stop), then the
        gateway. Returns what the guard did, as evidence."""
        events: list[dict[str, Any]] = []
        if self.attached:
            return events  # left as found: running, as it was
        if self.guard is not None:
            self.guard.close()
            events = [e.__dict__ for e in self.guard.events]
            if any(e["what"] == "tripped" for e in events):
                self.driver.forget_child()  # the guard's gateway runs now: stop that one
            self.guard = None
        self.driver.stop(self.profile.gateway.stop_timeout_s)
        return events

    def taken_over(self) -> dict[str, Any] | None:
        """After the lease was lost: the guard's result, once it has one; the driver then
        follows the gateway the guard started (its PID file), not the one this harness did."""
        if self.guard is None or self.guard.owns():
            return None
        result = self.guard.wait_trip()
        self.driver.forget_child()
        return result

    def is_running(self) -> bool:
        return self.driver.is_running()

    def run_cli(self, args: list[str], timeout_s: float) -> commands.Completed:
        """The target's own command line (its backup command, say), against this deployment."""
        return self.driver.run_cli(args, timeout_s)

    def is_serving(self) -> bool:
        status, _ = self.endpoint.probe(self.profile.api.live, timeout=2)
        return self.driver.is_running() and status == 200

    def wait_ready(self, timeout_s: float | None = None) -> Readiness:
        """Poll liveness and readiness until both pass, the process dies, or time runs out."""
        limit = timeout_s if timeout_s is not None else self.profile.gateway.ready_timeout_s
        started = time.monotonic()
        live: tuple[int | None, str] = (None, "not probed")
        ready: tuple[int | None, str] = (None, "not probed")
        while time.monotonic() - started < limit:
            if self.guard is not None and not self.guard.owns():
                return Readiness(False, time.monotonic() - started, live, ready,
                                 "the guard took the gateway over: this harness stopped acting")
            if not self.driver.is_running():
                code = self.driver.exit_code()
                return Readiness(False, time.monotonic() - started, live, ready,
                                 f"gateway process exited (code {code}) before it was ready")
            live = self.endpoint.probe(self.profile.api.live, timeout=2)
            if live[0] == 200:
                ready = self.endpoint.probe(self.profile.api.ready, timeout=2)
                if ready[0] == 200:
                    owner = self._holds_port()
                    if owner is None:
                        return Readiness(True, time.monotonic() - started, live, ready)
                    ready = (None, owner)  # someone else answers the port: not ours
            time.sleep(READY_POLL_S)
        return Readiness(False, limit, live, ready, f"not ready within {limit:g} s")

    def _holds_port(self) -> str | None:
        """None when the process the driver started holds the gateway's port (or this host
        cannot tell: another host or PID namespace); else who does. Readiness is that of the
        PID the owner started, never of whoever answers the port."""
        return self.driver.port_owner(int(self.endpoint.base_url.rsplit(":", 1)[1]))

    def log_tail(self, lines: int = 20) -> str:
        return self.driver.log_tail(lines)

    # -- its log, whatever the driver -----------------------------------------------------
    def log_watcher(self, signatures: tuple) -> Any:
        """A watcher of the gateway's log from now on (LogWatcher's surface, as a context
        manager): the journal under systemd, the console file of the local driver, or the
        file log the profile names (whose trust log_report() decides)."""
        from harness.targets.logsource import watcher_for

        return watcher_for(self, signatures)

    def log_report(self, watcher: Any, since: float) -> dict[str, Any]:
        """Which log the soak trusted, and whether a file log was stale (never trusted)."""
        from harness.targets.logsource import report_for

        return report_for(self, watcher, since)

    def config_lint(self) -> list[dict[str, Any]]:
        """The profile's [[preflight.config]] checks against the deployment's config."""
        from harness.targets.logsource import lint_config

        return lint_config(self.profile, self.state_dir / self.profile.state.config)


def _render(value: str, values: dict[str, str], profile: TargetProfile, key: str) -> str:
    try:
        return value.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(str(profile.path), key,
                         f"unknown placeholder {exc} in {value!r}") from None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

