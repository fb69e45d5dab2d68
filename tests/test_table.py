"""The phase table: what is derived from it, and that every row is backed by a step, a
Procedure method and a test of the suite (so adding a phase is one row plus its function)."""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import pytest

from harness.procedure import table, transitions
from harness.procedure.phases import Procedure
from harness.procedure.review import run_settings
from harness.procedure.run import RunSettings
from harness.procedure.settings import CommandLine, Defaults, resolve_settings
from harness.procedure.table import (
    ATTACHED,
    ATTACHED_ONLY,
    BY_NAME,
    EMBEDDED,
    FAMILIES,
    PASSED_IF_SELECTED,
    PHASE_TIMEOUTS,
    PHASES,
    applies,
    time_limit,
)
from harness.pytest.fixtures import phase_fixtures

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "scenarios"


def suite_tests() -> dict[str, str]:
    """test name -> its module's family marker, read from the suite's files."""
    found = {}
    for path in sorted(SUITE.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        family = next((node.value.attr for node in tree.body if isinstance(node, ast.Assign)
                       and node.targets[0].id == "pytestmark"), None)
        if family is None:  # test_fleet.py: a fleet's members, no phase of one gateway
            continue
        found.update({node.name: family for node in tree.body
                      if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")})
    return found


def suite_conftest_fixtures() -> set[str]:
    tree = ast.parse((SUITE / "conftest.py").read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def settings(**given: str) -> RunSettings:
    resolved = resolve_settings(CommandLine(**given), Defaults(root=ROOT))
    return run_settings(resolved, "test", Path("/nonexistent"), None, None)


def test_the_families_are_derived_once_in_procedure_order() -> None:
    assert FAMILIES == ("upgrade", "soak", "fleet", "rollback")
    assert transitions.FAMILIES is FAMILIES


def test_fixed_timeouts_and_attached_only_tests_come_from_the_rows() -> None:
    assert PHASE_TIMEOUTS == {"preflight": 600, "backup": 300, "install": 1800, "stop": 120,
                              "start": 300, "health": 300}
    assert ATTACHED_ONLY == ("test_soak_left_as_found",)
    assert not applies("test_soak_left_as_found", "soak", EMBEDDED)
    assert applies("test_soak[reply-plain]", "soak", ATTACHED)
    assert not applies("test_rollback_watch", "rollback", ATTACHED)
    assert not applies("test_preflight", "upgrade", ATTACHED)


def test_window_timeouts_follow_the_run_settings() -> None:
    run = settings(soak="90", watch="20", baseline="30", gate_timeout="100")
    soak, watch, late = run.soak, run.watch, run.late_watch
    assert time_limit("test_preflight", "upgrade", run) == 600
    assert time_limit("test_restart_gate", "upgrade", run) == 100 + 300
    assert time_limit("test_baseline", "upgrade", run) == 30 + run.baseline.drain_s + 300
    for name in ("test_soak[reply-plain]", "test_soak_policy", "test_soak_left_as_found"):
        assert time_limit(name, "soak", run) == 90 + soak.drain_s + 300
    longest = max(20 + watch.drain_s, late.delay_s + late.window_s + late.drain_s)
    for name in ("test_rollback_restart_gate", "test_rollback_late_watch"):
        assert time_limit(name, "rollback", run) == max(1800.0, longest + 300) + 100
    assert time_limit("test_baseline", "upgrade", settings(baseline="0")) is None
    # a test the table does not know: its family's one rule, or none
    assert time_limit("test_soak_extra", "soak", run) == 90 + soak.drain_s + 300
    assert time_limit("test_extra", "upgrade", run) is None


def test_every_row_has_its_test_and_every_test_its_row() -> None:
    tests = suite_tests()
    assert set(tests) == {f"test_{phase.name}" for phase in PHASES}
    for phase in PHASES:
        assert tests[f"test_{phase.name}"] == phase.family, phase.name


def steps_calls(phase: table.Phase) -> set[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(phase.step)))
    return {node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "procedure"}


@pytest.mark.parametrize("phase", [p for p in PHASES if p.step is not None],
                         ids=lambda p: p.name)
def test_every_phase_with_a_fixture_has_a_step_over_a_procedure_method(
        phase: table.Phase) -> None:
    assert list(inspect.signature(phase.step).parameters) == ["procedure", "previous"]
    called = steps_calls(phase)
    assert called, f"{phase.name}: its step calls no Procedure method"
    assert all(callable(getattr(Procedure, name, None)) for name in called), called


def test_each_phase_waits_for_an_earlier_one_or_a_fixture_of_the_suite() -> None:
    fixtures = {p.fixture_name for p in PHASES if p.step} | suite_conftest_fixtures()
    seen: set[str] = set()
    for phase in PHASES:
        if phase.after is not None:
            assert phase.after in fixtures, phase.name
            assert phase.after not in BY_NAME or phase.after in seen, phase.name
        seen.add(phase.fixture_name)


def test_nothing_changes_the_host_without_a_restart_gate_before_it() -> None:
    changing = [p for p in PHASES if p.changes_host]
    assert [p.name for p in changing] == ["stop", "start", "rollback_restore",
                                          "rollback_start"]
    by_fixture = {p.fixture_name: p for p in PHASES}
    for phase in changing:
        chain, step = [], phase
        while step.after in by_fixture:
            step = by_fixture[step.after]
            chain.append(step.name)
        assert any(name.endswith("restart_gate") for name in chain), phase.name


def test_the_fixture_chain_is_generated_from_the_table() -> None:
    fixtures = phase_fixtures()
    assert list(fixtures) == [p.fixture_name for p in PHASES if p.step is not None]
    assert "soak_run" in fixtures and "soak_policy" not in fixtures
    for phase in PHASES:
        if phase.step is None:
            continue
        wanted = ["request", "procedure"]
        if phase.after is not None and phase.needs != PASSED_IF_SELECTED:
            wanted.append(phase.after)  # a static dependency pytest orders by
        signature = inspect.signature(fixtures[phase.fixture_name].__wrapped__)
        assert list(signature.parameters) == wanted, phase.name
