"""The parallel test run keeps its promise: tests of one xdist_group run on one worker.

`make test` relies on it (the two real runs with the tests that use them; a systemd module with
its containers), and pytest 9.2 silently broke it with pytest-xdist 3.8.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest


def test_a_group_stays_on_one_worker_under_dist_loadgroup(tmp_path: Path) -> None:
    tests = "import pytest\n" + "".join(
        f"@pytest.mark.xdist_group({group!r})\ndef test_{group}_{n}(): pass\n"
        for group in ("runs", "box") for n in range(4))
    (tmp_path / "test_grouped.py").write_text(tests)
    done = subprocess.run([sys.executable, "-m", "pytest", "test_grouped.py", "-v", "-n", "2",
                           "--dist", "loadgroup", "-p", "no:cacheprovider",
                           "-p", "no:gateway_release_harness", "-p", "no:allure_pytest"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    ran = re.findall(r"\[(gw\d+)\] \[ *\d+%\] PASSED test_grouped.py::test_(\w+?)_\d", done.stdout)
    assert len(ran) == 8, done.stdout
    for group in ("runs", "box"):
        assert len({worker for worker, g in ran if g == group}) == 1, done.stdout


def slot_holder(kind: str, slots: int, count: int = 1, hold_s: float = 60.0
                ) -> subprocess.Popen[str]:
    """Another process that takes `count` of `slots` slots of `kind`, prints `held` and the
    moment it got them, and holds them for `hold_s` (or until it is killed)."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; from tests.conftest import machine_slot\n"
         f"with machine_slot({kind!r}, {slots}, poll_s=0.1, count={count}):\n"
         f"    print('held', time.monotonic(), flush=True); time.sleep({hold_s})"],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, text=True)


def end(procs: list[subprocess.Popen[str] | None], kind: str) -> None:
    """Kill the holders and remove the lock files of `kind` (its slots and its gate)."""
    from tests.conftest import SLOT_DIR

    for proc in procs:
        if proc is not None:
            proc.kill()
            proc.wait()
    for lock in SLOT_DIR.glob(f"{kind}-*.lock"):
        lock.unlink(missing_ok=True)


def test_a_soak_slot_is_held_by_one_process_until_it_ends(tmp_path: Path) -> None:
    """With one slot, a second process waits until the first one's holder is gone (killed
    here: the lock goes with the process)."""
    from tests.conftest import machine_slot

    kind = f"unit-{os.getpid()}"
    holder = slot_holder(kind, 1)
    try:
        assert holder.stdout is not None and holder.stdout.readline().startswith("held")
        threading.Timer(1.0, holder.kill).start()
        started = time.monotonic()
        with machine_slot(kind, 1, poll_s=0.1) as index:
            waited = time.monotonic() - started
        assert index == 0 and 0.8 < waited < 30, waited
    finally:
        end([holder], kind)


def test_a_test_that_soaks_two_gateways_takes_two_slots_at_once_or_waits(tmp_path: Path) -> None:
    """A fleet's wave soaks two gateways at once: it holds two slots, all at once, and waits
    while another process holds one of them (holding none itself meanwhile)."""
    from tests.conftest import SLOT_DIR, machine_slot

    kind = f"unit2-{os.getpid()}"
    holder = slot_holder(kind, 2)
    try:
        assert holder.stdout is not None and holder.stdout.readline().startswith("held")
        threading.Timer(1.0, holder.kill).start()
        started = time.monotonic()
        with machine_slot(kind, 2, poll_s=0.1, count=2):
            waited = time.monotonic() - started
            for i in range(2):  # both are held: another taker gets none
                with open(SLOT_DIR / f"{kind}-{i}.lock", "w") as other, \
                        pytest.raises(BlockingIOError):
                    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert 0.8 < waited < 30, waited
    finally:
        end([holder], kind)


def test_a_test_waiting_for_two_slots_is_not_overtaken_by_one_slot_tests(tmp_path: Path) -> None:
    """The fleet test used to wait 17 minutes in CI: every time a slot freed, a one-slot test
    took it before the second one freed. Once a two-slot test waits, a one-slot test does not
    start in the free slot; the two-slot test starts when the running one ends."""
    kind = f"unit3-{os.getpid()}"
    running = slot_holder(kind, 2, count=1, hold_s=3.0)  # a soak in one slot, the other free
    waiting = late = None
    try:
        assert running.stdout is not None and running.stdout.readline().startswith("held")
        waiting = slot_holder(kind, 2, count=2, hold_s=0.5)  # a fleet wave: waits for both
        time.sleep(1.0)
        late = slot_holder(kind, 2, count=1, hold_s=0.0)  # comes while the wave waits
        assert waiting.stdout is not None and late.stdout is not None
        wave_at = float(waiting.stdout.readline().split()[1])
        late_at = float(late.stdout.readline().split()[1])
        assert late_at > wave_at, (wave_at, late_at)
    finally:
        end([running, waiting, late], kind)


def test_the_suite_hands_out_the_tests_that_hold_slots_longest_first() -> None:
    """The end-to-end tests are collected two-slot first (a wave of two gateways, or one
    that costs two slots), then by the minutes each holds its slot: a 5-minute soak that
    started last left a slot idle at the end of CI. A group's tests keep their own order (the
    comparison runs after the two runs it compares)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "tests", "-m", "e2e", "--collect-only",
                           "-q", "-p", "no:randomly"], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=120)
    ids = [line.strip() for line in done.stdout.splitlines() if "::" in line]
    assert ids, done.stdout + done.stderr
    two = [i for i, nodeid in enumerate(ids) if "fleet_whose_members_all_pass" in nodeid
           or "second_wave_that_fails" in nodeid or "fleet_of_attached" in nodeid]
    assert two == [0, 1, 2], ids[:5]
    # one gateway that costs two slots (`soaks(slots=2)`) goes with them
    systemd = [i for i, nodeid in enumerate(ids) if "test_systemd_acceptance.py" in nodeid]
    assert systemd == [3, 4], ids[:6]
    order = {key: next(i for i, nodeid in enumerate(ids) if key in nodeid) for key in (
        "manual_gate_waits", "canary_that_fails", "latest_runs", "name_typed_at_the_terminal",
        "regressing_candidate", "does_not_regress", "two_real_runs_compare")}
    assert order["manual_gate_waits"] < order["canary_that_fails"] < order["latest_runs"] \
        < order["name_typed_at_the_terminal"]
    assert order["regressing_candidate"] < order["does_not_regress"] \
        < order["two_real_runs_compare"]


def test_a_soak_joins_others_only_when_the_machine_has_room_for_it() -> None:
    from tests.conftest import ALONE_WAIT_S, SETTLE_S, may_start

    # beside others: room measured, and not right after another soak started
    assert may_start(1.0, others=1, waited_s=5, since_last_start_s=SETTLE_S + 1,
                     headroom=0.7)[0]
    go, why = may_start(0.3, others=2, waited_s=600, since_last_start_s=600, headroom=0.7)
    assert not go and "0.3 cores idle, 0.7 wanted" in why  # no cap beside others: they end
    go, why = may_start(1.9, others=1, waited_s=5, since_last_start_s=SETTLE_S - 1,
                        headroom=0.7)
    assert not go and "started" in why
    # alone: room too (the other workers' installs at the start), but not for ever
    assert not may_start(0.2, others=0, waited_s=10, since_last_start_s=1, headroom=0.7)[0]
    go, why = may_start(0.2, others=0, waited_s=ALONE_WAIT_S, since_last_start_s=1,
                        headroom=0.7)
    assert go and why.startswith("alone after")


def test_idle_cores_come_from_the_machines_cpu_times() -> None:
    from tests.conftest import cpu_times, idle_cores

    assert idle_cores((100, 1000), (150, 1100), cores=2) == 1.0
    assert idle_cores((100, 1000), (100, 1000), cores=2) == 2.0  # no time passed: no claim
    before = cpu_times()
    busy_until = time.monotonic() + 0.5
    while time.monotonic() < busy_until:  # this process keeps one core busy meanwhile
        pass
    idle = idle_cores(before, cpu_times(), cores=os.cpu_count() or 1)
    assert 0 <= idle <= (os.cpu_count() or 1) - 0.5


def test_a_soak_refused_for_room_lets_its_slot_go_meanwhile(tmp_path: Path) -> None:
    """While `admit` says no, the slot is free for others (between its answers); the slot is
    held once it says yes."""
    from tests.conftest import SLOT_DIR, machine_slot

    kind = f"unit4-{os.getpid()}"
    answers = iter([False, False, True])
    seen: list[int] = []
    free: list[bool] = []
    probes: list[threading.Thread] = []

    def try_slot() -> None:  # as another taker would, once the refusal is through
        time.sleep(0.1)
        with open(SLOT_DIR / f"{kind}-0.lock", "w") as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                free.append(False)
            else:
                free.append(True)
                fcntl.flock(other, fcntl.LOCK_UN)

    def admit(others: int) -> bool:
        seen.append(others)
        answer = next(answers)
        if not answer:
            probes.append(threading.Thread(target=try_slot))
            probes[-1].start()
        return answer

    try:
        with machine_slot(kind, 2, poll_s=0.5, admit=admit) as index:
            assert index == 0
            with open(SLOT_DIR / f"{kind}-0.lock", "w") as other, \
                    pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for probe in probes:
            probe.join(timeout=10)
        assert seen == [0, 0, 0] and free == [True, True], (seen, free)
    finally:
        end([], kind)
