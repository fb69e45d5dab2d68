"""Interruptions end in a true verdict: signals, the outcome and exit code, the claim."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.common.errors import ExitCode
from harness.procedure.interrupt import Interruption, Skipped
from harness.procedure.run import PhaseOutcome, RunRecord, _claim

LOCK = {"candidate": {"version": "2026.4.1"}, "known_good": {"version": "2026.3.28"},
        "policy": {"name": "p"}, "scenarios": {"ids": ["reply-plain"]}}


def record(*phases: tuple[str, str, str], changed: bool = True,
           rollback: bool = False) -> RunRecord:
    rec = RunRecord(changed=changed, rollback_started=rollback)
    rec.phases = [PhaseOutcome(family, name, outcome, 0.0) for family, name, outcome in phases]
    return rec


def test_an_interrupted_run_is_never_passed() -> None:
    """Every phase that ran passed, then Ctrl-C: `interrupted`, its own exit code."""
    rec = record(("upgrade", "health", "passed"), ("soak", "soak[reply-plain]", "passed"))
    assert rec.outcome() == ("passed", ExitCode.PASSED)
    rec.interruption = {"by": "SIGINT", "during": "test_soak_policy", "signals": []}
    assert rec.outcome() == ("interrupted", ExitCode.INTERRUPTED)
    assert int(ExitCode.INTERRUPTED) == 17


def test_a_rollback_interrupted_is_interrupted_too() -> None:
    rec = record(("soak", "soak_policy", "failed"), rollback=True)
    rec.interruption = {"by": "SIGTERM", "during": "test_rollback_watch", "signals": []}
    assert rec.outcome() == ("interrupted", ExitCode.INTERRUPTED)


@pytest.mark.parametrize(("rec", "proven"), [
    (record(("upgrade", "health", "passed")), None),  # the soak has not decided
    (record(("upgrade", "health", "passed"), ("soak", "soak_policy", "passed")), "candidate"),
    (record(("soak", "soak_policy", "failed"), ("rollback", "rollback_smoke", "passed"),
            rollback=True), None),  # restored, its watches not yet passed
    (record(("soak", "soak_policy", "failed"), ("rollback", "rollback_watch", "passed"),
            ("rollback", "rollback_late_watch", "failed"), rollback=True), None),
    (record(("soak", "soak_policy", "failed"), ("rollback", "rollback_watch", "passed"),
            rollback=True), "known_good"),
])
def test_which_version_the_run_proved(rec: RunRecord, proven: str | None) -> None:
    assert rec.proven() == proven
    assert rec.unproven_change() == (proven is None)


def test_nothing_changed_is_no_unproven_change() -> None:
    assert not record(("upgrade", "baseline", "passed"), changed=False).unproven_change()


def test_the_claim_of_an_interrupted_run_says_what_was_done_and_what_serves() -> None:
    rec = record(("upgrade", "health", "passed"))
    rec.interruption = {"by": "SIGINT", "during": "test_soak[reply-plain]",
                        "signals": [{"signal": "SIGINT"}, {"signal": "SIGINT"}]}
    rec.after_interruption.restore = {"proven": True, "summary": "2026.3.28 active"}
    rec.final_state = {"serving": True, "version": "2026.3.28", "proven": True}
    claim = _claim("interrupted", LOCK, rec)
    assert claim.startswith("Interrupted by SIGINT during test_soak[reply-plain] (1 more "
                            "signal(s) during the teardown): no claim about 2026.4.1.")
    assert "put 2026.3.28 back itself: 2026.3.28 active" in claim
    assert "At the end 2026.3.28 was serving (proven)" in claim
    assert rec.proven() == "known_good"  # the restore's proof counts


def test_the_claim_before_any_change_says_nothing_was_touched() -> None:
    rec = record(("upgrade", "baseline", "passed"), changed=False)
    rec.interruption = {"by": "SIGTERM", "during": "test_baseline", "signals": []}
    rec.final_state = {"serving": True, "version": "2026.3.28", "proven": True}
    claim = _claim("interrupted", LOCK, rec)
    assert "Nothing had been changed: 2026.3.28 was left as it was." in claim


def test_the_first_signal_stops_the_test_loop_later_ones_only_cut_skippable_steps() -> None:
    stop = Interruption(testing=True, during="test_soak_policy")
    with pytest.raises(KeyboardInterrupt):
        stop.note("SIGINT")
    stop.testing, stop.finishing = False, True  # pytest is tearing the session down now
    stop.note("SIGINT")  # recorded, never raised: the restore must run to its end
    with pytest.raises(Skipped), stop.skippable():
        stop.note("SIGTERM")
    assert [s["signal"] for s in stop.signals] == ["SIGINT", "SIGINT", "SIGTERM"]
    assert stop.as_dict()["by"] == "SIGINT"
    assert stop.as_dict()["during"] == "test_soak_policy"


def test_a_signal_in_the_teardown_is_recorded_not_raised() -> None:
    stop = Interruption(testing=False, finishing=True)
    stop.note("SIGTERM")
    assert stop.interrupted and stop.first["signal"] == "SIGTERM"


def test_a_signal_before_the_test_loop_ends_the_run_too() -> None:
    """A supervisor's TimeoutStartSec may send SIGTERM while the suite is still collecting and
    resolving versions: recording it and going on would start an upgrade systemd then kills."""
    stop = Interruption()
    with pytest.raises(KeyboardInterrupt):
        stop.note("SIGTERM")
    assert stop.first == {**stop.first, "signal": "SIGTERM", "during": None}


def test_sigterm_takes_the_keyboard_interrupt_path() -> None:
    """A real SIGTERM to this process, through the installed handler."""
    stop = Interruption(testing=True)
    stop.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs at once; the sleep is only a bound
        assert stop.first["signal"] == "SIGTERM"
    finally:
        stop.uninstall()
    assert signal.getsignal(signal.SIGTERM) is not stop._on_signal


def test_exit_codes_are_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for code in (ExitCode.INTERRUPTED, ExitCode.RUN_DIR_BUSY, ExitCode.RUN_DIR_DEAD):
        assert f"| {int(code)} |" in readme


def test_the_claim_of_a_run_interrupted_before_its_lock_says_nothing_was_started() -> None:
    rec = RunRecord()
    rec.interruption = {"by": "SIGTERM", "during": None, "signals": []}
    assert _claim("interrupted", None, rec) == (
        "Interrupted by SIGTERM before the run had locked its review: no claim, and nothing "
        "had been started or changed.")


def test_a_lost_lease_interrupts_the_main_thread_and_the_guard_proof_counts() -> None:
    """The guard took the gateway over while this harness stalled: the lease thread hands it
    to the main thread as an interruption, and the guard's proof is the run's."""
    import threading

    interruption = Interruption()
    interruption.install()
    interruption.testing = True
    try:
        caught = None
        try:
            threading.Thread(target=interruption.lease_lost,
                             args=("the harness's lease expired 3 s ago",)).start()
            time.sleep(5)
        except KeyboardInterrupt as exc:
            caught = str(exc)
        assert caught is not None and "lease lost (the harness's lease expired" in caught
        assert interruption.as_dict()["by"].startswith("lease lost")
    finally:
        interruption.uninstall()
    rec = record(("upgrade", "start", "passed"))
    assert rec.proven() is None
    rec.after_interruption.guard = {"proven": True, "summary": "restored: ..."}
    assert rec.proven() == "known_good"
    rec.interruption = interruption.as_dict()
    claim = _claim("interrupted", LOCK, rec)
    assert "stalled past its lease" in claim and "the guard restored: ..." in claim


IN_A_TRANSPORT_CALLBACK = """
import asyncio, os, signal, socket, sys
from harness.procedure.interrupt import Interruption
from harness.soak.driver import _loop_factory

interruption = Interruption()
interruption.testing = True
interruption.install()


class Reader(asyncio.Protocol):
    def data_received(self, data: bytes) -> None:  # the signal lands in here
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))


async def soak() -> str:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    await loop.create_connection(Reader, sock=ours)
    theirs.send(b"a reply")
    await asyncio.sleep(3)
    return "the soak ran to its end"


try:
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        print(runner.run(soak()))
except KeyboardInterrupt as exc:
    print(f"stopped: {exc}")
"""


def test_a_signal_inside_the_soak_loops_transport_callback_still_stops_the_run() -> None:
    """uvloop takes an exception raised in a transport's callback for that connection's fatal
    error and goes on: a SIGTERM landing there ran the soak to its end (a fleet member whose
    worker died passed its soak). The soak's real loop, a real signal, in a process of its own."""
    done = subprocess.run([sys.executable, "-c", IN_A_TRANSPORT_CALLBACK], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip() == "stopped: harness: interrupted by SIGTERM", \
        done.stdout + done.stderr
