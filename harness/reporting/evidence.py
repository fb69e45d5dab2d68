"""A trigger's evidence as a person reads it: the values that fired it, and each matching log
line among the lines around it in the gateway's own log."""

from __future__ import annotations

import time
from typing import Any

from harness.signals.logwatch import LogWatcher

CONTEXT_BEFORE = 3
CONTEXT_AFTER = 3


def capture(run: Any, watcher: LogWatcher, before: int = CONTEXT_BEFORE,
            after: int = CONTEXT_AFTER) -> dict[int, list[str]]:
    """For every match that is some decision's evidence: the numbered lines around it, kept
    while the watcher still has the stream (line number in the watched stream -> lines)."""
    wanted = {line for decision in run.decisions for line in decision.evidence}
    return {m.line_no: watcher.context(m, before, after) for m in run.matches
            if m.line in wanted}


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return time.strftime("%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1000):03d}Z"


def decision_text(run: Any, decision: Any) -> str:
    """The evidence attachment of one fired trigger."""
    what = "dry run, would have fired" if decision.trigger.dry_run else "fired"
    lines = [f"{decision.label} {what}: observed {decision.observed} "
             f"({decision.trigger.describe()}), {decision.samples} samples, window "
             f"{_when(decision.window_start)} .. {_when(decision.window_end)}"]
    if decision.note:
        lines.append(decision.note)
    lines += ["", f"evidence ({len(decision.evidence)}):", *decision.evidence]
    context: dict[int, list[str]] = getattr(run, "context", None) or {}
    shown = 0
    for match in run.matches:
        if match.line not in decision.evidence or match.line_no not in context:
            continue
        if not shown:
            lines += ["", "each matching line in the gateway's log, with the lines around it "
                      "(numbered within the watched stream, '>' marks the match):"]
        shown += 1
        lines.append(f"--- {match.signature} ({match.klass}), line {match.line_no}")
        for numbered in context[match.line_no]:
            number = numbered.split(None, 1)[0] if numbered.strip() else ""
            mark = ">" if number == str(match.line_no) else " "
            lines.append(f"{mark}{numbered}")
    return "\n".join(lines) + "\n"
