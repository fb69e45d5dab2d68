"""Systemd user-service driver: the gateway as `systemctl --user` runs it on a real host.

The driver protocol (harness.targets.driver) like LocalProcessDriver's, but every action is a
command run on the target through a command runner (harness.targets.runner), as the service's
user:

    <deployment>/current -> <versioned prefix>   switched with one rename(2) on the target
    <deployment>/state, <deployment>/home        the gateway's state dir and HOME
    ~/.config/systemd/user/<unit>                written by the driver; `daemon-reload` when
                                                 its content changes

The unit runs the active install's binary (`<deployment>/current/node_modules/.bin/<bin>` for
npm, `<deployment>/current/bin/<bin>` for a virtualenv) with its start argv, Restart=always,
and bakes the active version into an environment variable (OpenClaw's own installer does the
same with OPENCLAW_SERVICE_VERSION); activating an install rewrites that line, so the unit
never names a version that is no longer installed. Restart=always brings back a gateway that
crashed or was killed, but not one stopped on purpose (`systemctl --user stop`): the failure
mode of an updater that stops its own gateway and dies before starting it again.

Its log is the journal, not a file: `log_path` is None; `journal()` follows it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.common.commands import Completed
from harness.common.errors import InfrastructureError
from harness.signals.signatures import Signature
from harness.targets.driver import Driver
from harness.targets.packages import bin_path
from harness.targets.profile import TargetProfile
from harness.targets.runner import CommandRunner, systemd_user_env
from harness.targets.runtime import Installation, NodeRuntime

SHOW = ("ActiveState", "SubState", "MainPID", "NRestarts", "ExecMainStartTimestamp",
        "ExecMainExitTimestamp", "ExecMainCode", "ExecMainStatus", "Result", "LoadState",
        "NeedDaemonReload", "FragmentPath", "ActiveEnterTimestamp")
_CLD_EXITED = 1  # ExecMainCode: how the main process ended (waitid's si_code)


@dataclass(frozen=True)
class UnitState:
    active: str  # ActiveState: active, activating, deactivating, inactive, failed
    sub: str  # SubState: running, auto-restart, dead, ...
    main_pid: int
    n_restarts: int
    started_at: str  # ExecMainStartTimestamp, as systemctl prints it ("" if never)
    exited_at: str
    exit_code: int | None  # of the last main process: its status, or -signal if killed
    result: str
    load: str
    need_reload: bool
    fragment: str
    active_since: str = ""  # ActiveEnterTimestamp: when the unit last became active

    @classmethod
    def parse(cls, text: str) -> UnitState:
        props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        code, status = _int(props.get("ExecMainCode")), _int(props.get("ExecMainStatus"))
        exit_code = None
        if props.get("ExecMainExitTimestamp"):
            exit_code = status if code == _CLD_EXITED else -status
        return cls(active=props.get("ActiveState", ""), sub=props.get("SubState", ""),
                   main_pid=_int(props.get("MainPID")), n_restarts=_int(props.get("NRestarts")),
                   started_at=props.get("ExecMainStartTimestamp", ""),
                   exited_at=props.get("ExecMainExitTimestamp", ""), exit_code=exit_code,
                   result=props.get("Result", ""), load=props.get("LoadState", ""),
                   need_reload=props.get("NeedDaemonReload") == "yes",
                   fragment=props.get("FragmentPath", ""),
                   active_since=props.get("ActiveEnterTimestamp", ""))

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class SystemdUserUnit:
    """A user unit seen through a command runner: its state and its journal. Changes nothing;
    the driver below (which writes and drives the unit) and an attached deployment's observer
    (harness.targets.attached, which must leave it as found) are both built on it."""

    def __init__(self, runner: CommandRunner, user: str, unit: str) -> None:
        if not re.fullmatch(r"[\w@.:-]+\.service", unit):
            raise InfrastructureError(f"{unit!r} is not a service unit name")
        self.runner = runner
        self.user = user
        self.unit = unit
        self.log_path: Path | None = None  # the journal is the log: see journal()
        self.uid, self.home = self._account()

    # -- running things as the service's user -------------------------------------------
    def _account(self) -> tuple[int, str]:
        done = self.runner.run(["getent", "passwd", self.user], timeout=30)
        fields = done.stdout.strip().split(":")
        if done.returncode != 0 or len(fields) < 7:
            raise InfrastructureError(f"{self.runner.name}: no user {self.user!r} "
                                      f"({done.tail(1) or 'getent found nothing'})")
        return int(fields[2]), fields[5]

    def _as_user(self, argv: Sequence[str], timeout: float = 60.0,
                 input: str | None = None) -> Completed:
        return self.runner.run(argv, user=self.user, env=systemd_user_env(self.uid),
                               timeout=timeout, input=input)

    def systemctl(self, *args: str, timeout: float = 60.0) -> Completed:
        return self._as_user(["systemctl", "--user", *args], timeout=timeout)

    # -- its state ----------------------------------------------------------------------
    def state(self) -> UnitState:
        done = self.systemctl("show", "-p", ",".join(SHOW), self.unit, timeout=30)
        if done.returncode != 0:
            raise InfrastructureError(f"{self.runner.name}: systemctl --user show {self.unit} "
                                      f"failed: {done.tail(2)}")
        return UnitState.parse(done.stdout)

    @property
    def pid(self) -> int | None:
        return self.state().main_pid or None

    def is_running(self) -> bool:
        """A main process is up (during RestartSec after a crash there is none)."""
        return self.state().main_pid != 0

    def exit_code(self) -> int | None:
        """How the last main process ended (negative: the signal), None while one runs."""
        state = self.state()
        return None if state.main_pid else state.exit_code

    # -- its log: the journal -----------------------------------------------------------
    def journal(self, signatures: tuple[Signature, ...] = (), poll_s: float = 0.5):  # noqa: ANN201
        """A JournalWatcher of this unit from now on (use it as a context manager)."""
        from harness.signals.journal import JournalWatcher

        return JournalWatcher.from_now(self.runner, self.unit, signatures, user=self.user,
                                       uid=self.uid, poll_s=poll_s)

    def console_watcher(self, signatures: tuple[Signature, ...]):  # noqa: ANN201
        """Under systemd the console is the journal."""
        return self.journal(signatures, poll_s=0.5)

    def log_tail(self, lines: int = 20) -> str:
        done = self._as_user(["journalctl", "--user", "-u", self.unit, "-n", str(lines),
                              "-o", "cat", "--no-pager"], timeout=30)
        return done.stdout.rstrip("\n")


class SystemdUserDriver(SystemdUserUnit, Driver):
    name = "systemd"

    def __init__(self, runner: CommandRunner, user: str, deployment: str | Path, unit: str,
                 bin_name: str, start_argv: Sequence[str], env: Mapping[str, str],
                 node: NodeRuntime | None, *, version_env: str | None = None,
                 restart_sec: float = 5, stop_timeout_s: float = 20,
                 ecosystem: str = "npm") -> None:
        super().__init__(runner, user, unit)
        self.ecosystem = ecosystem
        self.deployment = Path(deployment)
        self.bin_name = bin_name
        self.start_argv = list(start_argv)
        self.env = dict(env)
        self.node = node
        self.version_env = version_env
        self.restart_sec = restart_sec
        self.stop_timeout_s = stop_timeout_s
        self.current = self.deployment / "current"
        self.version: str | None = None  # baked into the unit by activate()
        self.daemon_reloads = 0
        self.unit_path = f"{self.home}/.config/systemd/user/{unit}"
        self._reachable(self.deployment)
        self._sh(f"mkdir -p {_q(self.deployment)}/state {_q(self.deployment)}/home",
                 "create the deployment folder")

    @classmethod
    def for_profile(cls, profile: TargetProfile, deployment: Path, argv: list[str],
                    env: dict[str, str], node: NodeRuntime | None) -> SystemdUserDriver:
        """The profile's unit, driven where `target.host` says, as `[systemd] user`."""
        import os

        from harness.targets.runner import runner_for

        assert profile.systemd is not None
        kwargs = {"docker_host": os.environ["DOCKER_HOST"]} if "DOCKER_HOST" in os.environ \
            and profile.host.startswith("docker://") else {}
        runner = runner_for(profile.host, **kwargs)
        # The deployment folder is written here and must be the service user's there: the
        # harness shares it at the same path (it runs on the staging host, or it is mounted).
        runner.run(["chown", "-R", "-h", f"{profile.systemd.user}:", str(deployment)],
                   timeout=120)
        return cls(runner, profile.systemd.user, deployment, profile.gateway.unit,
                   profile.package.bin, argv, env, node,
                   version_env=profile.gateway.version_env or None,
                   restart_sec=profile.systemd.restart_sec,
                   stop_timeout_s=profile.gateway.stop_timeout_s,
                   ecosystem=profile.package.ecosystem)

    def _reachable(self, folder: Path) -> None:
        """The service's user must traverse every folder above the deployment; a project kept
        in a private folder (a home or a temporary folder of mode 0700) is the usual reason it
        cannot, and that is said plainly instead of as a failed mkdir."""
        script = ('p=""; IFS=/; set -f; for part in $1; do [ -n "$part" ] || continue; '
                  'p="$p/$part"; [ -e "$p" ] || exit 0; [ -x "$p" ] || { echo "$p"; exit 3; }; '
                  'done')
        done = self._as_user(["sh", "-c", script, "sh", str(folder)])
        if done.returncode != 3:
            return
        blocked = done.stdout.strip()
        mode = self.runner.run(["stat", "-c", "%a %U", blocked], timeout=30).stdout.split()
        seen = f" (mode {mode[0]}, owner {mode[1]})" if len(mode) == 2 else ""
        raise InfrastructureError(
            f"{self.runner.name}: user {self.user} cannot reach {blocked}{seen}, which holds "
            f"the deployment folder {folder}: keep the harness folder where {self.user} can "
            f"traverse it (e.g. chmod o+x {blocked}, or clone it under /opt or /srv)")

    def _sh(self, script: str, what: str, input: str | None = None) -> Completed:
        done = self._as_user(["sh", "-c", script], input=input)
        if done.returncode != 0:
            raise InfrastructureError(f"{self.runner.name}: could not {what}: {done.tail(2)}")
        return done

    def _systemctl_ok(self, *args: str, timeout: float = 60.0) -> Completed:
        done = self.systemctl(*args, timeout=timeout)
        if done.returncode != 0:
            raise InfrastructureError(
                f"{self.runner.name}: systemctl --user {' '.join(args)} failed: {done.tail(3)}")
        return done

    # -- the unit -----------------------------------------------------------------------
    def unit_text(self) -> str:
        executable = bin_path(self.current, self.ecosystem, self.bin_name)
        path = "/usr/local/bin:/usr/bin:/bin"
        env = {"PATH": f"{self.node.bin_dir}:{path}" if self.node else path, **self.env}
        if self.version_env and self.version:
            env[self.version_env] = self.version
        lines = [
            "# Written by gateway-release-harness; rewritten when the active version changes.",
            "[Unit]",
            f"Description={self.bin_name} gateway ({self.deployment})",
            "",
            "[Service]",
            "Type=simple",
            f"WorkingDirectory={_unit_word(str(self.deployment))}",
            "ExecStart=" + " ".join(_exec_word(w) for w in [str(executable), *self.start_argv]),
            *(f"Environment={_env_assignment(k, v)}" for k, v in env.items()),
            "Restart=always",
            f"RestartSec={self.restart_sec:g}",
            "KillMode=control-group",
            "SuccessExitStatus=0 143",
            f"TimeoutStopSec={self.stop_timeout_s:g}",
            "",
            "[Install]",
            "WantedBy=default.target",
            "",
        ]
        return "\n".join(lines)

    def write_unit(self) -> bool:
        """Write the unit if its content differs, then `daemon-reload`. True if it changed."""
        text = self.unit_text()
        existing = self._as_user(["cat", self.unit_path])
        if existing.returncode == 0 and existing.stdout == text:
            return False
        folder = self.unit_path.rsplit("/", 1)[0]
        tmp = f"{folder}/.{self.unit}.tmp"
        self._sh(f"umask 077 && mkdir -p {_q(folder)} && cat > {_q(tmp)} && "
                 f"mv -f {_q(tmp)} {_q(self.unit_path)}", f"write {self.unit_path}", input=text)
        self._systemctl_ok("daemon-reload")
        self.daemon_reloads += 1
        return True

    def put_file(self, path: str | Path, text: str, mode: str = "600") -> None:
        """Write a file on the target as the service's user (a config, say), atomically."""
        target = _q(path)
        tmp = _q(f"{path}.harness-tmp")
        self._sh(f"mkdir -p {_q(Path(path).parent)} && cat > {tmp} && chmod {mode} {tmp} && "
                 f"mv -f {tmp} {target}", f"write {path}", input=text)

    def hand_over(self, path: str | Path) -> bool:
        """Make what the harness wrote (a restored config, a patched one, the guard's files)
        the service user's own: `chown -R -h` by the runner's own user (root in the container
        tests; on a staging host whatever the harness runs as: a no-op as that same user)."""
        done = self.runner.run(["chown", "-R", "-h", f"{self.user}:", str(path)], timeout=120)
        return done.returncode == 0

    # -- which install is active --------------------------------------------------------
    def active_prefix(self) -> Path | None:
        cur = _q(self.current)
        done = self._as_user(["sh", "-c", f"test -L {cur} && readlink -e {cur}"])
        return Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None

    def activate(self, install: Installation) -> None:
        """Switch `current` with one rename on the target; bake the version into the unit."""
        binary = _q(install.bin(self.bin_name))
        check = self._as_user(["sh", "-c", f"test -x {binary}"])
        if check.returncode != 0:
            raise InfrastructureError(
                f"{self.runner.name}: {install.prefix} is not installed on the target "
                f"(no executable {self.bin_name}); is the runtime cache there?")
        staging = _q(self.deployment / ".current-switch")
        self._sh(f"ln -sfn {_q(install.prefix)} {staging} && mv -Tf {staging} {_q(self.current)}",
                 f"switch {self.current} to {install.prefix}")
        self.version = install.release.version
        if install.node is not None:  # the unit's PATH: the Node.js this version asks for
            self.node = install.node
        self.write_unit()

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> int:
        if self.is_running():
            raise InfrastructureError(f"{self.unit} already running as PID {self.pid}")
        if self.active_prefix() is None:
            raise InfrastructureError(f"{self.deployment}: no active install to start")
        self.hand_over(self.deployment)  # files restored or patched by the harness
        self.write_unit()
        self._systemctl_ok("enable", self.unit)  # comes back after a reboot (with linger)
        self._systemctl_ok("start", self.unit, timeout=self.stop_timeout_s + 30)
        state = self.state()
        if not state.main_pid:
            raise InfrastructureError(f"{self.unit} did not start: {state.active}/{state.sub}, "
                                      f"result {state.result}")
        return state.main_pid

    def stop(self, timeout_s: float) -> bool:
        """An intentional stop: Restart=always leaves it stopped. True if it was up."""
        was_up = self.state().active in ("active", "activating", "reloading")
        self._systemctl_ok("stop", self.unit, timeout=timeout_s + 30)
        return was_up

    def forget_child(self) -> None:
        """Nothing to forget: the unit's MainPID is read from systemd each time."""

    def run_cli(self, args: list[str], timeout_s: float) -> Completed:
        """The active install's own CLI, as the service's user with the unit's environment."""
        binary = bin_path(self.current, self.ecosystem, self.bin_name)
        path = "/usr/local/bin:/usr/bin:/bin"
        env = {"PATH": f"{self.node.bin_dir}:{path}" if self.node else path, **self.env}
        return self.runner.run([str(binary), *args], user=self.user, env=env,
                               cwd=str(self.deployment), timeout=timeout_s)

    def guard_terms(self, installation: Installation, node: NodeRuntime | None
                    ) -> dict[str, Any]:
        """The guard is a transient unit of the same user manager that drives this unit."""
        return {"mode": "systemd", "systemd_driver": self}

    def restart(self) -> int:
        self.write_unit()
        self._systemctl_ok("restart", self.unit, timeout=self.stop_timeout_s + 30)
        return self.state().main_pid

    def remove(self) -> None:
        """Stop, disable and delete the unit (the deployment folder stays)."""
        self.systemctl("disable", "--now", self.unit, timeout=self.stop_timeout_s + 30)
        self._as_user(["rm", "-f", self.unit_path])
        self.systemctl("daemon-reload")
        self.systemctl("reset-failed", self.unit)


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _q(path: str | Path) -> str:
    return shlex.quote(str(path))


_PLAIN = re.compile(r"^[\w./:=@+,-]+$")


def _unit_word(value: str) -> str:
    """Specifiers (%) are expanded in every unit setting."""
    return value.replace("%", "%%")


def _exec_word(word: str) -> str:
    """One ExecStart argument: %% and $$ keep % and $ literal; quotes keep spaces."""
    word = word.replace("%", "%%").replace("$", "$$")
    if _PLAIN.match(word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _env_assignment(key: str, value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise InfrastructureError(f"{key!r} is not an environment variable name")
    text = f"{key}={value}".replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
