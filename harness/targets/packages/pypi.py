"""PyPI: a package resolved by pip against the index pip is configured with, one virtualenv per
version.

Resolution is pip's own (`pip install --dry-run --report`): the exact version, and the whole
set of distributions it pulls in, each with the sha256 of the file pip chose. The set is the
release's integrity (a digest over it), so a dependency that moves on the index voids a locked
review like a moved dist-tag; an install is exactly that set (`--no-deps --require-hashes`).
No host is named here: pip reads its own configuration (index, find-links, certificates).

Layout under the cache root, beside npm's prefixes:
    <package>/<version>/   a virtualenv: bin/<console script>, lib/pythonX.Y/site-packages/
A virtualenv is built in a scratch folder and renamed into place under the same per-version
lock as an npm install; its scripts' `#!` lines are pointed at the final folder before the
rename (a virtualenv names its own path in them).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.common import commands
from harness.common.digest import sha256_stream
from harness.common.errors import InfrastructureError, UnknownVersionError
from harness.targets.groundtruth import InstallFindings
from harness.targets.registry import Release

ECOSYSTEM = "pypi"
_EXACT = re.compile(r"^\d+(\.\d+)*([abc]|rc|\.post|\.dev)?\d*$")
_NOT_FOUND = ("No matching distribution found", "Could not find a version that satisfies")


def canonical(name: str) -> str:
    """PEP 503's normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement(package: str, extras: tuple[str, ...], spec: str) -> str:
    """`litellm[proxy]==1.80.0` from a name, its extras and what the user asked for: an exact
    version, `latest`, or a PEP 440 specifier (`>=1.79,<1.81`)."""
    name = f"{package}[{','.join(extras)}]" if extras else package
    if spec == "latest":
        return name
    if _EXACT.match(spec):
        return f"{name}=={spec}"
    return f"{name}{spec}"


def set_digest(resolved: tuple[tuple[str, str, str], ...]) -> str:
    """One digest over the resolved set: any distribution that moves changes it."""
    lines = "\n".join(f"{n}=={v} sha256:{h}" for n, v, h in sorted(resolved))
    return "sha256-set:" + hashlib.sha256(lines.encode()).hexdigest()


class PypiIndex:
    """Resolves with pip (the harness's interpreter is the one the virtualenvs get)."""

    def __init__(self, extras: tuple[str, ...] = (), python: str = sys.executable,
                 env: dict[str, str] | None = None) -> None:
        self.extras = extras
        self.python = python
        self.env = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", **(env or {})}

    def report(self, package: str, spec: str, origin: str) -> dict[str, Any]:
        """pip's installation report for `package` at `spec`, as an install would resolve it."""
        want = requirement(package, self.extras, spec)
        with tempfile.TemporaryDirectory(prefix="grh-pip-report-") as scratch:
            out = Path(scratch) / "report.json"
            done = commands.run(
                [self.python, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                 "--quiet", "--report", str(out), want], env=self.env, timeout=600)
            if done.returncode != 0:
                text = done.stderr + done.stdout
                if any(marker in text for marker in _NOT_FOUND):
                    raise UnknownVersionError(
                        f"{origin}: {want} is not a version the package index knows")
                raise InfrastructureError(f"{origin}: pip cannot resolve {want}: "
                                          f"{done.tail(2)}")
            try:
                return json.loads(out.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise InfrastructureError(f"{origin}: pip wrote no readable report for {want}: "
                                          f"{exc}") from None

    def resolve(self, package: str, spec: str, origin: str) -> Release:
        report = self.report(package, spec, origin)
        resolved: list[tuple[str, str, str]] = []
        top: dict[str, Any] | None = None
        for item in report.get("install", []):
            meta = item.get("metadata", {})
            hashes = (item.get("download_info", {}).get("archive_info", {}) or {}).get(
                "hashes", {})
            if "sha256" not in hashes:
                raise InfrastructureError(f"{origin}: pip resolved {meta.get('name')} "
                                          f"{meta.get('version')} without a sha256 of its file")
            resolved.append((canonical(meta["name"]), meta["version"], hashes["sha256"]))
            if canonical(meta.get("name", "")) == canonical(package):
                top = item
        if top is None:
            raise UnknownVersionError(f"{origin}: {package}@{spec} resolved to nothing")
        entries = tuple(sorted(resolved))
        return Release(package=package, spec=spec, version=top["metadata"]["version"],
                       integrity=set_digest(entries), node_engine=None, ecosystem=ECOSYSTEM,
                       resolved=entries,
                       python_requires=top["metadata"].get("requires_python"))


def python_fits(release: Release, version: str | None = None) -> tuple[bool, str, str]:
    """(fits, the Python it runs on, the range it asks for): the engine check of a PyPI
    package."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    version = version or platform.python_version()
    wanted = release.python_requires or ""
    try:
        fits = SpecifierSet(wanted).contains(version, prereleases=True)
    except InvalidSpecifier:
        fits = False
    return fits, version, wanted or "*"


def requirements_text(release: Release) -> str:
    """The resolved set as pip's hash-checking requirements: exactly what was reviewed."""
    return "".join(f"{name}=={version} --hash=sha256:{sha}\n"
                   for name, version, sha in release.resolved)


def build_venv(release: Release, scratch: Path, final: Path, python: str = sys.executable,
               env: dict[str, str] | None = None) -> None:
    """A virtualenv at `scratch` holding exactly the resolved set, its scripts pointed at
    `final` (where it will be renamed to)."""
    done = commands.run([python, "-m", "venv", str(scratch)], timeout=300)
    if done.returncode != 0:
        raise InfrastructureError(f"python -m venv for {release.label} failed: {done.tail(3)}")
    requirements = scratch / "harness-requirements.txt"
    requirements.write_text(requirements_text(release))
    done = commands.run(
        [str(scratch / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
         "--require-hashes", "--no-compile", "-r", str(requirements)],
        env={"PIP_DISABLE_PIP_VERSION_CHECK": "1", **(env or {})}, timeout=1800)
    if done.returncode != 0:
        raise InfrastructureError(f"pip install {release.label} failed: {done.tail(3)}")
    _repoint_scripts(scratch, final)


def _repoint_scripts(scratch: Path, final: Path) -> None:
    """Console scripts name the interpreter by the folder they were installed in: point them
    at `final`, and record their new sha256 in their distribution's RECORD (pip wrote the
    scratch form there), so the ground truth of the moved virtualenv still holds."""
    old, new = str(scratch).encode(), str(final).encode()
    changed: dict[str, str] = {}
    for script in (scratch / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if old in data:  # console scripts' #! lines and the activate scripts
            script.write_bytes(data.replace(old, new))
            changed[script.name] = _record_hash(script)
    site = site_packages(scratch)
    if site is None or not changed:
        return
    for record in site.glob("*.dist-info/RECORD"):
        with open(record, newline="") as handle:
            rows = list(csv.reader(handle))
        touched = False
        for row in rows:
            name = Path(row[0]).name if row else ""
            if len(row) >= 2 and name in changed and Path(row[0]).parent.name == "bin":
                row[1] = f"sha256={changed[name]}"
                touched = True
        if touched:
            with open(record, "w", newline="") as handle:
                csv.writer(handle).writerows(rows)


def install(release: Release, prefix: Path, force: bool,
            env: dict[str, str] | None = None) -> tuple[Path, bool]:
    """The virtualenv of `release` at `prefix` (reused when its marker says it is this
    release); returns the prefix and whether it was reused. The caller holds the lock."""
    from harness.targets.runtime import put_in_place, remove_dead_partials

    if _installed(release, prefix) and not force:
        return prefix, True
    remove_dead_partials(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    # real paths: a virtualenv names its own (symlinks resolved) in its scripts' #! lines, and
    # a cache shared by a link would otherwise be named by the link
    final = prefix.parent.resolve() / prefix.name
    scratch = final.with_name(f".{prefix.name}.partial-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    try:  # pip dies with the harness (commands.run); its half install goes with it
        build_venv(release, scratch, final, env=env)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    put_in_place(scratch, prefix, release, force)
    return prefix, False


def _installed(release: Release, prefix: Path) -> bool:
    from harness.targets.runtime import MARKER

    try:
        recorded = json.loads((prefix / MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return recorded.get("integrity") == release.integrity


# -- is this virtualenv the reviewed set? --------------------------------------------------
def site_packages(prefix: Path) -> Path | None:
    found = sorted((prefix / "lib").glob("python*/site-packages"))
    return found[0] if found else None


def _distributions(site: Path) -> dict[str, tuple[str, Path]]:
    """name -> (version, dist-info folder) of what is installed in `site`."""
    found: dict[str, tuple[str, Path]] = {}
    for info in site.glob("*.dist-info"):
        name = version = None
        try:
            for line in (info / "METADATA").read_text(errors="replace").splitlines():
                if line.startswith("Name: "):
                    name = line[6:].strip()
                elif line.startswith("Version: "):
                    version = line[9:].strip()
                elif not line:
                    break
        except OSError:
            continue
        if name and version:
            found[canonical(name)] = (version, info)
    return found


def _record_hash(path: Path) -> str:
    with open(path, "rb") as handle:
        digest = sha256_stream(handle)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def check_installed(release: Release, prefix: Path,
                    moved_at_start: tuple[tuple[str, str], ...] = ()) -> InstallFindings:
    """Every distribution of the resolved set installed at its version, and every file its
    wheel's RECORD lists (as pip installed it from a file whose sha256 was checked) present
    and identical. A distribution outside the set is listed as extra (pip and its own
    tools, which the virtualenv brings)."""
    prefix = prefix.resolve()
    site = site_packages(prefix)
    installed = _distributions(site) if site is not None else {}
    findings = InstallFindings(package=release.package, version=release.version,
                               integrity=release.integrity, root=str(prefix),
                               installed_version=installed.get(canonical(release.package),
                                                               (None, None))[0],
                               files_shipped=0)
    wanted = {name for name, _, _ in release.resolved}
    for name, version, _ in release.resolved:
        have = installed.get(name)
        if have is None or have[0] != version:
            findings.missing.append(f"{name}=={version} (installed: "
                                    f"{have[0] if have else 'nothing'})")
            continue
        assert site is not None
        with open(have[1] / "RECORD", newline="") as handle:
            for row in csv.reader(handle):
                if len(row) < 2 or not row[1].startswith("sha256="):
                    continue
                findings.files_shipped += 1
                path = (site / row[0]).resolve()
                rel = os.path.relpath(path, prefix)
                if not path.is_file():
                    moved = _moved(site, row[0], row[1][len("sha256="):], moved_at_start)
                    if moved is None:
                        findings.missing.append(rel)
                    else:  # the product's own doing at start, and the file is intact there
                        findings.extra.append(f"{rel} (moved by the product at start to "
                                              f"{os.path.relpath(moved, prefix)}, identical)")
                elif _record_hash(path) != row[1][len("sha256="):]:
                    findings.changed.append(rel)
    findings.extra = sorted(findings.extra + [f"{n}=={v}" for n, (v, _) in installed.items()
                                              if n not in wanted])
    findings.missing += _dangling_interpreters(prefix)
    return findings


def _moved(site: Path, rel: str, sha: str,
           moved_at_start: tuple[tuple[str, str], ...]) -> Path | None:
    """Where the product put a file it moves at start, if it is there and identical."""
    from fnmatch import fnmatchcase

    for glob, where in moved_at_start:
        if fnmatchcase(rel, glob):
            path = Path(rel)
            target = site / where.format(parent=path.parent.as_posix(), stem=path.stem,
                                         name=path.name)
            if target.is_file() and _record_hash(target) == sha:
                return target.resolve()
    return None


def _dangling_interpreters(prefix: Path) -> list[str]:
    """Console scripts whose `#!` names an interpreter that is not there (a virtualenv moved
    without its scripts): the binary would not start, whatever RECORD says."""
    found = []
    for script in sorted((prefix / "bin").glob("*")) if (prefix / "bin").is_dir() else []:
        if script.is_symlink() or not script.is_file():
            continue
        with open(script, "rb") as handle:
            head = handle.readline(512)
        if head.startswith(b"#!/") and b"python" in head:
            interpreter = Path(head[2:].split()[0].decode(errors="replace"))
            if not interpreter.exists():
                found.append(f"bin/{script.name} (its interpreter {interpreter} is not there)")
    return found
