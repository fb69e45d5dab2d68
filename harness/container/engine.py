"""A private Debian dockerd for the harness's tests, started and stopped by its own PID.

No container registry can be reached from the test machines, and the machine may already run
someone else's dockerd, so this engine shares nothing with a system one:
    socket      /run/grh-XXXXXXXX/docker.sock  (unix socket paths are limited to 108 bytes)
    data root   <cache>/docker/data            (images survive between runs)
    exec root   <cache>/docker/exec            (or the /run folder when the cache path is long)
    bridge      grh-XXXXXX with its own /24    (never docker0, which another engine may own)
    iptables    off: nothing is written into the host's firewall; `-p 127.0.0.1:H:C` still
                works through docker's userland proxy, and the containers need no outbound NAT
One engine per cache folder at a time (an exclusive lock), because a data root cannot be shared;
parallel runs (pytest-xdist workers) each start an engine on a cache folder of their own.
On exit dockerd gets SIGTERM by the PID recorded at start (SIGKILL of its process group if it
does not go), what it left mounted under its roots (its netns bind mount) is unmounted, and the
bridge is deleted.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from harness.common import commands, waits
from harness.common.errors import InfrastructureError

PACKAGES = ("docker.io", "debootstrap")
LABEL = "org.gateway-release-harness"  # every container the harness starts carries it
SUBNET_LOCK = "/run/grh-subnet.lock"  # machine-wide: bridges are machine-wide too


def ensure_packages(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """apt-get install what is missing (nothing when all are there); returns what it installed."""
    missing = [p for p in packages if not _installed(p)]
    if not missing:
        return []
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    wait = ["-o", "DPkg::Lock::Timeout=600"]  # a parallel run may be installing the same
    argv = ["apt-get", *wait, "install", "-y", "-q", "--no-install-recommends", *missing]
    done = commands.run(argv, env=env, timeout=700)
    if done.returncode != 0:  # a machine whose package lists are stale or absent
        commands.run(["apt-get", *wait, "update", "-q"], env=env, timeout=700)
        done = commands.run(argv, env=env, timeout=600)
    if done.returncode != 0:
        raise InfrastructureError(f"apt-get install {' '.join(missing)} failed: {done.tail(3)}")
    return missing


def _installed(package: str) -> bool:
    done = commands.run(["dpkg-query", "-W", "-f=${Status}", package], timeout=30)
    return done.returncode == 0 and done.stdout.strip() == "install ok installed"


class DockerEngine:
    """`with DockerEngine(cache_dir) as engine:` a running dockerd; `engine.env()` reaches it."""

    def __init__(self, cache_dir: Path, ready_timeout_s: float = 60.0,
                 lock_timeout_s: float = 300.0) -> None:
        self.root = cache_dir.resolve() / "docker"
        self.data_root = self.root / "data"
        self.log_path = self.root / "dockerd.log"
        self.ready_timeout_s = ready_timeout_s
        self.lock_timeout_s = lock_timeout_s
        self.run_dir: Path | None = None
        self.exec_root: Path | None = None
        self.bridge: str | None = None
        self.subnet: ipaddress.IPv4Network | None = None
        self.pid: int | None = None
        self.startup_s: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None
        self._saved_env: dict[str, str | None] | None = None

    # -- how to reach it ---------------------------------------------------------------
    @property
    def socket(self) -> Path:
        if self.run_dir is None:
            raise InfrastructureError("the docker engine is not running")
        return self.run_dir / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        """What the docker CLI and testcontainers need to use this engine (and nothing else).

        The test machines have /.dockerenv, which makes testcontainers guess it runs inside a
        container and fail (KeyError: 'HostConfig'); Ryuk's image cannot be pulled.
        """
        return {"DOCKER_HOST": self.host, "TESTCONTAINERS_RYUK_DISABLED": "true",
                "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
                "TESTCONTAINERS_HOST_OVERRIDE": "127.0.0.1"}

    def export_env(self) -> None:
        """Put env() into this process's environment (testcontainers reads it from there);
        stop() puts back what was there before."""
        if self._saved_env is None:
            self._saved_env = {k: os.environ.get(k) for k in self.env()}
        os.environ.update(self.env())

    def _restore_env(self) -> None:
        for key, value in (self._saved_env or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = None

    def docker(self, *args: str, timeout: float = 120.0,
               input_path: Path | None = None) -> commands.Completed:
        """Run the docker CLI against this engine; never raises on a non-zero exit."""
        argv = [docker_cli(), "-H", self.host, *args]
        if input_path is None:
            return commands.run(argv, timeout=timeout)
        with open(input_path, "rb") as handle:
            try:
                proc = subprocess.run(argv, stdin=handle, capture_output=True, text=True,
                                      timeout=timeout)
            except subprocess.TimeoutExpired:
                return commands.Completed(argv, 124, "", f"timed out after {timeout:g} s")
        return commands.Completed(argv, proc.returncode, proc.stdout, proc.stderr)

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> DockerEngine:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        ensure_packages()
        self.root.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            self._remove_stale_bridge()
            self._remove_stale_run_dir()
            self.run_dir = Path(tempfile.mkdtemp(prefix="grh-", dir="/run"))
            (self.root / "run_dir").write_text(str(self.run_dir))
            exec_root = self.root / "exec"
            # containerd puts its sockets under the exec root; keep them well under 108 bytes
            self.exec_root = exec_root if len(str(exec_root)) <= 60 else self.run_dir / "exec"
            self._create_bridge()
            self._spawn()
            self._wait_ready()
            self._remove_leftover_containers()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        try:
            if self._proc is not None:
                self._terminate(self._proc)
        finally:
            self._proc = None
            self.pid = None
            self._unmount_leftovers()
            if self.bridge is not None:
                commands.run(["ip", "link", "del", self.bridge], timeout=30)
                (self.root / "bridge").unlink(missing_ok=True)
                self.bridge = None
            if self.run_dir is not None:
                shutil.rmtree(self.run_dir, ignore_errors=True)
                (self.root / "run_dir").unlink(missing_ok=True)
                self.run_dir = None
            self._restore_env()
            self._release_lock()

    # -- pieces ------------------------------------------------------------------------
    def _acquire_lock(self) -> None:
        fd = os.open(self.root / "engine.lock", os.O_RDWR | os.O_CREAT, 0o644)

        def locked() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        if not waits.poll(locked, timeout_s=self.lock_timeout_s, interval_s=1):
            os.close(fd)
            raise InfrastructureError(
                f"{self.root}: another run's docker engine holds this cache's data root "
                f"for more than {self.lock_timeout_s:g} s")
        self._lock = fd

    def _release_lock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            os.close(self._lock)
            self._lock = None

    def _remove_stale_bridge(self) -> None:
        """A run that was killed leaves its bridge behind; we hold the lock, so it is ours."""
        record = self.root / "bridge"
        if record.exists():
            name = record.read_text().strip()
            if name.startswith("grh-"):
                commands.run(["ip", "link", "del", name], timeout=30)
            record.unlink()

    def _remove_stale_run_dir(self) -> None:
        """... and its run dir under /run, with the netns mount dockerd left in it."""
        record = self.root / "run_dir"
        if not record.exists():
            return
        stale = Path(record.read_text().strip())
        if stale.parent == Path("/run") and stale.name.startswith("grh-"):
            self._unmount_leftovers([stale])
            shutil.rmtree(stale, ignore_errors=True)
        record.unlink()

    def _create_bridge(self) -> None:
        # engines of parallel runs choose their subnets one at a time, so two never pick the same
        with open(SUBNET_LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._create_bridge_on_a_free_subnet()

    def _create_bridge_on_a_free_subnet(self) -> None:
        self.subnet = _free_subnet()
        name = f"grh-{secrets.token_hex(3)}"
        gateway = next(self.subnet.hosts())
        for argv in (["ip", "link", "add", "name", name, "type", "bridge"],
                     ["ip", "addr", "add", f"{gateway}/{self.subnet.prefixlen}", "dev", name],
                     ["ip", "link", "set", name, "up"]):
            done = commands.run(argv, timeout=30)
            if done.returncode != 0:
                commands.run(["ip", "link", "del", name], timeout=30)
                raise InfrastructureError(f"{' '.join(argv)} failed: {done.tail(2)}")
            if argv[2] == "add" and argv[1] == "link":
                self.bridge = name
                (self.root / "bridge").write_text(name)

    def _spawn(self) -> None:
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        assert self.run_dir is not None and self.exec_root is not None and self.bridge
        argv = [dockerd, "--host", self.host, "--data-root", str(self.data_root),
                "--exec-root", str(self.exec_root), "--pidfile", str(self.run_dir / "dockerd.pid"),
                "--bridge", self.bridge, "--iptables=false", "--ip-masq=false"]
        with open(self.log_path, "ab") as log:
            log.write(f"--- harness: {' '.join(argv)} at {time.time():.3f}\n".encode())
            log.flush()
            # dies with the process that started it (a test worker killed without teardown
            # once left its engine and container running): SIGTERM, on which dockerd stops its
            # containers and its containerd
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True,
                                          preexec_fn=commands.die_with_parent())
        self.pid = self._proc.pid

    def _wait_ready(self) -> None:
        started = time.monotonic()
        proc = self._proc
        assert proc is not None

        def answers() -> bool:
            if proc.poll() is not None:
                raise InfrastructureError(
                    f"dockerd exited with {proc.returncode} at start: {self._log_tail()}")
            return self.socket.exists() and self.docker("info", timeout=10).returncode == 0

        waits.wait_until(answers, timeout_s=self.ready_timeout_s, interval_s=0.2,
                         what="dockerd did not answer `docker info`", detail=self._log_tail)
        self.startup_s = time.monotonic() - started

    def _remove_leftover_containers(self) -> None:
        """Containers of a run that was killed are still in the persistent data root."""
        done = self.docker("ps", "-aq", "--filter", f"label={LABEL}")
        for cid in done.stdout.split():
            self.docker("rm", "-f", cid, timeout=60)

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # dockerd stops its containerd and shims itself
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the session we created: pgid == pid
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)

    def mounts(self, under: list[Path] | None = None) -> list[str]:
        """Mount points under this engine's roots (dockerd leaves its netns bind mount)."""
        roots = [str(r) + "/" for r in (under or [self.root, self.run_dir, self.exec_root]) if r]
        points = []
        try:
            for line in Path("/proc/self/mountinfo").read_text().splitlines():
                point = line.split()[4].replace("\\040", " ")
                if any(point.startswith(root) for root in roots):
                    points.append(point)
        except OSError:
            pass
        return points

    def _unmount_leftovers(self, under: list[Path] | None = None) -> None:
        for point in sorted(self.mounts(under), key=len, reverse=True):
            if commands.run(["umount", point], timeout=30).returncode != 0:
                commands.run(["umount", "-l", point], timeout=30)

    def _log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:])


def docker_cli() -> str:
    """Prefer the client that came with Debian's dockerd; any client negotiates the API."""
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise InfrastructureError("no docker CLI found")


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.199.0.0/16 that no interface or route of this machine uses yet."""
    used: list[ipaddress.IPv4Network] = []
    for argv in (["ip", "-4", "-o", "addr", "show"], ["ip", "-4", "route", "show"]):
        for word in commands.run(argv, timeout=30).stdout.split():
            if "/" in word and word[0].isdigit():
                try:
                    used.append(ipaddress.ip_network(word, strict=False))
                except ValueError:
                    pass
    for third in range(1, 255):
        candidate = ipaddress.ip_network(f"10.199.{third}.0/24")
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise InfrastructureError("no free /24 in 10.199.0.0/16 for the docker bridge")
