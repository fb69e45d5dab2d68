"""The gateway facade: the one object phases speak to, whatever driver is behind it."""

from __future__ import annotations

import json
import secrets
import socket
import string
import time
from dataclasses import dataclass
from pathlib import Path

from harness import commands
from harness.errors import InputError
from harness.target.client import GatewayEndpoint
from harness.target.local import LocalProcessDriver
from harness.target.profile import TargetProfile
from harness.target.runtime import MARKER, Installation, NodeRuntime, Runtime


@dataclass
class Readiness:
    ready: bool
    seconds: float
    live: tuple[int | None, str]
    readyz: tuple[int | None, str]
    reason: str = ""


class Gateway:
    def __init__(self, profile: TargetProfile, runtime: Runtime, node: NodeRuntime,
                 driver: LocalProcessDriver, endpoint: GatewayEndpoint, state_dir: Path) -> None:
        self.profile = profile
        self.runtime = runtime
        self.node = node
        self.driver = driver
        self.endpoint = endpoint
        self.state_dir = state_dir

    # -- building one -------------------------------------------------------------------
    @classmethod
    def embedded(cls, profile: TargetProfile, runtime: Runtime, node: NodeRuntime,
                 deployment: Path, model_lab_url: str) -> Gateway:
        """A fresh deployment owned by this run: own state dir, port and token, on loopback."""
        port = profile.gateway.port or _free_port()
        token = secrets.token_urlsafe(24)
        state_dir = deployment / "state"
        values = {"port": str(port), "state_dir": str(state_dir), "home": str(deployment / "home"),
                  "deployment": str(deployment), "model_lab": model_lab_url, "token": token}
        argv = [_render(arg, values, profile, "gateway.start") for arg in profile.gateway.start]
        env = {k: _render(v, values, profile, f"gateway.env.{k}")
               for k, v in profile.gateway.env.items()}
        env[profile.gateway.token_env] = token
        driver = LocalProcessDriver(deployment, profile.package.bin, argv, env, node)
        assert profile.state.config_template is not None
        template = profile.state.config_template
        try:
            config = string.Template(template.read_text()).substitute(values)
        except (KeyError, ValueError) as exc:
            raise InputError(str(template), "", f"unknown or malformed placeholder {exc}") from None
        config_path = state_dir / profile.state.config
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(config)
        endpoint = GatewayEndpoint(
            base_url=f"http://127.0.0.1:{port}", token=token, headers=profile.api.headers,
            chat_path=profile.api.chat, model_prefix=profile.api.model_prefix,
        )
        return cls(profile, runtime, node, driver, endpoint, state_dir)

    # -- versions -----------------------------------------------------------------------
    def active_version(self) -> str | None:
        prefix = self.driver.active_prefix()
        if prefix is None:
            return None
        try:
            return json.loads((prefix / MARKER).read_text())["version"]
        except (OSError, KeyError, json.JSONDecodeError):
            return None

    def activate(self, install: Installation) -> None:
        self.driver.activate(install)

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.driver.pid

    @property
    def log_path(self) -> Path:
        return self.driver.log_path

    def start(self) -> int:
        return self.driver.start()

    def stop(self) -> bool:
        return self.driver.stop(self.profile.gateway.stop_timeout_s)

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
            if not self.driver.is_running():
                code = self.driver.exit_code()
                return Readiness(False, time.monotonic() - started, live, ready,
                                 f"gateway process exited (code {code}) before it was ready")
            live = self.endpoint.probe(self.profile.api.live, timeout=2)
            if live[0] == 200:
                ready = self.endpoint.probe(self.profile.api.ready, timeout=2)
                if ready[0] == 200:
                    return Readiness(True, time.monotonic() - started, live, ready)
            time.sleep(0.25)
        return Readiness(False, limit, live, ready, f"not ready within {limit:g} s")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


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

