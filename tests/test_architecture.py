"""Imports point down (docs/architecture.md): a small AST check over harness/, no dependency.

Every `import` and `from ... import` is read, at module level and inside functions alike (a late
import is still an import). `python -m tests.test_architecture` prints which folder imports
which, and the functions over the limit.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1] / "harness"

# The entry points: only they may be imported by nobody.
ENTRY = {"pytest", "cli"}
# Below the procedure: the parts it is made of. They never reach up into the story, its report
# or its entry points.
LOWER = {"common", "targets", "signals", "container", "modellab", "judge", "soak"}
UPPER = {"fleet", "procedure", "reporting", "pytest", "cli"}

# Upward imports known today, each to be removed by the work that owns its file (delete the
# entry with the import).
KNOWN_UPWARD = {
    # the gateway facade arms the guard and asks the guardian who holds a port (late imports)
    ("targets/gateway.py", "harness.procedure.guard"),
    ("targets/gateway.py", "harness.procedure.guardian"),
    # the local driver's readiness asks the guardian's own reader who holds the port (the
    # guardian is stdlib-only and stands alone on the target, so the reader lives there)
    ("targets/local.py", "harness.procedure.guardian"),
}

MAX_FUNCTION_LINES = 60

# Building an httpx client, or a one-shot call that builds one inside httpx.
HTTPX_BUILDERS = {"Client", "AsyncClient", "get", "post", "put", "patch", "delete", "head",
                  "options", "request", "stream"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing file, relative to harness/ ("procedure/phases.py")
    name: str  # what it imports, absolute ("harness.common.waits", "allure")
    line: int

    @property
    def folder(self) -> str:
        parts = Path(self.module).parts
        return parts[0] if len(parts) > 1 else ""

    @property
    def target_folder(self) -> str | None:
        """The harness folder imported (`common`), "" for the package itself, None outside."""
        parts = self.name.split(".")
        if parts[0] != "harness":
            return None
        return parts[1] if len(parts) > 1 and (HARNESS / parts[1]).is_dir() else ""

    def __str__(self) -> str:
        return f"harness/{self.module}:{self.line} imports {self.name}"


def _files() -> list[Path]:
    return sorted(p for p in HARNESS.rglob("*.py") if "__pycache__" not in p.parts)


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _absolute(node: ast.ImportFrom, path: Path) -> str:
    if not node.level:
        return node.module or ""
    package = path.relative_to(HARNESS.parent).with_suffix("").parts[:-node.level]
    return ".".join([*package, *([node.module] if node.module else [])])


@cache
def imports() -> tuple[Import, ...]:
    found = []
    for path in _files():
        module = str(path.relative_to(HARNESS))
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Import):
                found += [Import(module, alias.name, node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, path)
                found += [Import(module, _imported(base, alias.name), node.lineno)
                          for alias in node.names]
    return tuple(found)


def _imported(base: str, name: str) -> str:
    """`from harness.common import waits` imports the module harness.common.waits;
    `from harness.common.waits import poll` imports harness.common.waits."""
    folder = HARNESS.parent.joinpath(*base.split("."))
    is_module = (folder / name).is_dir() or (folder / f"{name}.py").is_file()
    return f"{base}.{name}" if is_module else base


def _of(folders: set[str]) -> list[Import]:
    return [i for i in imports() if i.folder in folders]


def _into(found: list[Import], folders: set[str]) -> list[str]:
    return [str(i) for i in found if i.target_folder in folders and i.target_folder != i.folder]


def _library(found: list[Import], library: str) -> list[str]:
    return [str(i) for i in found if i.name == library or i.name.startswith(library + ".")]


def test_the_check_reads_the_imports_it_is_about() -> None:
    """A check over nothing passes for nothing: it finds known imports, late ones included."""
    names = {(i.module, i.name) for i in imports()}
    assert ("procedure/guard.py", "harness.common.waits") in names
    assert ("cli/__init__.py", "harness.cli.status") in names  # inside a function
    assert ("pytest/plugin.py", "pytest") in names
    assert len(_files()) > 80


def test_common_imports_nothing_else_of_the_harness() -> None:
    found = [str(i) for i in _of({"common"}) if i.target_folder not in (None, "common")]
    assert found == []


def test_the_model_lab_stands_apart_from_the_harness_it_serves() -> None:
    """The model lab stands in for models: it needs common/, and the package's own path to
    start its child process, nothing of the procedure, the targets or the judge."""
    found = [str(i) for i in _of({"modellab"})
             if i.target_folder not in (None, "common", "modellab", "")]
    assert found == []


def test_nothing_but_the_pytest_wiring_imports_the_pytest_wiring() -> None:
    assert _into([i for i in imports() if i.folder != "pytest"], {"pytest"}) == []


def test_nothing_imports_the_command_line() -> None:
    assert _into([i for i in imports() if i.folder != "cli"], {"cli"}) == []


def test_the_procedure_never_imports_its_entry_points() -> None:
    assert _into(_of({"procedure"}), ENTRY) == []


def test_one_gateway_s_procedure_knows_nothing_of_the_fleet_above_it() -> None:
    assert _into(_of({"procedure", "reporting"}), {"fleet"}) == []


def test_reporting_never_imports_the_procedure() -> None:
    """The report reads what the procedure recorded; it does not drive it."""
    assert _into(_of({"reporting"}), {"procedure"} | ENTRY) == []


def test_the_lower_layers_never_reach_up() -> None:
    found = [i for i in _of(LOWER) if i.target_folder in UPPER]
    unknown = [str(i) for i in found if (i.module, i.name) not in KNOWN_UPWARD]
    assert unknown == [], "an import up from a lower layer; see docs/architecture.md"


def test_the_lower_layers_import_neither_pytest_nor_allure() -> None:
    found = _of(LOWER)
    assert _library(found, "pytest") + _library(found, "_pytest") + \
        _library(found, "allure") + _library(found, "allure_commons") == []


def test_allure_lives_in_the_report_and_the_wiring_and_the_procedure_at_most() -> None:
    outside = [i for i in imports() if i.folder not in ("reporting", "pytest", "procedure")]
    assert _library(outside, "allure") + _library(outside, "allure_commons") == []


def test_the_procedure_does_not_import_allure() -> None:
    found = _of({"procedure"})
    assert _library(found, "allure") + _library(found, "allure_commons") == []


def test_httpx_clients_are_built_in_one_place() -> None:
    """harness.common.http builds them, so a test can inject a transport."""
    found = []
    for path in _files():
        if path == HARNESS / "common" / "http.py":
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    isinstance(node.func.value, ast.Name) and node.func.value.id == "httpx" \
                    and node.func.attr in HTTPX_BUILDERS:
                found.append(f"{path.relative_to(HARNESS.parent)}:{node.lineno} "
                             f"httpx.{node.func.attr}(...)")
    assert found == []


def long_functions() -> list[tuple[str, int, str]]:
    """(where, lines, name) of every function over the limit, nested ones included."""
    found = []
    for path in _files():
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append((f"{path.relative_to(HARNESS.parent)}:{node.lineno}", lines,
                                  node.name))
    return found


def test_no_function_is_over_the_limit() -> None:
    found = [f"{where} {name}: {lines} lines" for where, lines, name in long_functions()]
    assert found == [], f"split into named steps (at most {MAX_FUNCTION_LINES} lines each)"


def _graph() -> str:
    edges = Counter((i.folder or "(harness)", i.target_folder or "(harness)")
                    for i in {(i.module, i.target_folder, i.folder): i for i in imports()}.values()
                    if i.target_folder is not None and i.target_folder != i.folder)
    lines = ["which folder of harness/ imports which (the number of files importing it):"]
    for source in sorted({s for s, _ in edges}):
        targets = ", ".join(f"{t} {n}" for (s, t), n in sorted(edges.items()) if s == source)
        lines.append(f"  {source:10} -> {targets}")
    lines += ["", f"functions over {MAX_FUNCTION_LINES} lines:"]
    lines += [f"  {where} {name} ({n})" for where, n, name in long_functions()] or ["  none"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(_graph())
