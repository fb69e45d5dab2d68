"""Gateway kinds: what is one product's own, as a folder of data.

A kind is a package whose folder holds
    kind.toml         [kind]: name, ecosystem (npm, pypi), config_format (json, yaml), where
                      its secrets live (config keys, state files); [log]: how its log lines are
                      read (where a record starts, colour codes, the clock its lines carry);
                      [version]: where a running gateway says its version (endpoint, key)
    signatures.toml   [[signatures]]: its log signature catalogue (name, class, pattern)
Kinds are found through the entry-point group `gateway_release_harness.kinds` (a name and the
kind's package); OpenClaw and LiteLLM proxy are the built-in ones, and a kind outside this
repository is a pip-installable package registering the same way.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

from harness.common.errors import InputError
from harness.common.patterns import PatternError, compile_pattern
from harness.common.schema import load_toml
from harness.signals.signatures import CLASSES, Signature

GROUP = "gateway_release_harness.kinds"
CONFIG_FORMATS = ("json", "yaml")
CLOCKS = ("iso", "hh:mm:ss")


@dataclass(frozen=True)
class LogFormat:
    record_start: re.Pattern[str] | None = None  # None: every line is a record
    strip_ansi: bool = False
    clock: str = "iso"


@dataclass(frozen=True)
class Kind:
    name: str
    folder: Path
    ecosystem: str
    config_format: str
    config_secrets: tuple[str, ...]  # dotted keys; `*` one level, `**` any depth
    secret_files: tuple[str, ...]  # globs under the state dir
    signatures: tuple[Signature, ...]
    log: LogFormat
    # files the product itself moves in its own install when it starts: glob (relative to its
    # site-packages) -> where it puts them ({parent}, {stem}, {name} of the file)
    moved_at_start: tuple[tuple[str, str], ...] = ()
    # its HTTP surface (live, ready, chat, model_prefix): a profile's [api] defaults
    api: dict[str, str] = field(default_factory=dict)
    # where its config names the agents (models) it serves: dotted keys, `*` every list item
    config_agents: str = ""
    # where a running gateway says its version (an attached one's, when nothing else can be
    # read): a GET path and the dotted key of the version in its JSON ("": it says none)
    version_endpoint: str = ""
    version_key: str = ""


def _signatures(path: Path) -> tuple[Signature, ...]:
    root, _ = load_toml(path)
    root.reject_unknown({"signatures"})
    found = []
    rows = root.tables("signatures")
    if not rows:
        raise root.fail("signatures", "a catalogue needs at least one [[signatures]]")
    for row in rows:
        row.reject_unknown({"name", "class", "pattern", "why"})
        pattern = row.str("pattern")
        try:
            compiled = compile_pattern(pattern)
        except PatternError as exc:
            raise row.fail("pattern", str(exc)) from None
        found.append(Signature(row.str("name"), row.str("class", choices=CLASSES), compiled))
    return tuple(found)


def load_kind(folder: Path) -> Kind:
    """A kind's folder, read and checked (file and key in every error)."""
    catalogue = folder / "signatures.toml"
    if not (folder / "kind.toml").is_file():
        raise InputError(str(folder / "kind.toml"), "", "a kind's folder needs its kind.toml")
    root, _ = load_toml(folder / "kind.toml")
    root.reject_unknown({"kind", "log", "install", "api", "version"})
    version = root.table("version", required=False)
    version.reject_unknown({"endpoint", "key"})
    if version.data and not version.str("endpoint").startswith("/"):
        raise version.fail("endpoint", "expected a path such as \"/health\", got "
                           f"{version.str('endpoint')!r}")
    api = root.table("api", required=False)
    api.reject_unknown({"live", "ready", "chat", "model_prefix"})
    api_defaults = dict(api.data)
    for name, value in api_defaults.items():
        if not isinstance(value, str) or (name != "model_prefix" and not value.startswith("/")):
            raise api.fail(name, f"expected a path such as \"/health\", got {value!r}")
    install = root.table("install", required=False)
    install.reject_unknown({"moved_at_start"})
    moved = install.str_map("moved_at_start")
    for glob, where in moved.items():
        try:
            where.format(parent="p", stem="s", name="n")
        except (KeyError, IndexError, ValueError) as exc:
            raise install.fail(f"moved_at_start.{glob}", f"unknown placeholder {exc} in "
                               f"{where!r} (known: {{parent}}, {{stem}}, {{name}})") from None
    table = root.table("kind")
    table.reject_unknown({"name", "ecosystem", "config_format", "config_secrets",
                          "secret_files", "config_agents"})
    log = root.table("log", required=False)
    log.reject_unknown({"record_start", "strip_ansi", "clock"})
    start = None
    if "record_start" in log.data:
        try:
            start = re.compile(log.str("record_start"))
        except re.error as exc:
            raise log.fail("record_start", f"not a regular expression: {exc}") from None
    if not catalogue.is_file():
        raise InputError(str(catalogue), "", f"kind {table.str('name')!r} has no log "
                         "signature catalogue: its log would be watched for nothing")
    return Kind(
        name=table.str("name"), folder=folder,
        ecosystem=table.str("ecosystem", "npm", choices=("npm", "pypi")),
        config_format=table.str("config_format", "json", choices=CONFIG_FORMATS),
        config_secrets=tuple(table.str_list("config_secrets", [], non_empty=False)),
        secret_files=tuple(table.str_list("secret_files", [], non_empty=False)),
        signatures=_signatures(catalogue),
        log=LogFormat(record_start=start, strip_ansi=log.bool("strip_ansi", False),
                      clock=log.str("clock", "iso", choices=CLOCKS)),
        moved_at_start=tuple(moved.items()), api=api_defaults,
        config_agents=table.opt_str("config_agents") or "",
        version_endpoint=version.str("endpoint") if version.data else "",
        version_key=version.str("key") if version.data else "",
    )


@cache
def registered() -> dict[str, str]:
    """name -> the kind's package, from every installed distribution's entry points."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


@cache
def kind(name: str) -> Kind:
    """The kind registered as `name` (KeyError: none is)."""
    module = importlib.import_module(registered()[name])
    folder = Path(module.__file__ or "").parent
    found = load_kind(folder)
    if found.name != name:
        raise InputError(str(folder / "kind.toml"), "kind.name", f"{found.name!r}, but it is "
                         f"registered as {name!r}")
    return found


def known() -> list[str]:
    return sorted(registered())
