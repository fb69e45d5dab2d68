"""Just enough of npm's semver ranges to check a package's `engines` against a runtime."""

from __future__ import annotations

import re

_VERSION = re.compile(r"^v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?")


def parse(version: str) -> tuple[int, int, int]:
    match = _VERSION.match(version.strip())
    if not match:
        raise ValueError(f"not a version: {version!r}")
    parts = [int(p) if p and p.isdigit() else 0 for p in match.groups()]
    return parts[0], parts[1], parts[2]


def _comparator(token: str, version: tuple[int, int, int]) -> bool:
    match = re.match(r"^(>=|<=|>|<|=|\^|~)?\s*(.+)$", token)
    if not match:
        raise ValueError(f"not a range: {token!r}")
    op, rest = match.group(1) or "=", match.group(2)
    if rest in ("*", "x", ""):
        return True
    bound = parse(rest)
    if op == ">=":
        return version >= bound
    if op == ">":
        return version > bound
    if op == "<=":
        return version <= bound
    if op == "<":
        return version < bound
    if op == "^":
        upper = (bound[0] + 1, 0, 0) if bound[0] else (0, bound[1] + 1, 0)
        return bound <= version < upper
    if op == "~":
        return bound <= version < (bound[0], bound[1] + 1, 0)
    # a bare "22" or "22.x" means that whole line
    given = len([p for p in rest.split(".") if p.isdigit()])
    return version[:given] == bound[:given]


def satisfies(version: str, spec: str) -> bool:
    """True when `version` satisfies an npm range such as ">=22.14.0" or "^20 || >=22"."""
    parsed = parse(version)
    for alternative in spec.split("||"):
        tokens = re.sub(r"(>=|<=|>|<|=|\^|~)\s+", r"\1", alternative).split()
        if all(_comparator(t, parsed) for t in tokens):
            return True
    return False
