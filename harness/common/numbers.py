"""How a number reads in a report's tables: three significant digits, "-" for none."""

from __future__ import annotations

from typing import Any


def num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
