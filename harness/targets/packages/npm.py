"""npm: the runtime's own registry and installer, and the registry's tarball as ground truth
(harness.targets.registry, harness.targets.runtime, harness.targets.groundtruth)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.targets import semver
from harness.targets.groundtruth import (
    Fingerprint,
    GroundTruth,
    InstallFindings,
    check_installed,
    package_root,
)
from harness.targets.packages import EngineCheck
from harness.targets.registry import Release

if TYPE_CHECKING:
    from harness.targets.runtime import Installation, NodeRuntime, Runtime


class Npm:
    name = "npm"
    needs_node = True

    def __init__(self, runtime: Runtime, install_removes: tuple[str, ...] = ()) -> None:
        self.runtime = runtime
        self.install_removes = install_removes  # deleted by the package's own install script
        # fingerprints of files a check in this run found identical, per tree and release: a
        # re-check (the rollback's, of the known-good's kept prefix) reads only what changed
        self.hashed: dict[tuple[str, str], dict[str, Fingerprint]] = {}
        self.truths = GroundTruth(runtime.root, runtime.npm_env())

    def resolve(self, package: str, spec: str, origin: str) -> Release:
        return self.runtime.registry.resolve(package, spec, origin)

    def engine(self, release: Release, node: NodeRuntime | None) -> EngineCheck:
        version = node.version if node is not None else "none"
        engine = release.node_engine or "*"
        fits = node is not None and semver.satisfies(version, engine)
        return EngineCheck(fits, f"Node.js {version} {'satisfies' if fits else 'does not satisfy'}"
                           f" {release.label} engines.node {engine!r}", version, engine)

    def verify(self, release: Release, prefix: Path) -> InstallFindings:
        root = package_root(prefix, release.package)
        return check_installed(self.truths.truth(release), root,
                               self.hashed.setdefault((str(root.resolve()), release.integrity), {}),
                               removed_by_install=self.install_removes)

    def installed_integrity(self, installation: Installation) -> dict[str, Any]:
        return installed_integrity(installation)


def installed_integrity(installation: Installation) -> dict[str, Any]:
    """Compare the installed package's recorded integrity (npm's lock) with the registry's."""
    release = installation.release
    lock = installation.prefix / "node_modules" / ".package-lock.json"
    recorded = None
    try:
        packages = json.loads(lock.read_text()).get("packages", {})
        recorded = packages.get(f"node_modules/{release.package}", {}).get("integrity")
    except (OSError, json.JSONDecodeError):
        pass
    return {"registry": release.integrity, "installed": recorded,
            "matches": recorded == release.integrity, "source": str(Path(lock).name)}
