"""A run's short Markdown summary (for a CI job summary or a PR comment), from verdict.json."""

from __future__ import annotations

from typing import Any

from harness.common.numbers import num
from harness.reporting.soak import baseline_comparison_markdown


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# the baseline is shown beside the soak (its comparison); the smoke is one iteration per path
SOAK_SECTIONS = (("soak", "Soak"), ("watch", "Early watch after rollback"),
                 ("late_watch", "Later watch after rollback"))


def summary_markdown(verdict: dict[str, Any], comparison: str | None = None) -> str:
    lock = verdict.get("lock") or {}
    lines = [f"{_title(verdict, lock)}: **{verdict['outcome']}** (exit {verdict['exit_code']})",
             "", f"> {verdict.get('claim', '')}", ""]
    if verdict.get("error"):
        lines += [f"Error: `{verdict['error']}`", ""]
    lines += _provenance(verdict, lock)
    lines += _phases(verdict.get("phases") or [])
    lines += _rollback(verdict)
    for key, title in SOAK_SECTIONS:
        if verdict.get(key):
            lines += _soak_section(key, title, verdict[key])
    if verdict.get("final_state"):
        state = verdict["final_state"]
        lines += [f"Final state: version {state.get('version')}, "
                  f"{'serving' if state.get('serving') else 'NOT serving'}.", ""]
    if comparison:
        lines += [comparison.rstrip(), ""]
    return "\n".join(lines)


def _versions(lock: dict[str, Any]) -> tuple[str, str]:
    return ((lock.get("known_good") or {}).get("version", "?"),
            (lock.get("candidate") or {}).get("version", "?"))


def _title(verdict: dict[str, Any], lock: dict[str, Any]) -> str:
    target = (lock.get("target") or {}).get("name", "?")
    attached = lock.get("attached")
    if attached:  # a deployment soaked as found: no known-good, no candidate
        found = (verdict.get("attached") or {}).get("before") or {}
        return (f"## Soak of a running deployment: {target}, {attached['package']} "
                f"{found.get('version') or '(version unknown)'} (attached)")
    kg, cand = _versions(lock)
    return f"## Release acceptance: {target} {kg} -> {cand}"


def _provenance(verdict: dict[str, Any], lock: dict[str, Any]) -> list[str]:
    """Which run, on which host, of what (versions and their integrity), under which policy."""
    if not lock:
        return []
    policy = lock.get("policy") or {}
    run = (f"- run `{lock.get('run_id')}` on host `{lock.get('host')}`, harness "
           f"{lock.get('harness_version')}")
    policy_line = f"- policy `{policy.get('name')}` sha256 `{policy.get('sha256')}`"
    attached = lock.get("attached")
    if attached:
        found = (verdict.get("attached") or {}).get("before") or {}
        after = (verdict.get("attached") or {}).get("changes")
        kept = "not read" if after is None else ("left as found" if not after
                                                 else "changed: " + "; ".join(after))
        return [run, f"- attached `{attached['unit']}` on `{attached['host']}` at "
                f"{attached['url']}: PID {found.get('main_pid')}, active since "
                f"{found.get('active_since')}; no upgrade attempted; {kept}", policy_line, ""]
    kg, cand = _versions(lock)
    return [run, f"- known-good {kg} `{(lock.get('known_good') or {}).get('integrity')}`",
            f"- candidate {cand} `{(lock.get('candidate') or {}).get('integrity')}`",
            policy_line, ""]


def _phases(phases: list[dict[str, Any]]) -> list[str]:
    """Outcomes counted per family, and a table of the failed phases with their reasons."""
    if not phases:
        return []
    families: dict[str, dict[str, int]] = {}
    for p in phases:
        counts = families.setdefault(p["family"], {})
        counts[p["outcome"]] = counts.get(p["outcome"], 0) + 1
    lines = ["Phases: " + "; ".join(
        f"{family} " + ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
        for family, counts in families.items()) + "."]
    failed = [p for p in phases if p["outcome"] == "failed"]
    if failed:
        lines += ["", "| failed | reason |", "|---|---|"]
        for p in failed:
            reason = (p.get("reason") or "").splitlines()[0][:240] if p.get("reason") else ""
            lines.append(f"| {p['family']}: {_cell(p['name'])} | {_cell(reason)} |")
    return [*lines, ""]


def _rollback(verdict: dict[str, Any]) -> list[str]:
    """Which rollback path was taken, and what the target's own updater said."""
    lines: list[str] = []
    rollback = verdict.get("rollback_path") or {}
    if rollback.get("path"):
        lines += [f"Rollback path: {rollback['path']}.", ""]
    updater = verdict.get("updater") or {}
    if updater.get("summary"):
        used = "used" if updater.get("used") else "NOT used"
        lines += [f"The target's own updater ({used}): {_cell(updater['summary'])}", ""]
        for finding in (updater.get("verifier") or {}).get("findings") or []:
            lines.append(f"- `{finding['path']}`: **{finding['classification']}**: "
                         f"{_cell(finding['explanation'])}")
        lines.append("")
    return lines


def _soak_section(key: str, title: str, section: dict[str, Any]) -> list[str]:
    """One soak (or watch): its verdict, a row per scenario, the signature classes seen, the
    triggers that fired, and (the soak's only) the comparison with the baseline."""
    judged = (section.get("verdict") or {})
    head = f"### {title}: {judged.get('verdict', 'not judged')}"
    if section.get("delay_s"):
        head += f" ({section['delay_s']:g} s of quiet first, the log watched)"
    if section.get("stopped_by"):
        head += (f" (stopped by `{section['stopped_by']}` after {section.get('seconds')} s "
                 f"of a {section.get('window_s'):g} s window)")
    lines = [head, "", *_scenario_rows(section, judged.get("scenarios") or {})]
    classes = section.get("class_counts") or {}
    if classes:
        lines += ["", "signature classes: " + ", ".join(f"{k} {v}" for k, v in
                                                         classes.items())]
    lines += _fired_triggers(section)
    if section.get("comparison") and key == "soak":
        lines += ["", "Against the baseline of this run:", "",
                  baseline_comparison_markdown(section["comparison"]).rstrip()]
    return [*lines, ""]


def _scenario_rows(section: dict[str, Any], per_path: dict[str, Any]) -> list[str]:
    lines = ["| scenario | verdict | good | bad | cut | finished | p50 s | p95 s | max s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for sid, stats in (section.get("scenarios") or {}).items():
        mark = (per_path.get(sid) or {}).get("verdict", "-")
        mark = f"**{mark}**" if mark in ("fail", "inconclusive") else mark
        lines.append(f"| {sid} | {mark} | {stats.get('good')} | {stats.get('bad')} | "
                     f"{stats.get('cut')} | {stats.get('finished')} | "
                     f"{num(stats.get('p50_s'))} | {num(stats.get('p95_s'))} | "
                     f"{num(stats.get('max_s'))} |")
    return lines


def _fired_triggers(section: dict[str, Any]) -> list[str]:
    fired = [d for d in section.get("decisions") or [] if d.get("fired")]
    if not fired:
        return []
    lines = ["", "| trigger | scenario | observed | threshold | samples | decides |",
             "|---|---|---|---|---|---|"]
    for d in fired:
        lines.append(f"| {d['trigger']} | {d.get('scenario') or 'all'} | "
                     f"{num(d.get('observed'))} | {_cell(d.get('threshold'))} | "
                     f"{d.get('samples')} | {'yes' if d.get('decides') else 'no (dry run)'} |")
    return lines
