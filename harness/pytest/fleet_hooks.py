"""The hooks of a fleet release (harness.pytest.fleet): its options, what each xdist worker
is given, what the suite collects with and without --fleet, and the members' items."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.pytest import fleet as fleet_wiring
from harness.pytest.fleet import FLEET, FLEET_FILE, HOLD_FILE, WORKER_KEY, fleet_mode


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "gateway release acceptance")
    group.addoption("--fleet", help="fleet file TOML: one release over its members, a canary "
                    "first, the rest in waves (run with -n N: pytest-xdist workers)")
    group.addoption("--fleet-member", help=f"(given by a fleet's worker) this run is one "
                    f"member of a fleet: it holds after its verdict ({HOLD_FILE})")
    group.addoption("--fleet-ledger", help="(given by a fleet's worker) the fleet's ledger")
    group.addoption("--fleet-lock", help="(given by a fleet's worker) the fleet's release lock: "
                    "this member installs the release the fleet reviewed, not one of its own")


@pytest.hookimpl(optionalhook=True)  # an xdist hook: a member's own run has no xdist
def pytest_configure_node(node: Any) -> None:
    """xdist: what each worker needs of the controller (the run dir is the controller's)."""
    fleet = node.config.stash.get(FLEET, None)
    if fleet is not None:
        node.workerinput[WORKER_KEY] = json.dumps({
            "run_dir": str(fleet.run_dir), "ledger": str(fleet.ledger.path),
            "forwarded": list(fleet.forwarded)})


@pytest.hookimpl(tryfirst=True)  # before xdist's controller declines to collect
def pytest_collection(session: pytest.Session) -> None:
    """The controller reviews the release once for every member, before any member starts
    (as a run of one gateway does before it collects)."""
    config = session.config
    fleet = config.stash.get(FLEET, None)
    if fleet is None or hasattr(config, "workerinput") or config.getoption("collectonly"):
        return
    fleet_wiring.review_release(config, fleet)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With --fleet only the members' items; without it, neither they nor the hold (outside
    a member's run): a run of one gateway collects what it always did."""
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    suite = (config.rootpath / config.getini("harness_suite")).resolve()
    if collection_path.resolve().parent != suite:
        return None
    if fleet_mode(config):
        return collection_path.name != FLEET_FILE or None
    if collection_path.name == FLEET_FILE:
        return True
    if collection_path.name == HOLD_FILE and not config.getoption("fleet_member"):
        return True
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fleet_member" not in metafunc.fixturenames:
        return
    fleet = metafunc.config.stash[FLEET]
    members = [m for wave in fleet.plan.waves for m in wave]  # wave order
    metafunc.parametrize("fleet_member", [
        pytest.param(m, id=m.name, marks=pytest.mark.xdist_group(m.name)) for m in members])
