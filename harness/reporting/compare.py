"""Two runs side by side, per scenario and per signature class, from their verdict.json.

`harness compare RUN_A RUN_B` reads each run's soak (or another section: baseline, watch,
late_watch) and marks what changed between them: a scenario's verdict, its bad iterations, its
p95 latency (one of the two at least 1.5 times the other), a signature class that appeared,
vanished or changed its rate per 100 requests (by the same factor), and which triggers fired.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.common.errors import InputError
from harness.common.numbers import num

SECTIONS = ("soak", "baseline", "watch", "late_watch", "smoke")
RELATIVE_CHANGE = 0.5


def load_verdict(path: Path) -> tuple[Path, dict[str, Any]]:
    """A run folder or its verdict.json; a bad input names the file."""
    file = path / "verdict.json" if path.is_dir() else path
    try:
        verdict = json.loads(file.read_text())
    except FileNotFoundError:
        raise InputError(str(file), "", "no such file (expected a run folder or its "
                         "verdict.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(str(file), "", f"not a readable verdict: {exc}") from None
    if not isinstance(verdict, dict) or "outcome" not in verdict:
        raise InputError(str(file), "", "not a verdict.json (no outcome)")
    if not isinstance(verdict["outcome"], str):
        raise InputError(str(file), "outcome", f"expected a string, got {verdict['outcome']!r}")
    if not isinstance(verdict.get("lock") or {}, dict):
        raise InputError(str(file), "lock", "expected a table (the release lock)")
    return file, verdict


def _section(file: Path, verdict: dict[str, Any], name: str) -> dict[str, Any]:
    section = verdict.get(name)
    if not isinstance(section, dict) or "scenarios" not in section:
        present = [s for s in SECTIONS if isinstance(verdict.get(s), dict)]
        raise InputError(str(file), name, f"this run has no {name} "
                         f"(it has: {', '.join(present) or 'no soak at all'})")
    _check_section(str(file), name, section)
    return section


NUMBERS = ("finished", "good", "bad", "error_ratio", "p50_s", "p95_s", "max_s")


def _kind(value: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def _check_section(file: str, name: str, section: dict[str, Any]) -> None:
    """Everything the comparison reads, of the type it reads: a file that is not a verdict is
    refused with the key that is wrong, never a traceback or a table of None."""
    def expect(key: str, value: Any, types: tuple[type, ...], what: str) -> None:
        bad = not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
        if bad:
            raise InputError(file, key, f"expected {what}, got {_kind(value)} ({value!r:.60})")

    number = (int, float, type(None))
    scenarios = section["scenarios"]
    expect(f"{name}.scenarios", scenarios, (dict,), "a table of scenarios by id")
    for sid, row in scenarios.items():
        expect(f"{name}.scenarios.{sid}", row, (dict,), "a table of the scenario's numbers")
        for key in NUMBERS:
            expect(f"{name}.scenarios.{sid}.{key}", row.get(key), number, "a number or null")
    expect(f"{name}.requests", section.get("requests"), number, "a number or null")
    counts = section.get("class_counts") or {}
    expect(f"{name}.class_counts", counts, (dict,), "a table of counts by signature class")
    for klass, count in counts.items():
        expect(f"{name}.class_counts.{klass}", count, (int,), "a count")
    decisions = section.get("decisions") or []
    expect(f"{name}.decisions", decisions, (list,), "a list of trigger decisions")
    for i, decision in enumerate(decisions):
        expect(f"{name}.decisions[{i}]", decision, (dict,), "a trigger decision (a table)")
    judged = section.get("verdict") or {}
    expect(f"{name}.verdict", judged, (dict,), "a table with the soak's verdict")
    expect(f"{name}.verdict.verdict", judged.get("verdict"), (str, type(None)), "a verdict")
    per = judged.get("scenarios") or {}
    expect(f"{name}.verdict.scenarios", per, (dict,), "a table of verdicts by scenario")
    for sid, row in per.items():
        expect(f"{name}.verdict.scenarios.{sid}", row, (dict,), "a table with a verdict")


def _changed(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    low, high = sorted((abs(a), abs(b)))
    if high == low:
        return False
    return low == 0 or high / low >= 1 + RELATIVE_CHANGE


def _per100(count: int, requests: int | None) -> float | None:
    return round(100 * count / requests, 2) if requests else None


def compare_runs(a: dict[str, Any], b: dict[str, Any], section_a: str = "soak",
                 section_b: str | None = None, names: tuple[str, str] = ("A", "B")
                 ) -> dict[str, Any]:
    """Per scenario and per signature class, A beside B, with what changed."""
    sa, sb = a[section_a], b[section_b or section_a]
    va = (sa.get("verdict") or {}).get("scenarios") or {}
    vb = (sb.get("verdict") or {}).get("scenarios") or {}
    scenarios: dict[str, Any] = {}
    for sid in sorted(set(sa["scenarios"]) | set(sb["scenarios"])):
        x, y = sa["scenarios"].get(sid), sb["scenarios"].get(sid)
        row = {"verdict": [(va.get(sid) or {}).get("verdict"), (vb.get(sid) or {}).get("verdict")]}
        for key in ("finished", "good", "bad", "error_ratio", "p50_s", "p95_s", "max_s"):
            row[key] = [(x or {}).get(key), (y or {}).get(key)]
        changes = []
        if x is None or y is None:
            changes.append("only in " + (names[0] if y is None else names[1]))
        else:
            if row["verdict"][0] != row["verdict"][1]:
                changes.append(f"verdict {row['verdict'][0]} -> {row['verdict'][1]}")
            if (row["bad"][0] or 0) != (row["bad"][1] or 0):
                changes.append(f"bad {row['bad'][0]} -> {row['bad'][1]}")
            if _changed(row["p95_s"][0], row["p95_s"][1]):
                changes.append(f"p95 {num(row['p95_s'][0])} -> {num(row['p95_s'][1])} s")
        row["changed"] = changes
        scenarios[sid] = row
    req = [sa.get("requests"), sb.get("requests")]
    ca, cb = sa.get("class_counts") or {}, sb.get("class_counts") or {}
    classes: dict[str, Any] = {}
    for klass in [*ca, *[k for k in cb if k not in ca]]:
        n = [ca.get(klass, 0), cb.get(klass, 0)]
        rate = [_per100(n[0], req[0]), _per100(n[1], req[1])]
        changes = []
        if n[0] == 0 and n[1] > 0:
            changes.append(f"new in {names[1]}")
        elif n[0] > 0 and n[1] == 0:
            changes.append(f"gone in {names[1]}")
        elif _changed(rate[0], rate[1]):
            changes.append(f"rate {num(rate[0])} -> {num(rate[1])} per 100 requests")
        classes[klass] = {"count": n, "per_100_requests": rate, "changed": changes}
    fired = [sorted({d["trigger"] for d in s.get("decisions") or [] if d.get("decides")})
             for s in (sa, sb)]
    return {"names": list(names), "sections": [section_a, section_b or section_a],
            "requests": req, "stopped_by": [sa.get("stopped_by"), sb.get("stopped_by")],
            "verdict": [(sa.get("verdict") or {}).get("verdict"),
                        (sb.get("verdict") or {}).get("verdict")],
            "scenarios": scenarios, "classes": classes, "deciding_triggers": fired}




def _pair(values: list[Any]) -> str:
    a, b = (num(v) for v in values)
    return a if a == b else f"{a} -> {b}"


def comparison_markdown(cmp: dict[str, Any], titles: tuple[str, str]) -> str:
    a, b = cmp["names"]
    lines = [f"### {a} vs {b}", "",
             f"- {a}: {titles[0]} ({cmp['sections'][0]}: {cmp['verdict'][0]}, "
             f"{cmp['requests'][0]} requests, stopped by {cmp['stopped_by'][0] or 'nothing'})",
             f"- {b}: {titles[1]} ({cmp['sections'][1]}: {cmp['verdict'][1]}, "
             f"{cmp['requests'][1]} requests, stopped by {cmp['stopped_by'][1] or 'nothing'})",
             "", "| scenario | verdict | finished | good | bad | error ratio | p50 s | p95 s "
             "| changed |", "|---|---|---|---|---|---|---|---|---|"]
    for sid, row in cmp["scenarios"].items():
        mark = ("**" + "; ".join(row["changed"]) + "**") if row["changed"] else ""
        cells = [_pair(row[k]) for k in ("verdict", "finished", "good", "bad", "error_ratio",
                                          "p50_s", "p95_s")]
        lines.append(f"| {sid} | " + " | ".join(cells) + f" | {mark} |")
    lines += ["", "| signature class | count | per 100 requests | changed |",
              "|---|---|---|---|"]
    for klass, row in cmp["classes"].items():
        mark = ("**" + "; ".join(row["changed"]) + "**") if row["changed"] else ""
        lines.append(f"| {klass} | {_pair(row['count'])} | {_pair(row['per_100_requests'])} "
                     f"| {mark} |")
    fa, fb = cmp["deciding_triggers"]
    lines += ["", f"Deciding triggers that fired: {a}: {', '.join(fa) or 'none'}; "
              f"{b}: {', '.join(fb) or 'none'}."]
    changed_s = [s for s, r in cmp["scenarios"].items() if r["changed"]]
    changed_c = [k for k, r in cmp["classes"].items() if r["changed"]]
    lines.append(f"Changed: scenarios {', '.join(changed_s) or 'none'}; signature classes "
                 f"{', '.join(changed_c) or 'none'}.")
    return "\n".join(lines) + "\n"


def _title(verdict: dict[str, Any], file: Path) -> str:
    lock = verdict.get("lock") or {}
    kg = (lock.get("known_good") or {}).get("version")
    cand = (lock.get("candidate") or {}).get("version")
    run = lock.get("run_id") or file.parent.name
    if lock.get("attached"):
        running = ((verdict.get("attached") or {}).get("before") or {}).get("version")
        return f"run {run}, attached {running}, {verdict['outcome']}"
    return f"run {run}, {kg} -> {cand}, {verdict['outcome']}" if lock else f"run {run}"


def compare_paths(run_a: Path, run_b: Path, section_a: str = "soak",
                  section_b: str | None = None) -> str:
    """The Markdown comparison of two runs (folders or verdict.json files)."""
    fa, va = load_verdict(run_a)
    fb, vb = load_verdict(run_b)
    _section(fa, va, section_a)
    _section(fb, vb, section_b or section_a)
    cmp = compare_runs(va, vb, section_a, section_b)
    return comparison_markdown(cmp, (_title(va, fa), _title(vb, fb)))
