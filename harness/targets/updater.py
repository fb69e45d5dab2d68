"""The target's own updater, run as a user runs it on a global npm install, and its result.

The profile declares it (`[package.updater]`: the arguments after the package's binary, with
`{version}` the version to go to). For a rollback by the target's own updater, the candidate's
binary, from its kept prefix (which nothing here changes), runs that command with npm's global
prefix pointed at a copy of the candidate's package laid out as a global install
(`<prefix>/lib/node_modules/<package>`, `<prefix>/bin/<bin>`). The updater finds the candidate
installed there and takes it to the known-good as it would on a user's machine, npm and its own
verifier included. Its exit code and its own verdict are evidence, never the judgement: the
caller judges the result against the registry's package, and every file the verifier names.

The copy is hard links where the filesystem allows (npm replaces a package by writing new
files and removing the old ones, never by writing into them), a plain copy otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.common.errors import InfrastructureError
from harness.targets.groundtruth import package_root
from harness.targets.profile import PackageSpec
from harness.targets.registry import Release
from harness.targets.runtime import MARKER, Installation, NodeRuntime

OUTPUT_KEPT = 200_000  # characters of the updater's stdout and stderr kept as evidence


@dataclass
class UpdaterRun:
    """What the updater did: its command, exit code, output, and where its result is."""

    argv: list[str]
    exit_code: int | None  # None: killed at its time limit
    seconds: float
    stdout: str
    stderr: str
    prefix: Path  # the global prefix it worked on
    root: Path  # the package folder it left: <prefix>/lib/node_modules/<package>
    copied_s: float  # laying out the copy of the candidate's install

    def report(self) -> dict[str, Any] | None:
        """Its own JSON report, when it printed one (`--json`)."""
        try:
            data = json.loads(self.stdout)
        except (json.JSONDecodeError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def installed_version(self) -> str | None:
        try:
            return json.loads((self.root / "package.json").read_text()).get("version")
        except (OSError, json.JSONDecodeError, AttributeError):
            return None

    def as_dict(self) -> dict[str, Any]:
        own = self.report() or {}
        return {"command": self.argv, "exit_code": self.exit_code,
                "seconds": round(self.seconds, 3), "copy_seconds": round(self.copied_s, 3),
                "prefix": str(self.prefix), "root": str(self.root),
                "its_status": own.get("status"), "its_reason": own.get("reason"),
                "its_before": own.get("before"), "its_after": own.get("after"),
                "installed_version": self.installed_version()}


def _link_or_copy(source: str, dest: str) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def lay_out_global(install: Installation, package: PackageSpec, prefix: Path) -> Path:
    """A copy of `install`'s package as npm lays out a global install under `prefix`."""
    if prefix.exists():
        shutil.rmtree(prefix)
    root = package_root(prefix / "lib", package.name)
    root.parent.mkdir(parents=True)
    shutil.copytree(package_root(install.prefix, package.name), root, symlinks=True,
                    copy_function=_link_or_copy)
    entry = install.bin(package.bin)
    (prefix / "bin").mkdir()
    # npm's own global bin link: <prefix>/bin/<bin> -> ../lib/node_modules/<package>/<file>
    target = os.path.relpath(entry.resolve(), package_root(install.prefix, package.name))
    (prefix / "bin" / package.bin).symlink_to(Path("..") / "lib" / "node_modules"
                                               / package.name / target)
    return root


@contextmanager
def _process_group(argv: list[str], env: dict[str, str], cwd: Path, out: Path,
                   err: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The updater in a session of its own: whatever it spawns (npm, its doctor) is killed
    with it, by its process group, if it outlives its time limit or the harness gives up."""
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=stdout, stderr=stderr, start_new_session=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=30)


def run_updater(candidate: Installation, to: Release, package: PackageSpec, node: NodeRuntime,
                work: Path, npm_env: dict[str, str]) -> UpdaterRun:
    """The candidate's own updater takes a global-install copy of the candidate to `to`."""
    spec = package.updater
    if spec is None:
        raise InfrastructureError(f"{package.name}: the target profile declares no "
                                  "[package.updater]")
    started = time.monotonic()
    prefix, scratch = work / "prefix", work / "scratch"
    lay_out_global(candidate, package, prefix)
    copied = time.monotonic() - started
    for sub in ("home", "state"):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    argv = [str(candidate.bin(package.bin)), *spec.argv(to.version)]
    env = {**os.environ, **npm_env, **package.install_env, **spec.environment(scratch),
           # npm's global prefix is the copy: `npm root -g` finds the candidate there
           "npm_config_prefix": str(prefix), "npm_config_prefer_offline": "true",
           "PATH": f"{prefix / 'bin'}{os.pathsep}{node.path_env()}"}
    out, err = work / "updater.stdout", work / "updater.stderr"
    began = time.monotonic()
    with _process_group(argv, env, scratch, out, err) as proc:
        try:
            code: int | None = proc.wait(timeout=spec.timeout_s)
        except subprocess.TimeoutExpired:
            code = None
    return UpdaterRun(argv=argv, exit_code=code, seconds=time.monotonic() - began,
                      stdout=out.read_text(errors="replace")[-OUTPUT_KEPT:],
                      stderr=err.read_text(errors="replace")[-OUTPUT_KEPT:],
                      prefix=prefix, root=package_root(prefix / "lib", package.name),
                      copied_s=copied)


def as_installation(run: UpdaterRun, release: Release, package: PackageSpec,
                    node: NodeRuntime | None = None) -> Installation:
    """The updater's result as an install prefix the gateway can switch to: the global
    layout's `lib/` holds `node_modules/<package>`; its binary is npm's own global link."""
    lib = run.prefix / "lib"
    bin_dir = lib / "node_modules" / ".bin"
    bin_dir.mkdir(exist_ok=True)
    link = bin_dir / package.bin
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path("..") / ".." / ".." / "bin" / package.bin)
    if not link.resolve().is_file():
        raise InfrastructureError(f"{run.prefix}: the updater left no {package.bin} binary")
    (lib / MARKER).write_text(json.dumps({**release.as_dict(),
                                          "installed_by": "the target's own updater",
                                          "command": run.argv}, indent=2))
    return Installation(release, lib, False, run.seconds + run.copied_s, node)
