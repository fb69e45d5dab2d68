"""A deployment that is already running: observed, soaked, and left exactly as found.

`provision = "attached"` (harness.targets.profile) names a staging host's own gateway: its
systemd user unit, the URL it answers on, where its token comes from, its state dir. A run
against it (`pytest scenarios -m soak --target staging.toml`) installs, stops and restarts
nothing; it reads, through the same command runner as the systemd driver, as the unit's user:

    AttachedUnit    the unit's state (MainPID, ActiveEnterTimestamp, NRestarts), its ExecStart
                    and Environment, and its journal (the soak's log source); start, stop and
                    activate refuse, so no phase can change it by mistake
    observe()       which version runs, from the running deployment itself: the package.json
                    of the package its ExecStart runs (resolved on the target), the unit's
                    version variable and the main process's own environment; where these
                    disagree (a package replaced under a running process, a unit rewritten
                    and not restarted) the notes say so
    attach()        all of it before any test runs: a unit that is not running, or a gateway
                    that does not answer its live probe, is GatewayUnreachableError (exit 22);
                    a token that cannot be had is a bad input naming the profile key (exit 20)
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.common.commands import Completed
from harness.common.errors import GatewayUnreachableError, InfrastructureError, InputError
from harness.targets.client import GatewayEndpoint
from harness.targets.profile import AttachedSpec, TargetProfile
from harness.targets.runner import CommandRunner, runner_for
from harness.targets.systemd import SystemdUserUnit

# a package replaced this long after the process started is not what the process runs
_SLACK_S = 2


@dataclass(frozen=True)
class Observation:
    """The attached unit at one moment, and the version it runs."""

    unit: str
    active: str
    sub: str
    main_pid: int
    active_since: str  # ActiveEnterTimestamp: a restart, even by Restart=always, changes it
    n_restarts: int
    version: str | None
    sources: dict[str, Any] = field(default_factory=dict)  # where the version was read
    notes: list[str] = field(default_factory=list)  # where those sources disagree

    @property
    def running(self) -> bool:
        return self.active == "active" and self.main_pid != 0

    def changes_since(self, before: Observation) -> list[str]:
        """What differs from an earlier observation, one phrase each (empty: as found)."""
        found = []
        for name, label in (("main_pid", "MainPID"), ("active_since", "ActiveEnterTimestamp"),
                            ("n_restarts", "NRestarts"), ("active", "ActiveState"),
                            ("version", "version")):
            old, new = getattr(before, name), getattr(self, name)
            if old != new:
                found.append(f"{label} {old} -> {new}")
        return found

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunningProcess:
    """What the running process and the package it runs say about the version."""

    root: str  # the package's folder ("" when ExecStart runs none the profile names)
    package_version: str | None  # its package.json
    package_mtime: int | None  # when that package.json was written (unix time)
    process_started: int | None  # when the main process started (unix time)
    environ: dict[str, str] = field(default_factory=dict)  # the main process's environment
    process_env_version: str | None = None  # the version variable in that environment


class AttachedUnit(SystemdUserUnit):
    """The attached deployment's unit, read as its user; never written, started or stopped."""

    def __init__(self, runner: CommandRunner, user: str, spec: AttachedSpec,
                 package: str) -> None:
        super().__init__(runner, user, spec.unit)
        self.spec = spec
        self.package = package
        self.env: dict[str, str] = {}  # the unit's and its process's environment (redaction)
        self.version: str | None = None  # of the last observation

    # -- never a change ---------------------------------------------------------------------
    def _refuse(self, what: str) -> InfrastructureError:
        return InfrastructureError(f"{self.unit} is an attached deployment: the harness never "
                                   f"{what} it (it soaks it and leaves it as found)")

    def start(self) -> int:
        raise self._refuse("starts")

    def stop(self, timeout_s: float) -> bool:
        raise self._refuse("stops")

    def restart(self) -> int:
        raise self._refuse("restarts")

    def activate(self, install: Any) -> None:
        raise self._refuse("switches the version of")

    def active_prefix(self) -> None:
        return None  # no prefix of the harness's: observe() says what runs

    def run_cli(self, args: list[str], timeout_s: float) -> Completed:
        raise self._refuse("runs the gateway's own commands against")

    # -- reading it -------------------------------------------------------------------------
    def show(self, *props: str) -> dict[str, str]:
        done = self.systemctl("show", "-p", ",".join(props), self.unit, timeout=30)
        if done.returncode != 0:
            raise InfrastructureError(f"{self.runner.name}: systemctl --user show {self.unit} "
                                      f"failed: {done.tail(2)}")
        return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)

    def read_file(self, path: str) -> Completed:
        return self._as_user(["cat", "--", path], timeout=30)

    def observe(self) -> Observation:
        state = self.state()
        props = self.show("ExecStart", "Environment")
        unit_env = environment_words(props.get("Environment", ""))
        process = self._process(state.main_pid, self._package_root(exec_argv(
            props.get("ExecStart", ""))))
        process.process_env_version = process.environ.get(self.spec.version_env) \
            if self.spec.version_env else None
        self.env = {**unit_env, **process.environ}  # both may hold secrets: the redactor reads them
        version, sources, notes = judge_version(
            process, unit_env.get(self.spec.version_env) if self.spec.version_env else None,
            self.spec.version_env)
        self.version = version
        return Observation(self.unit, state.active, state.sub, state.main_pid,
                           state.active_since, state.n_restarts, version, sources, notes)

    def _package_root(self, argv: list[str]) -> str:
        """The folder of the package the unit runs: an ExecStart word that resolves (on the
        target, symlinks followed) into node_modules/<package>."""
        words = [w for w in argv if w.startswith("/")]
        if not words:
            return ""
        done = self._as_user(["sh", "-c", 'for w in "$@"; do readlink -f -- "$w" || echo; done',
                              "sh", *words], timeout=30)
        marker = f"/node_modules/{self.package}"
        for path in done.stdout.splitlines():
            at = path.find(marker + "/")
            if at >= 0:
                return path[:at + len(marker)]
            if path.endswith(marker):
                return path
        return ""

    def _process(self, pid: int, root: str) -> RunningProcess:
        script = ('printf "now=%s\\nelapsed=%s\\nmtime=%s\\n" "$(date +%s)" '
                  '"$(ps -o etimes= -p "$1" 2>/dev/null | tr -d " ")" '
                  '"$(stat -c %Y -- "$2" 2>/dev/null)"; echo ---package; cat -- "$2" 2>/dev/null; '
                  'echo; echo ---environ; tr "\\000" "\\n" < /proc/"$1"/environ 2>/dev/null')
        package_json = f"{root}/package.json" if root else "/nonexistent"
        done = self._as_user(["sh", "-c", script, "sh", str(pid or 0), package_json], timeout=30)
        head, _, rest = done.stdout.partition("---package\n")
        package_text, _, environ = rest.partition("\n---environ\n")
        numbers = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
        try:
            package = json.loads(package_text) if package_text.strip() else {}
        except ValueError:
            package = {}
        started = None
        if numbers.get("now", "").isdigit() and numbers.get("elapsed", "").isdigit():
            started = int(numbers["now"]) - int(numbers["elapsed"])
        return RunningProcess(
            root, package.get("version") if isinstance(package, dict) else None,
            int(numbers["mtime"]) if numbers.get("mtime", "").isdigit() else None,
            started if pid else None,
            dict(line.split("=", 1) for line in environ.splitlines() if "=" in line))


def exec_argv(value: str) -> list[str]:
    """The argv of the first command in `systemctl show -p ExecStart` output."""
    start = value.find("argv[]=")
    if start < 0:
        return []
    end = value.find(" ;", start)
    return value[start + len("argv[]="):end if end >= 0 else None].split()


def environment_words(value: str) -> dict[str, str]:
    """`systemctl show -p Environment`: KEY=VALUE words, quoted when they hold spaces."""
    try:
        words = shlex.split(value)
    except ValueError:
        words = value.split()
    return dict(w.split("=", 1) for w in words if "=" in w)


def judge_version(process: RunningProcess, unit_says: str | None,
                  version_env: str) -> tuple[str | None, dict[str, Any], list[str]]:
    """The running version and the sources it was read from; disagreements become notes."""
    package = process.package_version
    process_says = process.process_env_version
    sources: dict[str, Any] = {
        "package": {"path": process.root or None, "version": package},
        "unit_env": {"name": version_env or None, "version": unit_says},
        "process_env": {"name": version_env or None, "version": process_says},
    }
    notes = []
    mtime, started = process.package_mtime, process.process_started
    replaced = package is not None and mtime is not None and started is not None and \
        mtime > started + _SLACK_S
    if replaced:
        notes.append(f"the package at {process.root} was replaced after the running process "
                     f"started ({mtime - started} s later): it may not run {package}")
    if package and process_says and package != process_says:
        notes.append(f"the process was started as {process_says} ({version_env}), the package "
                     f"it runs says {package}")
    if unit_says and process_says and unit_says != process_says:
        notes.append(f"the unit names {unit_says}, the running process was started with "
                     f"{process_says}: the unit was rewritten and not restarted")
    if replaced and process_says:
        version = process_says  # what the process was started as, not what replaced it
    else:
        version = package or process_says or unit_says
    if version is None:
        notes.append("no version found: ExecStart runs no node_modules package the profile names "
                     "and no version variable is set")
    return version, sources, notes


@dataclass
class Attached:
    """What attach() found: the unit, the token, and the deployment as it was found."""

    unit: AttachedUnit
    endpoint: GatewayEndpoint
    found: Observation
    config_document: Any = None  # the gateway's config (for redaction), when the profile names it


def attach(profile: TargetProfile) -> Attached:
    spec = profile.attached
    assert spec is not None and profile.systemd is not None
    where = f"attached {spec.unit} on {profile.host}"
    kwargs = {"docker_host": os.environ["DOCKER_HOST"]} if "DOCKER_HOST" in os.environ \
        and profile.host.startswith("docker://") else {}
    try:
        unit = AttachedUnit(runner_for(profile.host, **kwargs), profile.systemd.user, spec,
                            profile.package.name)
    except InfrastructureError as exc:
        raise GatewayUnreachableError(f"{where}: cannot reach it: {exc}") from None
    token = token_of(profile, unit)
    try:
        found = unit.observe()
    except InfrastructureError as exc:
        raise GatewayUnreachableError(f"{where}: cannot read its state: {exc}") from None
    if not found.running:
        raise GatewayUnreachableError(
            f"{where} is {found.active}/{found.sub}, not running: nothing to soak (the harness "
            f"starts nothing it attaches to); last log line: {unit.log_tail(1)!r}")
    endpoint = GatewayEndpoint(base_url=spec.url, token=token, headers=profile.api.headers,
                               chat_path=profile.api.chat, model_prefix=profile.api.model_prefix,
                               stream_finish_reason=profile.api.stream_finish_reason)
    status, reason = endpoint.probe(profile.api.live, timeout=5)
    if status != 200:
        raise GatewayUnreachableError(
            f"{where}: the gateway at {spec.url} does not answer {profile.api.live} "
            f"({status or reason}) although the unit runs as PID {found.main_pid}: is "
            f"{profile.path}: attached.url right?")
    document = None
    if spec.config:
        done = unit.read_file(f"{spec.state_dir}/{spec.config}")
        try:
            document = json.loads(done.stdout) if done.returncode == 0 else None
        except ValueError:
            document = None
    return Attached(unit, endpoint, found, document)


def token_of(profile: TargetProfile, unit: AttachedUnit) -> str:
    """The gateway's token: from the harness's environment, or a file on the target."""
    spec = profile.attached
    assert spec is not None
    source = str(profile.path)
    if spec.token_env:
        value = os.environ.get(spec.token_env, "").strip()
        if not value:
            raise InputError(source, "attached.token_env",
                             f"{spec.token_env} is not set in the harness's environment")
        return value
    done = unit.read_file(spec.token_file)
    if done.returncode != 0:
        raise InputError(source, "attached.token_file", f"cannot read {spec.token_file} on "
                         f"{profile.host} as {unit.user}: {done.tail(1)}")
    if not spec.token_key:
        value = done.stdout.strip()
        if not value:
            raise InputError(source, "attached.token_file", f"{spec.token_file} is empty")
        return value
    try:
        document: Any = json.loads(done.stdout)
    except ValueError:
        raise InputError(source, "attached.token_key", f"{spec.token_file} is not JSON "
                         "(comments and other JSON5 are not read: point token_file at a "
                         "plain file holding the token)") from None
    for part in spec.token_key.split("."):
        document = document.get(part) if isinstance(document, dict) else None
    if not isinstance(document, str) or not document.strip():
        raise InputError(source, "attached.token_key",
                         f"no token (a non-empty string) at {spec.token_key} in {spec.token_file}")
    return document.strip()


def attached_lock(profile: TargetProfile) -> dict[str, Any]:
    """What an attached run is locked against: the declared deployment (never its token)."""
    spec = profile.attached
    assert spec is not None and profile.systemd is not None
    token_from = f"env {spec.token_env}" if spec.token_env else \
        f"file {spec.token_file}" + (f" key {spec.token_key}" if spec.token_key else "")
    return {"unit": spec.unit, "host": profile.host, "user": profile.systemd.user,
            "url": spec.url, "state_dir": spec.state_dir, "token_from": token_from,
            "package": profile.package.name}
