"""A fleet of attached gateways, soaked only: `pytest scenarios -m soak --fleet FILE -n N`.

Attached members run already and the harness changes nothing on them, so there is nothing to
roll out and nothing to roll back: every member is soaked (at once, as many as there are
workers; the waves only give the order in which xdist hands them out), judged by its own run
and left as found; no member waits for another, none holds for the fleet's word, and a member
whose soak fails fails alone (the others are still soaked and judged).

The rules are those of one attached target, checked once for the fleet before any member
starts: attached members are only soaked (an upgrade or rollback test selected, or a version
option given, is exit 20 naming the fleet file, the member and the option), and a fleet is
either all attached or all embedded (harness.fleet.plan). The fleet's exit code is a soak's:
0 every member passed; 13 a member's soak failed; 22 a member's gateway did not run or answer;
17 a member's run did not end with a verdict of the harness (the worst of these wins).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from harness.common.errors import ExitCode, InputError
from harness.fleet.plan import FleetPlan
from harness.procedure.table import ATTACHED, FAMILIES, PHASES

# options that ask for an upgrade: refused for one attached target as for a fleet of them
VERSION_OPTIONS = ("--known-good", "--candidate", "--candidate-config")
# the worst first, as a person must act on it: no verdict, no gateway, a failed soak
_SEVERITY = (ExitCode.INTERRUPTED, ExitCode.GATEWAY_UNREACHABLE, ExitCode.SOAK_FAILED)
OUTCOMES = {ExitCode.PASSED: "passed", ExitCode.SOAK_FAILED: "soak_failed",
            ExitCode.GATEWAY_UNREACHABLE: "unreachable", ExitCode.INTERRUPTED: "interrupted"}


def soak_only(plan: FleetPlan) -> bool:
    """A fleet of attached members is only ever soaked (the plan refuses a mixed one)."""
    return plan.provision == ATTACHED


def attached_families() -> set[str]:
    """The families with a phase that applies to an attached deployment (the soak's)."""
    return {p.family for p in PHASES if ATTACHED in p.applies_to}


def check_soak_only(plan: FleetPlan, selected: Iterable[str], options: Iterable[str],
                    markexpr: str) -> None:
    """Before any member starts: the families the fleet's `-m` keeps (`selected`) and the
    options it was given must make a soak, as for one attached target."""
    member = plan.members[0]
    where = f"{member.key}.target"
    what = (f"its members are attached deployments ({member.profile.path.name}: "
            f"target.provision = \"attached\"), soaked as they run and never upgraded")
    given = [o for o in options if o in VERSION_OPTIONS]
    if given:
        raise InputError(str(plan.path), where, f"{' and '.join(given)} given, but {what}; "
                         "drop the option, or give the members embedded profiles to upgrade")
    chosen = set(selected)
    refused = [f for f in FAMILIES if f in chosen and f not in attached_families()]
    if refused or not chosen & attached_families():
        asked = f"-m {markexpr!r}" if markexpr else "without -m soak the run"
        asked += (f" selects {', '.join(refused)} tests (an upgrade's: they install, stop and "
                  "restart)") if refused else " selects no soak test"
        raise InputError(str(plan.path), where, f"{asked}, but {what}: run `pytest scenarios "
                         f"-m soak --fleet {plan.path.name} -n N`")


def soak_exit(plan: FleetPlan, results: Mapping[str, int]) -> ExitCode:
    """The fleet's exit code from its members' (a member absent has not ended: 17)."""
    if any(m.name not in results for m in plan.members):
        return ExitCode.INTERRUPTED
    codes = {ExitCode(results[m.name]) for m in plan.members}
    for worst in _SEVERITY:
        if worst in codes:
            return worst
    others = sorted(c for c in codes if c != ExitCode.PASSED)
    return others[0] if others else ExitCode.PASSED


def soak_row(entry: dict[str, Any], verdict: dict[str, Any]) -> dict[str, Any]:
    """What a soak-only member's row says beyond the common columns: its version as found
    and as left (read from what runs), and whether it was left as found."""
    attached = verdict.get("attached") or {}
    before = (attached.get("before") or {}).get("version")
    after = (attached.get("after") or {}).get("version", before)
    ran = entry["exit"] is not None and bool(verdict)
    return {"version_before": before, "version_after": after if ran else before,
            "observed": ran, "left_as_found": attached.get("left_as_found"),
            "changes": attached.get("changes"),
            "outcome": verdict.get("outcome") or ("no_verdict" if entry["exit"] is not None
                                                  else "not_started"),
            "fleet_word": None, "failed_itself": entry["exit"] != ExitCode.PASSED,
            "what_happened": soak_happened(entry, verdict)}


def soak_happened(entry: dict[str, Any], verdict: dict[str, Any]) -> str:
    attached = verdict.get("attached") or {}
    if entry["exit"] is None:
        return entry["reason"] or "its run never ended: not known"
    if not verdict:
        return f"ended without a verdict (exit {entry['exit']}); see its run dir"
    if not verdict.get("phases"):  # stopped before its soak: its gateway did not answer, say
        return f"not soaked (exit {entry['exit']}): {verdict.get('claim') or 'see its run dir'}"
    soaked = "soaked, passed" if entry["exit"] == ExitCode.PASSED else \
        f"soaked, {verdict.get('outcome') or 'failed'}"
    if attached.get("left_as_found"):
        left = "left as found (nothing installed, stopped, restarted or rolled back)"
    elif attached.get("changes"):
        left = "NOT as found: " + "; ".join(attached["changes"])
    else:
        left = "its state after the soak was not read"
    return f"{soaked}; {left}"


def soak_verdict(plan: FleetPlan, results: Mapping[str, int], rows: list[dict[str, Any]]
                 ) -> dict[str, Any]:
    """The fleet verdict's own fields for a soak-only release (its rows made by soak_row)."""
    code = soak_exit(plan, results)
    outcome = OUTCOMES.get(code, code.name.lower())
    return {"soak_only": True, "outcome": outcome, "exit_code": int(code), "not_reached": [],
            "fleet_rollbacks": {}, "claim": soak_claim(plan, outcome, rows), "members": rows}


def soak_claim(plan: FleetPlan, outcome: str, rows: list[dict[str, Any]]) -> str:
    passed = [r["member"] for r in rows if not r["failed_itself"]]
    failed = [f"{r['member']} ({r['outcome']})" for r in rows if r["failed_itself"]]
    text = f"Fleet {plan.name}, soaked only: {outcome}."
    if passed:
        text += f" Passed: {', '.join(passed)}."
    if failed:
        text += f" Failed: {', '.join(failed)}."
    moved = [r["member"] for r in rows if r["left_as_found"] is False]
    text += " Nothing was installed, stopped, restarted or rolled back"
    text += f"; not as found: {', '.join(moved)}." if moved else "."
    return text
