"""Secrets never reach a report: one redactor per run, applied where report files are written.

The run's secrets are what its gateway was given: the gateway token, every provider `apiKey`
in the rendered gateway config, the keys of any auth profile in the deployment's state dir
(`credentials/`, `agents/*/agent/auth-profiles.json`), and the value of every environment
variable named like a token, key, secret or password that the gateway process was started
with. Each is replaced by `[REDACTED:<what>]` (its JSON- and URL-escaped forms too), so a
reader still sees that a secret was there and which one.

`scan(folder, redactor)` reads every file under a run folder, text or not, and lists where
any of the run's secrets still occur: the check the tests run on a whole report.
"""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.common.errors import HarnessError

MIN_SECRET_LEN = 8  # shorter values ("1", "token") are not secrets and would shred the text
SECRET_NAME = re.compile(r"token|secret|passw|api_?key|apikey|access_?key|private_?key|"
                         r"credential|(^|_)key$|^key", re.IGNORECASE)
# keys of an auth profile that hold the credential itself (OpenClaw: key, access, refresh, token)
PROFILE_KEYS = re.compile(r"^(key|access|refresh|token|secret|password|api_?key|"
                          r"(access|refresh|id)_?token|client_?secret)$", re.IGNORECASE)
_LABEL = re.compile(r"[^\w:.@-]+")
TEXT_SUFFIXES = {".json", ".txt", ".log", ".md", ".xml", ".properties", ".svg", ".html",
                 ".csv", ".jsonl", ".js", ".yaml", ".yml", ".toml", ""}


def placeholder(label: str) -> str:
    return f"[REDACTED:{_LABEL.sub('-', label)}]"


@dataclass(frozen=True)
class Leak:
    path: Path
    label: str
    count: int

    def __str__(self) -> str:
        return f"{self.path}: {self.count} occurrence(s) of the {self.label}"


class Redactor:
    """The secrets of one run, and the text with them replaced."""

    def __init__(self) -> None:
        self._labels: dict[str, str] = {}  # secret value -> label
        self._sources: list[Callable[[], Iterable[tuple[str, str]]]] = []
        self._pattern: re.Pattern[str] | None = None
        self._variants: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- what is secret ---------------------------------------------------------------------
    def add(self, value: Any, label: str) -> bool:
        """Know `value` as a secret (the first label given for a value stays)."""
        if not isinstance(value, str) or len(value.strip()) < MIN_SECRET_LEN:
            return False
        with self._lock:
            if value in self._labels:
                return False
            self._labels[value] = label
            self._pattern = None
        return True

    def add_source(self, source: Callable[[], Iterable[tuple[str, str]]]) -> None:
        """A place secrets come from (a deployment's state dir); read now and on `refresh()`."""
        self._sources.append(source)
        for value, label in source():
            self.add(value, label)

    def refresh(self) -> None:
        """Read every source again: a gateway may write credentials while it runs."""
        for source in self._sources:
            for value, label in source():
                self.add(value, label)

    @property
    def secrets(self) -> dict[str, str]:
        with self._lock:
            return dict(self._labels)

    def __bool__(self) -> bool:
        return bool(self._labels)

    # -- replacing them ---------------------------------------------------------------------
    def _compiled(self) -> tuple[re.Pattern[str] | None, dict[str, str]]:
        with self._lock:
            if self._pattern is None and self._labels:
                variants: dict[str, str] = {}
                for value, label in self._labels.items():
                    for form in _forms(value):
                        variants.setdefault(form, label)
                self._variants = variants
                ordered = sorted(variants, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
            return self._pattern, self._variants

    def redact(self, text: str) -> str:
        pattern, variants = self._compiled()
        if pattern is None or not text:
            return text
        return pattern.sub(lambda m: placeholder(variants[m.group(0)]), text)

    def redact_bytes(self, data: bytes) -> bytes:
        """Text (UTF-8) is redacted; anything else is returned as it is."""
        if not self:
            return data
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return data
        return self.redact(text).encode("utf-8")

    def redact_file(self, path: Path) -> bool:
        """Redact a text file in place (atomically); True if it changed."""
        try:
            data = path.read_bytes()
        except OSError:
            return False
        clean = self.redact_bytes(data)
        if clean == data:
            return False
        scratch = path.with_name(f".{path.name}.redacting")
        scratch.write_bytes(clean)
        os.replace(scratch, path)
        return True

    def redact_tree(self, folder: Path) -> list[Path]:
        """Redact every text file under `folder`; return the files that changed."""
        changed = []
        if not self or not folder.is_dir():
            return changed
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink() and path.suffix in TEXT_SUFFIXES:
                if self.redact_file(path):
                    changed.append(path)
        return changed


def _forms(value: str) -> set[str]:
    """The ways a secret is written into report files: as is, JSON-escaped, URL-encoded."""
    forms = {value, json.dumps(value)[1:-1], urllib.parse.quote(value, safe=""),
             urllib.parse.quote_plus(value)}
    return {f for f in forms if len(f) >= MIN_SECRET_LEN}


def scan(folder: Path, redactor: Redactor | Mapping[str, str]) -> list[Leak]:
    """Every file under `folder` (text or binary, symlinks not followed) that still holds a
    secret of the run, in any of the forms `redact` replaces."""
    secrets = redactor.secrets if isinstance(redactor, Redactor) else dict(redactor)
    needles = [(form.encode(), label) for value, label in secrets.items()
               for form in _forms(value)]
    leaks: list[Leak] = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        found: dict[str, int] = {}
        for needle, label in needles:
            count = data.count(needle)
            if count:
                found[label] = found.get(label, 0) + count
        leaks += [Leak(path, label, count) for label, count in found.items()]
    return leaks


# -- where a gateway's secrets are --------------------------------------------------------
def secrets_in_json(document: Any, label: Callable[[list[str]], str | None]
                    ) -> list[tuple[str, str]]:
    """(value, label) for every string in `document` whose path `label` names a secret."""
    found: list[tuple[str, str]] = []

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, [*path, str(key)])
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, [*path, str(i)])
        elif isinstance(node, str) and path:
            what = label(path)
            if what:
                found.append((node, what))

    walk(document, [])
    return found


def _config_label(path: list[str]) -> str | None:
    key = path[-1]
    if path[-3:] == ["gateway", "auth", "token"] or path[-3:] == ["gateway", "auth", "password"]:
        return "gateway-token"
    if key.lower() in ("apikey", "api_key"):
        provider = path[-2] if len(path) >= 2 else "provider"
        return f"api-key:{provider}"
    if SECRET_NAME.search(key):
        return "config:" + ".".join(path)
    return None


def _profile_label(path: list[str], file_name: str) -> str | None:
    if PROFILE_KEYS.match(path[-1]) or SECRET_NAME.search(path[-1]):
        profile = next((p for p in reversed(path[:-1]) if not p.isdigit()), file_name)
        return f"auth-profile:{profile}"
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def state_dir_secrets(state_dir: Path, config_name: str = "openclaw.json") -> list[tuple[str, str]]:
    """The secrets a gateway's state dir holds: its config's token and provider keys, the
    per-agent model files, and every auth profile or credential file."""
    found: list[tuple[str, str]] = []
    config = _read_json(state_dir / config_name)
    if config is not None:
        found += secrets_in_json(config, _config_label)
    for models in sorted(state_dir.glob("agents/*/agent/models.json")):
        found += secrets_in_json(_read_json(models), _config_label)
    profiles = [*sorted(state_dir.glob("agents/*/agent/auth-profiles.json")),
                *sorted(state_dir.glob("agents/*/agent/auth.json")),
                *sorted(p for p in (state_dir / "credentials").rglob("*") if p.is_file())]
    for path in profiles:
        document = _read_json(path)
        if document is not None:
            found += secrets_in_json(document,
                                     lambda keys, name=path.name: _profile_label(keys, name))
    return found


def _dotted(pattern: str) -> re.Pattern[str]:
    """`general_settings.master_key`, `**.api_key`: `*` one key, `**` any depth."""
    parts = [".*" if part == "**" else "[^.]+" if part == "*" else re.escape(part)
             for part in pattern.split(".")]
    return re.compile("^" + r"\.".join(parts).replace(r".*\.", r"(?:.*\.)?") + "$")


def kind_config_secrets(kind_name: str | None, config: Path) -> list[tuple[str, str]]:
    """The secrets a kind says its config holds (harness.targets.kinds: `config_secrets`), in
    its own format: LiteLLM proxy's YAML `master_key` and every model's `api_key`."""
    if not kind_name:
        return []
    from harness.targets.kinds import kind

    try:
        found_kind = kind(kind_name)
    except (KeyError, HarnessError):
        return []
    try:
        text = config.read_text()
    except OSError:
        return []
    if found_kind.config_format == "yaml":
        import yaml

        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError:
            return []
    else:
        try:
            document = json.loads(text)
        except ValueError:
            return []
    patterns = [_dotted(p) for p in found_kind.config_secrets]

    def label(path: list[str]) -> str | None:
        dotted = ".".join(path)
        if any(p.match(dotted) for p in patterns):
            return f"config:{path[-1]}"
        return _config_label(path)

    return secrets_in_json(document, label)


def env_secrets(env: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(value, f"env:{name}") for name, value in env.items() if SECRET_NAME.search(name)]


def gateway_secrets(gateway: Any) -> Callable[[], list[tuple[str, str]]]:
    """A source for `Redactor.add_source`: everything secret a gateway facade was given."""

    def source() -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        token = getattr(getattr(gateway, "endpoint", None), "token", None)
        if token:
            found.append((token, "gateway-token"))
        profile = getattr(gateway, "profile", None)
        config_name = getattr(getattr(profile, "state", None), "config", "openclaw.json")
        state_dir = getattr(gateway, "state_dir", None)
        if state_dir is not None:
            found += state_dir_secrets(Path(state_dir), config_name)
            found += kind_config_secrets(getattr(profile, "kind", None),
                                         Path(state_dir) / config_name)
        document = getattr(gateway, "config_document", None)  # read on an attached target
        if document is not None:
            found += secrets_in_json(document, _config_label)
        driver_env = getattr(getattr(gateway, "driver", None), "env", None) or {}
        # the gateway process inherits the harness's environment, then its own variables
        found += env_secrets({**os.environ, **driver_env})
        return found

    return source


# -- the run's redactor --------------------------------------------------------------------
_ACTIVE = Redactor()


def active() -> Redactor:
    """The redactor of the run in this process."""
    return _ACTIVE


def reset() -> Redactor:
    """A fresh redactor for a new run (a new pytest session in this process)."""
    global _ACTIVE
    _ACTIVE = Redactor()
    return _ACTIVE


def watch_gateway(gateway: Any) -> Redactor:
    """Know every secret of this gateway from now on, in every report file written."""
    _ACTIVE.add_source(gateway_secrets(gateway))
    return _ACTIVE


def redact(text: str) -> str:
    return _ACTIVE.redact(text)
