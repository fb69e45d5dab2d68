"""Resolve a package version to the registry's own truth: exact version and integrity hash.

This happens before anything else in a run, so a typo or a moved dist-tag is caught while the
known-good gateway is still serving untouched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from harness.common import commands
from harness.common.errors import InfrastructureError, UnknownVersionError
from harness.targets import semver


@dataclass(frozen=True)
class Release:
    package: str
    spec: str  # what the user asked for ("2026.4.1", "latest", ...)
    version: str  # what the registry resolved it to
    integrity: str  # the registry's dist.integrity (SRI, usually sha512)
    node_engine: str | None  # the package's engines.node range, if any
    ecosystem: str = "npm"  # harness.targets.packages: where it was resolved
    # PyPI: the whole resolved set, (name, version, sha256 of the file) per distribution, and
    # the package's Requires-Python (its engine)
    resolved: tuple[tuple[str, str, str], ...] = ()
    python_requires: str | None = None

    @property
    def label(self) -> str:
        return f"{self.package}@{self.version}"

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"package": self.package, "spec": self.spec,
                                 "version": self.version, "integrity": self.integrity,
                                 "node_engine": self.node_engine}
        if self.ecosystem != "npm":  # npm's lock entries stay as they were
            found.update(ecosystem=self.ecosystem, python_requires=self.python_requires,
                         resolved=[{"name": n, "version": v, "sha256": h}
                                   for n, v, h in self.resolved])
        return found


class NpmRegistry:
    def __init__(self, npm: str = "npm", env: dict[str, str] | None = None) -> None:
        self.npm = npm
        self.env = env or {}

    def versions(self, package: str) -> list[str]:
        """Every published version of `package` (for choosing a Node.js release)."""
        done = commands.run([self.npm, "view", package, "versions", "--json"], env=self.env,
                            timeout=120)
        try:
            payload = json.loads(done.stdout) if done.returncode == 0 else None
        except json.JSONDecodeError:
            payload = None
        if not isinstance(payload, list):
            raise InfrastructureError(f"cannot list the versions of {package} in the registry: "
                                      f"{done.tail(2)}")
        return [v for v in payload if isinstance(v, str)]

    def resolve(self, package: str, spec: str, origin: str) -> Release:
        """Resolve `package@spec`; `origin` names where the spec came from, for the error line."""
        done = commands.run(
            [self.npm, "view", f"{package}@{spec}", "version", "dist.integrity", "engines",
             "--json"], env=self.env, timeout=120,
        )
        try:
            payload = json.loads(done.stdout) if done.stdout.strip() else None
        except json.JSONDecodeError:
            payload = None
        if done.returncode != 0:
            code = payload.get("error", {}).get("code") if isinstance(payload, dict) else None
            if code == "E404":
                raise UnknownVersionError(
                    f"{origin}: {package}@{spec} is not a version the registry knows")
            raise InfrastructureError(
                f"{origin}: cannot resolve {package}@{spec} in the registry: {done.tail(2)}")
        if payload is None or payload == []:
            raise UnknownVersionError(f"{origin}: {package}@{spec} matches no published version")
        candidates = payload if isinstance(payload, list) else [payload]
        best = max(candidates, key=lambda entry: semver.parse(entry["version"]))
        engines = best.get("engines") or {}
        return Release(
            package=package, spec=spec, version=best["version"],
            integrity=best.get("dist.integrity", ""),
            node_engine=engines.get("node") if isinstance(engines, dict) else None,
        )
