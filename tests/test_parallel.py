"""The parallel test run keeps its promise: tests of one xdist_group run on one worker.

`make test` relies on it (the two real runs with the tests that use them; a systemd module with
its containers), and pytest 9.2 silently broke it with pytest-xdist 3.8.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_a_group_stays_on_one_worker_under_dist_loadgroup(tmp_path: Path) -> None:
    tests = "import pytest\n" + "".join(
        f"@pytest.mark.xdist_group({group!r})\ndef test_{group}_{n}(): pass\n"
        for group in ("runs", "box") for n in range(4))
    (tmp_path / "test_grouped.py").write_text(tests)
    done = subprocess.run([sys.executable, "-m", "pytest", "test_grouped.py", "-v", "-n", "2",
                           "--dist", "loadgroup", "-p", "no:cacheprovider"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    ran = re.findall(r"\[(gw\d+)\] \[ *\d+%\] PASSED test_grouped.py::test_(\w+?)_\d", done.stdout)
    assert len(ran) == 8, done.stdout
    for group in ("runs", "box"):
        assert len({worker for worker, g in ran if g == group}) == 1, done.stdout
