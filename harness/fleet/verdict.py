"""The fleet's one verdict, from its ledger and its members' own verdicts: verdict.json (the
outcome by harness.fleet.outcome.fleet_exit, one row per member), summary.md (the fleet table
first, then each member's own summary), and one Allure results folder with every member's
results, the member as their parent suite."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from harness.common.errors import ExitCode
from harness.fleet.ledger import KEEP, NOT_REACHED, ROLL_BACK, fleet_rollbacks, results
from harness.fleet.outcome import fleet_exit, not_reached
from harness.fleet.plan import FleetPlan
from harness.fleet.soak_only import soak_only, soak_row, soak_verdict

OUTCOMES = {ExitCode.PASSED: "passed", ExitCode.ROLLED_BACK: "rolled_back",
            ExitCode.ROLLBACK_FAILED: "rollback_failed", ExitCode.INTERRUPTED: "interrupted"}


def member_row(plan: FleetPlan, name: str, entry: dict[str, Any],
               verdict: dict[str, Any]) -> dict[str, Any]:
    member = next(m for m in plan.members if m.name == name)
    lock = verdict.get("lock") or {}
    before = (lock.get("known_good") or {}).get("version") or member.profile.known_good
    final = verdict.get("final_state") or {}
    soak = verdict.get("soak") or {}
    reached = entry["state"] != NOT_REACHED and entry["state"] != "waiting"
    return {
        "member": name, "wave": entry["wave"], "canary": member.canary,
        "target": member.profile.name, "host": member.profile.host,
        "version_before": before,
        # never reached: untouched, and not observed by this release
        "version_after": final.get("version") if reached else before,
        "observed": reached,
        "outcome": verdict.get("outcome") or ("not_reached" if not reached else "no_verdict"),
        "exit_code": entry["exit"],
        "triggers": sorted({d["trigger"] for d in soak.get("decisions", []) if d.get("fired")}),
        "stopped_by": soak.get("stopped_by"),
        "failed_phases": [p["name"] for p in verdict.get("phases", [])
                          if p.get("outcome") == "failed"],
        "watch": {label: ((verdict.get(label) or {}).get("verdict") or {}).get("verdict")
                  for label in ("watch", "late_watch") if verdict.get(label)},
        "fleet_word": entry["word"],
        "failed_itself": entry["so_far"] not in (None, 0)
        or (entry["exit"] not in (None, 0) and entry["word"] is None),
        "what_happened": what_happened(entry, verdict),
        "run_dir": f"members/{name}" if reached else None,
    }


def what_happened(entry: dict[str, Any], verdict: dict[str, Any]) -> str:
    if entry["state"] in (NOT_REACHED, "waiting"):
        return entry["reason"] or "not reached: left untouched"
    if entry["word"] == KEEP:
        return "upgraded, passed, kept on the candidate"
    if entry["word"] == ROLL_BACK:
        return entry["reason"]
    return verdict.get("claim") or f"ended without its hold (exit {entry['exit']}); see its " \
        "run dir"


def build_fleet_verdict(plan: FleetPlan, ledger: dict[str, Any], run_dir: Path
                        ) -> dict[str, Any]:
    members = ledger["members"]
    done = results(members)
    rows = []
    for member in (m for wave in plan.waves for m in wave):
        path = run_dir / "members" / member.name / "verdict.json"
        try:
            verdict = json.loads(path.read_text())
        except (OSError, ValueError):
            verdict = {}
        rows.append(member_row(plan, member.name, members[member.name], verdict))
        if soak_only(plan):  # attached members: soaked only, nothing to roll back
            rows[-1].update(soak_row(members[member.name], verdict))
    if soak_only(plan):
        return {**_head(plan), **soak_verdict(plan, done, rows)}
    rolled = fleet_rollbacks(members)
    code = fleet_exit(plan, done, rolled)
    outcome = OUTCOMES.get(code, ExitCode(code).name.lower())
    untouched = not_reached(plan, done)
    return {**_head(plan), "outcome": outcome, "exit_code": int(code),
            "not_reached": untouched, "fleet_rollbacks": rolled,
            "claim": claim(plan, outcome, rows, untouched), "members": rows}


def _head(plan: FleetPlan) -> dict[str, Any]:
    return {"fleet": plan.name, "fleet_file": plan.path.name, "fleet_sha256": plan.sha256,
            "on_failure": plan.on_failure, "max_parallel": plan.max_parallel,
            "ended": round(time.time(), 3), "waves": [[m.name for m in w] for w in plan.waves]}


def claim(plan: FleetPlan, outcome: str, rows: list[dict[str, Any]],
          untouched: list[str]) -> str:
    kept = [r["member"] for r in rows if r["fleet_word"] == KEEP]
    failed = [r["member"] for r in rows if r["failed_itself"]]
    text = f"Fleet {plan.name}: {outcome}."
    if kept:
        text += f" On the candidate: {', '.join(kept)}."
    if failed:
        text += f" Failed: {', '.join(failed)}."
    back = [r["member"] for r in rows if r["fleet_word"] == ROLL_BACK]
    if back:
        text += f" Rolled back: {', '.join(back)}."
    if untouched:
        text += f" Not reached, left untouched: {', '.join(untouched)}."
    return text


def fleet_table(verdict: dict[str, Any]) -> str:
    lines = [f"# Fleet {verdict['fleet']}: {verdict['outcome']} (exit {verdict['exit_code']})",
             "", verdict["claim"], "",
             "| member | wave | before | after | outcome | triggers | watches | what happened |",
             "|---|---|---|---|---|---|---|---|"]
    for r in verdict["members"]:
        before, after = r["version_before"] or "unknown", r["version_after"] or "unknown"
        after = after if r["observed"] else f"{after} (untouched)"
        watches = ", ".join(f"{k} {v}" for k, v in r["watch"].items()) or "-"
        failed = f" (failed: {', '.join(r['failed_phases'])})" if r["failed_phases"] else ""
        lines.append(f"| {r['member']}{' (canary)' if r['canary'] else ''} | {r['wave']} | "
                     f"{before} | {after} | {r['outcome']}{failed} | "
                     f"{', '.join(r['triggers']) or '-'} | {watches} | "
                     f"{r['what_happened'].replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def write_fleet_report(plan: FleetPlan, ledger: dict[str, Any], run_dir: Path
                       ) -> dict[str, Any]:
    verdict = build_fleet_verdict(plan, ledger, run_dir)
    (run_dir / "verdict.json").write_text(json.dumps(verdict, indent=2, default=str))
    parts = [fleet_table(verdict)]
    for row in verdict["members"]:
        summary = run_dir / "members" / row["member"] / "summary.md"
        if summary.is_file():
            parts.append(f"\n---\n\n## Member {row['member']}\n\n"
                         + summary.read_text().replace("\n# ", "\n### "))
    (run_dir / "summary.md").write_text("".join(parts))
    merge_allure(run_dir, [r["member"] for r in verdict["members"] if r["observed"]])
    return verdict


def merge_allure(run_dir: Path, names: list[str]) -> int:
    """Every member's Allure results in the fleet's folder, the member as parent suite (the
    top of Allure's suites tree), its own story below as in a run of one gateway."""
    target = run_dir / "allure-results"
    target.mkdir(parents=True, exist_ok=True)
    merged = 0
    for name in names:
        source = run_dir / "members" / name / "allure-results"
        if not source.is_dir():
            continue
        for path in source.iterdir():
            if path.name.endswith("-result.json"):
                result = json.loads(path.read_text())
                labels = [lb for lb in result.get("labels", []) if lb.get("name") != "parentSuite"]
                labels.append({"name": "parentSuite", "value": name})
                labels.append({"name": "tag", "value": f"member {name}"})
                result["labels"] = labels
                (target / path.name).write_text(json.dumps(result))
                merged += 1
            elif path.is_file() and path.name not in ("environment.properties",
                                                      "categories.json", "executor.json"):
                shutil.copy2(path, target / path.name)
        for shared in ("categories.json",):
            if (source / shared).is_file() and not (target / shared).exists():
                shutil.copy2(source / shared, target / shared)
    return merged
