"""pytest wiring: options, settings resolved once, ordering, fixtures, verdict and exit code.

The acceptance suite's tests carry one of the markers `upgrade`, `soak` or `rollback`. When a
session collects such tests, this plugin loads and validates the target, policy and scenario
files and resolves both versions in the registry, before any test runs; a bad input ends the
session with one line and its own exit code. Otherwise (the harness's own tests) it stays out
of the way.

An attached target (a deployment that runs already) resolves no versions: once collection has
settled which tests run, an upgrade or rollback test among them is refused (exit 20), and the
deployment is found and probed (harness.targets.attached.attach; exit 22 when it does not run
or answer) before any test starts.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import allure
import pytest

from harness.common.errors import ExitCode, HarnessError, InputError
from harness.common.schema import option_seconds
from harness.procedure.gate import MODES
from harness.procedure.inputs import load_inputs, option_version
from harness.procedure.interrupt import INTERRUPTION, Interruption
from harness.procedure.lock import lock_path
from harness.procedure.lock import take as take_lock
from harness.procedure.posture import POSTURES
from harness.procedure.run import (
    FAMILIES,
    ROLLBACK_PATHS,
    PhaseOutcome,
    RunRecord,
    RunSettings,
    allure_environment,
    posture_line,
    with_windows,
    write_verdict,
)
from harness.procedure.rundir import RUN_DIR_OWNER, RunDirOwner
from harness.procedure.transitions import Transitions
from harness.targets.attached import Attached, attach
from harness.targets.config import load_json_patch
from harness.targets.packages import ecosystem_for
from harness.targets.profile import TargetProfile
from harness.targets.registry import Release
from harness.targets.runtime import Runtime

pytest_plugins = ["harness.pytest.reports"]  # redaction, categories, summary.md

SETTINGS = pytest.StashKey[RunSettings]()
RECORD = pytest.StashKey[RunRecord]()
RUN_DIR = pytest.StashKey[tuple[str, Path]]()
ATTACHED = pytest.StashKey[Attached]()
# tests that only mean something against an attached deployment
ATTACHED_ONLY = ("test_soak_left_as_found",)

# Per-phase time limits (pytest-timeout); soak and watch get theirs from their windows.
PHASE_TIMEOUTS = {"preflight": 600, "backup": 300, "stop": 120, "install": 1800,
                  "restart_gate": 900, "start": 300, "health": 300}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "gateway release acceptance")
    group.addoption("--target", help="target profile TOML (default: ini harness_target, "
                    "scenarios/targets/local-openclaw.toml)")
    group.addoption("--policy", help="rollback policy TOML (default: ini harness_policy, "
                    "scenarios/policy.toml)")
    group.addoption("--scenarios",
                    help="soak scenarios: a folder of TOML files, or one file "
                         "(default: ini harness_scenarios, scenarios/soak)")
    group.addoption("--known-good", help="known-good version (default: from the target file)")
    group.addoption("--candidate", help="candidate version (default: from the target file)")
    group.addoption("--candidate-config",
                    help="JSON patch merged into the gateway config with the candidate")
    group.addoption("--soak", help="soak window in seconds, or with a unit: 90s, 10m, 1h "
                    "(default: policy)")
    group.addoption("--watch", help="post-rollback watch window in seconds (default: policy)")
    group.addoption("--late-watch",
                    help="the later post-rollback watch's window in seconds (0: none; "
                         "default: policy [late_watch])")
    group.addoption("--late-watch-delay",
                    help="seconds between the early watch's end and the later watch's "
                         "traffic, the gateway's log watched and no traffic sent (default: "
                         "policy [late_watch] delay_s)")
    group.addoption("--baseline",
                    help="soak the known-good for this many seconds before the upgrade and "
                         "compare (0: no baseline; default: policy [baseline])")
    group.addoption("--inconclusive", choices=("fail", "pass", "ask"),
                    help="what an inconclusive soak means: fail (fail closed), pass (accept), "
                         "ask (a person decides at the manual gate; no answer fails closed); "
                         "default: the policy's on_inconclusive, itself fail")
    group.addoption("--run-dir", help="where this run's outputs go (default: reports/<run-id>)")
    group.addoption("--resume-cleanup", action="store_true", default=False,
                    help="the --run-dir holds a run that died without a verdict: stop what it "
                    "left (by the PIDs it recorded), move its files aside and start fresh "
                    "(default: refuse)")
    group.addoption("--restart-gate", default="auto", choices=MODES,
                    help="who approves each restart: auto (CI: the run itself) or manual (a "
                    "person: a prompt on a terminal, else `harness approve RUN_DIR`)")
    group.addoption("--gate-timeout",
                    help="seconds a manual restart gate waits for a decision (default 600); "
                    "without one nothing is interrupted")
    group.addoption("--rollback-path", default="prefix", choices=ROLLBACK_PATHS,
                    help="how a rollback gets the known-good back: prefix (its kept prefix, no "
                    "download; a reinstall when it is gone or damaged) or updater (the "
                    "target's own updater, run by the candidate, its result and its verifier's "
                    "warnings judged against the package)")
    group.addoption("--accept-backup-posture", choices=POSTURES[1:],
                    help="go on with a backup below full (config-only, or none), decided up "
                    "front; otherwise such a run stops before any change")
    group.addoption("--target-host",
                    help="where the gateway's commands run: local://, docker://CONTAINER or "
                         "ssh://[USER@]HOST[:PORT] (default: the target file's target.host)")
    for name, default in (("harness_target", "scenarios/targets/local-openclaw.toml"),
                          ("harness_policy", "scenarios/policy.toml"),
                          ("harness_scenarios", "scenarios/soak"),
                          ("harness_cache", ".cache"), ("harness_suite", "scenarios")):
        parser.addini(name, f"default for {name}", default=default)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for family in FAMILIES:
        config.addinivalue_line("markers", f"{family}: acceptance tests of the {family} family")
    config.stash[RECORD] = RunRecord()
    run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    run_dir_opt = config.getoption("run_dir")
    run_dir = Path(run_dir_opt) if run_dir_opt else config.rootpath / "reports" / run_id
    config.stash[RUN_DIR] = (run_id, run_dir.resolve())
    if _runs_the_suite(config):  # the run dir is this run's alone, for its whole life
        _own_run_dir(config, run_dir.resolve(), run_id)
    if _runs_the_suite(config):  # Ctrl-C, SIGTERM and a phase's time limit: `interrupted`
        interruption = Interruption()
        interruption.install()
        config.stash[INTERRUPTION] = interruption
        config.pluginmanager.register(interruption, "harness-interruption")
    if _runs_the_suite(config):  # every state transition as JSON lines, journal and alerts
        config.pluginmanager.register(
            Transitions(run_id, run_dir.resolve(), record=config.stash[RECORD]),
            "harness-transitions")
    # allure-pytest reads its folder in its own pytest_configure, which runs after this one
    if _runs_the_suite(config) and getattr(config.option, "allure_report_dir", None) is None:
        config.option.allure_report_dir = str(run_dir / "allure-results")
    # and so does the JUnit XML plugin: the run's JUnit XML beside its verdict
    if _runs_the_suite(config) and getattr(config.option, "xmlpath", None) is None:
        config.option.xmlpath = str(run_dir / "junit.xml")


def _own_run_dir(config: pytest.Config, run_dir: Path, run_id: str) -> None:
    try:
        owner, cleanup = RunDirOwner.take(run_dir, run_id, config.getoption("resume_cleanup"))
    except HarnessError as exc:
        _fail_input(config, exc)
        raise  # unreachable: pytest.exit raised
    config.stash[RUN_DIR_OWNER] = owner
    if cleanup is not None:
        config.stash[RECORD].resumed_cleanup = cleanup
        stopped = ", ".join(f"{p['role']} PID {p['pid']} ({p['how']})"
                            for p in cleanup["stopped"]) or "nothing was still running"
        sys.stderr.write(f"harness: run {cleanup['run_id']} in {run_dir} had died without a "
                         f"verdict: stopped {stopped}; its files moved to "
                         f"{cleanup['moved_to']}; this run starts fresh as {run_id}\n")


def _runs_the_suite(config: pytest.Config) -> bool:
    suite = (config.rootpath / config.getini("harness_suite")).resolve()
    for arg in config.args or [str(config.rootpath)]:
        path = Path(arg.split("::")[0])
        path = (path if path.is_absolute() else Path(config.invocation_params.dir) / path)
        path = path.resolve()
        if path == suite or suite in path.parents:
            return True
    return False


def _path(config: pytest.Config, option: str | None, ini: str) -> Path:
    value = (config.getoption(option) if option else None) or config.getini(ini)
    path = Path(value)
    return path if path.is_absolute() else config.rootpath / path


def _family(item: pytest.Item) -> str | None:
    for family in FAMILIES:
        if item.get_closest_marker(family) is not None:
            return family
    return None


def _fail_input(config: pytest.Config, exc: HarnessError) -> None:
    record = config.stash[RECORD]
    record.error, record.error_code = exc.message, exc.exit_code
    sys.stderr.write(f"harness: error: {exc.message}\n")
    sys.stderr.flush()
    pytest.exit(exc.message, returncode=int(exc.exit_code))


# Durations on the command line: (option, minimum, whether the minimum itself is refused).
# A soak or early watch of 0 s would judge nothing, so it is refused rather than read as "the
# policy's"; a baseline or later watch of 0 s means none.
DURATION_OPTIONS = (("soak", 0.0, True), ("watch", 0.0, True), ("late_watch", 0.0, False),
                    ("late_watch_delay", 0.0, False), ("baseline", 0.0, False),
                    ("gate_timeout", 0.0, True))
GATE_TIMEOUT_S = 600.0


def option_durations(config: pytest.Config) -> dict[str, float | None]:
    """Every duration option, in seconds (None: not given), or an InputError naming it."""
    return {name: option_seconds(f"--{name.replace('_', '-')}", config.getoption(name),
                                 minimum, exclusive)
            for name, minimum, exclusive in DURATION_OPTIONS}


def _say_resolved(config: pytest.Config, *releases: tuple[str, Release]) -> None:
    """A range, a partial version or a dist-tag is said out loud with what it resolved to."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    for origin, release in releases:
        if release.spec != release.version:
            line = (f"harness: {origin} {release.spec!r} resolved to {release.version} in the "
                    "registry: that exact version is locked, installed and judged")
            if terminal is not None:
                terminal.write_line(line)
            else:
                sys.stderr.write(line + "\n")


def _allowed(target: TargetProfile, release: Release, origin: str) -> Release:
    """A version on the target's deny list is refused at lock, before anything is installed."""
    denied = target.denied(release.version)
    if denied is not None:
        raise InputError(str(target.path), "versions.deny", f"{origin} resolves to "
                         f"{release.label}, which is denied: {denied.reason}")
    return release


def settings_for(config: pytest.Config) -> RunSettings:
    """Load, validate and resolve everything a run needs, once."""
    if SETTINGS in config.stash:
        return config.stash[SETTINGS]
    try:
        durations = option_durations(config)
        transitions = config.pluginmanager.get_plugin("harness-transitions")
        inputs = load_inputs(  # alerts reach the target's hooks even for a bad policy
            _path(config, "target", "harness_target"), _path(config, "policy", "harness_policy"),
            _path(config, "scenarios", "harness_scenarios") if config.getoption("scenarios")
            else None, config.getoption("target_host"),
            on_target=transitions.use if transitions is not None else None,
            default_scenarios=_path(config, None, "harness_scenarios"))
        target, policy, scenarios = inputs.target, inputs.policy, inputs.scenarios
        cache = _path(config, None, "harness_cache")
        runtime = Runtime(cache / "runtime")
        gate_timeout = durations["gate_timeout"] or GATE_TIMEOUT_S
        if config.getoption("rollback_path") == "updater" and target.package.updater is None:
            raise InputError("--rollback-path", "", f"updater: {target.path} declares no "
                             "[package.updater] (the target's own update command)")
        windows = with_windows(policy, durations["soak"], durations["watch"],
                               durations["baseline"], durations["late_watch"],
                               durations["late_watch_delay"])
        if policy.late_watch is None and durations["late_watch"] is None and \
                durations["late_watch_delay"] is not None:  # --late-watch 0 wins quietly
            raise InputError("--late-watch-delay", "", f"no later watch to delay: {policy.path} "
                             "declares no [late_watch] (give its window with --late-watch "
                             "SECONDS)")
        candidate_config = target.candidate_config
        known_good = candidate = None
        if target.provision == "attached":  # the version is read from what runs; none installed
            for option in ("known_good", "candidate", "candidate_config"):
                if config.getoption(option) is not None:
                    raise InputError(f"--{option.replace('_', '-')}", "",
                                     f"{target.path} is an attached deployment (target.provision"
                                     " = \"attached\"): it is soaked as it runs, never upgraded")
        else:
            known_given = option_version("--known-good", config.getoption("known_good"))
            cand_given = option_version("--candidate", config.getoption("candidate"))
            known_spec = known_given or target.known_good
            cand_spec = cand_given or target.candidate
            known_origin = "--known-good" if known_given \
                else f"{target.path}: versions.known_good"
            cand_origin = "--candidate" if cand_given else f"{target.path}: versions.candidate"
            if config.getoption("candidate_config"):
                candidate_config = load_json_patch(Path(config.getoption("candidate_config")))
            # the ecosystem the target names: npm's registry, or pip against its own index
            packages = ecosystem_for(runtime, target.package.ecosystem, target.package.extras)
            known_good = _allowed(target, packages.resolve(target.package.name, known_spec,
                                                           known_origin), known_origin)
            candidate = _allowed(target, packages.resolve(target.package.name, cand_spec,
                                                          cand_origin), cand_origin)
            _say_resolved(config, (known_origin, known_good), (cand_origin, candidate))
    except HarnessError as exc:
        _fail_input(config, exc)
        raise  # unreachable: pytest.exit raised
    run_id, run_dir = config.stash[RUN_DIR]
    settings = RunSettings(
        run_id=run_id, run_dir=run_dir, cache_dir=cache, target=target,
        policy=policy, scenarios=scenarios, known_good=known_good, candidate=candidate,
        soak=windows.soak, watch=windows.watch, late_watch=windows.late_watch,
        restart_gate=config.getoption("restart_gate"),
        candidate_config=candidate_config, baseline=windows.baseline,
        on_inconclusive=config.getoption("inconclusive") or policy.on_inconclusive,
        gate_timeout_s=gate_timeout,
        accept_backup_posture=config.getoption("accept_backup_posture"),
        rollback_path=config.getoption("rollback_path"),
    )
    try:  # the review is locked now, before anything runs; a locked run dir must match it
        locked, reused = take_lock(run_dir, settings.lock())
    except HarnessError as exc:
        _fail_input(config, exc)
        raise
    config.stash[RECORD].locks.release = {
        "file": str(lock_path(run_dir)), "locked_at": locked["locked_at"], "reused": reused}
    config.stash[SETTINGS] = settings
    return settings


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    """A run of the suite loads its inputs before anything is collected: an input error then
    ends the session as one line and exit 20 under any flags. Raised later, from
    pytest_generate_tests, `-x` would turn it into a collection error and its traceback."""
    if _runs_the_suite(session.config):
        settings_for(session.config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "scenario" in metafunc.fixturenames:
        settings = settings_for(metafunc.config)
        metafunc.parametrize("scenario", settings.scenarios.scenarios,
                             ids=settings.scenarios.ids(), scope="function")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    staged = [item for item in items if _family(item)]
    if not staged:
        return
    settings = settings_for(config)
    if settings.target.attached is None:  # checks of an attached deployment: not this run's
        dropped = [item for item in items
                   if getattr(item, "originalname", item.name) in ATTACHED_ONLY]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [item for item in items if item not in dropped]
            staged = [item for item in staged if item not in dropped]
    order = {family: i for i, family in enumerate(FAMILIES)}
    # stable sort: the suite's own order inside a family, families in procedure order
    items.sort(key=lambda item: order.get(_family(item) or "", -1))
    for item in staged:
        family = _family(item)
        # an epic per target (history and trends follow a target across versions); the
        # versions of this run are a tag
        item.add_marker(allure.epic(settings.target.name))
        if settings.known_good is not None and settings.candidate is not None:
            item.add_marker(allure.tag(f"{settings.known_good.version} -> "
                                       f"{settings.candidate.version}"))
        else:
            item.add_marker(allure.tag(f"attached {settings.target.gateway.unit}"))
        item.add_marker(allure.feature(family))
        limit = PHASE_TIMEOUTS.get(item.name.removeprefix("test_"))
        if item.name == "test_restart_gate":
            limit = settings.gate_timeout_s + 300
        if family == "soak":
            limit = settings.soak.window_s + settings.soak.drain_s + 300
        elif item.name == "test_baseline" and settings.baseline is not None:
            limit = settings.baseline.window_s + settings.baseline.drain_s + 300
        elif family == "rollback":
            late = settings.late_watch
            longest = max(settings.watch.window_s + settings.watch.drain_s,
                          late.delay_s + late.window_s + late.drain_s if late else 0.0)
            limit = max(1800.0, longest + 300) + settings.gate_timeout_s
        if limit and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(limit))
    settings.run_dir.mkdir(parents=True, exist_ok=True)


def pytest_collection_finish(session: pytest.Session) -> None:
    """An attached deployment, once `-m` and `-k` have settled what runs: only its soak may
    run, and it must be running and answering before any test starts."""
    config = session.config
    settings = config.stash.get(SETTINGS, None)
    if settings is None or settings.target.attached is None:
        return
    families = {_family(item) for item in session.items} - {None}
    if not families:
        return
    changing = [f for f in ("upgrade", "rollback") if f in families]
    if changing:
        _fail_input(config, InputError(
            str(settings.target.path), "target.provision",
            "\"attached\" deployments are only soaked, but this run selects "
            f"{' and '.join(changing)} tests (they would install, stop and restart it): run "
            "`pytest scenarios -m soak "
            f"--target {settings.target.path}`"))
    try:
        found = attach(settings.target)
    except HarnessError as exc:
        _fail_input(config, exc)
        raise  # unreachable: pytest.exit raised
    config.stash[ATTACHED] = found
    config.stash[RECORD].attached_deployment(settings.lock()["attached"]).before = \
        found.found.as_dict()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    family = _family(item)
    if family and (report.when == "call" or (report.when == "setup" and not report.passed)):
        record = item.config.stash[RECORD]
        reason = ""
        if report.failed:
            reason = str(report.longrepr.reprcrash.message) if hasattr(
                report.longrepr, "reprcrash") and report.longrepr.reprcrash else str(
                report.longrepr)[-400:]
        elif report.skipped and isinstance(report.longrepr, tuple):
            reason = report.longrepr[2]
        name = item.name.removeprefix("test_")
        if report.passed:  # a phase's own summary, when its fixture returned a PhaseResult
            result = getattr(item, "funcargs", {}).get(name)
            reason = str(getattr(result, "summary", "") or "")
        outcome = "failed" if report.failed else ("skipped" if report.skipped else "passed")
        record.phases.append(PhaseOutcome(family, name, outcome, round(report.duration, 3),
                                          reason))
        which = record.proven() if record.changed else None
        if which is not None and record.on_proven is not None:
            record.on_proven(which)  # the guard restores nothing from now on
    return report


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Iterator[None]:
    """The verdict comes last: pytest's runner tears the session fixtures down in its own
    pytest_sessionfinish (the deployment's final state is observed there, and after an
    interruption the known-good put back), so the verdict is written after every other
    implementation has run, then the outcome's transition and alert, then the report files."""
    from harness.pytest.reports import finish_reports  # registered by pytest_plugins

    try:
        return (yield)
    finally:
        _finish_run(session)
        finish_reports(session.config)  # summary.md, a redaction pass over the run's files


def _finish_run(session: pytest.Session) -> None:
    config = session.config
    record = config.stash[RECORD]
    settings = config.stash.get(SETTINGS, None)
    interruption = config.stash.get(INTERRUPTION, None)
    if interruption is not None:
        interruption.uninstall()
        if interruption.interrupted and (settings is not None or _runs_the_suite(config)):
            record.interruption = interruption.as_dict()  # leads the verdict's `interruption`
    if settings is None and record.error is None and record.interruption is None:
        return
    if not any(p.family in FAMILIES for p in record.phases) and record.error is None \
            and record.interruption is None:
        return
    run_dir = settings.run_dir if settings else config.stash[RUN_DIR][1]
    verdict = write_verdict(run_dir / "verdict.json", record,
                            settings.lock() if settings else None)
    if settings:
        results = getattr(config.option, "allure_report_dir", None)
        if results and Path(results).is_dir():
            (Path(results) / "environment.properties").write_text(
                f"backup_posture={posture_line(record)}\n"
                + allure_environment(settings.lock(), record))
        latest = config.rootpath / "reports" / "latest"
        try:
            if latest.parent not in run_dir.parents:
                raise OSError("run dir outside reports/: latest stays")
            if latest.is_symlink() or latest.exists():
                latest.unlink()
            latest.symlink_to(run_dir)
        except OSError:
            pass
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        if getattr(terminal._tw, "width_of_current_line", 0):  # after pytest's "[100%]"
            terminal._tw.line()
        terminal.write_line(f"harness: {verdict['outcome']} (exit {verdict['exit_code']}): "
                            f"{verdict['claim']}", bold=True)
        terminal.write_line(f"harness: verdict written to {run_dir / 'verdict.json'}")
    if record.interruption is not None:
        session.exitstatus = int(ExitCode.INTERRUPTED)
    elif record.error_code is None and session.exitstatus in (0, 1):
        session.exitstatus = verdict["exit_code"]
    elif record.error_code is not None:
        session.exitstatus = int(record.error_code)
    transitions = config.pluginmanager.get_plugin("harness-transitions")
    if transitions is not None:  # the outcome as a transition, and the alert hook
        transitions.finish(verdict)
    owner = config.stash.get(RUN_DIR_OWNER, None)
    if owner is not None:
        owner.record["outcome"] = verdict["outcome"]


def pytest_unconfigure(config: pytest.Config) -> None:
    owner = config.stash.get(RUN_DIR_OWNER, None)
    if owner is not None:  # a run that ends here, verdict or not, did not die: its dir is free
        owner.ended()


__all__ = ["ExitCode", "settings_for", "SETTINGS", "RECORD"]

from harness.pytest.fixtures import (  # noqa: E402,F401  (fixtures are registered by import)
    attached_deployment,
    deployment,
    embedded_deployment,
    model_lab,
    node,
    procedure,
    run_record,
    run_settings,
    runtime,
)
