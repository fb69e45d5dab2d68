"""A container booting a real systemd, with a lingering user whose manager is up.

Started with testcontainers against the private engine: tmpfs on /run and /run/lock, the host's
cgroup tree read-only (no --privileged). Host paths can be bind-mounted at the same absolute
path, so that the harness's runtime cache (Node.js, versioned gateway prefixes with their
`current` symlinks and npm `.bin` links) works inside unchanged.

Networking defaults to the host's namespace: the gateway then binds the host's loopback like a
gateway of the local driver does, so the harness reaches it (and it reaches the model lab) on
127.0.0.1 with nothing published. Pass network="bridge" for an isolated one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.common import waits
from harness.common.commands import Completed
from harness.common.errors import InfrastructureError
from harness.container.engine import LABEL, DockerEngine, docker_cli
from harness.container.image import UID, USER
from harness.targets.runner import DockerExecRunner, systemd_user_env


def _testcontainers(engine: DockerEngine) -> Any:
    """Point testcontainers at the private engine (see DockerEngine.env for why each is set)."""
    engine.export_env()
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    testcontainers_config.ryuk_disabled = True
    testcontainers_config.connection_mode_override = ConnectionMode.docker_host
    testcontainers_config.tc_host_override = "127.0.0.1"
    from testcontainers.core.container import DockerContainer

    return DockerContainer


class SystemdContainer:
    def __init__(self, engine: DockerEngine, image: str, *,
                 mounts: Iterable[tuple[Path, str]] = (), same_path_ro: Iterable[Path] = (),
                 network: str = "host", user: str = USER, uid: int = UID,
                 boot_timeout_s: float = 60.0) -> None:
        self.engine = engine
        self.image = image
        self.mounts = [(Path(h), c, "rw") for h, c in mounts]
        self.mounts += [(Path(p).resolve(), str(Path(p).resolve()), "ro") for p in same_path_ro]
        self.network = network
        self.user = user
        self.uid = uid
        self.boot_timeout_s = boot_timeout_s
        self.container_id: str | None = None
        self.boot_s: float | None = None
        self._container: Any = None

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> SystemdContainer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        DockerContainer = _testcontainers(self.engine)
        container = (
            DockerContainer(self.image, docker_client_kw={"environment": self.engine.env()})
            .with_tmpfs_mount("/run").with_tmpfs_mount("/run/lock")
            .with_volume_mapping("/sys/fs/cgroup", "/sys/fs/cgroup", "ro")
            .with_kwargs(labels={LABEL: "systemd"}, network_mode=self.network,
                         stop_signal="SIGRTMIN+3")
        )
        for host, inside, mode in self.mounts:
            container = container.with_volume_mapping(str(host), inside, mode)
        started = time.monotonic()
        try:
            container.start()
            self._container = container
            self.container_id = container.get_wrapped_container().id
            self._wait_booted()
        except BaseException:
            self.stop()
            raise
        self.boot_s = time.monotonic() - started

    def stop(self) -> None:
        """Remove the container by its ID (SIGKILL of its init, then its file system)."""
        container, self._container = self._container, None
        if container is not None:
            container.stop(force=True)
        if self.container_id is not None:
            if self.engine.docker("inspect", self.container_id, timeout=30).returncode == 0:
                self.engine.docker("rm", "-f", self.container_id, timeout=60)
            self.container_id = None

    # -- using it ----------------------------------------------------------------------
    def runner(self) -> DockerExecRunner:
        if self.container_id is None:
            raise InfrastructureError("the systemd container is not running")
        return DockerExecRunner(self.container_id, self.engine.host, docker_cli())

    def user_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {**systemd_user_env(self.uid), **(extra or {})}

    def exec(self, argv: Sequence[str], timeout: float = 60.0) -> Completed:
        """As root."""
        return self.runner().run(argv, timeout=timeout)

    def exec_as_user(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
                     timeout: float = 60.0, input: str | None = None) -> Completed:
        """As the lingering user, with XDG_RUNTIME_DIR and DBUS_SESSION_BUS_ADDRESS set."""
        return self.runner().run(argv, user=self.user, env=self.user_env(env), timeout=timeout,
                                 input=input)

    def _wait_booted(self) -> None:
        """Until the system is up and the user's manager answers on its bus."""
        last = "not probed"

        def booted() -> bool:
            nonlocal last
            state = self.exec(["systemctl", "is-system-running"], timeout=15).stdout.strip()
            if state not in ("running", "degraded"):
                last = f"system {state or 'not answering'}"
                return False
            done = self.exec_as_user(["systemctl", "--user", "is-system-running"], timeout=15)
            user_state = done.stdout.strip()
            last = f"system {state}, user manager {user_state or done.tail(1)!r}"
            return user_state in ("running", "degraded")

        def seen() -> str:
            failed = self.exec(["systemctl", "--failed", "--no-legend", "--plain"], timeout=15)
            return f"{last}; failed units: {failed.stdout.strip() or '-'}"

        waits.wait_until(booted, timeout_s=self.boot_timeout_s, interval_s=0.25,
                         what=f"systemd in {self.image} did not boot", detail=seen)
