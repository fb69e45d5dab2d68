"""pytest wiring of the acceptance suite: options, hooks, and which plugins and fixtures load.

The acceptance suite's tests carry one of the markers `upgrade`, `soak` or `rollback` (the
families of harness.procedure.table). When a session runs the suite, the run's inputs are
loaded, checked and resolved (harness.procedure.settings) and its review locked
(harness.procedure.review) before anything is collected; a bad input ends the session with one
line and its own exit code. Otherwise (the harness's own tests) the plugin stays out of the way.

Where things live: the run's state in pytest's stash (harness.pytest.session), the tests as
phases (harness.pytest.items), the fixtures (harness.pytest.fixtures), the verdict and the
end of a run (harness.pytest.finisher), the report files (harness.pytest.reports).

An attached target (a deployment that runs already) resolves no versions: once collection has
settled which tests run, an upgrade or rollback test among them is refused (exit 20), and the
deployment is found and probed (harness.targets.attached.attach; exit 22 when it does not run
or answer) before any test starts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from harness.procedure.gate import MODES
from harness.procedure.interrupt import INTERRUPTION, Interruption
from harness.procedure.posture import POSTURES
from harness.procedure.run import ROLLBACK_PATHS, RunRecord
from harness.procedure.rundir import RUN_DIR_OWNER
from harness.procedure.settings import RESTART_GATE, ROLLBACK_PATH, Defaults
from harness.procedure.table import FAMILIES
from harness.procedure.transitions import Transitions
from harness.pytest.finisher import Finisher
from harness.pytest.fleet import SEAT, configure_member, fleet_mode
from harness.pytest.fleet import configure as configure_fleet
from harness.pytest.items import check_attached, family_of, record_outcome, stage
from harness.pytest.session import RECORD, RUN_DIR, own_run_dir, runs_the_suite, settings_for

pytest_plugins = [
    "harness.pytest.fixtures",  # the run's session fixtures and the phases' fixture factory
    "harness.pytest.reports",  # redaction, categories, summary.md
    "harness.pytest.fleet_hooks",  # --fleet: one release over many gateways, on xdist workers
]


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
    group.addoption("--restart-gate", choices=MODES,
                    help="who approves each restart: auto (CI: the run itself) or manual (a "
                    "person: a prompt on a terminal, else `harness approve RUN_DIR`); default: "
                    f"{RESTART_GATE}")
    group.addoption("--gate-timeout",
                    help="seconds a manual restart gate waits for a decision (default 600); "
                    "without one nothing is interrupted")
    group.addoption("--rollback-path", choices=ROLLBACK_PATHS,
                    help="how a rollback gets the known-good back: prefix (its kept prefix, no "
                    "download; a reinstall when it is gone or damaged) or updater (the "
                    "target's own updater, run by the candidate, its result and its verifier's "
                    "warnings judged against the package); default: "
                    f"{ROLLBACK_PATH}")
    group.addoption("--accept-backup-posture", choices=POSTURES[1:],
                    help="go on with a backup below full (config-only, or none), decided up "
                    "front; otherwise such a run stops before any change")
    group.addoption("--target-host",
                    help="where the gateway's commands run: local://, docker://CONTAINER or "
                         "ssh://[USER@]HOST[:PORT] (default: the target file's target.host)")
    for name, default in (("harness_target", Defaults.target),
                          ("harness_policy", Defaults.policy),
                          ("harness_scenarios", Defaults.scenarios),
                          ("harness_cache", Defaults.cache), ("harness_suite", "scenarios")):
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
    if fleet_mode(config) and runs_the_suite(config):  # the members' runs do the rest
        configure_fleet(config, run_id, run_dir.resolve())
        return
    config.pluginmanager.register(Finisher(config), "harness-finisher")  # verdict, latest
    if not runs_the_suite(config):
        return
    own_run_dir(config, run_dir.resolve(), run_id)  # the run dir is this run's alone
    interruption = Interruption()  # Ctrl-C, SIGTERM and a phase's time limit: `interrupted`
    interruption.install()
    config.stash[INTERRUPTION] = interruption
    config.pluginmanager.register(interruption, "harness-interruption")
    transitions = Transitions(run_id, run_dir.resolve(), record=config.stash[RECORD])
    config.pluginmanager.register(  # every state transition as JSON lines, journal and alerts
        transitions, "harness-transitions")
    configure_member(config)  # a fleet's member: its seat, and its name on every record
    if SEAT in config.stash:
        transitions.member = config.stash[SEAT].member
        config.stash[RECORD].fleet = {"member": config.stash[SEAT].member,
                                      "fleet": config.stash[SEAT].plan.name}
    # allure-pytest reads its folder in its own pytest_configure, which runs after this one
    if getattr(config.option, "allure_report_dir", None) is None:
        config.option.allure_report_dir = str(run_dir / "allure-results")
    # and so does the JUnit XML plugin: the run's JUnit XML beside its verdict
    if getattr(config.option, "xmlpath", None) is None:
        config.option.xmlpath = str(run_dir / "junit.xml")


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    """A run of the suite loads its inputs before anything is collected: an input error then
    ends the session as one line and exit 20 under any flags. Raised later, from
    pytest_generate_tests, `-x` would turn it into a collection error and its traceback."""
    if runs_the_suite(session.config) and not fleet_mode(session.config):
        settings_for(session.config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "scenario" in metafunc.fixturenames:
        settings = settings_for(metafunc.config)
        metafunc.parametrize("scenario", settings.scenarios.scenarios,
                             ids=settings.scenarios.ids(), scope="function")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if any(family_of(item) for item in items):
        stage(config, items, settings_for(config))


def pytest_collection_finish(session: pytest.Session) -> None:
    check_attached(session)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # noqa: ANN201
    report = yield
    record_outcome(item, report)
    return report


def pytest_unconfigure(config: pytest.Config) -> None:
    owner = config.stash.get(RUN_DIR_OWNER, None)
    if owner is not None:  # a run that ends here, verdict or not, did not die: its dir is free
        owner.ended()
