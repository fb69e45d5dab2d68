"""A deployment that is already running: observed, soaked, and left exactly as found.

`provision = "attached"` (harness.targets.profile) names a staging gateway as it runs: a
systemd user unit (`driver = "systemd"`, here), a docker container (`docker`,
harness.targets.docker) or only its URL (`url`, here); where it answers and where its token
comes from. A run against it (`pytest scenarios -m soak --target staging.toml`) installs,
stops and restarts nothing: every attached driver refuses those (harness.targets.driver).

    AttachedUnit    the unit's state (MainPID, ActiveEnterTimestamp, NRestarts), its ExecStart
                    and Environment, read as its user through the same command runner as the
                    systemd driver, and its journal (the soak's log source)
    observe()       which version runs, from the running deployment itself: the package.json
                    of the package its ExecStart runs (resolved on the target), the unit's
                    version variable and the main process's own environment; where these
                    disagree (a package replaced under a running process, a unit rewritten
                    and not restarted) the notes say so
    AttachedUrl     a gateway known by its URL: running while its live probe answers, its
                    version from the endpoint its kind names, its log a file
    attach()        all of it before any test runs: a deployment that is not running, or a
                    gateway that does not answer its live probe, is GatewayUnreachableError
                    (exit 22); a token that cannot be had is a bad input naming the profile key
                    (exit 20)
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from typing import Any

import httpx

from harness.common import http
from harness.common.commands import Completed
from harness.common.errors import GatewayUnreachableError, InfrastructureError, InputError
from harness.targets.client import GatewayEndpoint
from harness.targets.driver import AttachedDriver, Observation, driver_class
from harness.targets.profile import AttachedSpec, TargetProfile
from harness.targets.runner import CommandRunner, runner_for
from harness.targets.systemd import SystemdUserUnit

__all__ = ["Attached", "AttachedUnit", "AttachedUrl", "Observation", "RunningProcess", "attach",
           "token_of"]

# a package replaced this long after the process started is not what the process runs
_SLACK_S = 2


@dataclass
class RunningProcess:
    """What the running process and the package it runs say about the version."""

    root: str  # the package's folder ("" when ExecStart runs none the profile names)
    package_version: str | None  # its package.json
    package_mtime: int | None  # when that package.json was written (unix time)
    process_started: int | None  # when the main process started (unix time)
    environ: dict[str, str] = field(default_factory=dict)  # the main process's environment
    process_env_version: str | None = None  # the version variable in that environment


class AttachedUnit(SystemdUserUnit, AttachedDriver):
    """The attached deployment's systemd user unit, read as its user; never written, started
    or stopped. Its journal is its console."""

    name = "systemd"

    def __init__(self, runner: CommandRunner, user: str, spec: AttachedSpec,
                 package: str) -> None:
        super().__init__(runner, user, spec.unit)
        self.spec = spec
        self.package = package
        self.what = spec.unit
        self.env: dict[str, str] = {}  # the unit's and its process's environment (redaction)
        self.version: str | None = None  # of the last observation

    @classmethod
    def for_profile(cls, profile: TargetProfile) -> AttachedUnit:
        assert profile.attached is not None and profile.systemd is not None
        return cls(_runner(profile), profile.systemd.user, profile.attached,
                   profile.package.name)

    # -- reading it -------------------------------------------------------------------------
    def show(self, *props: str) -> dict[str, str]:
        done = self.systemctl("show", "-p", ",".join(props), self.unit, timeout=30)
        if done.returncode != 0:
            raise InfrastructureError(f"{self.runner.name}: systemctl --user show {self.unit} "
                                      f"failed: {done.tail(2)}")
        return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)

    def read_file(self, path: str) -> Completed:
        return self._as_user(["cat", "--", path], timeout=30)

    def not_running(self) -> str | None:
        state = self.state()
        return None if state.main_pid else f"is {state.active}/{state.sub}"

    def observe(self) -> Observation:
        """Its state, and the version: the package its ExecStart runs, the unit's version
        variable and the main process's own environment, disagreements noted."""
        state = self.state()
        props = self.show("ExecStart", "Environment")
        unit_env = environment_words(props.get("Environment", ""))
        process = self._process(state.main_pid, self._package_root(exec_argv(
            props.get("ExecStart", ""))))
        process.process_env_version = process.environ.get(self.spec.version_env) \
            if self.spec.version_env else None
        self.env = {**unit_env, **process.environ}  # both may hold secrets: the redactor reads
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


class AttachedUrl(AttachedDriver):
    """A gateway known only by its URL and token (a managed host, a compose file on another
    machine): nothing of its process can be read, so it is observed through its HTTP surface
    (it answers its live probe; its version from the endpoint its kind names), and its log is
    a file (`[logs] file`) read where `target.host` says, checked for staleness."""

    name = "url"

    def __init__(self, runner: CommandRunner, url: str, live: str,
                 version_from: tuple[str, str] = ("", "")) -> None:
        self.runner = runner
        self.what = url
        self.live = live
        self.version_from = version_from  # the kind's (endpoint, key), or ("", "")
        self.env: dict[str, str] = {}
        self.endpoint: GatewayEndpoint | None = None  # set by attach(), once the token is had
        self._up = False

    @classmethod
    def for_profile(cls, profile: TargetProfile) -> AttachedUrl:
        from harness.targets.kinds import kind

        assert profile.attached is not None
        found = kind(profile.kind)
        return cls(_runner(profile), profile.attached.url, profile.api.live,
                   (found.version_endpoint, found.version_key))

    @property
    def pid(self) -> int | None:
        return None  # not visible from here

    def is_running(self) -> bool:
        return self._up

    def exit_code(self) -> int | None:
        return None

    def console_watcher(self, signatures: tuple) -> Any:
        raise InfrastructureError(f"{self.what}: a gateway known by its URL has no console "
                                  "the harness can read: its log is [logs] file")

    def log_tail(self, lines: int = 20) -> str:
        return ""

    def read_file(self, path: str) -> Completed:
        assert self.runner is not None
        return self.runner.run(["cat", "--", path], timeout=30)

    def observe(self) -> Observation:
        assert self.endpoint is not None
        status, reason = self.endpoint.probe(self.live, timeout=5)
        self._up = status == 200
        version, source, notes = endpoint_version(self.endpoint, *self.version_from)
        self.version = version
        return Observation(self.what, "active" if self._up else "not answering",
                           str(status or reason), 0, "", 0, version, {"endpoint": source},
                           notes, labels={"active": "live probe", "version": "version"})


def endpoint_version(endpoint: GatewayEndpoint, path: str,
                     key: str) -> tuple[str | None, dict[str, Any], list[str]]:
    """The version a running gateway reports at the endpoint its kind names (LiteLLM's
    /health/readiness: `litellm_version`); none when the kind names none."""
    if not path:
        return None, {"path": None, "version": None}, [
            "no version found: the kind names no version endpoint and nothing else of the "
            "deployment can be read"]
    try:
        with http.sync_client(timeout=5) as client:
            response = client.get(endpoint.base_url + path, headers=endpoint.auth_headers())
        value: Any = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return None, {"path": path, "key": key, "version": None}, [
            f"{path} did not answer with JSON: {type(exc).__name__}: {exc}"]
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    version = value if isinstance(value, str) and value.strip() else None
    notes = [] if version else [f"{path} did not report {key}"]
    return version, {"path": path, "key": key, "version": version}, notes


def _runner(profile: TargetProfile) -> CommandRunner:
    kwargs = {"docker_host": os.environ["DOCKER_HOST"]} if "DOCKER_HOST" in os.environ \
        and profile.host.startswith("docker://") else {}
    return runner_for(profile.host, **kwargs)


@dataclass
class Attached:
    """What attach() found: the driver, the token, and the deployment as it was found."""

    driver: AttachedDriver
    endpoint: GatewayEndpoint
    found: Observation
    config_document: Any = None  # the gateway's config (for redaction), when the profile names it

    @property
    def unit(self) -> AttachedDriver:
        """The driver, by its first name (a systemd unit was the only way to attach)."""
        return self.driver


def attach(profile: TargetProfile) -> Attached:
    """Find the deployment, its token, and what it runs, before any test: the driver the
    profile names (ATTACHED in harness.targets.driver) observes it."""
    spec = profile.attached
    assert spec is not None
    where = f"attached {spec.what} on {profile.host}"
    try:
        driver: Any = driver_class("attached", profile.driver).for_profile(profile)
        down = driver.not_running()
    except InfrastructureError as exc:
        raise GatewayUnreachableError(f"{where}: cannot reach it: {exc}") from None
    if down:
        raise GatewayUnreachableError(
            f"{where} {down}, not running: nothing to soak (the harness starts nothing it "
            f"attaches to); last log line: {driver.log_tail(1)!r}")
    token = token_of(profile, driver)
    endpoint = GatewayEndpoint(base_url=spec.url, token=token, headers=profile.api.headers,
                               chat_path=profile.api.chat, model_prefix=profile.api.model_prefix,
                               stream_finish_reason=profile.api.stream_finish_reason)
    driver.endpoint = endpoint
    try:
        found = driver.observe()
    except InfrastructureError as exc:
        raise GatewayUnreachableError(f"{where}: cannot read its state: {exc}") from None
    if not found.running:
        raise GatewayUnreachableError(
            f"{where} is {found.active}/{found.sub}, not running: nothing to soak (the harness "
            f"starts nothing it attaches to); last log line: {driver.log_tail(1)!r}")
    status, reason = endpoint.probe(profile.api.live, timeout=5)
    if status != 200:
        runs = f" although the {spec.kind_word} runs as PID {found.main_pid}" \
            if found.main_pid else ""
        raise GatewayUnreachableError(
            f"{where}: the gateway at {spec.url} does not answer {profile.api.live} "
            f"({status or reason}){runs}: is {profile.path}: attached.url right?")
    document = None
    if spec.config:
        done = driver.read_file(f"{spec.state_dir}/{spec.config}")
        try:
            document = json.loads(done.stdout) if done.returncode == 0 else None
        except ValueError:
            document = None
    return Attached(driver, endpoint, found, document)


def token_of(profile: TargetProfile, driver: AttachedDriver) -> str:
    """The gateway's token: from the harness's environment, or a file where it runs."""
    spec = profile.attached
    assert spec is not None
    source = str(profile.path)
    if spec.token_env:
        value = os.environ.get(spec.token_env, "").strip()
        if not value:
            raise InputError(source, "attached.token_env",
                             f"{spec.token_env} is not set in the harness's environment")
        return value
    done = driver.read_file(spec.token_file)
    if done.returncode != 0:
        raise InputError(source, "attached.token_file", f"cannot read {spec.token_file} on "
                         f"{profile.host} ({driver.what}): {done.tail(1)}")
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
    assert spec is not None
    token_from = f"env {spec.token_env}" if spec.token_env else \
        f"file {spec.token_file}" + (f" key {spec.token_key}" if spec.token_key else "")
    return {"unit": spec.what, "driver": profile.driver, "host": profile.host,
            "user": profile.systemd.user if profile.systemd else None,
            "url": spec.url, "state_dir": spec.state_dir, "token_from": token_from,
            "package": profile.package.name}
