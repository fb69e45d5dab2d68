"""The fleet's one verdict, from its ledger and its members' own verdicts: verdict.json (the
outcome by harness.fleet.outcome.fleet_exit, one row per member), summary.md (the fleet table
first, then each member's own summary), and one Allure results folder with every member's
results, the member as their parent suite."""

from __future__ import annotations

import hashlib
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
from harness.procedure.lock import LOCK_FILE, ROLES
from harness.reporting.landing import properties

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
        # what its run saw serving at its end, and whether that version was proven
        "serving": final.get("serving") if reached else None,
        "proven": final.get("proven") if reached else None,
        "worker_died": entry.get("worker_died") or None,
        "outcome": _outcome(entry, verdict, reached),
        "exit_code": entry["exit"],
        "triggers": sorted({d["trigger"] for d in soak.get("decisions", []) if d.get("fired")}),
        "stopped_by": soak.get("stopped_by"),
        "failed_phases": [p["name"] for p in verdict.get("phases", [])
                          if p.get("outcome") == "failed"],
        "watch": {label: ((verdict.get(label) or {}).get("verdict") or {}).get("verdict")
                  for label in ("watch", "late_watch") if verdict.get(label)},
        "fleet_word": entry["word"],
        "failed_itself": entry["so_far"] not in (None, 0)
        or (entry["exit"] not in (None, 0) and entry["word"] is None)
        or bool(entry.get("worker_died")),
        "what_happened": what_happened(entry, verdict),
        "run_dir": f"members/{name}" if reached else None,
    }


def _outcome(entry: dict[str, Any], verdict: dict[str, Any], reached: bool) -> str:
    own = verdict.get("outcome")
    if entry.get("worker_died") and own in (None, "passed"):
        return "interrupted"  # its worker did not see it end: never a pass
    return own or ("not_reached" if not reached else "no_verdict")


def what_happened(entry: dict[str, Any], verdict: dict[str, Any]) -> str:
    if entry.get("worker_died"):
        return f"{entry['worker_died']}; {_own_end(entry, verdict)}"
    if entry["state"] in (NOT_REACHED, "waiting"):
        return entry["reason"] or "not reached: left untouched"
    if entry["word"] == KEEP:
        return "upgraded, passed, kept on the candidate"
    if entry["word"] == ROLL_BACK:
        return entry["reason"]
    return verdict.get("claim") or f"ended without its hold (exit {entry['exit']}); see its " \
        "run dir"


def fleet_lock_of(run_dir: Path) -> dict[str, Any] | None:
    """The fleet's one release lock (harness.fleet.release), as the verdict names it."""
    path = run_dir / LOCK_FILE
    try:
        text = path.read_text()
        lock = json.loads(text)
    except (OSError, ValueError):
        return None
    return {"file": LOCK_FILE, "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "locked_at": lock.get("locked_at"),
            **{role: f"{lock[role]['package']}@{lock[role]['version']} "
                     f"{lock[role]['integrity']}" for role in ROLES if lock.get(role)}}


def lock_match(fleet_lock: dict[str, Any] | None, row: dict[str, Any],
               verdict: dict[str, Any]) -> str:
    """Whether the member's run installed from the fleet's lock (the same file, byte for
    byte): its own lock records the fleet lock's SHA-256 it took its releases from."""
    if fleet_lock is None or not row["observed"]:
        return "-"
    taken = (verdict.get("lock") or {}).get("fleet_lock") or {}
    if not taken:
        return "not taken: the member's run locked no release from the fleet's lock"
    if taken.get("sha256") != fleet_lock["sha256"]:
        return f"differs: the member took sha256 {str(taken.get('sha256'))[:12]}..., the " \
            f"fleet's lock is {fleet_lock['sha256'][:12]}..."
    return "matches"


def _own_end(entry: dict[str, Any], verdict: dict[str, Any]) -> str:
    """How the run of a member whose worker died ended: its own verdict, what serves."""
    if not verdict:
        return entry["reason"] or "its run left no verdict: see its run dir"
    final = verdict.get("final_state") or {}
    by = "its guard" if verdict.get("written_by") == "guard" else "its own run"
    serving = f"{final.get('version')} serving, " + ("proven" if final.get("proven")
                                                     else "NOT proven") \
        if final.get("serving") else "nothing serving"
    return f"{by} ended it {verdict.get('outcome')} (exit {verdict.get('exit_code')}): " \
        f"{serving}"


def build_fleet_verdict(plan: FleetPlan, ledger: dict[str, Any], run_dir: Path
                        ) -> dict[str, Any]:
    members = ledger["members"]
    lock = fleet_lock_of(run_dir)
    done = results(members)
    rows = []
    for member in (m for wave in plan.waves for m in wave):
        path = run_dir / "members" / member.name / "verdict.json"
        try:
            verdict = json.loads(path.read_text())
        except (OSError, ValueError):
            verdict = {}
        row = member_row(plan, member.name, members[member.name], verdict)
        row["fleet_lock"] = lock_match(lock, row, verdict)
        rows.append(row)
        if soak_only(plan):  # attached members: soaked only, nothing to roll back
            rows[-1].update(soak_row(members[member.name], verdict))
    if soak_only(plan):
        return {**_head(plan), "lock": lock, **soak_verdict(plan, done, rows)}
    rolled = fleet_rollbacks(members)
    code = fleet_exit(plan, done, rolled)
    outcome = OUTCOMES.get(code, ExitCode(code).name.lower())
    untouched = not_reached(plan, done)
    return {**_head(plan), "lock": lock, "outcome": outcome, "exit_code": int(code),
            "not_reached": untouched, "fleet_rollbacks": rolled,
            "claim": claim(plan, outcome, rows, untouched), "members": rows}


def _head(plan: FleetPlan) -> dict[str, Any]:
    return {"fleet": plan.name, "fleet_file": plan.path.name, "fleet_sha256": plan.sha256,
            "on_failure": plan.on_failure, "max_parallel": plan.max_parallel,
            "ended": round(time.time(), 3), "waves": [[m.name for m in w] for w in plan.waves]}


def refused_verdict(plan: FleetPlan, ledger: dict[str, Any], run_dir: Path, code: int,
                    reason: str) -> dict[str, Any]:
    """The fleet's review refused (a version the registry does not know, a stale lock, a
    denied version): no member started, every one left untouched."""
    verdict = build_fleet_verdict(plan, ledger, run_dir)
    outcome = ExitCode(code).name.lower()
    for row in verdict["members"]:
        row["what_happened"] = "not reached: the fleet's review refused; left untouched"
    verdict.update(outcome=outcome, exit_code=int(code), refusal=reason,
                   not_reached=[m.name for m in plan.members],
                   claim=f"Fleet {plan.name}: {outcome}, before any member started: {reason}")
    return verdict


def claim(plan: FleetPlan, outcome: str, rows: list[dict[str, Any]],
          untouched: list[str]) -> str:
    kept = [r["member"] for r in rows if r["fleet_word"] == KEEP]
    text = f"Fleet {plan.name}: {outcome}."
    if kept:
        text += f" On the candidate: {', '.join(kept)}."
    text += _failed_itself(rows)
    back = [r["member"] for r in rows if r["fleet_word"] == ROLL_BACK]
    if back:
        text += f" Rolled back: {', '.join(back)}."
    if untouched:
        text += f" Not reached, left untouched: {', '.join(untouched)}."
    return text


# A member that ended badly on its own, by how it ended: an interrupted member did not fail
FAILED_AS = {"interrupted": "Interrupted", "rolled_back": "Failed and rolled back",
             "rollback_failed": "Failed, rollback NOT proven"}


def _failed_itself(rows: list[dict[str, Any]]) -> str:
    groups: dict[str, list[str]] = {}
    for row in rows:
        if row.get("worker_died"):  # interrupted with its worker: say so, and if proven
            proven = "proven" if row.get("proven") else "NOT proven"
            groups.setdefault("Interrupted, its worker died", []).append(
                f"{row['member']} (on {row['version_after']}, {proven})")
        elif row["failed_itself"]:
            label = FAILED_AS.get(row["outcome"], f"Failed ({row['outcome']})")
            after = f" (on {row['version_after']})" if row.get("version_after") else ""
            groups.setdefault(label, []).append(f"{row['member']}{after}")
    return "".join(f" {label}: {', '.join(names)}." for label, names in groups.items())


def fleet_table(verdict: dict[str, Any]) -> str:
    lock = verdict.get("lock")
    lines = [f"# Fleet {verdict['fleet']}: {verdict['outcome']} (exit {verdict['exit_code']})",
             "", verdict["claim"], ""]
    if lock:
        lines += [f"One release lock for the fleet ({lock['file']}, sha256 "
                  f"{lock['sha256'][:12]}...): candidate {lock.get('candidate')}, known-good "
                  f"{lock.get('known_good')}.", ""]
    lines += ["| member | wave | before | after | outcome | triggers | watches | fleet lock "
              "| what happened |", "|---|---|---|---|---|---|---|---|---|"]
    for r in verdict["members"]:
        before, after = r["version_before"] or "unknown", r["version_after"] or "unknown"
        after = after if r["observed"] else f"{after} (untouched)"
        watches = ", ".join(f"{k} {v}" for k, v in r["watch"].items()) or "-"
        failed = f" (failed: {', '.join(r['failed_phases'])})" if r["failed_phases"] else ""
        lines.append(f"| {r['member']}{' (canary)' if r['canary'] else ''} | {r['wave']} | "
                     f"{before} | {after} | {r['outcome']}{failed} | "
                     f"{', '.join(r['triggers']) or '-'} | {watches} | "
                     f"{r.get('fleet_lock', '-')} | "
                     f"{r['what_happened'].replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def fleet_environment(verdict: dict[str, Any]) -> str:
    """The fleet's Allure environment panel: which release, over which members, decided how."""
    lock = verdict.get("lock") or {}
    rows: dict[str, Any] = {"fleet": f"{verdict['fleet']} ({verdict['fleet_file']} sha256:"
                                     f"{verdict['fleet_sha256']})",
                            "on_failure": verdict["on_failure"],
                            "outcome": f"{verdict['outcome']} (exit {verdict['exit_code']})"}
    for role in ROLES:
        if lock.get(role):
            rows[role] = lock[role]
    if lock:
        rows["release_lock"] = f"{lock['file']} sha256:{lock['sha256']}"
    rows["members"] = ", ".join(f"{r['member']} (wave {r['wave']}: {r['outcome']})"
                                for r in verdict["members"])
    return properties(rows)


def write_fleet_report(plan: FleetPlan, ledger: dict[str, Any], run_dir: Path,
                       refusal: tuple[int, str] | None = None) -> dict[str, Any]:
    verdict = build_fleet_verdict(plan, ledger, run_dir) if refusal is None \
        else refused_verdict(plan, ledger, run_dir, *refusal)
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
