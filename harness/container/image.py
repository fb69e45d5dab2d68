"""Images with a real systemd, built locally: no container registry can be reached.

    base    debootstrap (minbase) of Debian bookworm with systemd, dbus and a user session,
            from the mirror apt already uses on this machine (read at run time), packed as a
            tarball under <cache>/images/ and `docker import`ed with CMD /sbin/init
    derived FROM base: a user (uid 1000) with linger enabled, so that its `user@1000.service`
            (and with it `systemctl --user` and `journalctl --user`) runs without a login,
            and a deployment root owned by that user

The tarball's name carries a hash of what went into it, so a changed package list rebuilds it;
a missing tarball is rebuilt. Images are tagged with the hash of their inputs and reused while
the engine's data root keeps them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.common import commands
from harness.common.digest import sha256_file
from harness.common.errors import InfrastructureError
from harness.container.engine import LABEL, DockerEngine, docker_cli

SUITE = "bookworm"
# openssh-server: the ssh command runner's tests start an sshd of their own (ssh.service is
# masked in the derived image, so no other container listens on port 22)
INCLUDE = ("python3", "systemd", "systemd-sysv", "dbus", "dbus-user-session", "libpam-systemd",
           "procps", "openssh-server")
USER, UID = "gw", 1000
DEPLOY_ROOT = "/srv/gateway"  # writable by the user: deployments of the gateway live under it

DERIVED_DOCKERFILE = f"""\
FROM {{base}}
RUN useradd --create-home --uid {UID} --user-group --shell /bin/bash {USER} \\
 && mkdir -p /var/lib/systemd/linger && touch /var/lib/systemd/linger/{USER} \\
 && install -d -o {USER} -g {USER} -m 0755 {DEPLOY_ROOT} \\
 && systemctl mask getty@tty1.service console-getty.service systemd-firstboot.service \\
    ssh.service ssh.socket
LABEL {LABEL}.image=derived
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
"""


def debian_mirror(sources: Path = Path("/etc/apt/sources.list.d/debian.sources"),
                  legacy: Path = Path("/etc/apt/sources.list")) -> str:
    """The Debian mirror this machine's apt already uses (deb822 first, then the old format)."""
    try:
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and line.split()[1:]:
                return line.split()[1]
    except OSError:
        pass
    try:
        for line in legacy.read_text().splitlines():
            words = line.split()
            if len(words) >= 3 and words[0] == "deb" and "security" not in words[1]:
                return next(w for w in words[1:] if "://" in w)
    except (OSError, StopIteration):
        pass
    raise InfrastructureError(f"no Debian mirror found in {sources} or {legacy}")


@dataclass
class BuildTimes:
    """Seconds each step took in this process (0 when the cached result was used)."""

    rootfs_s: float = 0.0
    import_s: float = 0.0
    derived_s: float = 0.0
    reused: list[str] = field(default_factory=list)


class SystemdImage:
    def __init__(self, engine: DockerEngine, cache_dir: Path) -> None:
        self.engine = engine
        self.dir = cache_dir.resolve() / "images"
        self.key = hashlib.sha256(json.dumps([SUITE, INCLUDE]).encode()).hexdigest()[:12]
        self.tarball = self.dir / f"debian-systemd-{SUITE}-{self.key}.tar"
        self.times = BuildTimes()

    # -- the root file system ----------------------------------------------------------
    def rootfs(self) -> Path:
        """The cached root file system tarball; built with debootstrap when missing."""
        if self.tarball.exists():
            self.times.reused.append("rootfs")
            return self.tarball
        self.dir.mkdir(parents=True, exist_ok=True)
        # engines of parallel test workers share the tarball: one builds, the others wait
        with open(self.dir / f"{self.tarball.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.tarball.exists():
                self.times.reused.append("rootfs")
                return self.tarball
            self._build_rootfs()
        return self.tarball

    def _build_rootfs(self) -> None:
        started = time.monotonic()
        scratch = self.dir / f".rootfs-{os.getpid()}"
        partial = self.tarball.with_name(self.tarball.name + f".partial-{os.getpid()}")
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            done = commands.run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE,
                 str(scratch), debian_mirror()], timeout=1200)
            if done.returncode != 0:
                raise InfrastructureError(f"debootstrap {SUITE} failed: {done.tail(3)}")
            for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for entry in (scratch / sub).glob("*"):
                    if entry.is_file():
                        entry.unlink()
            done = commands.run(["tar", "-C", str(scratch), "-cf", str(partial), "."],
                                timeout=600)
            if done.returncode != 0:
                raise InfrastructureError(f"packing the root file system failed: {done.tail(3)}")
            partial.rename(self.tarball)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            partial.unlink(missing_ok=True)
        self.times.rootfs_s = time.monotonic() - started

    # -- images ------------------------------------------------------------------------
    def base(self) -> str:
        """`docker import` of the root file system, once per tarball content."""
        tarball = self.rootfs()
        digest = sha256_file(tarball)[:12]
        tag = f"local/grh-debian-systemd:{SUITE}-{digest}"
        if self._exists(tag):
            self.times.reused.append("base")
            return tag
        started = time.monotonic()
        done = self.engine.docker("import", "-c", 'CMD ["/sbin/init"]',
                                  "-c", f"LABEL {LABEL}.image=base", "-", tag,
                                  input_path=tarball, timeout=600)
        if done.returncode != 0:
            raise InfrastructureError(f"docker import {tarball.name} failed: {done.tail(3)}")
        self.times.import_s = time.monotonic() - started
        return tag

    def derived(self) -> str:
        """The base with a lingering user and a deployment root it owns; built once per input."""
        base = self.base()
        dockerfile = DERIVED_DOCKERFILE.format(base=base)
        tag = "local/grh-systemd-user:" + hashlib.sha256(dockerfile.encode()).hexdigest()[:12]
        if self._exists(tag):
            self.times.reused.append("derived")
            return tag
        started = time.monotonic()
        context = self.dir / f".context-{os.getpid()}"
        context.mkdir(parents=True, exist_ok=True)
        try:
            (context / "Dockerfile").write_text(dockerfile)
            done = commands.run(
                [docker_cli(), "-H", self.engine.host, "build", "-q", "-t", tag, str(context)],
                env={"DOCKER_BUILDKIT": "0"}, timeout=600)
        finally:
            shutil.rmtree(context, ignore_errors=True)
        if done.returncode != 0:
            raise InfrastructureError(f"docker build {tag} failed: {done.tail(3)}")
        self.times.derived_s = time.monotonic() - started
        return tag

    def _exists(self, tag: str) -> bool:
        return self.engine.docker("image", "inspect", tag, timeout=30).returncode == 0


