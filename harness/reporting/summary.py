"""A run's short Markdown summary (for a CI job summary or a PR comment), from verdict.json."""

from __future__ import annotations

from typing import Any

from harness.common.numbers import num
from harness.judge.assess import comparison_markdown


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# the baseline is shown beside the soak (its comparison); the smoke is one iteration per path
SOAK_SECTIONS = (("soak", "Soak"), ("watch", "Early watch after rollback"),
                 ("late_watch", "Later watch after rollback"))


def summary_markdown(verdict: dict[str, Any], comparison: str | None = None) -> str:
    lock = verdict.get("lock") or {}
    target = (lock.get("target") or {}).get("name", "?")
    kg = (lock.get("known_good") or {}).get("version", "?")
    cand = (lock.get("candidate") or {}).get("version", "?")
    attached = lock.get("attached")
    if attached:  # a deployment soaked as found: no known-good, no candidate
        found = (verdict.get("attached") or {}).get("before") or {}
        title = (f"## Soak of a running deployment: {target}, {attached['package']} "
                 f"{found.get('version') or '(version unknown)'} (attached)")
    else:
        title = f"## Release acceptance: {target} {kg} -> {cand}"
    lines = [f"{title}: **{verdict['outcome']}** (exit {verdict['exit_code']})", "",
             f"> {verdict.get('claim', '')}", ""]
    if verdict.get("error"):
        lines += [f"Error: `{verdict['error']}`", ""]
    if attached:
        policy = lock.get("policy") or {}
        after = (verdict.get("attached") or {}).get("changes")
        kept = "not read" if after is None else ("left as found" if not after
                                                 else "changed: " + "; ".join(after))
        lines += [f"- run `{lock.get('run_id')}` on host `{lock.get('host')}`, harness "
                  f"{lock.get('harness_version')}",
                  f"- attached `{attached['unit']}` on `{attached['host']}` at "
                  f"{attached['url']}: PID {found.get('main_pid')}, active since "
                  f"{found.get('active_since')}; no upgrade attempted; {kept}",
                  f"- policy `{policy.get('name')}` sha256 `{policy.get('sha256')}`", ""]
    elif lock:
        policy = lock.get("policy") or {}
        lines += [f"- run `{lock.get('run_id')}` on host `{lock.get('host')}`, harness "
                  f"{lock.get('harness_version')}",
                  f"- known-good {kg} `{(lock.get('known_good') or {}).get('integrity')}`",
                  f"- candidate {cand} `{(lock.get('candidate') or {}).get('integrity')}`",
                  f"- policy `{policy.get('name')}` sha256 `{policy.get('sha256')}`", ""]
    phases = verdict.get("phases") or []
    if phases:
        families: dict[str, dict[str, int]] = {}
        for p in phases:
            counts = families.setdefault(p["family"], {})
            counts[p["outcome"]] = counts.get(p["outcome"], 0) + 1
        lines.append("Phases: " + "; ".join(
            f"{family} " + ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
            for family, counts in families.items()) + ".")
        failed = [p for p in phases if p["outcome"] == "failed"]
        if failed:
            lines += ["", "| failed | reason |", "|---|---|"]
            for p in failed:
                reason = (p.get("reason") or "").splitlines()[0][:240] if p.get("reason") else ""
                lines.append(f"| {p['family']}: {_cell(p['name'])} | {_cell(reason)} |")
        lines.append("")
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
    for key, title in SOAK_SECTIONS:
        section = verdict.get(key)
        if not section:
            continue
        judged = (section.get("verdict") or {})
        per_path = judged.get("scenarios") or {}
        head = f"### {title}: {judged.get('verdict', 'not judged')}"
        if section.get("delay_s"):
            head += f" ({section['delay_s']:g} s of quiet first, the log watched)"
        if section.get("stopped_by"):
            head += (f" (stopped by `{section['stopped_by']}` after {section.get('seconds')} s "
                     f"of a {section.get('window_s'):g} s window)")
        lines += [head, "", "| scenario | verdict | good | bad | cut | finished | p50 s | p95 s "
                  "| max s |", "|---|---|---|---|---|---|---|---|---|"]
        for sid, stats in (section.get("scenarios") or {}).items():
            mark = (per_path.get(sid) or {}).get("verdict", "-")
            mark = f"**{mark}**" if mark in ("fail", "inconclusive") else mark
            lines.append(f"| {sid} | {mark} | {stats.get('good')} | {stats.get('bad')} | "
                         f"{stats.get('cut')} | {stats.get('finished')} | "
                         f"{num(stats.get('p50_s'))} | {num(stats.get('p95_s'))} | "
                         f"{num(stats.get('max_s'))} |")
        classes = section.get("class_counts") or {}
        if classes:
            lines += ["", "signature classes: " + ", ".join(f"{k} {v}" for k, v in
                                                             classes.items())]
        fired = [d for d in section.get("decisions") or [] if d.get("fired")]
        if fired:
            lines += ["", "| trigger | scenario | observed | threshold | samples | decides |",
                      "|---|---|---|---|---|---|"]
            for d in fired:
                lines.append(f"| {d['trigger']} | {d.get('scenario') or 'all'} | "
                             f"{num(d.get('observed'))} | {_cell(d.get('threshold'))} | "
                             f"{d.get('samples')} | "
                             f"{'yes' if d.get('decides') else 'no (dry run)'} |")
        if section.get("comparison") and key == "soak":
            lines += ["", "Against the baseline of this run:", "",
                      comparison_markdown(section["comparison"]).rstrip()]
        lines.append("")
    if verdict.get("final_state"):
        state = verdict["final_state"]
        lines += [f"Final state: version {state.get('version')}, "
                  f"{'serving' if state.get('serving') else 'NOT serving'}.", ""]
    if comparison:
        lines += [comparison.rstrip(), ""]
    return "\n".join(lines)
