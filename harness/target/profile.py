"""Target profiles: what a gateway is, how it is installed, started, probed and watched.

A profile is a TOML file (see `scenarios/targets/`). It is parsed once, at collection time,
into a `TargetProfile`; phases and drivers only read the typed fields. Nothing here knows a
particular product: OpenClaw is one profile, whose product-specific bits (start command, env,
config template, log signatures) are data in its file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.schema import Table, load_toml

DRIVERS = ("local", "systemd")
PROVISION = ("embedded",)  # attaching to a running deployment is still to come
# stdout: the local driver's console file; journal: the systemd unit's journal (its default);
# file: a log file the gateway writes itself, checked for staleness and never trusted for a pass
LOG_SOURCES = ("stdout", "journal", "file")
DEFAULT_LOG_SOURCE = {"local": "stdout", "systemd": "journal"}


@dataclass(frozen=True)
class UpdaterSpec:
    """The target's own updater, as a user runs it on a global npm install: its arguments
    after the package's binary (`{version}`: the version to go to) and its environment
    (`{scratch}`: a folder of the harness's own for it, never the deployment's)."""

    command: list[str]
    env: dict[str, str]
    timeout_s: float = 900.0

    def argv(self, version: str) -> list[str]:
        return [arg.format(version=version) for arg in self.command]

    def environment(self, scratch: Path) -> dict[str, str]:
        return {key: value.format(scratch=scratch) for key, value in self.env.items()}


@dataclass(frozen=True)
class PackageSpec:
    name: str  # npm package name
    bin: str  # executable under node_modules/.bin
    node_major: str  # Node.js major line the package needs, bootstrapped from the registry
    install_env: dict[str, str]
    # regexes with a group `path`: how the target's own updater names files it finds missing
    verifier_patterns: tuple[str, ...] = ()
    updater: UpdaterSpec | None = None  # None: the profile declares no updater of its own


@dataclass(frozen=True)
class GatewaySpec:
    start: list[str]  # argv template; {bin} {port} {state_dir} {home} {deployment}
    env: dict[str, str]
    port: int  # 0: a free loopback port is chosen when the deployment is provisioned
    token_env: str  # environment variable through which the gateway gets its API token
    ready_timeout_s: float
    stop_timeout_s: float
    unit: str = ""  # the systemd user unit the systemd driver writes ("<bin>-gateway.service")
    version_env: str = ""  # env var in that unit naming the active version ("": none)


STATE_KINDS = ("config", "credentials", "sessions", "state")  # what a full backup holds


@dataclass(frozen=True)
class BackupCommands:
    """The target's own backup command (argv after its binary); `{dest}` is an empty folder
    the archive must be written into."""

    full: list[str] | None = None
    config_only: list[str] | None = None
    timeout_s: float = 600.0


@dataclass(frozen=True)
class StateSpec:
    config: str  # config file, relative to the state dir
    config_template: Path | None  # rendered into the state dir of an embedded deployment
    restore: list[str]  # globs (relative to the state dir) rollback restores from the backup
    # globs by kind (config, credentials, sessions, state): what a full backup must hold
    paths: dict[str, list[str]] = field(default_factory=dict)
    backup: BackupCommands = field(default_factory=BackupCommands)


@dataclass(frozen=True)
class ApiSpec:
    live: str
    ready: str
    chat: str
    headers: dict[str, str]
    model_prefix: str  # how an agent is addressed in the `model` field
    health_agent: str  # the agent for the one real reply of the health phase


@dataclass(frozen=True)
class SystemdSpec:
    user: str  # the account whose user manager runs the gateway's unit
    restart_sec: float  # RestartSec= of the unit the driver writes


@dataclass(frozen=True)
class AlertSpec:
    """Who hears about a rollback or a failed run: a command (the record as JSON on stdin)
    and/or a webhook (the record POSTed as JSON)."""
    command: tuple[str, ...] = ()
    webhook: str = ""


@dataclass(frozen=True)
class ConfigLint:
    """A setting of the gateway's own config that preflight reads and reports."""
    key: str  # dotted path in the config file, e.g. "update.auto.enabled"
    expect: Any
    required: bool  # True: a different value aborts the run; False: reported as advice
    why: str


@dataclass(frozen=True)
class TargetProfile:
    path: Path
    sha256: str
    name: str
    kind: str  # names the log signature catalogue, e.g. "openclaw"
    driver: str
    provision: str
    package: PackageSpec
    known_good: str
    candidate: str
    gateway: GatewaySpec
    state: StateSpec
    api: ApiSpec
    log_source: str
    # deep-merged into the config when the candidate is installed (an upgrade's config change)
    candidate_config: dict[str, Any] = field(default_factory=dict)
    host: str = "local://"  # where the gateway's commands run (harness.target.runner)
    systemd: SystemdSpec | None = None
    log_file: str = ""  # a glob on the target: the gateway's own file log, checked for staleness
    alert: AlertSpec = field(default_factory=AlertSpec)
    config_lint: tuple[ConfigLint, ...] = ()

    def agent_model(self, agent: str) -> str:
        return f"{self.api.model_prefix}{agent}"


def check_host(host: str, where: str, key: str) -> str:
    if host == "local://" or (host.startswith("docker://") and len(host) > len("docker://")):
        return host
    raise InputError(where, key, f"expected local:// or docker://CONTAINER, got {host!r}")


def with_host(profile: TargetProfile, host: str) -> TargetProfile:
    """The profile with its commands run elsewhere (--target-host)."""
    return replace(profile, host=check_host(host, "--target-host", ""))


def _patterns(table: Table, name: str) -> list[str]:
    patterns = table.str_list(name, [], non_empty=False)
    for i, pattern in enumerate(patterns):
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise table.fail(f"{name}[{i}]", f"not a valid regular expression: {exc}") from None
        if "path" not in compiled.groupindex:
            raise table.fail(f"{name}[{i}]", "needs a named group (?P<path>...) for the file")
    return patterns


def _updater(table: Table) -> UpdaterSpec | None:
    if not table.data:
        return None
    table.reject_unknown({"command", "env", "timeout_s"})
    command = table.str_list("command")
    env = table.str_map("env")
    for key, values, allowed in (("command", dict(enumerate(command)), {"version": "V"}),
                                 ("env", env, {"scratch": "/s"})):
        for name, value in values.items():
            try:
                value.format(**allowed)
            except (KeyError, IndexError, ValueError) as exc:
                where = f"{key}[{name}]" if key == "command" else f"{key}.{name}"
                raise table.fail(where, f"unknown or malformed placeholder {exc} in {value!r} "
                                 f"(known: {', '.join('{' + k + '}' for k in allowed)})"
                                 ) from None
    if not any("{version}" in arg for arg in command):
        raise table.fail("command", "needs {version}: the version the updater goes to")
    return UpdaterSpec(command=command, env=env,
                       timeout_s=table.number("timeout_s", 900, minimum=0, exclusive=True))


def load_target(path: Path) -> TargetProfile:
    root, digest = load_toml(path)
    root.reject_unknown({"target", "package", "versions", "gateway", "state", "api", "logs",
                         "candidate_config", "systemd", "alert", "preflight"})

    target = root.table("target")
    target.reject_unknown({"name", "kind", "driver", "provision", "host"})

    pkg = root.table("package")
    pkg.reject_unknown({"name", "bin", "node", "install_env", "verifier_patterns", "updater"})
    package = PackageSpec(
        name=pkg.str("name"), bin=pkg.str("bin"), node_major=pkg.str("node"),
        install_env=pkg.str_map("install_env"),
        verifier_patterns=tuple(_patterns(pkg, "verifier_patterns")),
        updater=_updater(pkg.table("updater", required=False)),
    )
    if not package.node_major.isdigit():
        raise pkg.fail("node", "expected a Node.js major version such as \"22\", "
                       f"got {package.node_major!r}")

    versions = root.table("versions")
    versions.reject_unknown({"known_good", "candidate"})

    gw = root.table("gateway")
    gw.reject_unknown({"start", "env", "port", "token_env", "ready_timeout_s", "stop_timeout_s",
                       "unit", "version_env"})
    gateway = GatewaySpec(
        start=gw.str_list("start"), env=gw.str_map("env"), port=gw.int("port", 0),
        token_env=gw.str("token_env"),
        ready_timeout_s=gw.number("ready_timeout_s", 60, minimum=0, exclusive=True),
        stop_timeout_s=gw.number("stop_timeout_s", 20, minimum=0, exclusive=True),
        unit=gw.str("unit", f"{package.bin}-gateway.service"),
        version_env=gw.opt_str("version_env") or "",
    )
    if not gateway.unit.endswith(".service") or "/" in gateway.unit:
        raise gw.fail("unit", f"expected a service unit name, got {gateway.unit!r}")
    if gateway.port > 65535:
        raise gw.fail("port", f"expected a TCP port (0 for a free one), got {gateway.port}")

    st = root.table("state")
    st.reject_unknown({"config", "config_template", "restore", "paths", "backup"})
    template = st.opt_str("config_template")
    template_path = (path.parent / template) if template else None
    if template_path is not None and not template_path.is_file():
        raise st.fail("config_template", f"file not found: {template_path}")
    config_file = st.str("config")
    paths_table = st.table("paths", required=False)
    paths_table.reject_unknown(set(STATE_KINDS))
    # without declared paths a backup can only be shown to hold the config file
    paths = {kind: paths_table.str_list(kind) for kind in STATE_KINDS
             if kind in paths_table.data} if paths_table.data else {"config": [config_file]}
    bk = st.table("backup", required=False)
    bk.reject_unknown({"full", "config_only", "timeout_s"})
    commands = BackupCommands(
        full=bk.str_list("full") if "full" in bk.data else None,
        config_only=bk.str_list("config_only") if "config_only" in bk.data else None,
        timeout_s=bk.number("timeout_s", 600, minimum=0, exclusive=True),
    )
    for name in ("full", "config_only"):
        argv = getattr(commands, name)
        if argv is not None and not any("{dest}" in arg for arg in argv):
            raise bk.fail(name, "needs {dest}: the folder the archive is written into")
    state = StateSpec(
        config=config_file, config_template=template_path,
        restore=st.str_list("restore"), paths=paths, backup=commands,
    )

    api_table = root.table("api")
    api_table.reject_unknown({"live", "ready", "chat", "headers", "model_prefix", "health_agent"})
    api = ApiSpec(
        live=api_table.str("live"), ready=api_table.str("ready"), chat=api_table.str("chat"),
        headers=api_table.str_map("headers"), model_prefix=api_table.str("model_prefix", ""),
        health_agent=api_table.str("health_agent"),
    )

    logs = root.table("logs")
    logs.reject_unknown({"source", "file"})
    driver = target.str("driver", choices=DRIVERS)
    host = check_host(target.str("host", "local://"), str(path), target.key("host"))
    systemd = None
    sd = root.table("systemd", required=False)
    sd.reject_unknown({"user", "restart_sec"})
    if driver == "systemd":
        systemd = SystemdSpec(user=sd.str("user"),
                              restart_sec=sd.number("restart_sec", 5, minimum=0, exclusive=True))
    alert_table = root.table("alert", required=False)
    alert_table.reject_unknown({"command", "webhook"})
    webhook = alert_table.str("webhook", "") if "webhook" in alert_table.data else ""
    if webhook and not webhook.startswith(("http://", "https://")):
        raise alert_table.fail("webhook", f"expected an http(s) URL, got {webhook!r}")
    alert = AlertSpec(command=tuple(alert_table.str_list("command", []) if "command" in
                                    alert_table.data else ()), webhook=webhook)
    lints = []
    pre = root.table("preflight", required=False)
    pre.reject_unknown({"config"})
    for row in pre.tables("config"):
        row.reject_unknown({"key", "expect", "required", "why"})
        if "expect" not in row.data:
            raise row.fail("expect", "missing")
        lints.append(ConfigLint(key=row.str("key"), expect=row.data["expect"],
                                required=row.bool("required", True), why=row.str("why", "")))

    profile = TargetProfile(
        path=path, sha256=digest,
        name=target.str("name"), kind=target.str("kind"),
        driver=driver,
        provision=target.str("provision", choices=PROVISION),
        package=package,
        known_good=versions.str("known_good"), candidate=versions.str("candidate"),
        gateway=gateway, state=state, api=api,
        log_source=logs.str("source", DEFAULT_LOG_SOURCE[driver], choices=LOG_SOURCES),
        candidate_config=root.table("candidate_config", required=False).data,
        host=host, systemd=systemd, log_file=logs.str("file", "") if "file" in logs.data else "",
        alert=alert, config_lint=tuple(lints),
    )
    if profile.log_source == "journal" and driver != "systemd":
        raise logs.fail("source", "the journal is the log of a systemd target only")
    if profile.log_source == "stdout" and driver != "local":
        raise logs.fail("source", "under systemd the console is the journal: use \"journal\"")
    if profile.log_source == "file" and not profile.log_file:
        raise logs.fail("file", "a file log source needs the file (a glob) it reads")
    if profile.provision == "embedded" and profile.state.config_template is None:
        raise st.fail("config_template", "an embedded deployment needs a config template")
    return profile
