"""Target profiles: what a gateway is, how it is installed, started, probed and watched.

A profile is a TOML file (see `scenarios/targets/`). It is parsed once, at collection time,
into a `TargetProfile`; phases and drivers only read the typed fields. Nothing here knows a
particular product: OpenClaw is one profile, whose product-specific bits (start command, env,
config template, log signatures) are data in its file.

Two ways to get the deployment under test (`target.provision`):
    embedded   the run provisions a known-good deployment of its own, upgrades and soaks it
    attached   the run soaks a deployment that is already running (a staging host's own
               systemd unit, named in `[attached]`) and leaves it exactly as found: no install,
               no stop, no restart; only `pytest -m soak` runs against it
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.common.errors import InputError
from harness.common.patterns import PatternError, compile_pattern
from harness.common.schema import Table, load_toml

AUTO_NODE = "auto"  # `package.node`: each version runs on the Node.js its own engines.node names

# target.driver: the names of harness.targets.driver's EMBEDDED and ATTACHED maps
EMBEDDED_DRIVERS = ("local", "systemd")
ATTACHED_DRIVERS = ("systemd", "docker", "url")
PROVISION = ("embedded", "attached")
# tables that only mean something for a deployment the run installs and changes itself
NOT_ATTACHED = {
    "versions": "the run installs nothing: the version is read from the running deployment",
    "gateway": "the run starts nothing: the unit, URL and token are in [attached]",
    "state": "the run backs up and restores nothing: the state dir is attached.state_dir",
    "candidate_config": "the run changes no config",
    "preflight": "no preflight runs: nothing is upgraded",
}
# stdout: the local driver's console file; journal: the systemd unit's journal (its default);
# docker: `docker logs` of an attached container; file: a log file the gateway writes itself,
# checked for staleness and never trusted for a pass
LOG_SOURCES = ("stdout", "journal", "docker", "file")


# What `{...}` may name in gateway.start and gateway.env (harness.targets.gateway renders them),
# and in a backup command (harness.procedure.posture puts the archive folder in `{dest}`).
GATEWAY_PLACEHOLDERS = ("port", "state_dir", "home", "deployment", "model_lab", "token")
BACKUP_PLACEHOLDERS = ("dest",)


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
    name: str  # the package's name in its ecosystem
    bin: str  # its executable: under node_modules/.bin (npm), a virtualenv's bin/ (pypi)
    # npm: "auto" (per version, from its engines.node) or a pinned Node.js major line
    node_major: str
    install_env: dict[str, str]
    # shipped files the package's own install script deletes (a "lifecycle pending" marker):
    # missing after an install they are said as such, not counted as corruption
    install_removes: tuple[str, ...] = ()
    # regexes with a group `path`: how the target's own updater names files it finds missing
    verifier_patterns: tuple[str, ...] = ()
    updater: UpdaterSpec | None = None  # None: the profile declares no updater of its own
    ecosystem: str = "npm"  # harness.targets.packages: npm or pypi
    extras: tuple[str, ...] = ()  # pypi: the extras installed with it (`litellm[proxy]`)


@dataclass(frozen=True)
class DeniedVersion:
    """A version never to be installed, and why (a compromised release, say)."""
    version: str
    reason: str


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
    token_prefix: str = ""  # what the gateway insists its key starts with (LiteLLM: "sk-")


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
    # state kinds this gateway does not keep, and why (LiteLLM without a database keeps no
    # credentials or sessions on disk): the posture names them instead of globs that match nothing
    not_applicable: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiSpec:
    live: str
    ready: str
    chat: str
    headers: dict[str, str]
    model_prefix: str  # how an agent is addressed in the `model` field
    health_agent: str  # the agent for the one real reply of the health phase
    agents: tuple[str, ...] = ()  # the agents it serves: what scenarios may address
    # its streams end with a finish reason before [DONE] (OpenClaw's do not: [DONE] alone)
    stream_finish_reason: bool = True


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
class AttachedSpec:
    """A deployment that is already running: the run soaks it and leaves it as found.

    How it runs is `target.driver`: a systemd user `unit`, a docker `container`, or nothing
    the harness can see (`url`: only its URL, its log a file). Its token is never written into
    the profile: it comes from the harness's environment (`token_env`, a CI secret, say) or
    from a file where it runs (`token_file`: read as the service user, or in the container;
    `token_key` picks a dotted key when the file is JSON, such as OpenClaw's own config), and
    is redacted from every report like an embedded gateway's."""

    url: str  # where the harness reaches it: http://HOST:PORT, no trailing slash
    state_dir: str = ""  # the gateway's state dir where it runs (reported, never changed)
    unit: str = ""  # driver systemd: the user unit that runs the gateway
    container: str = ""  # driver docker: the container's name (or id)
    token_env: str = ""
    token_file: str = ""
    token_key: str = ""
    config: str = ""  # its config file, relative to state_dir: read for redaction only
    version_env: str = ""  # an environment variable of the unit naming its version

    @property
    def what(self) -> str:
        """How a person names it: the unit, the container, or the URL."""
        if self.unit:
            return self.unit
        return f"container {self.container}" if self.container else self.url

    @property
    def kind_word(self) -> str:
        return "unit" if self.unit else "container" if self.container else "gateway"


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
    host: str = "local://"  # where the gateway's commands run (harness.targets.runner)
    systemd: SystemdSpec | None = None
    log_file: str = ""  # a glob on the target: the gateway's own file log, checked for staleness
    alert: AlertSpec = field(default_factory=AlertSpec)
    config_lint: tuple[ConfigLint, ...] = ()
    attached: AttachedSpec | None = None  # provision = "attached": what is running already
    deny: tuple[DeniedVersion, ...] = ()  # [[versions.deny]]: refused at lock
    scenarios: Path | None = None  # target.scenarios: its own soak scenarios by default

    def denied(self, version: str) -> DeniedVersion | None:
        return next((d for d in self.deny if d.version == version), None)

    def agent_model(self, agent: str) -> str:
        return f"{self.api.model_prefix}{agent}"


_SSH_HOST = re.compile(r"^ssh://(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9._-]+(?::\d{1,5})?$")


def check_host(host: str, where: str, key: str) -> str:
    if host == "local://" or (host.startswith("docker://") and len(host) > len("docker://")) \
            or _SSH_HOST.match(host):
        return host
    raise InputError(where, key, "expected local://, docker://CONTAINER or "
                     f"ssh://[USER@]HOST[:PORT], got {host!r}")


def with_host(profile: TargetProfile, host: str) -> TargetProfile:
    """The profile with its commands run elsewhere (--target-host)."""
    return replace(profile, host=check_host(host, "--target-host", ""))


def _patterns(table: Table, name: str) -> list[str]:
    patterns = table.str_list(name, [], non_empty=False)
    for i, pattern in enumerate(patterns):
        try:
            compiled = compile_pattern(pattern)
        except PatternError as exc:
            raise table.fail(f"{name}[{i}]", str(exc)) from None
        if "path" not in compiled.groupindex:
            raise table.fail(f"{name}[{i}]", "needs a named group (?P<path>...) for the file")
    return patterns


def _placeholders(table: Table, name: str, values: dict[str, str] | list[str],
                  known: tuple[str, ...]) -> None:
    """Every `{name}` in a command or environment must be one the harness fills in."""
    rows = values.items() if isinstance(values, dict) else enumerate(values)
    for key, value in rows:
        where = f"{name}.{key}" if isinstance(values, dict) else f"{name}[{key}]"
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        except ValueError as exc:
            raise table.fail(where, f"malformed placeholder in {value!r}: {exc} (write {{{{ "
                             "and }} for braces)") from None
        for field_name in fields:
            if field_name not in known:
                raise table.fail(where, f"unknown placeholder {{{field_name}}} in {value!r} "
                                 f"(known: {', '.join('{' + k + '}' for k in known)})")


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
                       timeout_s=table.seconds("timeout_s", 900, minimum=0, exclusive=True))


def load_target(path: Path) -> TargetProfile:
    root, digest = load_toml(path)
    target = root.table("target")
    target.reject_unknown({"name", "kind", "driver", "provision", "host", "scenarios"})
    if target.str("provision", "embedded", choices=PROVISION) == "attached":
        return _load_attached(path, digest, root, target)
    root.reject_unknown({"target", "package", "versions", "gateway", "state", "api", "logs",
                         "candidate_config", "systemd", "alert", "preflight", "attached"})
    if "attached" in root.data:
        raise root.fail("attached", "only for target.provision = \"attached\" (a deployment "
                        "that is running already); this target is embedded")
    kind = _kind(target)
    package = _package(root.table("package"), kind)
    versions = root.table("versions")
    versions.reject_unknown({"known_good", "candidate", "deny"})
    logs = root.table("logs")
    logs.reject_unknown({"source", "file"})
    driver = target.str("driver", choices=tuple(EMBEDDED_DRIVERS))
    state, st = _state(path, root.table("state"))
    profile = TargetProfile(
        path=path, sha256=digest,
        name=target.str("name"), kind=kind,
        driver=driver,
        provision=target.str("provision", choices=PROVISION),
        package=package,
        known_good=versions.str("known_good"), candidate=versions.str("candidate"),
        gateway=_gateway(root.table("gateway"), package), state=state, api=_api(root, kind),
        log_source=logs.str("source", _console("embedded", driver), choices=LOG_SOURCES),
        candidate_config=root.table("candidate_config", required=False).data,
        host=check_host(target.str("host", "local://"), str(path), target.key("host")),
        systemd=_systemd(root, driver), log_file=_log_file(logs),
        alert=_alert(root), config_lint=_config_lint(root), deny=_deny(versions),
        scenarios=_scenarios(path, target),
    )
    _check_logs(profile, logs)
    if profile.state.config_template is None:
        raise st.fail("config_template", "an embedded deployment needs a config template")
    _check_agents_in_template(profile)
    return profile


def _deny(versions: Table) -> tuple[DeniedVersion, ...]:
    deny = []
    for row in versions.tables("deny"):
        row.reject_unknown({"version", "reason"})
        deny.append(DeniedVersion(row.str("version"), row.str("reason")))
    return tuple(deny)


def _gateway(gw: Table, package: PackageSpec) -> GatewaySpec:
    """How the run starts its own deployment: argv and environment templates, its token."""
    gw.reject_unknown({"start", "env", "port", "token_env", "ready_timeout_s", "stop_timeout_s",
                       "unit", "version_env", "token_prefix"})
    gateway = GatewaySpec(
        start=gw.str_list("start"), env=gw.str_map("env"), port=gw.int("port", 0, maximum=65535),
        token_env=gw.str("token_env"),
        ready_timeout_s=gw.seconds("ready_timeout_s", 60, minimum=0, exclusive=True),
        stop_timeout_s=gw.seconds("stop_timeout_s", 20, minimum=0, exclusive=True),
        unit=gw.str("unit", f"{package.bin}-gateway.service"),
        version_env=gw.opt_str("version_env") or "",
        token_prefix=gw.opt_str("token_prefix") or "",
    )
    _placeholders(gw, "start", gateway.start, GATEWAY_PLACEHOLDERS)
    _placeholders(gw, "env", gateway.env, GATEWAY_PLACEHOLDERS)
    if not gateway.unit.endswith(".service") or "/" in gateway.unit:
        raise gw.fail("unit", f"expected a service unit name, got {gateway.unit!r}")
    if gateway.port > 65535:
        raise gw.fail("port", f"expected a TCP port (0 for a free one), got {gateway.port}")
    return gateway


def _state(path: Path, st: Table) -> tuple[StateSpec, Table]:
    """The deployment's state: its config, what a rollback restores, what a full backup
    holds (by kind), what does not apply, and the target's own backup command."""
    st.reject_unknown({"config", "config_template", "restore", "paths", "backup",
                       "not_applicable"})
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
    state = StateSpec(
        config=config_file, config_template=template_path,
        restore=st.str_list("restore"), paths=paths,
        backup=_backup(st.table("backup", required=False)),
        not_applicable=_not_applicable(st, paths),
    )
    return state, st


def _not_applicable(st: Table, paths: dict[str, list[str]]) -> dict[str, str]:
    not_applicable = st.str_map("not_applicable")
    for name, why in not_applicable.items():
        if name not in STATE_KINDS or name == "config":
            raise st.fail(f"not_applicable.{name}", "expected a state kind a gateway may not "
                          f"keep ({', '.join(k for k in STATE_KINDS if k != 'config')})")
        if name in paths:
            raise st.fail(f"not_applicable.{name}", f"state.paths.{name} declares it: a kind "
                          "is kept or not applicable, not both")
        if not why.strip():
            raise st.fail(f"not_applicable.{name}", "say why it does not apply")
    return not_applicable


def _backup(bk: Table) -> BackupCommands:
    bk.reject_unknown({"full", "config_only", "timeout_s"})
    commands = BackupCommands(
        full=bk.str_list("full") if "full" in bk.data else None,
        config_only=bk.str_list("config_only") if "config_only" in bk.data else None,
        timeout_s=bk.seconds("timeout_s", 600, minimum=0, exclusive=True),
    )
    for name in ("full", "config_only"):
        argv = getattr(commands, name)
        if argv is not None and not any("{dest}" in arg for arg in argv):
            raise bk.fail(name, "needs {dest}: the folder the archive is written into")
        if argv is not None:
            _placeholders(bk, name, argv, BACKUP_PLACEHOLDERS)
    return commands


def _systemd(root: Table, driver: str) -> SystemdSpec | None:
    sd = root.table("systemd", required=False)
    sd.reject_unknown({"user", "restart_sec"})
    if driver != "systemd":
        return None
    return SystemdSpec(user=sd.str("user"),
                       restart_sec=sd.seconds("restart_sec", 5, minimum=0, exclusive=True,
                                              maximum=3600))


def _config_lint(root: Table) -> tuple[ConfigLint, ...]:
    lints = []
    pre = root.table("preflight", required=False)
    pre.reject_unknown({"config"})
    for row in pre.tables("config"):
        row.reject_unknown({"key", "expect", "required", "why"})
        if "expect" not in row.data:
            raise row.fail("expect", "missing")
        lints.append(ConfigLint(key=row.str("key"), expect=row.data["expect"],
                                required=row.bool("required", True), why=row.str("why", "")))
    return tuple(lints)


def _log_file(logs: Table) -> str:
    return logs.str("file", "") if "file" in logs.data else ""


def _console(provision: str, driver: str) -> str:
    """The log a driver's gateway writes its console to (harness.targets.driver.CONSOLE);
    a gateway known only by its URL has none, so its log is a file."""
    from harness.targets.driver import CONSOLE

    return CONSOLE.get((provision, driver), "") or "file"


def _check_agents_in_template(profile: TargetProfile) -> None:
    """Every agent `api.agents` names is one the config template defines: scenarios are
    checked against api.agents, and an agent the deployment lacks fails every request to it
    at run time, which would look like the candidate's fault."""
    from harness.targets.kinds import kind as find_kind

    where = find_kind(profile.kind).config_agents
    template = profile.state.config_template
    if not where or template is None:
        return
    import yaml

    text = string.Template(template.read_text()).safe_substitute(port="0")
    try:
        yaml_format = find_kind(profile.kind).config_format == "yaml"
        document = yaml.safe_load(text) if yaml_format else json.loads(text)
    except (ValueError, yaml.YAMLError):
        return  # a template that does not parse is said when it is rendered, with its file
    defined = set(_values_at(document, where.split(".")))
    missing = [a for a in profile.api.agents if a not in defined]
    if missing:
        raise InputError(str(profile.path), "api.agents",
                         f"{', '.join(missing)} not defined by the config template "
                         f"{template.name} ({where}: {', '.join(sorted(defined)) or 'none'})")


def _values_at(node: Any, keys: list[str]) -> list[str]:
    if not keys:
        return [node] if isinstance(node, str) else []
    head, rest = keys[0], keys[1:]
    if head == "*":
        return [v for item in (node if isinstance(node, list) else [])
                for v in _values_at(item, rest)]
    return _values_at(node.get(head), rest) if isinstance(node, dict) else []


def _kind(target: Table) -> str:
    """The kind names what is the product's own (harness.targets.kinds), its log signature
    catalogue first: an unknown kind, or one without a catalogue, would watch for nothing."""
    from harness.targets import kinds

    name = target.str("kind")
    if name not in kinds.registered():
        raise target.fail("kind", f"no gateway kind {name!r} is registered (known: "
                          f"{', '.join(kinds.known())}): its log would be watched for nothing")
    try:
        kinds.kind(name)
    except InputError as exc:
        raise target.fail("kind", f"kind {name!r} cannot be used: {exc.message}") from None
    return name


def _package(pkg: Table, kind: str) -> PackageSpec:
    """What is installed, from which ecosystem: the kind says where its product is published
    (LiteLLM proxy on PyPI; npm's `litellm` is another product)."""
    from harness.targets import kinds
    from harness.targets.packages import ECOSYSTEMS

    pkg.reject_unknown({"name", "bin", "node", "install_env", "install_removes",
                        "verifier_patterns", "updater", "ecosystem", "extras"})
    ecosystem = pkg.str("ecosystem", "npm", choices=ECOSYSTEMS)
    published = kinds.kind(kind).ecosystem
    if ecosystem != published:
        raise pkg.fail("ecosystem", f"{ecosystem!r}, but kind {kind!r} is published on "
                       f"{published!r}: the same name there may be another product")
    if ecosystem == "npm":
        if "extras" in pkg.data:
            raise pkg.fail("extras", "only for ecosystem = \"pypi\"")
        node_major = pkg.str("node", AUTO_NODE)
        if not (node_major.isdigit() or node_major == AUTO_NODE):
            raise pkg.fail("node", f"expected {AUTO_NODE!r} (each version on the Node.js its "
                           f"engines name) or a major version such as \"22\", got {node_major!r}")
    else:
        if "node" in pkg.data:
            raise pkg.fail("node", f"a {ecosystem} package runs on the Python it asks for "
                           "(Requires-Python), not Node.js")
        if "updater" in pkg.data:
            raise pkg.fail("updater", "only npm packages' own updaters are supported")
        node_major = ""
    extras = tuple(pkg.str_list("extras", [], non_empty=False))
    for i, extra in enumerate(extras):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", extra):
            raise pkg.fail(f"extras[{i}]", f"not an extra's name: {extra!r}")
    return PackageSpec(
        name=pkg.str("name"), bin=pkg.str("bin"), node_major=node_major,
        install_env=pkg.str_map("install_env"),
        install_removes=tuple(pkg.str_list("install_removes", [], non_empty=False)),
        verifier_patterns=tuple(_patterns(pkg, "verifier_patterns")),
        updater=_updater(pkg.table("updater", required=False)),
        ecosystem=ecosystem, extras=extras,
    )


def _scenarios(path: Path, target: Table) -> Path | None:
    """The target's own soak scenarios (used when the run names none): a file or folder
    relative to the profile."""
    if "scenarios" not in target.data:
        return None
    found = path.parent / target.str("scenarios")
    if not found.exists():
        raise target.fail("scenarios", f"not found: {found}")
    return found


def _api(root: Table, kind: str) -> ApiSpec:
    """The gateway's HTTP surface; its paths default to what the kind says its product
    serves (harness.targets.kinds: `[api]`)."""
    from harness.targets.kinds import kind as find_kind

    defaults = find_kind(kind).api
    table = root.table("api")
    table.reject_unknown({"live", "ready", "chat", "headers", "model_prefix", "health_agent",
                          "agents", "stream_finish_reason"})
    if "agents" not in table.data:
        raise table.fail("agents", "missing: list the agents this gateway serves (every "
                         "scenario's agents and health_agent are checked against it)")
    agents = tuple(table.str_list("agents"))
    health_agent = table.str("health_agent")
    if health_agent not in agents:
        raise table.fail("health_agent", f"no agent {health_agent!r} in api.agents "
                         f"({', '.join(agents)})")
    return ApiSpec(
        live=_or_default(table, "live", defaults), ready=_or_default(table, "ready", defaults),
        chat=_or_default(table, "chat", defaults),
        headers=table.str_map("headers"),
        model_prefix=_model_prefix(table, defaults.get("model_prefix", "")),
        health_agent=health_agent, agents=agents,
        stream_finish_reason=table.bool("stream_finish_reason", True),
    )


def _or_default(table: Table, name: str, defaults: dict[str, str]) -> str:
    return table.str(name, defaults[name]) if name in defaults else table.str(name)


def _model_prefix(table: Table, default: str = "") -> str:
    """How an agent is named in `model`: empty when the gateway serves models by their own
    names (LiteLLM proxy's model_name)."""
    value = table.data.get("model_prefix", default)
    if not isinstance(value, str) or any(c.isspace() for c in value):
        raise table.fail("model_prefix", f"expected a string without spaces, got {value!r}")
    return value


def _alert(root: Table) -> AlertSpec:
    table = root.table("alert", required=False)
    table.reject_unknown({"command", "webhook"})
    webhook = table.str("webhook", "") if "webhook" in table.data else ""
    if webhook and not webhook.startswith(("http://", "https://")):
        raise table.fail("webhook", f"expected an http(s) URL, got {webhook!r}")
    return AlertSpec(command=tuple(table.str_list("command", []) if "command" in table.data
                                   else ()), webhook=webhook)


def _check_logs(profile: TargetProfile, logs: Table) -> None:
    """A log source is the driver's own console (stdout, the journal, `docker logs`) or a
    file the gateway writes itself."""
    console = _console(profile.provision, profile.driver)
    if profile.log_source not in (console, "file"):
        raise logs.fail("source", f"{profile.log_source!r} is not where a {profile.driver} "
                        f"{'deployment' if profile.provision == 'embedded' else 'attachment'} "
                        f"logs: use {console!r} (its console) or \"file\"")
    if profile.log_source == "file" and not profile.log_file:
        raise logs.fail("file", "a file log source needs the file (a glob) it reads"
                        + ("; a gateway known only by its URL has no console the harness "
                           "could read instead" if console == "file" else ""))


_URL = re.compile(r"^https?://(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>\d{1,5}))?$")


def _load_attached(path: Path, digest: str, root: Table, target: Table) -> TargetProfile:
    """A deployment that runs already: how it runs, where it answers, where its token is."""
    for name, why in NOT_ATTACHED.items():
        if name in root.data:
            raise root.fail(name, f"not used with target.provision = \"attached\": {why}")
    root.reject_unknown({"target", "package", "systemd", "attached", "api", "logs", "alert"})
    driver = target.str("driver")
    if driver not in ATTACHED_DRIVERS:
        raise target.fail("driver", "an attached deployment is a systemd unit, a docker "
                          "container or a URL the run observes: use \"systemd\", \"docker\" or "
                          "\"url\" (a local process is only ever embedded)")
    pkg = root.table("package")
    pkg.reject_unknown({"name", "bin"})
    package = PackageSpec(name=pkg.str("name"), bin=pkg.str("bin", pkg.str("name")),
                          node_major="", install_env={})
    systemd = _attached_systemd(root, driver)
    attached = _attached_spec(root.table("attached"), driver, package)
    logs = root.table("logs", required=False)
    logs.reject_unknown({"source", "file"})
    kind = _kind(target)
    profile = TargetProfile(
        path=path, sha256=digest, name=target.str("name"), kind=kind,
        driver=driver, provision="attached", package=package, known_good="", candidate="",
        gateway=GatewaySpec(start=[], env={}, port=_port(attached.url), token_env="",
                            ready_timeout_s=60.0, stop_timeout_s=20.0,
                            unit=attached.unit or attached.what,
                            version_env=attached.version_env),
        state=StateSpec(config=attached.config, config_template=None, restore=[]),
        api=_api(root, kind),
        log_source=logs.str("source", _console("attached", driver), choices=LOG_SOURCES),
        host=check_host(target.str("host", "local://"), str(path), target.key("host")),
        systemd=systemd, log_file=_log_file(logs), alert=_alert(root), attached=attached,
    )
    _check_logs(profile, logs)
    return profile


def _attached_systemd(root: Table, driver: str) -> SystemdSpec | None:
    """The unit's user, for a unit; nothing else attached has one."""
    if driver != "systemd":
        if "systemd" in root.data:
            raise root.fail("systemd", f"only for target.driver = \"systemd\" (this is "
                            f"{driver!r})")
        return None
    sd = root.table("systemd")
    sd.reject_unknown({"user"})
    return SystemdSpec(user=sd.str("user"), restart_sec=0.0)


_CONTAINER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_BY_DRIVER = {"unit": "systemd", "container": "docker", "version_env": "systemd"}


def _attached_spec(at: Table, driver: str, package: PackageSpec) -> AttachedSpec:
    at.reject_unknown({"unit", "url", "state_dir", "token_env", "token_file", "token_key",
                       "config", "version_env", "container"})
    for key, only in _BY_DRIVER.items():
        if key in at.data and driver != only:
            raise at.fail(key, f"only for target.driver = \"{only}\" (this is {driver!r})")
    unit = at.str("unit", f"{package.bin}-gateway.service") if driver == "systemd" else ""
    if unit and not re.fullmatch(r"[\w@.:-]+\.service", unit):
        raise at.fail("unit", f"expected a service unit name, got {unit!r}")
    container = at.str("container") if driver == "docker" else ""
    if container and not _CONTAINER.match(container):
        raise at.fail("container", f"expected a container's name or id, got {container!r}")
    url = at.str("url").rstrip("/")
    found = _URL.match(url)
    if found is None or (found["port"] and not 0 < int(found["port"]) < 65536):
        raise at.fail("url", "expected http(s)://HOST[:PORT] (the gateway's base URL), "
                      f"got {url!r}")
    state_dir = at.str("state_dir") if driver == "systemd" or "state_dir" in at.data else ""
    if state_dir and not state_dir.startswith("/"):
        raise at.fail("state_dir", f"expected an absolute path on the target, got {state_dir!r}")
    token_env, token_file, token_key = _attached_token(at)
    config = at.str("config") if "config" in at.data else ""
    if config and (config.startswith("/") or ".." in Path(config).parts):
        raise at.fail("config", f"expected a path inside state_dir, got {config!r}")
    if config and not state_dir:
        raise at.fail("config", "needs state_dir: the folder it is in")
    return AttachedSpec(
        unit=unit, container=container, url=url, state_dir=state_dir, token_env=token_env,
        token_file=token_file, token_key=token_key, config=config,
        version_env=at.str("version_env") if "version_env" in at.data else "",
    )


def _attached_token(at: Table) -> tuple[str, str, str]:
    """Exactly one source of the token: the harness's environment, or a file where it runs."""
    sources = [k for k in ("token_env", "token_file") if k in at.data]
    if len(sources) != 1:
        raise at.fail("token_env" if not sources else sources[1], "expected exactly one of "
                      "token_env (a variable of the harness's environment) or token_file (a file "
                      "on the target)")
    token_file = at.str("token_file") if "token_file" in at.data else ""
    if token_file and not token_file.startswith("/"):
        raise at.fail("token_file", f"expected an absolute path on the target, got {token_file!r}")
    if "token_key" in at.data and not token_file:
        raise at.fail("token_key", "only with token_file: the dotted key of the token in that "
                      "JSON file")
    token_env = at.str("token_env") if "token_env" in at.data else ""
    if token_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token_env):
        raise at.fail("token_env", f"expected an environment variable name, got {token_env!r}")
    return token_env, token_file, at.str("token_key") if "token_key" in at.data else ""


def _port(url: str) -> int:
    found = _URL.match(url)
    assert found is not None
    return int(found["port"]) if found["port"] else (443 if url.startswith("https") else 80)
