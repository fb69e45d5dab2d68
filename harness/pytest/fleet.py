"""pytest wiring of a fleet release: `pytest scenarios --fleet FILE -n N`.

The controller (xdist's, or a plain session for --collect-only) loads the fleet file, checks
that its workers can hold what the fleet holds at once, owns the fleet's run dir and its
ledger, and at the end writes the one verdict. The suite collects one item per member
(scenarios/test_fleet.py, `test_member[NAME]`, in wave order, each in its own xdist_group so
that `--dist loadgroup` hands them out in that order); everything else of the suite is left to
the members' own runs. On its worker a member waits for its wave (harness.fleet.waves), then
runs its acceptance as a run of its own (harness.fleet.member), which holds after its verdict
(the phase table's `fleet_hold`) until the fleet says keep or roll back.

Inside a member's run (`--fleet-member NAME --fleet-ledger PATH`, given by its worker) the
suite runs as for one gateway, plus its hold.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from harness.common.errors import HarnessError, InputError
from harness.fleet.crash import already_started
from harness.fleet.ledger import RUNNING, Ledger
from harness.fleet.member import MemberRun, run_member
from harness.fleet.plan import FleetPlan, Member, load_fleet
from harness.fleet.release import fleet_lock_path, review_fleet
from harness.fleet.seat import FleetSeat
from harness.fleet.soak_only import check_soak_only, soak_only
from harness.fleet.waves import wait_to_start
from harness.procedure.settings import CommandLine, resolve_settings
from harness.procedure.table import FAMILIES
from harness.pytest.session import fail_input

FLEET_FILE = "test_fleet.py"  # the members' items
HOLD_FILE = "test_fleet_hold.py"  # a member's hold
WORKER_KEY = "harness_fleet"
# the options a member's run takes from the fleet's command line (its target is its own)
_PER_MEMBER = {"target", "target_host"}


@dataclass(frozen=True)
class FleetRun:
    plan: FleetPlan
    run_dir: Path
    ledger: Ledger
    forwarded: tuple[str, ...]  # options for every member's run
    root: Path
    suite: str

    def take_part(self, member: Member) -> MemberRun:
        """On the member's worker: its wave's gate, then its run (skipped when not reached)."""
        again = already_started(self.ledger, member.name)  # xdist reruns a crashed item
        if again:
            pytest.skip(again)
        if soak_only(self.plan):  # nothing changes, so nothing waits: only the order holds
            self.ledger.update(member.name, state=RUNNING)
        else:
            start, reason = wait_to_start(self.ledger, self.plan, member.name)
            if not start:
                pytest.skip(reason)
        return run_member(member, self.run_dir, self.ledger, self.root, self.suite,
                          list(self.forwarded))


FLEET = pytest.StashKey[FleetRun]()
REFUSAL = pytest.StashKey[tuple[int, str]]()  # the fleet's review refused: (exit code, why)
SEAT = pytest.StashKey[FleetSeat]()


def fleet_mode(config: pytest.Config) -> bool:
    return bool(config.getoption("fleet", None))


def configure(config: pytest.Config, run_id: str, run_dir: Path) -> None:
    """A fleet session, controller or worker (harness.pytest.plugin calls this instead of
    setting up a run of one gateway)."""
    from harness.pytest.session import own_run_dir

    path = Path(config.getoption("fleet"))
    try:
        plan = load_fleet(path)
    except HarnessError as exc:
        fail_input(config, exc)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # a worker: the controller's run dir and forwarded options
        # it has the fleet's command line too: -m and -k are the members' runs', not its own
        config.option.markexpr = ""
        config.option.keyword = ""
        shared = json.loads(workerinput[WORKER_KEY])
        config.stash[FLEET] = FleetRun(plan, Path(shared["run_dir"]),
                                       Ledger(Path(shared["ledger"])),
                                       tuple(shared["forwarded"]), config.rootpath,
                                       config.getini("harness_suite"))
        return
    collect_only = config.getoption("collectonly")
    if soak_only(plan):  # attached members: a soak of each, as for one attached target
        check_soak(config, plan)
    elif not collect_only:
        check_workers(config, plan)
    # every member's run takes the release from the fleet's one lock (review_release)
    forwarded = [*forwarded_options(config), "--fleet-lock", str(fleet_lock_path(run_dir))]
    # -m and -k select the members' tests, in their runs: every member's item runs here
    config.option.markexpr = ""
    config.option.keyword = ""
    if config.getoption("dist", "no") in ("no", "load"):
        config.option.dist = "loadgroup"  # each member its own group, in collection order
    own_run_dir(config, run_dir, run_id)
    ledger = Ledger(run_dir / "ledger.json") if collect_only \
        else Ledger.create(run_dir / "ledger.json", plan)
    fleet = FleetRun(plan, run_dir, ledger, tuple(forwarded), config.rootpath,
                     config.getini("harness_suite"))
    config.stash[FLEET] = fleet
    if not collect_only:
        from harness.pytest.fleet_crash import WorkerDeaths
        from harness.pytest.fleet_finish import FleetFinisher

        config.pluginmanager.register(FleetFinisher(config, fleet), "harness-fleet-finisher")
        config.pluginmanager.register(WorkerDeaths(fleet), "harness-fleet-worker-deaths")


def review_release(config: pytest.Config, fleet: FleetRun) -> None:
    """On the controller, before any member starts: the fleet's one review (its first
    member's settings with the fleet's command line), locked in the fleet's run dir. A
    refusal ends the release there, every member left untouched (the finisher says so)."""
    from harness.pytest.session import command_line, defaults, say

    first = fleet.plan.members[0]
    given = replace(command_line(config), target=str(first.profile.path),
                    target_host=first.profile.host)
    try:
        review_fleet(fleet.plan, resolve_settings(given, defaults(config)), fleet.run_dir,
                     lambda line: say(config, line))
    except HarnessError as exc:
        config.stash[REFUSAL] = (int(exc.exit_code), exc.message)
        sys.stderr.write(f"harness: error: {exc.message}\n")
        sys.stderr.flush()
        pytest.exit(exc.message, returncode=int(exc.exit_code))


def check_workers(config: pytest.Config, plan: FleetPlan) -> None:
    """Members hold after their verdict until the fleet decides: every member that may hold
    at once needs a worker of its own, or a member queued behind a holding one never starts."""
    need = max(len(w) for w in plan.waves) if plan.on_failure == "rollback-wave" \
        else len(plan.members)
    workers = config.getoption("numprocesses", None) or 0
    if int(workers) < need:
        fail_input(config, InputError(
            "-n", "", f"{plan.path.name} holds {need} member(s) at once (on_failure = "
            f"\"{plan.on_failure}\", waves of up to {max(len(w) for w in plan.waves)}): give "
            f"-n {need} or more (pytest-xdist workers), got {workers or 'none'}"))


def check_soak(config: pytest.Config, plan: FleetPlan) -> None:
    """A fleet of attached members is soaked only, and needs no worker per member (nothing
    holds): what -m selects and the options given must make a soak."""
    markexpr = config.option.markexpr or ""
    try:
        selected = selected_families(markexpr)
        given = [f"--{name.replace('_', '-')}" for name in CommandLine.__dataclass_fields__
                 if config.getoption(name) is not None]
        check_soak_only(plan, selected, given, markexpr)
    except HarnessError as exc:
        fail_input(config, exc)


def selected_families(markexpr: str) -> set[str]:
    """The suite's families that `-m` keeps (each test of the suite carries one family
    marker): pytest's own expression, evaluated as its deselection will."""
    from _pytest.mark.expression import Expression

    if not markexpr:
        return set(FAMILIES)
    try:
        expression = Expression.compile(markexpr)
    except SyntaxError as exc:  # what pytest's parser raises
        raise InputError("-m", "", f"not a marker expression: {exc.msg}") from None
    return {family for family in FAMILIES if expression.evaluate(_marked(family))}


def _marked(family: str) -> Callable[..., bool]:
    return lambda name, **_: name == family


def forwarded_options(config: pytest.Config) -> list[str]:
    """The fleet's command line as each member's run takes it: every harness option but the
    target, plus -m and -k."""
    out: list[str] = []
    for name in CommandLine.__dataclass_fields__:
        value = config.getoption(name)
        if name in _PER_MEMBER or value is None:
            continue
        out += [f"--{name.replace('_', '-')}", str(value)]
    for flag, value in (("-m", config.option.markexpr), ("-k", config.option.keyword)):
        if value:
            out += [flag, value]
    return out


def configure_member(config: pytest.Config) -> None:
    """Inside a member's own run: its seat (the hold reads it)."""
    name, ledger = config.getoption("fleet_member"), config.getoption("fleet_ledger")
    if not name:
        return
    if not ledger:
        fail_input(config, InputError("--fleet-ledger", "", "--fleet-member needs the ledger"))
    try:
        config.stash[SEAT] = FleetSeat.take(name, Path(ledger))
    except HarnessError as exc:
        fail_input(config, exc)
