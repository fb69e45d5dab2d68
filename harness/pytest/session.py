"""One acceptance session in pytest's stash: its run dir, record and settings, resolved once.

The plugin, the fixtures, the finisher and the reports read the run from here; this module
imports none of them, so nothing imports back up.
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from typing import NoReturn

import pytest

from harness.common.errors import HarnessError
from harness.procedure.review import lock_review
from harness.procedure.run import RunRecord, RunSettings
from harness.procedure.rundir import RUN_DIR_OWNER, RunDirOwner
from harness.procedure.settings import CommandLine, Defaults, resolve_settings
from harness.targets.attached import Attached

SETTINGS = pytest.StashKey[RunSettings]()
RECORD = pytest.StashKey[RunRecord]()
RUN_DIR = pytest.StashKey[tuple[str, Path]]()  # (run id, run dir)
ATTACHED = pytest.StashKey[Attached]()  # an attached deployment, as found before any test


def runs_the_suite(config: pytest.Config) -> bool:
    """Whether this session runs the acceptance suite (ini harness_suite), not the harness's
    own tests."""
    suite = (config.rootpath / config.getini("harness_suite")).resolve()
    for arg in config.args or [str(config.rootpath)]:
        path = Path(arg.split("::")[0])
        path = (path if path.is_absolute() else Path(config.invocation_params.dir) / path)
        path = path.resolve()
        if path == suite or suite in path.parents:
            return True
    return False


def fail_input(config: pytest.Config, exc: HarnessError) -> NoReturn:
    """A refusal before anything runs: one line, the error's own exit code, and the verdict
    (written by the finisher) says why."""
    record = config.stash[RECORD]
    record.error, record.error_code = exc.message, exc.exit_code
    sys.stderr.write(f"harness: error: {exc.message}\n")
    sys.stderr.flush()
    pytest.exit(exc.message, returncode=int(exc.exit_code))


def own_run_dir(config: pytest.Config, run_dir: Path, run_id: str) -> None:
    """The run dir is this run's alone, for its whole life (one that died is cleaned up only
    when asked: --resume-cleanup)."""
    try:
        owner, cleanup = RunDirOwner.take(run_dir, run_id, config.getoption("resume_cleanup"))
    except HarnessError as exc:
        fail_input(config, exc)
    config.stash[RUN_DIR_OWNER] = owner
    if cleanup is not None:
        config.stash[RECORD].resumed_cleanup = cleanup
        stopped = ", ".join(f"{p['role']} PID {p['pid']} ({p['how']})"
                            for p in cleanup["stopped"]) or "nothing was still running"
        sys.stderr.write(f"harness: run {cleanup['run_id']} in {run_dir} had died without a "
                         f"verdict: stopped {stopped}; its files moved to "
                         f"{cleanup['moved_to']}; this run starts fresh as {run_id}\n")


def command_line(config: pytest.Config) -> CommandLine:
    return CommandLine(**{f.name: config.getoption(f.name) for f in fields(CommandLine)})


def defaults(config: pytest.Config) -> Defaults:
    return Defaults(root=config.rootpath, target=config.getini("harness_target"),
                    policy=config.getini("harness_policy"),
                    scenarios=config.getini("harness_scenarios"),
                    cache=config.getini("harness_cache"))


def say(config: pytest.Config, line: str) -> None:
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.write_line(line)
    else:
        sys.stderr.write(line + "\n")


def settings_for(config: pytest.Config) -> RunSettings:
    """The run's settings: resolved (harness.procedure.settings), then reviewed (the versions
    looked up and locked: harness.procedure.review), once per session."""
    if SETTINGS in config.stash:
        return config.stash[SETTINGS]
    transitions = config.pluginmanager.get_plugin("harness-transitions")
    run_id, run_dir = config.stash[RUN_DIR]
    try:
        resolved = resolve_settings(  # alerts reach the target's hooks even for a bad policy
            command_line(config), defaults(config),
            on_target=transitions.use if transitions is not None else None)
        fleet_lock = config.getoption("fleet_lock", None)  # a fleet's member: its one review
        settings, release_lock = lock_review(resolved, run_id, run_dir,
                                             lambda line: say(config, line),
                                             Path(fleet_lock) if fleet_lock else None)
    except HarnessError as exc:
        fail_input(config, exc)
    config.stash[RECORD].locks.release = release_lock
    config.stash[SETTINGS] = settings
    return settings
