"""Package ground truth: what the registry says an exact version ships; is an install that?

The truth for `package@version` is the registry's own tarball for that version, checked against
the registry's `dist.integrity` (the SRI hash the release lock carries) before anything is read
from it. Its file list, with the size and SHA-256 of every file, is cached per version under the
runtime cache, so a later check (after a rollback, say) needs no network.

Two questions are answered against it:
- `check_installed`: is the tree under `node_modules/<package>` that package? A file the package
  ships that is missing or different means a corrupt install; a file the package does not ship
  is listed as extra. Dependencies (nested `node_modules/`) are not part of the package.
- `judge_report`: a tool (the target's own updater, say) claims files are missing. Each path it
  names is judged against the package: not shipped by this version (benign, and said plainly),
  shipped and missing (corrupt), shipped and present and intact (the warning does not hold).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness.common import commands
from harness.common.errors import InfrastructureError
from harness.common.patterns import compile_pattern
from harness.targets.registry import Release

TRUTH_DIR = "groundtruth"
LISTED = 50  # paths listed per finding class in a report; the counts are always complete

# A path a tool says is missing, when the target profile declares no patterns of its own:
# a relative path with a directory and a file name, on a line that says "missing".
DEFAULT_PATTERNS = (r"(?i)\bmissing\b.*?(?P<path>(?:[\w@.+-]+/)+[\w@.+-]+)",)


@dataclass(frozen=True)
class PackageTruth:
    package: str
    version: str
    integrity: str  # the registry's dist.integrity, which the tarball was checked against
    files: dict[str, tuple[int, str]]  # path inside the package -> (size, sha256)

    @property
    def label(self) -> str:
        return f"{self.package}@{self.version}"

    def ships(self, path: str) -> bool:
        return path in self.files


def sri_matches(data: Path, integrity: str) -> bool:
    """True when the file's digest equals one of the SRI entries ("sha512-<base64>" ...)."""
    entries = [e for e in integrity.split() if "-" in e]
    if not entries:
        return False
    for entry in entries:
        algorithm, _, expected = entry.partition("-")
        try:
            digest = hashlib.new(algorithm)
        except ValueError:
            continue
        with open(data, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if base64.b64encode(digest.digest()).decode() == expected.split("?")[0]:
            return True
    return False


def read_tarball(tarball: Path) -> dict[str, tuple[int, str]]:
    """Every regular file of an npm tarball (its `package/` folder), with size and SHA-256."""
    files: dict[str, tuple[int, str]] = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name.split("/", 1)[1] if "/" in member.name else member.name
            handle = tar.extractfile(member)
            assert handle is not None
            files[name] = (member.size, _sha256_stream(handle))
    return files


class GroundTruth:
    """Fetches and caches the truth of exact versions; `npm` talks to the registry."""

    def __init__(self, cache_root: Path, npm_env: dict[str, str] | None = None,
                 npm: str = "npm") -> None:
        self.root = cache_root / TRUTH_DIR
        self.npm_env = npm_env or {}
        self.npm = npm

    def cached_path(self, release: Release) -> Path:
        return self.root / release.package / f"{release.version}.json"

    def cached(self, release: Release) -> PackageTruth | None:
        try:
            data = json.loads(self.cached_path(release).read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if data.get("integrity") != release.integrity or not release.integrity:
            return None
        return PackageTruth(data["package"], data["version"], data["integrity"],
                            {k: (v[0], v[1]) for k, v in data["files"].items()})

    def truth(self, release: Release) -> PackageTruth:
        """The package's files for `release`, from the cache or from the registry's tarball."""
        if not release.integrity:
            raise InfrastructureError(f"{release.label}: the registry gave no integrity hash, so "
                                      "there is no ground truth to check against")
        path = self.cached_path(release)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = self.cached(release)
            if found is not None:
                return found
            with tempfile.TemporaryDirectory(prefix=".pack-", dir=path.parent) as scratch:
                tarball = self._fetch(release, Path(scratch))
                if not sri_matches(tarball, release.integrity):
                    raise InfrastructureError(
                        f"{release.label}: the registry's tarball does not match its own "
                        f"integrity {release.integrity[:30]}...: refusing it as ground truth")
                files = read_tarball(tarball)
            truth = PackageTruth(release.package, release.version, release.integrity, files)
            partial = path.with_suffix(f".partial-{os.getpid()}")
            partial.write_text(json.dumps({
                "package": truth.package, "version": truth.version,
                "integrity": truth.integrity, "files": {k: list(v) for k, v in files.items()},
            }))
            os.replace(partial, path)
        return truth

    def _fetch(self, release: Release, dest: Path) -> Path:
        done = commands.run(
            [self.npm, "pack", f"{release.package}@{release.version}", "--json",
             "--pack-destination", str(dest)], env=self.npm_env, cwd=dest, timeout=600)
        tarballs = sorted(dest.glob("*.tgz"))
        if done.returncode != 0 or len(tarballs) != 1:
            raise InfrastructureError(
                f"npm pack {release.label} failed: {done.tail(3) or 'no tarball written'}")
        return tarballs[0]


# -- is this install the package? --------------------------------------------------------
@dataclass
class InstallFindings:
    package: str
    version: str
    integrity: str
    root: str
    installed_version: str | None
    files_shipped: int
    missing: list[str] = field(default_factory=list)  # shipped, not installed: corrupt
    changed: list[str] = field(default_factory=list)  # shipped, different content: corrupt
    extra: list[str] = field(default_factory=list)  # installed, not shipped: listed
    # shipped, not installed, and declared as removed by the package's own install scripts
    removed_by_install: list[str] = field(default_factory=list)
    dependency_dirs: list[str] = field(default_factory=list)  # nested node_modules, not judged
    unchanged: int = 0  # not read again: untouched since an earlier check found them identical

    @property
    def corrupt(self) -> bool:
        return bool(self.missing or self.changed) or self.installed_version != self.version

    @property
    def verdict(self) -> str:
        return "corrupt" if self.corrupt else "intact"

    def summary(self) -> str:
        label = f"{self.package}@{self.version}"
        if not self.corrupt:
            extra = f"; {len(self.extra)} extra file(s) not in the package" if self.extra else ""
            removed = (f"; {_few(self.removed_by_install)} removed by its own install script, "
                       "as declared" if self.removed_by_install else "")
            kept = self.files_shipped - len(self.removed_by_install)
            again = (f" ({self.unchanged} of them untouched since this run found them identical: "
                     "same inode, size, mtime and ctime)") if self.unchanged else ""
            return (f"{label} intact: all {kept} files the registry's package ships are "
                    f"installed and identical{again}{removed}{extra}")
        parts = []
        if self.installed_version != self.version:
            parts.append(f"installed package.json says {self.installed_version or 'nothing'}")
        if self.missing:
            parts.append(f"{len(self.missing)} shipped file(s) missing ({_few(self.missing)})")
        if self.changed:
            parts.append(f"{len(self.changed)} file(s) differ from the package "
                         f"({_few(self.changed)})")
        return f"{label} corrupt: " + "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "package": self.package, "version": self.version, "integrity": self.integrity,
            "root": self.root, "verdict": self.verdict, "summary": self.summary(),
            "installed_version": self.installed_version, "files_shipped": self.files_shipped,
            **{name: {"count": len(paths), "paths": paths[:LISTED]}
               for name, paths in (("missing", self.missing), ("changed", self.changed),
                                   ("extra", self.extra),
                                   ("removed_by_install", self.removed_by_install))},
            "dependency_dirs": len(self.dependency_dirs),
            "hashed": self.files_shipped - len(self.missing) - self.unchanged,
            "unchanged_since_checked": self.unchanged,
        }


def _few(paths: Sequence[str], n: int = 3) -> str:
    more = f", and {len(paths) - n} more" if len(paths) > n else ""
    return ", ".join(paths[:n]) + more


def _sha256_stream(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return _sha256_stream(handle)


def package_root(prefix: Path, package: str) -> Path:
    """Where npm puts `package` under an install prefix."""
    return prefix / "node_modules" / package


def installed_files(root: Path, truth: PackageTruth) -> tuple[list[str], list[str]]:
    """Regular files under `root` (relative), and the dependency folders left out of them."""
    found, deps = _walk(root, truth)
    return sorted(found), deps


def _walk(root: Path, truth: PackageTruth) -> tuple[dict[str, os.stat_result], list[str]]:
    """Regular files under `root` (relative path -> its stat, one stat a file) and the
    dependency folders left out of them."""
    shipped_dirs = {str(Path(p).parent) for p in truth.files}
    files: dict[str, os.stat_result] = {}
    deps: list[str] = []
    pending = [("", str(root))]
    while pending:
        rel_dir, path = pending.pop()
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for entry in entries:
            rel = entry.name if not rel_dir else f"{rel_dir}/{entry.name}"
            try:
                if entry.is_dir():
                    if entry.name == "node_modules" and not any(
                            d == rel or d.startswith(rel + "/") for d in shipped_dirs):
                        deps.append(rel)
                    else:
                        pending.append((rel, entry.path))
                elif entry.is_file():
                    files[rel] = entry.stat()
            except OSError:
                continue
    return files, sorted(deps)


Fingerprint = tuple[int, int, int, int, int]


def fingerprint(stat: os.stat_result) -> Fingerprint:
    """What changes when a file's content can have changed: a write moves its mtime and, unlike
    mtime, its ctime cannot be set back from user space; a replaced file has another inode."""
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


# A file changed within this long before a check may share its timestamps with its earlier
# content (they tick coarser than writes come): it is hashed, never trusted by fingerprint.
RACY_NS = 2_000_000_000


def check_installed(truth: PackageTruth, root: Path,
                    hashed: dict[str, Fingerprint] | None = None,
                    trust_before_ns: int | None = None,
                    removed_by_install: Sequence[str] = ()) -> InstallFindings:
    """Compare the tree at `root` (`node_modules/<package>`) with the package, file by file.

    `removed_by_install`: shipped files the package's own install script deletes (a marker that
    says its lifecycle is pending); missing, they are listed as such, present, they are judged
    like every other file.

    `hashed`: the fingerprints of files found identical by an earlier check of this tree in
    the same run; a file whose fingerprint has not moved since is not read again (as git
    trusts its index), every other file is hashed. It is updated with what this check found
    identical, so a re-check (the rollback's, of the known-good's kept prefix) reads only what
    changed. Only a file whose ctime is older than `trust_before_ns` (default: two seconds
    ago) is remembered, as git does with a racily clean index."""
    settled = time.time_ns() - RACY_NS if trust_before_ns is None else trust_before_ns
    try:
        version = json.loads((root / "package.json").read_text()).get("version")
    except (OSError, json.JSONDecodeError, AttributeError):
        version = None
    findings = InstallFindings(truth.package, truth.version, truth.integrity, str(root), version,
                               len(truth.files))
    if not root.is_dir():
        findings.missing = sorted(truth.files)
        return findings
    present, findings.dependency_dirs = _walk(root, truth)
    known = hashed if hashed is not None else {}
    for path, (size, sha) in sorted(truth.files.items()):
        stat = present.get(path)
        if stat is None:
            (findings.removed_by_install if path in removed_by_install
             else findings.missing).append(path)
            known.pop(path, None)
            continue
        mark = fingerprint(stat)
        if known.get(path) == mark:
            findings.unchanged += 1
            continue
        if stat.st_size != size or _sha256(root / path) != sha:
            findings.changed.append(path)
            known.pop(path, None)
        elif stat.st_ctime_ns < settled:
            known[path] = mark
    findings.extra = sorted(p for p in present if p not in truth.files)
    return findings


# -- a tool says files are missing: judge each path it names against the package ---------
@dataclass
class ReportedPath:
    path: str
    line: str  # the tool's own line that named it
    shipped: bool
    present: bool
    intact: bool | None  # shipped and present: identical to the package's copy
    classification: str  # benign | corrupt | not-confirmed | outside-package
    explanation: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ReportJudgement:
    package: str
    version: str
    findings: list[ReportedPath]
    lines_read: int

    @property
    def verdict(self) -> str:
        """corrupt if any named path is a shipped file that is missing or altered; benign if
        every named path is one the package does not ship; otherwise the warning did not hold."""
        kinds = {f.classification for f in self.findings}
        if "corrupt" in kinds:
            return "corrupt"
        if not self.findings:
            return "nothing-named"
        if kinds == {"benign"}:
            return "benign"
        return "not-confirmed"

    def summary(self) -> str:
        label = f"{self.package}@{self.version}"
        if not self.findings:
            return f"the tool's output names no file of {label} ({self.lines_read} lines read)"
        counts = {k: sum(f.classification == k for f in self.findings)
                  for k in ("corrupt", "benign", "not-confirmed", "outside-package")}
        said = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        return f"{self.verdict}: {len(self.findings)} path(s) named, judged against {label}: {said}"

    def as_dict(self) -> dict[str, Any]:
        return {"package": self.package, "version": self.version, "verdict": self.verdict,
                "summary": self.summary(), "lines_read": self.lines_read,
                "findings": [f.as_dict() for f in self.findings]}


def _lines(text: str) -> list[str]:
    """The tool's lines; a JSON document (an updater's --json report) is read string by string."""
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return text.splitlines()
    strings: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            strings.extend(node.splitlines())
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return strings


def paths_named(text: str, patterns: Iterable[str], root: Path | None = None
                ) -> tuple[list[tuple[str, str]], int]:
    """(path, line) for every path the patterns find (group `path`), and the lines read."""
    compiled = [compile_pattern(p) for p in patterns]  # RE2: no output line can hang it
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    lines = _lines(text)
    for raw in lines:
        line = raw.strip()
        for pattern in compiled:
            for match in pattern.finditer(line):
                path = match.group("path").strip("'\"`.,;:()[]")
                if root is not None and path.startswith(str(root) + "/"):
                    path = path[len(str(root)) + 1:]
                path = path.removeprefix("./")
                if path and path not in seen:
                    seen.add(path)
                    found.append((path, line))
    return found, len(lines)


def judge_report(text: str | Sequence[str], truth: PackageTruth, root: Path,
                 patterns: Sequence[str] = DEFAULT_PATTERNS) -> ReportJudgement:
    """Judge every path a tool's output names against the package and the install at `root`.
    Several outputs of one tool (its stdout with a JSON report, its stderr) are each read on
    their own, and a path named in both is judged once."""
    named: list[tuple[str, str]] = []
    lines = 0
    for output in ([text] if isinstance(text, str) else text):
        found, read = paths_named(output, patterns or DEFAULT_PATTERNS, root)
        named += [(path, line) for path, line in found if path not in {p for p, _ in named}]
        lines += read
    findings = []
    for path, line in named:
        if path.startswith("/"):
            findings.append(ReportedPath(path, line, False, Path(path).exists(), None,
                                         "outside-package",
                                         f"{path} is outside the install of {truth.label}; "
                                         "not judged against the package"))
            continue
        target = root / path
        shipped = truth.ships(path)
        present = target.is_file()
        intact = None
        if shipped and present:
            size, sha = truth.files[path]
            intact = target.stat().st_size == size and _sha256(target) == sha
        if not shipped:
            also = " (a file by that name is present anyway, as an extra)" if present else ""
            findings.append(ReportedPath(
                path, line, False, present, None, "benign",
                f"benign: {truth.label} does not ship {path}; the tool expected a file this "
                f"version never had, so its absence is not damage{also}"))
        elif not present:
            findings.append(ReportedPath(
                path, line, True, False, None, "corrupt",
                f"corrupt: {truth.label} ships {path} and it is missing from the install"))
        elif not intact:
            findings.append(ReportedPath(
                path, line, True, True, False, "corrupt",
                f"corrupt: {path} is present but differs from {truth.label}'s own copy"))
        else:
            findings.append(ReportedPath(
                path, line, True, True, True, "not-confirmed",
                f"not confirmed: {truth.label} ships {path} and it is present and identical"))
    return ReportJudgement(truth.package, truth.version, findings, lines)


def copy_package(prefix: Path, package: str, dest: Path) -> Path:
    """A private copy of an installed package (tests and drills damage copies, never the cache)."""
    target = package_root(dest, package)
    shutil.copytree(package_root(prefix, package), target, symlinks=True)
    return target
