"""Session fixtures of an acceptance run: settings, runtime, model lab, the deployment, the
procedure, and the fixture chain of its phases (`phase_fixtures`, from the phase table).

Registered by harness.pytest.plugin (`pytest_plugins`); imports nothing back from it.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import allure
import pytest

from harness.common.errors import GatewayUnreachableError, HarnessError
from harness.common.nonce import new_nonce
from harness.judge.assess import progress_line
from harness.modellab import ModelLab
from harness.procedure.gate import RestartGate, Terminal
from harness.procedure.interrupt import INTERRUPTION
from harness.procedure.phases import Procedure, one_reply
from harness.procedure.recovery import put_known_good_back
from harness.procedure.run import RunRecord, RunSettings, build_verdict
from harness.procedure.rundir import RUN_DIR_OWNER, RunDirOwner
from harness.procedure.table import BY_NAME, PASSED, PASSED_IF_SELECTED, PHASES, NotRun, Phase
from harness.pytest.fleet import SEAT
from harness.pytest.session import ATTACHED, RECORD, settings_for
from harness.reporting import redact
from harness.soak.driver import SoakRun, check
from harness.targets.gateway import Gateway
from harness.targets.runtime import NodeRuntime, Runtime


@pytest.fixture(scope="session")
def run_settings(pytestconfig: pytest.Config) -> RunSettings:
    return settings_for(pytestconfig)


@pytest.fixture(scope="session")
def run_record(pytestconfig: pytest.Config) -> RunRecord:
    return pytestconfig.stash[RECORD]


@pytest.fixture(scope="session")
def runtime(run_settings: RunSettings) -> Runtime:
    return Runtime(run_settings.cache_dir / "runtime")


@pytest.fixture(scope="session")
def node(runtime: Runtime, run_settings: RunSettings) -> NodeRuntime | None:
    """The known-good's Node.js (every other version gets its own: Safety.node_for); a PyPI
    target runs on the Python its virtualenvs were made with."""
    if run_settings.target.package.ecosystem != "npm":
        return None
    return runtime.node_for(run_settings.known_good, run_settings.target.package.node_major)


def deployment_dir(settings: RunSettings) -> Path:
    """Where an embedded run's deployment lives (its gateway, state and guard)."""
    return settings.cache_dir / "runs" / settings.run_id / "deployment"


@pytest.fixture(scope="session")
def model_lab(pytestconfig: pytest.Config, run_settings: RunSettings) -> Iterator[ModelLab]:
    # should the harness die, the run's guard keeps the lab for its proof, then stops it
    guard = deployment_dir(run_settings).resolve() / "guard" \
        if run_settings.target.provision != "attached" else None
    with ModelLab(log_path=run_settings.run_dir / "modellab.log", adoptable_by=guard) as lab:
        _owner(pytestconfig, lambda owner: owner.add_process("model lab", lab.pid))
        yield lab


def _owner(config: pytest.Config, note: Callable[[RunDirOwner], None]) -> None:
    """What this run started, in its run dir's run.json: a later run stops it by PID."""
    owner = config.stash.get(RUN_DIR_OWNER, None)
    if owner is not None:
        note(owner)


def _fatal(record: RunRecord, exc: HarnessError) -> None:
    record.error, record.error_code = exc.message, exc.exit_code
    sys.stderr.write(f"\nharness: error: {exc.message}\n")


@pytest.fixture(scope="session")
def deployment(request: pytest.FixtureRequest, run_settings: RunSettings) -> Gateway:
    """The gateway under test: embedded (the run's own) or attached (the host's, as found)."""
    if run_settings.target.provision == "attached":
        return request.getfixturevalue("attached_deployment")
    return request.getfixturevalue("embedded_deployment")


@pytest.fixture(scope="session")
def attached_deployment(pytestconfig: pytest.Config, run_settings: RunSettings,
                        run_record: RunRecord) -> Iterator[Gateway]:
    """A deployment that runs already, found by the plugin before any test: soaked, never
    stopped, and observed again at the end (did it stay as found?)."""
    found = pytestconfig.stash[ATTACHED]
    gateway = Gateway.attach(run_settings.target, found)
    redact.watch_gateway(gateway)  # its token, its config's keys, its unit's environment
    facts = run_record.attached_deployment()
    facts.before = found.found.as_dict()
    try:
        yield gateway
    finally:
        try:
            after = found.unit.observe()
            facts.after = after.as_dict()
            facts.changes = after.changes_since(found.found)
            run_record.final_state = {"serving": gateway.is_serving(), "version": after.version,
                                      "pid": after.main_pid, "attached": True}
        except HarnessError as exc:
            facts.after_error = exc.message
            run_record.final_state = {"serving": None, "attached": True, "error": exc.message}
        facts.left_as_found = facts.changes == []
        allure.attach(json.dumps(build_verdict(run_record, run_settings.lock()), indent=2,
                                 default=str),
                      name="verdict.json", attachment_type=allure.attachment_type.JSON)


@pytest.fixture(scope="session")
def embedded_deployment(pytestconfig: pytest.Config, run_settings: RunSettings,
                        run_record: RunRecord, runtime: Runtime, node: NodeRuntime,
                        model_lab: ModelLab) -> Iterator[Gateway]:
    """A known-good deployment this run provisions, upgrades, and removes."""
    s = run_settings
    assert s.known_good is not None
    folder = deployment_dir(s)
    _owner(pytestconfig, lambda owner: owner.add_deployment(folder.resolve()))
    installation = runtime.install(s.known_good, node, s.target.package.install_env)
    gateway = Gateway.embedded(s.target, runtime, node, folder, model_lab.base_url)
    redact.watch_gateway(gateway)  # its token, keys and credentials never reach the report
    gateway.activate(installation)
    try:
        gateway.start()
        ready = gateway.wait_ready()
        if not ready.ready:
            error = GatewayUnreachableError(
                f"known-good {s.known_good.label} never became ready: {ready.reason}; "
                f"last log line: {gateway.log_tail(1)!r}")
            _fatal(run_record, error)
            raise error
        # A deployment in use has a bootstrapped workspace; a fresh one does not, and OpenClaw
        # (3.28 and 4.1 alike) races on creating it under concurrent first requests. One real
        # reply, in sequence, makes this deployment like one that has been used.
        nonce = new_nonce()
        outcome = one_reply(gateway, s.target.api.health_agent, f"Warm-up: quote {nonce}.")
        verdict, reason = check(outcome, (nonce,))
        if verdict != "good":
            error = GatewayUnreachableError(
                f"known-good {s.known_good.label} is up but did not reply correctly: {reason}")
            _fatal(run_record, error)
            raise error
        # from now on every stop is guarded, until the run proves a version
        gateway.keep_known_good(installation, run=_guard_run(s, run_record, model_lab))
        releases = {"candidate": s.candidate, "known_good": s.known_good}
        run_record.on_proven = lambda which: gateway.proven(which, releases[which].version)
        interruption = pytestconfig.stash.get(INTERRUPTION, None)
        if interruption is not None and gateway.guard is not None:
            gateway.guard.on_lost = interruption.lease_lost
        yield gateway
    finally:
        if gateway.guard is not None and not gateway.guard.owns():
            run_record.guard.lease_lost = {"lease": gateway.guard.lost,
                                              "guard": gateway.taken_over()}
        run_record.final_state = final_state(gateway, run_settings, run_record)
        run_record.guard.log = gateway.shutdown()
        trips = [e for e in run_record.guard.log if e.get("what") == "tripped"]
        if trips:  # the guard took over while this run lived (its steps are transitions)
            run_record.guard.trips = [e["details"] for e in trips]
        allure.attach(json.dumps(build_verdict(run_record, s.lock()), indent=2, default=str),
                      name="verdict.json", attachment_type=allure.attachment_type.JSON)


def _guard_run(settings: RunSettings, record: RunRecord, lab: ModelLab) -> dict[str, Any]:
    """What the guard needs to end the run itself should the harness die: where its records
    go, the versions, the alert hook, and (embedded) the model lab to stop."""
    from harness.common.commands import start_time
    from harness.targets.driver import driver_class

    alert = settings.target.alert
    return {"run_id": settings.run_id, "run_dir": str(settings.run_dir),
            "started": round(record.started, 3), "target": settings.target.name,
            "known_good": settings.known_good.version if settings.known_good else None,
            "candidate": settings.candidate.version if settings.candidate else None,
            "embedded": driver_class(settings.target.provision,
                                     settings.target.driver).ends_with_the_run,
            "alert": {"command": list(alert.command or []), "webhook": alert.webhook},
            "model_lab": {"pid": lab.pid, "start_time": start_time(lab.pid)
                          if lab.pid else None}}


def final_state(gateway: Gateway, settings: RunSettings, record: RunRecord) -> dict[str, Any]:
    """What serves at the end, as observed, and whether this run proved it. An embedded
    deployment belongs to its run: it is observed here, then stopped with the run."""
    version = gateway.active_version()
    proven = record.proven() if record.changed else "known_good"  # untouched: as it served
    proven_version = {"candidate": settings.candidate, "known_good": settings.known_good
                      }.get(proven or "")
    serving = gateway.is_serving()
    return {"serving": serving, "version": version, "pid": gateway.pid,
            "proven": bool(serving and proven_version and proven_version.version == version),
            "proven_version": proven_version.version if proven_version else None,
            "after_run": "then stopped with the run (an embedded deployment is the run's own)"}


@pytest.fixture(scope="session")
def procedure(request: pytest.FixtureRequest, pytestconfig: pytest.Config,
              run_settings: RunSettings, run_record: RunRecord, runtime: Runtime,
              deployment: Gateway) -> Iterator[Procedure]:
    # an attached deployment is only soaked: nothing is installed, so no Node.js is needed
    node = None if deployment.attached else request.getfixturevalue("node")
    terminal = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")

    def progress(run: SoakRun, elapsed: float) -> None:
        if terminal is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            terminal.write_line("  " + progress_line(run, elapsed))

    def say(line: str) -> None:
        if terminal is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            terminal.write_line(f"  {line}")

    def write(text: str) -> None:
        if terminal is not None:
            terminal.write(text, flush=True)

    @contextmanager
    def suspend() -> Iterator[None]:
        """pytest's capture out of the way, stdin included (its own helper keeps stdin)."""
        if capture is None:
            yield
            return
        capture.suspend_global_capture(in_=True)
        try:
            yield
        finally:
            capture.resume_global_capture()

    gate = RestartGate(run_settings.restart_gate, run_settings.run_dir,
                       run_settings.gate_timeout_s, say=say,
                       terminal=Terminal.detect(write, suspend)
                       if run_settings.restart_gate == "manual" else None)
    procedure = Procedure(run_settings, run_record, runtime, node, deployment, progress, gate)
    procedure.fleet_seat = pytestconfig.stash.get(SEAT, None)
    yield procedure
    interruption = pytestconfig.stash.get(INTERRUPTION, None)
    if interruption is not None and interruption.interrupted and not deployment.attached \
            and run_record.unproven_change():
        transitions = pytestconfig.pluginmanager.get_plugin("harness-transitions")
        emit = transitions.emit if transitions is not None else None
        if deployment.guard is not None and not deployment.guard.owns():
            taken_over(run_record, deployment, emit)  # the guard acts, this harness does not
        else:
            put_known_good_back(procedure, interruption, emit)
            if run_record.proven() == "known_good":
                deployment.proven("known_good", run_settings.known_good.version)


def taken_over(record: RunRecord, gateway: Gateway, emit: Callable[..., Any] | None) -> None:
    """This harness stalled past its lease and the guard took the gateway over: it does not
    act; it waits for the guard's result and reports it as the interruption's restore."""
    result = gateway.taken_over() or {}
    record.after_interruption.guard = result
    if emit is not None:
        emit("interrupted", "taken_over", summary="the lease was lost: the guard acted, "
             f"this harness did not ({result.get('summary', 'no result from the guard')})")


# -- the phases' fixture chain, from the phase table ---------------------------------------

def phase_fixtures(phases: tuple[Phase, ...] = PHASES) -> dict[str, Any]:
    """One session fixture per phase with a step (harness.procedure.table), named as the
    table says and waiting for its `after`: a suite's conftest.py puts them in its globals."""
    return {phase.fixture_name: phase_fixture(phase) for phase in phases
            if phase.step is not None}


def phase_fixture(phase: Phase) -> Any:
    """The fixture of one phase: it runs the phase once and returns its result. A phase whose
    predecessor failed (when it needs it passed) is skipped with the reason, and so is one
    whose step has nothing to do (NotRun)."""
    static = phase.after is not None and phase.needs != PASSED_IF_SELECTED

    def run_phase(request: pytest.FixtureRequest, procedure: Procedure, **before: Any) -> Any:
        previous = before.get(phase.after) if static else None
        if phase.needs == PASSED_IF_SELECTED and _selected(request, phase.after):
            previous = request.getfixturevalue(phase.after)
        if phase.needs in (PASSED, PASSED_IF_SELECTED) and previous is not None \
                and not previous.ok:
            pytest.skip(f"not run: {previous.name} failed ({previous.summary})")
        try:
            return phase.step(procedure, previous)
        except NotRun as why:
            pytest.skip(str(why))

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(name, kind) for name in ("request", "procedure")]
    if static:  # pytest reads what a fixture needs from its signature
        params.append(inspect.Parameter(phase.after, inspect.Parameter.KEYWORD_ONLY))
    run_phase.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run_phase.__name__ = run_phase.__qualname__ = phase.fixture_name
    run_phase.__doc__ = f"The {phase.family} phase {phase.name}: its step's result."
    return pytest.fixture(scope="session", name=phase.fixture_name)(run_phase)


def _selected(request: pytest.FixtureRequest, name: str | None) -> bool:
    """Whether the session runs tests of the family of phase `name` (a soak after an upgrade
    needs a healthy candidate; alone, `-m soak`, it soaks what runs)."""
    family = BY_NAME[name].family if name in BY_NAME else None
    return any(item.get_closest_marker(family) for item in request.session.items) \
        if family else False
