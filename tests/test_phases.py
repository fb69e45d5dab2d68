"""A phase that breaks reports a failed result instead of breaking the procedure."""

from harness.common.errors import InfrastructureError
from harness.procedure.phases import PhaseResult, _timed


def broken() -> PhaseResult:
    raise FileNotFoundError("state/agents/quick/sessions/sessions.json.lock")


def test_an_unexpected_error_becomes_a_failed_result_with_its_reason() -> None:
    result = _timed("rollback backup", broken)
    assert not result.ok
    assert result.summary == ("FileNotFoundError: state/agents/quick/sessions/sessions.json.lock")


def test_a_harness_error_keeps_its_one_line() -> None:
    def refuse() -> PhaseResult:
        raise InfrastructureError("npm install openclaw@2026.4.1 failed: E404")

    assert _timed("install", refuse).summary == "npm install openclaw@2026.4.1 failed: E404"
