"""Package ecosystems: where a target's versions are resolved, installed and checked.

`package.ecosystem` in a target profile names one: `npm` (the default: an npm prefix per
version, Node.js beside it) or `pypi` (a virtualenv per version, pip's own resolution). Phases
ask the ecosystem, never a registry's files: the engine a version needs, the binary's path, and
whether an install is what the registry ships.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.targets.groundtruth import InstallFindings
from harness.targets.registry import Release

if TYPE_CHECKING:
    from harness.targets.runtime import Installation, NodeRuntime, Runtime

ECOSYSTEMS = ("npm", "pypi")


def bin_path(prefix: Path, ecosystem: str, name: str) -> Path:
    """Where an install's executable is: npm's `.bin` link, or a virtualenv's script."""
    if ecosystem == "pypi":
        return prefix / "bin" / name
    return prefix / "node_modules" / ".bin" / name


@dataclass(frozen=True)
class EngineCheck:
    ok: bool
    line: str
    observed: str
    expected: str


class Pypi:
    name = "pypi"
    needs_node = False

    def __init__(self, runtime: Runtime, extras: tuple[str, ...] = (),
                 moved_at_start: tuple[tuple[str, str], ...] = ()) -> None:
        from harness.targets.packages.pypi import PypiIndex

        self.runtime = runtime
        self.index = PypiIndex(extras)
        self.moved_at_start = moved_at_start  # the kind's: files it moves in its own install

    def resolve(self, package: str, spec: str, origin: str) -> Release:
        return self.index.resolve(package, spec, origin)

    def install(self, release: Release, env: dict[str, str] | None,
                force: bool = False) -> Installation:
        import time

        from harness.targets.packages import pypi
        from harness.targets.runtime import Installation, _locked

        prefix = self.runtime.prefix_for(release)
        started = time.monotonic()
        with _locked(prefix.with_name(prefix.name + ".lock")):
            prefix, reused = pypi.install(release, prefix, force, env)
        return Installation(release, prefix, reused, time.monotonic() - started)

    def engine(self, release: Release, node: NodeRuntime | None) -> EngineCheck:
        from harness.targets.packages.pypi import python_fits

        fits, version, wanted = python_fits(release)
        return EngineCheck(fits, f"Python {version} {'satisfies' if fits else 'does not satisfy'}"
                           f" {release.label} Requires-Python {wanted!r}", version, wanted)

    def truth_line(self, release: Release) -> tuple[str, str]:
        """What preflight says of the registry's package (pip fetched and checked each file's
        sha256 when it resolved the set)."""
        return (f"{len(release.resolved)} distributions resolved, each with its file's sha256",
                release.integrity)

    def verify(self, release: Release, prefix: Path) -> InstallFindings:
        from harness.targets.packages.pypi import check_installed

        return check_installed(release, prefix, self.moved_at_start)

    def installed_integrity(self, installation: Installation) -> dict[str, Any]:
        """The marker the install wrote names the resolved set it was built from."""
        import json

        from harness.targets.runtime import MARKER

        try:
            recorded = json.loads((installation.prefix / MARKER).read_text()).get("integrity")
        except (OSError, ValueError):
            recorded = None
        release = installation.release
        return {"registry": release.integrity, "installed": recorded,
                "matches": recorded == release.integrity, "source": MARKER}


def ecosystem_for(runtime: Runtime, name: str, extras: tuple[str, ...] = (),
                  kind: str | None = None, install_removes: tuple[str, ...] = ()) -> Any:
    """The ecosystem a profile names (`npm` is the runtime's own registry and installer);
    `kind` adds what the product does to its own install (harness.targets.kinds), and
    `install_removes` the shipped files an npm package's own install script deletes."""
    if name == "pypi":
        moved: tuple[tuple[str, str], ...] = ()
        if kind is not None:
            from harness.targets.kinds import kind as find_kind

            moved = find_kind(kind).moved_at_start
        return Pypi(runtime, extras, moved)
    from harness.targets.packages.npm import Npm

    return Npm(runtime, install_removes)
