"""Typed reading of TOML files, so every error names the file and the key.

Files are parsed once at the edge; the rest of the harness only sees the typed objects built
from a `Table`. A `Table` remembers where it came from, so a bad value deep in a file reports
`policy.toml: triggers[1].within_s: expected seconds (a number, or 90s, 10m, 1h30m), got "5
fortnights"`.

Numbers are read here and only here, for files and options alike: every one must be finite
(TOML allows `nan` and `inf`) and inside its range, and a duration may carry its unit.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.common.errors import InputError
from harness.common.patterns import Pattern, PatternError, compile_pattern

_MISSING = object()
# A bound for any number a file gives: nothing the harness counts or waits for comes near it,
# and 1e308 stays out of arithmetic that would overflow to inf.
MAX_NUMBER = 1e9
MAX_SECONDS = 7 * 86400.0  # the longest window, wait or timeout a run may declare: a week
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")
_UNITS = "seconds (a number, or 90s, 10m, 1h30m)"


def _bounds(value: float, minimum: float, exclusive: bool, maximum: float) -> str | None:
    """What is wrong with a finite number against its range, or None."""
    if value < minimum or (exclusive and value == minimum):
        return f"{'greater than' if exclusive else 'at least'} {minimum:g}"
    if value > maximum:
        return f"at most {maximum:g}"
    return None


def to_seconds(value: Any, minimum: float = 0.0, exclusive: bool = False,
               maximum: float = MAX_SECONDS) -> float:
    """A duration as seconds: a number, or a string with units (`90s`, `10m`, `1h30m`).
    Raises ValueError with the problem (what was expected, and what was given)."""
    seconds: float | None = None
    if isinstance(value, str):
        text = value.strip()
        found = _DURATION.fullmatch(text) if text and text[-1] in "hms" else None
        if found is not None and any(found.groups()):
            h, m, s = (float(g) if g else 0.0 for g in found.groups())
            seconds = h * 3600 + m * 60 + s
        else:
            try:
                seconds = float(text)
            except ValueError:
                seconds = None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    if seconds is None or not math.isfinite(seconds):
        raise ValueError(f"expected {_UNITS}, got {value!r}")
    problem = _bounds(seconds, minimum, exclusive, maximum)
    if problem:
        raise ValueError(f"expected {problem} seconds, got {value!r}")
    return seconds


def option_seconds(option: str, value: str | float | None, minimum: float = 0.0,
                   exclusive: bool = False) -> float | None:
    """A command-line duration (None: not given), or an InputError naming the option."""
    if value is None:
        return None
    try:
        return to_seconds(value, minimum, exclusive)
    except ValueError as exc:
        raise InputError(option, "", str(exc)) from None


def load_toml(path: Path) -> tuple[Table, str]:
    """Parse a TOML file; return its root table and the SHA-256 of its bytes."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(str(path), "", "file not found") from None
    except OSError as exc:
        raise InputError(str(path), "", f"cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))  # a BOM (some editors write one) is fine
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(str(path), "", f"not valid TOML: {exc}") from None
    return Table(data, str(path), ""), hashlib.sha256(raw).hexdigest()


@dataclass
class Table:
    data: dict[str, Any]
    source: str
    prefix: str

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, problem: str) -> InputError:
        return InputError(self.source, self.key(name), problem)

    def reject_unknown(self, allowed: set[str]) -> None:
        for name in self.data:
            if name not in allowed:
                expected = ", ".join(sorted(allowed))
                raise self.fail(name, f"unknown key (expected one of: {expected})")

    def _get(self, name: str, default: Any) -> Any:
        value = self.data.get(name, default)
        if value is _MISSING:
            raise self.fail(name, "missing")
        return value

    def str(self, name: str, default: Any = _MISSING, choices: tuple[str, ...] = ()) -> str:
        value = self._get(name, default)
        if not isinstance(value, str) or not value:
            raise self.fail(name, f"expected a non-empty string, got {value!r}")
        if choices and value not in choices:
            raise self.fail(name, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def opt_str(self, name: str) -> str | None:
        return None if name not in self.data else self.str(name)

    def number(self, name: str, default: Any = _MISSING, minimum: float = 0.0,
               exclusive: bool = False, maximum: float = MAX_NUMBER) -> float:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            raise self.fail(name, f"expected a finite number, got {value!r}")
        problem = _bounds(value, minimum, exclusive, maximum)
        if problem:
            raise self.fail(name, f"expected a number {problem}, got {value!r}")
        return float(value)

    def seconds(self, name: str, default: Any = _MISSING, minimum: float = 0.0,
                exclusive: bool = False, maximum: float = MAX_SECONDS) -> float:
        """A duration: a number of seconds, or a string with units (`90s`, `10m`, `1h30m`)."""
        value = self._get(name, default)
        try:
            return to_seconds(value, minimum, exclusive, maximum)
        except ValueError as exc:
            raise self.fail(name, str(exc)) from None

    def int(self, name: str, default: Any = _MISSING, minimum: int = 0,
            maximum: int = int(MAX_NUMBER)) -> int:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, f"expected an integer, got {value!r}")
        if value < minimum:
            raise self.fail(name, f"expected an integer of at least {minimum}, got {value!r}")
        if value > maximum:
            raise self.fail(name, f"expected an integer of at most {maximum}, got {value!r}")
        return value

    def bool(self, name: str, default: Any = _MISSING) -> bool:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, f"expected true or false, got {value!r}")
        return value

    def pattern(self, name: str, default: Any = _MISSING) -> Pattern:
        """A user's pattern, compiled with RE2 (linear time: no log line can hang a match)."""
        text = self.str(name, default)
        try:
            return compile_pattern(text)
        except PatternError as exc:
            raise self.fail(name, str(exc)) from None

    def str_list(self, name: str, default: Any = _MISSING, non_empty: bool = True) -> list[str]:
        value = self._get(name, default)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(name, f"expected a list of strings, got {value!r}")
        if non_empty and not value:
            raise self.fail(name, "expected at least one entry")
        return list(value)

    def str_map(self, name: str) -> dict[str, str]:
        value = self.data.get(name, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self.fail(name, f"expected a table of strings, got {value!r}")
        return dict(value)

    def table(self, name: str, required: bool = True) -> Table:
        value = self.data.get(name, _MISSING if required else {})
        if value is _MISSING:
            raise self.fail(name, "missing table")
        if not isinstance(value, dict):
            raise self.fail(name, f"expected a table, got {value!r}")
        return Table(value, self.source, self.key(name))

    def tables(self, name: str) -> list[Table]:
        value = self.data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(name, "expected an array of tables ([[...]])")
        return [Table(v, self.source, f"{self.key(name)}[{i}]") for i, v in enumerate(value)]
