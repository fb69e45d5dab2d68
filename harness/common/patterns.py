"""Patterns a user writes (log signatures, how an updater names files), compiled with RE2.

Python's `re` backtracks: `^(\\w+\\s?)+$` takes exponential time on an ordinary 56-character log
line, holding the interpreter lock, so neither SIGINT nor pytest-timeout can stop it. RE2 runs
in time linear in the line, whatever the pattern; a pattern RE2 cannot compile (backreferences,
look-around, a program over its memory budget) is refused when the file is loaded, so a
pattern that could hang never reaches the log watcher. The built-in catalogues go through the
same door.
"""

from __future__ import annotations

import re2

Pattern = re2._Regexp  # what `compile_pattern` returns: search, finditer, groupindex, pattern

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the refusal is our one line, not RE2's own log on stderr


class PatternError(ValueError):
    """A pattern RE2 cannot compile; the message says why, in RE2's words."""


def compile_pattern(text: str) -> Pattern:
    """Compile `text` with RE2 (linear-time matching), or raise `PatternError`."""
    try:
        return re2.compile(text, options=_OPTIONS)
    except re2.error as exc:
        why = exc.args[0] if exc.args else exc
        if isinstance(why, bytes):
            why = why.decode("utf-8", errors="replace")
        raise PatternError(f"not a pattern the linear-time engine (RE2) accepts: {why} "
                           "(backreferences and look-around are not supported)") from None
    except (TypeError, ValueError) as exc:  # e.g. a NUL byte
        raise PatternError(f"not a valid pattern: {exc}") from None
