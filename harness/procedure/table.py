"""The acceptance procedure as one table: every phase of the suite, in order.

Each row says what the harness needs to know about one phase: its family (the marker of its
test), its time limit, whether it changes the host, which deployments it applies to (the
target's `provision`), and what it waits for. From this table, and nowhere else, come the
fixture chain of the suite (harness.pytest.fixtures.phase_fixtures, used by
scenarios/conftest.py), each test's time limit, the tests only an attached deployment runs, and
the families in procedure order.

Adding a phase is one row plus its step function (below, next to its siblings; the work itself
is a method of harness.procedure.phases.Procedure) and its test `test_<name>` in scenarios/
under the family's marker. A row without a step is a check: a test over the result of the
fixture it names in `after` (the soak's checks read the one soak run).

This module imports nothing of the harness at run time: the run record and the transitions
read their families from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.procedure.phases import PhaseResult, Procedure
    from harness.procedure.run import RunSettings
    from harness.soak.driver import SoakRun

EMBEDDED, ATTACHED = "embedded", "attached"  # target.provision
BOTH = frozenset({EMBEDDED, ATTACHED})
ONLY_EMBEDDED, ONLY_ATTACHED = frozenset({EMBEDDED}), frozenset({ATTACHED})

# what a phase needs of the one it waits for (`after`)
PASSED = "passed"  # it ran and passed; else this phase is skipped, saying why
RAN = "ran"  # it ran, whatever its outcome (a failed fresh backup never keeps a rollback back)
PASSED_IF_SELECTED = "passed_if_selected"  # as PASSED when its family runs too, else not run

# time limits that follow a setting rather than a fixed number of seconds
GATE, BASELINE, SOAK, ROLLBACK = "gate", "baseline", "soak", "rollback"
SLACK_S = 300  # beyond a window (and its drain) before a test counts as hung


class NotRun(Exception):  # noqa: N818 - a reason, not an error: the phase is skipped with it
    """A step that has nothing to do in this run (the suite reports it as skipped)."""


Step = Callable[["Procedure", Any], Any]


@dataclass(frozen=True)
class Phase:
    name: str  # its test is test_<name>
    family: str  # upgrade | soak | fleet | rollback: its test's marker
    timeout: float | str | None  # seconds, or the setting it follows: gate, baseline, ...
    changes_host: bool  # stops, switches or starts the gateway (only after a restart gate)
    applies_to: frozenset[str]  # the provisions it runs for
    after: str | None = None  # the fixture it waits for
    needs: str = PASSED  # what `after` must have done
    step: Step | None = None  # runs the phase; None: a check over `after`'s result
    fixture: str | None = None  # its fixture (default: its name)

    @property
    def fixture_name(self) -> str:
        return self.fixture or self.name


# -- steps: one per phase with a fixture; `previous` is what its `after` returned -----------

def preflight(procedure: Procedure, previous: Any) -> PhaseResult:
    return procedure.preflight()


def backup(procedure: Procedure, previous: PhaseResult) -> PhaseResult:
    return procedure.backup()


def baseline(procedure: Procedure, previous: PhaseResult) -> PhaseResult:
    return procedure.baseline()


def install(procedure: Procedure, previous: PhaseResult) -> PhaseResult:
    return procedure.install()


def restart_gate(procedure: Procedure, previous: PhaseResult) -> PhaseResult:
    return procedure.restart_gate("stop the known-good and start the candidate")


def stop(procedure: Procedure, previous: PhaseResult) -> PhaseResult:
    return procedure.stop()


def start(procedure: Procedure, previous: PhaseResult) -> PhaseResult:
    return procedure.start()


def health(procedure: Procedure, previous: PhaseResult) -> PhaseResult:
    return procedure.health()


def soak(procedure: Procedure, previous: PhaseResult | None) -> SoakRun:
    # after an upgrade the soak needs a healthy candidate; alone (`-m soak`) it soaks what runs
    return procedure.soak("soak", procedure.settings.soak)


def fleet_hold(procedure: Procedure, previous: None) -> PhaseResult:
    # a fleet member (harness.fleet.seat, given to its procedure by the pytest layer) holds
    # after its own verdict until the fleet says keep or roll back
    if procedure.fleet_seat is None:
        raise NotRun("not a member of a fleet")
    return procedure.fleet_hold()


def rollback_backup(procedure: Procedure, previous: None) -> PhaseResult:
    return procedure.rollback_backup()


def rollback_prepare(procedure: Procedure, previous: PhaseResult) -> PhaseResult:
    # a failed fresh backup is reported, but never keeps service from being restored
    return procedure.rollback_prepare()


def rollback_restart_gate(procedure: Procedure, previous: PhaseResult) -> PhaseResult:
    return procedure.restart_gate("stop the candidate and start the known-good version")


def rollback_restore(procedure: Procedure, previous: PhaseResult) -> PhaseResult:
    return procedure.rollback_restore()


def rollback_start(procedure: Procedure, previous: PhaseResult) -> PhaseResult:
    return procedure.start()


def rollback_smoke(procedure: Procedure, previous: PhaseResult) -> SoakRun:
    return procedure.smoke()


def rollback_watch(procedure: Procedure, previous: SoakRun) -> SoakRun:
    return procedure.soak("watch", procedure.settings.watch)


def rollback_late_watch(procedure: Procedure, previous: SoakRun) -> SoakRun:
    from harness.judge import assess

    window = procedure.settings.late_watch
    if window is None:
        raise NotRun("no later watch declared (policy [late_watch], or --late-watch 0)")
    early = assess.watch(previous)
    if not early.ok:  # the rollback already did not prove healthy: alert now, not later
        raise NotRun(f"not run: the early watch failed ({early.summary}); a person must look "
                     "now, not after another watch")
    return procedure.soak("late_watch", window)


# -- the table ------------------------------------------------------------------------------
# To add a phase: one row here (in procedure order), its step above, its test in scenarios/.
U, S, F, R = "upgrade", "soak", "fleet", "rollback"
PHASES: tuple[Phase, ...] = (
    #     name                     family timeout   changes  applies to     after
    Phase("preflight",             U,     600,      False,   ONLY_EMBEDDED, None,
          step=preflight),
    Phase("backup",                U,     300,      False,   ONLY_EMBEDDED, "preflight",
          step=backup),
    Phase("baseline",              U,     BASELINE, False,   ONLY_EMBEDDED, "backup",
          step=baseline),
    Phase("install",               U,     1800,     False,   ONLY_EMBEDDED, "baseline",
          step=install),
    Phase("restart_gate",          U,     GATE,     False,   ONLY_EMBEDDED, "install",
          step=restart_gate),
    Phase("stop",                  U,     120,      True,    ONLY_EMBEDDED, "restart_gate",
          step=stop),
    Phase("start",                 U,     300,      True,    ONLY_EMBEDDED, "stop",
          step=start),
    Phase("health",                U,     300,      False,   ONLY_EMBEDDED, "start",
          step=health),
    Phase("soak",                  S,     SOAK,     False,   BOTH,          "health",
          needs=PASSED_IF_SELECTED, step=soak, fixture="soak_run"),
    Phase("soak_policy",           S,     SOAK,     False,   BOTH,          "soak_run", RAN),
    Phase("soak_log_source",       S,     SOAK,     False,   BOTH,          "soak_run", RAN),
    Phase("soak_left_as_found",    S,     SOAK,     False,   ONLY_ATTACHED, "soak_run", RAN),
    # a fleet member only (its test is collected with --fleet-member): no limit of its own, it
    # ends with the fleet's word or with its xdist worker
    Phase("fleet_hold",            F,     None,     False,   ONLY_EMBEDDED, None,
          step=fleet_hold),
    # rollback_needed (scenarios/conftest.py) skips the whole rollback when nothing is to undo
    Phase("rollback_backup",       R,     ROLLBACK, False,   ONLY_EMBEDDED, "rollback_needed",
          RAN, step=rollback_backup),
    Phase("rollback_prepare",      R,     ROLLBACK, False,   ONLY_EMBEDDED, "rollback_backup",
          RAN, step=rollback_prepare),
    Phase("rollback_restart_gate", R,     ROLLBACK, False,   ONLY_EMBEDDED, "rollback_prepare",
          step=rollback_restart_gate),
    Phase("rollback_restore",      R,     ROLLBACK, True,    ONLY_EMBEDDED,
          "rollback_restart_gate", step=rollback_restore),
    Phase("rollback_start",        R,     ROLLBACK, True,    ONLY_EMBEDDED, "rollback_restore",
          step=rollback_start),
    Phase("rollback_smoke",        R,     ROLLBACK, False,   ONLY_EMBEDDED, "rollback_start",
          step=rollback_smoke),
    Phase("rollback_watch",        R,     ROLLBACK, False,   ONLY_EMBEDDED, "rollback_smoke",
          RAN, step=rollback_watch),
    Phase("rollback_late_watch",   R,     ROLLBACK, False,   ONLY_EMBEDDED, "rollback_watch",
          RAN, step=rollback_late_watch),
)

# -- derived --------------------------------------------------------------------------------
BY_NAME = {phase.name: phase for phase in PHASES}
BY_FIXTURE = {phase.fixture_name: phase for phase in PHASES if phase.step is not None}
FAMILIES = tuple(dict.fromkeys(phase.family for phase in PHASES))  # in procedure order
# fixed limits in seconds; the others follow the run's windows and gate (time_limit)
PHASE_TIMEOUTS = {phase.name: phase.timeout for phase in PHASES
                  if isinstance(phase.timeout, int | float)}
# tests that only mean something against an attached deployment
ATTACHED_ONLY = tuple(f"test_{phase.name}" for phase in PHASES
                      if phase.applies_to == ONLY_ATTACHED)


def phase_of(test_name: str) -> Phase | None:
    """The row of a test (`test_soak[reply-plain]` is the soak's)."""
    return BY_NAME.get(test_name.split("[")[0].removeprefix("test_"))


def applies(test_name: str, family: str, provision: str) -> bool:
    """Whether a test runs for a deployment so provisioned (a test without a row: as any
    phase of its family does)."""
    phase = phase_of(test_name)
    if phase is not None:
        return provision in phase.applies_to
    return any(provision in p.applies_to for p in PHASES if p.family == family)


def time_limit(test_name: str, family: str, settings: RunSettings) -> float | None:
    """A test's time limit in seconds (None: none), from its row, else from its family's
    one rule when all the family's phases share it (a soak check follows the soak's window)."""
    phase = phase_of(test_name)
    if phase is not None:
        rule = phase.timeout
    else:
        rules = {p.timeout for p in PHASES if p.family == family}
        rule = rules.pop() if len(rules) == 1 else None
    if rule is None or isinstance(rule, int | float):
        return rule
    return _window_limit(rule, settings)


def _window_limit(rule: str, settings: RunSettings) -> float | None:
    if rule == GATE:  # a manual gate may wait its whole timeout for a person
        return settings.gate_timeout_s + SLACK_S
    if rule == BASELINE:
        base = settings.baseline
        return base.window_s + base.drain_s + SLACK_S if base is not None else None
    if rule == SOAK:
        return settings.soak.window_s + settings.soak.drain_s + SLACK_S
    if rule == ROLLBACK:  # its gate, a reinstall at worst, and the longer of its watches
        late = settings.late_watch
        longest = max(settings.watch.window_s + settings.watch.drain_s,
                      late.delay_s + late.window_s + late.drain_s if late else 0.0)
        return max(1800.0, longest + SLACK_S) + settings.gate_timeout_s
    raise ValueError(f"no time limit rule {rule!r}")
