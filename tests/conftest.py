"""Shared fixtures of the harness's own tests: the private docker engine and the systemd image.

One engine per session (it holds a lock on its data root), shared by every module of the session
that boots a systemd container; its teardown checks with `ps` that nothing of the session is left.
Under pytest-xdist every worker is a session of its own, so each worker gets its own engine:
its own data root under `.cache/workers/<worker>/` (two dockerds can never share one), socket,
exec root and bridge. The root file system tarball they import is built once for all of them.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.container.engine import DockerEngine
from harness.container.image import SystemdImage

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"


def worker_id() -> str:
    """The pytest-xdist worker this process is (gw0, gw1, ...), or "main" without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def worker_cache() -> Path:
    """This worker's own part of the cache, for what two workers must never write at once."""
    return CACHE if worker_id() == "main" else CACHE / "workers" / worker_id()

STARTED: list[str] = []  # IDs of containers this session started


def ours(pid: int, socket: str) -> list[str]:
    """Processes of this session: dockerd by PID, anything naming its socket or a container
    we started, and anything in such a container's cgroup (the gateway renames itself to
    `openclaw-gateway`, so its arguments cannot be relied on)."""
    found = []
    for line in subprocess.run(["ps", "-eo", "pid,args"], capture_output=True,
                               text=True).stdout.splitlines()[1:]:
        proc = line.split(None, 1)[0]
        try:
            cgroup = Path(f"/proc/{proc}/cgroup").read_text()
        except OSError:
            cgroup = ""
        if proc == str(pid) or socket in line or any(c in line or c in cgroup for c in STARTED):
            found.append(line.strip())
    return found


# A real OpenClaw gateway under the soak mix takes about half a core while traffic flows (its
# quick replies have a 30 s budget in the policy): four soaks at once on two cores, beside
# other engineers' runs, pushed the known-good's quick replies past it, and the verdicts turned
# from the gateway's behaviour to the machine's. So a test marked `soaks` takes one of a
# machine-wide set of slots for its duration; the other workers go on with the rest. Most of a
# soak test's time is waiting (a slow reasoner silent for 70 s, drains, watches, installs): a
# fresh-clone CI with one slot per core kept the two cores 39 % busy on average and the quick
# replies' p95 at 4 s at most, so there is one slot more than cores.
SOAK_SLOTS = max(1, int(os.environ.get("HARNESS_TEST_SOAK_SLOTS", (os.cpu_count() or 2) + 1)))
SLOT_DIR = Path("/run/grh-test-slots")  # machine-wide: runs of two checkouts share the cores


def _take(handles: list, count: int) -> list[int] | None:
    """Take `count` of the slot locks without waiting, all or none."""
    held: list[int] = []
    for index, handle in enumerate(handles):
        if len(held) == count:
            break
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue
        held.append(index)
    if len(held) == count:
        return held
    for index in held:
        fcntl.flock(handles[index], fcntl.LOCK_UN)
    return None


def _release(handles: list, held: list[int] | None) -> None:
    for index in held or ():
        fcntl.flock(handles[index], fcntl.LOCK_UN)


def _held_by_others(handles: list, held: list[int]) -> int:
    """How many of the slots another process holds (probed without waiting)."""
    others = 0
    for index, handle in enumerate(handles):
        if index in held:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            others += 1
        else:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return others


@contextmanager
def machine_slot(kind: str, slots: int, poll_s: float = 1.0, count: int = 1,
                 admit: Callable[[int], bool] | None = None) -> Iterator[int]:
    """Hold `count` of `slots` exclusive file locks of this kind until the block ends, all of
    them at once or none (two tests that want two never hold one each and wait); wait while
    too few are free. The locks go with the process, however it ends.

    A test that wants several slots would otherwise starve: with more workers than slots, a
    slot that frees is taken by the next one-slot test before the second one frees. So it
    first holds the kind's gate exclusively, and a one-slot test takes a slot only while it
    can hold the gate shared: once a several-slot test waits, nobody new starts, and it starts
    as soon as the running soaks end.

    `admit(others)`, called with the slots in hand and the number other processes hold, says
    whether to go on now; if not, they are let go and taken again later (a several-slot test
    keeps the gate meanwhile)."""
    SLOT_DIR.mkdir(parents=True, exist_ok=True)
    handles = [open(SLOT_DIR / f"{kind}-{i}.lock", "w") for i in range(slots)]  # noqa: SIM115
    gate = open(SLOT_DIR / f"{kind}-gate.lock", "w")  # noqa: SIM115
    count = max(1, min(count, slots))

    def admitted(held: list[int] | None) -> bool:
        if held is None:
            return False
        if admit is None or admit(_held_by_others(handles, held)):
            return True
        _release(handles, held)
        return False

    try:
        held = None
        if count > 1:
            fcntl.flock(gate, fcntl.LOCK_EX)
            try:
                while not admitted(held := _take(handles, count)):
                    time.sleep(poll_s)
            finally:
                fcntl.flock(gate, fcntl.LOCK_UN)
        else:
            while True:
                fcntl.flock(gate, fcntl.LOCK_SH)
                try:
                    held = _take(handles, count)
                finally:
                    fcntl.flock(gate, fcntl.LOCK_UN)
                if admitted(held):
                    break
                time.sleep(poll_s)
        assert held is not None
        try:
            yield held[0]
        finally:
            _release(handles, held)
    finally:
        gate.close()
        for handle in handles:
            handle.close()


# The slots are a ceiling, not a promise: how many soaks the cores hold depends on the cores.
# On a slower machine of the same two cores a fresh-clone CI with three slots kept them 74 %
# busy, the known-good's quick replies went past their 30 s budget in four tests, and the first
# soaks ran while the other workers installed Node.js, the gateways and the systemd image (a
# /healthz that did not answer in time, replies of 44 s). So a soak joins the others only when
# the machine has room for it, measured: the cores idle over the last seconds, and some time
# since the last soak started (its install and its gateway's start come first and cost more
# than its soak). A soak that would run alone waits for room too, but not for ever.
HEADROOM_CORES = float(os.environ.get("HARNESS_TEST_SOAK_HEADROOM", "0.7"))
MEASURE_S = 10.0  # the idle cores are measured over this long
SETTLE_S = 45.0  # after a soak starts, the next one waits at least this long
ALONE_WAIT_S = 240.0  # a soak that would run alone starts after this long, room or not


def cpu_times() -> tuple[float, float]:
    """(idle, total) CPU time of the whole machine since boot, in clock ticks (/proc/stat)."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return fields[3] + fields[4], sum(fields)  # idle + iowait; user .. steal


def idle_cores(before: tuple[float, float], after: tuple[float, float], cores: int) -> float:
    total = after[1] - before[1]
    return cores * (after[0] - before[0]) / total if total > 0 else float(cores)


def settling(others: int, since_last_start_s: float) -> str | None:
    """Why a soak may not join the others yet whatever the cores say, or None."""
    if others and since_last_start_s < SETTLE_S:
        return f"the last soak started {since_last_start_s:.0f} s ago"
    return None


def may_start(idle: float, others: int, waited_s: float, since_last_start_s: float,
              headroom: float = HEADROOM_CORES) -> tuple[bool, str]:
    """Whether a soak starts now, and why: the decision of `Headroom`, apart to be tested."""
    if (why := settling(others, since_last_start_s)) is not None:
        return False, why
    if idle >= headroom:
        return True, f"{idle:.1f} cores idle"
    if others == 0 and waited_s >= ALONE_WAIT_S:
        return True, f"alone after {waited_s:.0f} s, {idle:.1f} cores idle"
    return False, f"{idle:.1f} cores idle, {headroom:g} wanted"


class Headroom:
    """`machine_slot`'s `admit` for soaks: one decision at a time machine-wide (a lock), the
    idle cores measured while it holds the slots, the last start in a stamp file."""

    def __init__(self, kind: str = "soak", cores: int | None = None) -> None:
        self.cores = cores or os.cpu_count() or 2
        self.lock = SLOT_DIR / f"{kind}-admit.lock"
        self.stamp = SLOT_DIR / f"{kind}-started"
        self.began = time.monotonic()
        self.reason = ""

    def __call__(self, others: int) -> bool:
        with open(self.lock, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                since = time.time() - self.stamp.stat().st_mtime
            except FileNotFoundError:
                since = float("inf")
            if (why := settling(others, since)) is not None:  # no need to measure
                self.reason = why
                return False
            before = cpu_times()
            time.sleep(MEASURE_S)
            idle = idle_cores(before, cpu_times(), self.cores)
            go, self.reason = may_start(idle, others, time.monotonic() - self.began, since)
            if go:
                self.stamp.touch()
            return go


def _slots_wanted(item: pytest.Item) -> int:
    """A slot per gateway the test soaks at once, or `soaks(slots=...)` where one gateway
    costs more than a slot (a whole systemd host with its journal in a container)."""
    marker = item.get_closest_marker("soaks")
    if marker is None:
        return 0
    return int(marker.kwargs.get("slots", marker.kwargs.get("gateways", 1)))


def _slot_minutes(item: pytest.Item) -> float:
    """How long the test holds its slots (`soaks(minutes=...)`, as measured in CI; 1 unless
    it says), times how many it holds; 0 for a test that takes none."""
    marker = item.get_closest_marker("soaks")
    if marker is None:
        return 0.0
    return float(marker.kwargs.get("minutes", 1)) * min(_slots_wanted(item), SOAK_SLOTS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The soak slots are the suite's critical resource, so the tests that hold them go first,
    those that need several at once before all (they start while every slot is free instead of
    waiting for a moment when all are), then the longest first: a 5-minute soak that starts
    last leaves a slot idle at the end (it did: 13 % of CI's slot time). A stable sort on the
    markers alone, so every xdist worker collects the same order; tests of one xdist_group
    keep theirs (xdist hands groups out whole, the biggest first)."""
    items.sort(key=lambda item: (0 if _slots_wanted(item) > 1 else 1,
                                 0.0 if item.get_closest_marker("xdist_group")
                                 else -_slot_minutes(item)))


@pytest.fixture(autouse=True)
def soak_slot(request: pytest.FixtureRequest) -> Iterator[None]:
    marker = request.node.get_closest_marker("soaks")
    if marker is None:
        yield
        return
    asked = time.monotonic()
    # a test that soaks several gateways at once (a fleet's wave) asks a slot for each
    slots = _slots_wanted(request.node)
    room = Headroom()
    with machine_slot("soak", SOAK_SLOTS, count=slots, admit=room) as index:
        waited = time.monotonic() - asked
        print(f"\n[soak slot {index + 1}/{SOAK_SLOTS}, {slots} slot(s)] after {waited:.0f} s: "
              f"{room.reason}")
        held = time.monotonic()
        try:
            yield
        finally:
            _record_slot(request.node.nodeid, slots, waited, time.monotonic() - held,
                         room.reason)


# The soak slots are the suite's critical resource: how long each test waited for its slots and
# held them is written by every worker to one file of the session, and the controller prints
# the picture at the end (who held the slots longest, how busy they were), so the next person
# who must bring CI under its budget sees where the slot time goes.
SLOT_LOG_ENV = "HARNESS_TEST_SLOT_LOG"


def _record_slot(nodeid: str, slots: int, waited_s: float, held_s: float,
                 started: str = "") -> None:
    path = os.environ.get(SLOT_LOG_ENV)
    if not path:
        return
    line = json.dumps({"test": nodeid, "slots": slots, "waited_s": round(waited_s, 1),
                       "held_s": round(held_s, 1), "started": started})
    with open(path, "a") as log:  # one short line per write: appends do not interleave
        log.write(line + "\n")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: it inherits the controller's file
        return
    log = CACHE / "test-slots" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    os.environ[SLOT_LOG_ENV] = str(log)
    config.stash[SLOT_LOG] = (log, time.monotonic())


SLOT_LOG = pytest.StashKey[tuple[Path, float]]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    log, started = config.stash.get(SLOT_LOG, (None, 0.0))
    if log is None or not log.exists():
        return
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    if not rows:
        return
    wall = time.monotonic() - started
    slot_s = sum(r["held_s"] * min(r["slots"], SOAK_SLOTS) for r in rows)
    terminalreporter.section("soak slots")
    terminalreporter.write_line(
        f"{len(rows)} tests held {slot_s / 60:.1f} slot-minutes of {SOAK_SLOTS} slots over "
        f"{wall / 60:.1f} min ({slot_s / max(wall * SOAK_SLOTS, 1):.0%} busy); waited "
        f"{sum(r['waited_s'] for r in rows) / 60:.1f} min in all. Longest held:")
    for row in sorted(rows, key=lambda r: -r["held_s"])[:12]:
        terminalreporter.write_line(
            f"  {row['held_s']:7.1f} s held x{row['slots']}  {row['waited_s']:6.1f} s waited"
            f"  {row['test']}  (started: {row.get('started') or '-'})")


@pytest.fixture(scope="session")
def engine() -> Iterator[DockerEngine]:
    """A private dockerd for this session; afterwards `ps` must show nothing of it."""
    docker_engine = DockerEngine(worker_cache())
    with docker_engine:
        pid, socket = docker_engine.pid, str(docker_engine.socket)
        bridge = docker_engine.bridge
        yield docker_engine
        assert any(line.split()[0] == str(pid) for line in ours(pid, socket))  # the probe works
        remaining = docker_engine.docker("ps", "-aq", "--no-trunc").stdout.split()
        assert not set(remaining) & set(STARTED), f"containers not removed: {remaining}"
    leftovers = ours(pid, socket)
    assert not Path(f"/proc/{pid}").exists(), f"dockerd PID {pid} is still there"
    assert not leftovers, f"left running after the tests: {leftovers}"
    assert not docker_engine.mounts(), f"left mounted: {docker_engine.mounts()}"
    assert not Path(socket).parent.exists()
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    # only this engine's own bridge: another engine on the machine may have one of its own
    assert bridge and not any(line.split()[0] == bridge for line in links.splitlines()), links


@pytest.fixture(scope="session")
def image(engine: DockerEngine) -> str:
    built = SystemdImage(engine, CACHE)
    tag = built.derived()
    print(f"\n[systemd image] {tag}: {built.times}")
    return tag


