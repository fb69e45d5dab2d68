"""Package ecosystems: PyPI beside npm, a version denied at lock, the resolved set as the
release's integrity, and a virtualenv judged against each wheel's RECORD."""

import base64
import hashlib
from pathlib import Path

import pytest

from harness.common.errors import InputError
from harness.procedure.review import allowed as _allowed
from harness.targets.packages import bin_path
from harness.targets.packages.pypi import (
    check_installed,
    python_fits,
    requirement,
    requirements_text,
    set_digest,
)
from harness.targets.profile import load_target
from harness.targets.registry import Release

ROOT = Path(__file__).resolve().parents[1]
LITELLM = ROOT / "scenarios" / "targets" / "local-litellm.toml"
SET = (("litellm", "1.80.0", "a" * 64), ("httpx", "0.28.1", "b" * 64))


def release(resolved: tuple = SET, requires: str | None = ">=3.8") -> Release:
    return Release("litellm", "1.80.0", "1.80.0", set_digest(resolved), None, "pypi",
                   resolved, requires)


@pytest.mark.parametrize(("spec", "want"), [
    ("1.80.0", "litellm[proxy]==1.80.0"), ("latest", "litellm[proxy]"),
    (">=1.79,<1.81", "litellm[proxy]>=1.79,<1.81"), ("1.80.0rc1", "litellm[proxy]==1.80.0rc1"),
])
def test_a_spec_becomes_the_requirement_pip_resolves(spec: str, want: str) -> None:
    assert requirement("litellm", ("proxy",), spec) == want


def test_a_dependency_that_moves_changes_the_release_integrity() -> None:
    moved = (SET[0], ("httpx", "0.28.2", "c" * 64))
    assert set_digest(SET) != set_digest(moved)
    assert set_digest(SET) == set_digest(tuple(reversed(SET)))  # order is not the review
    assert requirements_text(release()).splitlines() == [
        f"litellm==1.80.0 --hash=sha256:{'a' * 64}", f"httpx==0.28.1 --hash=sha256:{'b' * 64}"]


def test_the_lock_records_every_distribution_with_its_hash() -> None:
    entry = release().as_dict()
    assert entry["ecosystem"] == "pypi" and entry["integrity"].startswith("sha256-set:")
    assert entry["resolved"] == [{"name": n, "version": v, "sha256": h} for n, v, h in SET]
    npm = Release("openclaw", "latest", "2026.4.1", "sha512-A", ">=22").as_dict()
    assert set(npm) == {"package", "spec", "version", "integrity", "node_engine"}


def test_the_engine_of_a_pypi_package_is_its_requires_python() -> None:
    assert python_fits(release(requires=">=3.8, !=3.0.*"), "3.11.7")[0]
    fits, version, wanted = python_fits(release(requires=">=3.12"), "3.11.7")
    assert (fits, version, wanted) == (False, "3.11.7", ">=3.12")


def test_a_denied_version_is_refused_at_lock_with_its_reason() -> None:
    profile = load_target(LITELLM)
    bad = Release("litellm", "latest", "1.82.7", "sha256-set:x", None, "pypi")
    with pytest.raises(InputError) as caught:
        _allowed(profile, bad, "--candidate")
    message = str(caught.value)
    assert caught.value.exit_code == 20 and "\n" not in message
    assert message.startswith(f"{LITELLM}: versions.deny: --candidate resolves to litellm@1.82.7")
    assert "credential stealer" in message
    assert _allowed(profile, release(), "--candidate").version == "1.80.0"


def test_litellm_is_never_resolved_on_npm(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(LITELLM.read_text().replace('ecosystem = "pypi"', 'ecosystem = "npm"')
                    .replace('extras = ["proxy"]', 'node = "22"'))
    (tmp_path / "litellm").symlink_to(LITELLM.parent / "litellm")
    with pytest.raises(InputError) as caught:
        load_target(path)
    assert str(caught.value).startswith(f"{path}: package.ecosystem: 'npm', but kind "
                                        "'litellm' is published on 'pypi'")


def test_an_unknown_ecosystem_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(LITELLM.read_text().replace('ecosystem = "pypi"', 'ecosystem = "cargo"'))
    (tmp_path / "litellm").symlink_to(LITELLM.parent / "litellm")
    with pytest.raises(InputError) as caught:
        load_target(path)
    assert str(caught.value).startswith(f"{path}: package.ecosystem: expected one of npm, pypi")


def test_binaries_live_where_each_ecosystem_puts_them(tmp_path: Path) -> None:
    assert bin_path(tmp_path, "npm", "openclaw") == tmp_path / "node_modules" / ".bin" / "openclaw"
    assert bin_path(tmp_path, "pypi", "litellm") == tmp_path / "bin" / "litellm"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(
        b"=").decode()


def _venv(prefix: Path, dists: dict[str, tuple[str, dict[str, bytes]]]) -> Path:
    """A virtualenv's site-packages as pip leaves it: each distribution's files, its METADATA
    and a RECORD with every file's hash."""
    site = prefix / "lib" / "python3.11" / "site-packages"
    for name, (version, files) in dists.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: "
                                       f"{version}\n\nbody\n")
        rows = []
        for rel, data in files.items():
            (site / rel).parent.mkdir(parents=True, exist_ok=True)
            (site / rel).write_bytes(data)
            rows.append(f"{rel},{_record_hash(data)},{len(data)}")
        rows.append(f"{info.name}/RECORD,,")
        (info / "RECORD").write_text("\n".join(rows) + "\n")
    return site


def test_an_intact_virtualenv_is_the_resolved_set(tmp_path: Path) -> None:
    _venv(tmp_path, {"litellm": ("1.80.0", {"litellm/__init__.py": b"x = 1\n"}),
                     "httpx": ("0.28.1", {"httpx/__init__.py": b"y = 2\n"}),
                     "pip": ("23.2.1", {"pip/__init__.py": b""})})
    findings = check_installed(release(), tmp_path)
    assert not findings.corrupt, findings.summary()
    assert findings.files_shipped == 2 and findings.extra == ["pip==23.2.1"]


def test_a_changed_file_or_a_moved_dependency_is_corrupt(tmp_path: Path) -> None:
    site = _venv(tmp_path, {"litellm": ("1.80.0", {"litellm/__init__.py": b"x = 1\n"}),
                            "httpx": ("0.28.2", {"httpx/__init__.py": b"y = 2\n"})})
    (site / "litellm" / "__init__.py").write_text("x = 'stolen'\n")
    findings = check_installed(release(), tmp_path)
    assert findings.corrupt
    assert findings.changed == ["lib/python3.11/site-packages/litellm/__init__.py"]
    assert findings.missing == ["httpx==0.28.1 (installed: 0.28.2)"]


def test_a_file_the_product_moves_at_start_is_moved_not_missing(tmp_path: Path) -> None:
    """LiteLLM proxy moves its UI pages (`out/logs.html` -> `out/logs/index.html`) when it
    starts: found there and identical it is listed; gone or different it is corrupt."""
    page = b"<html>logs</html>"
    site = _venv(tmp_path, {"litellm": ("1.80.0", {"litellm/out/logs.html": page,
                                                   "litellm/out/keys.html": b"k"}),
                            "httpx": ("0.28.1", {"httpx/__init__.py": b""})})
    for name in ("logs", "keys"):
        (site / "litellm" / "out" / name).mkdir()
        (site / "litellm" / "out" / f"{name}.html").rename(
            site / "litellm" / "out" / name / "index.html")
    (site / "litellm" / "out" / "keys" / "index.html").write_bytes(b"tampered")
    moved = (("litellm/out/*.html", "{parent}/{stem}/index.html"),)
    findings = check_installed(release(), tmp_path, moved)
    assert findings.missing == ["lib/python3.11/site-packages/litellm/out/keys.html"]
    assert findings.extra == ["lib/python3.11/site-packages/litellm/out/logs.html (moved by the "
                              "product at start to lib/python3.11/site-packages/litellm/out/"
                              "logs/index.html, identical)"]
    assert sorted(check_installed(release(), tmp_path).missing) == [
        "lib/python3.11/site-packages/litellm/out/keys.html",
        "lib/python3.11/site-packages/litellm/out/logs.html"]
