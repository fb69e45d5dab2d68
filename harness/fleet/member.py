"""One member's acceptance, run from its xdist worker as a run of its own: `pytest scenarios
--target ITS_PROFILE --run-dir FLEET_RUN/members/NAME --fleet-member NAME --fleet-ledger ...`.

A subprocess keeps everything of the member its own (run dir, guard, lease, model lab,
transitions) and dies with its worker: its interruption handling (or its guard) then puts its
known-good back, and the ledger keeps what it had said.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.common.commands import die_with_parent
from harness.fleet.ledger import ENDED, Ledger
from harness.fleet.plan import Member


@dataclass(frozen=True)
class MemberRun:
    name: str
    run_dir: Path
    exit_code: int
    verdict: dict[str, Any]

    @property
    def claim(self) -> str:
        return str(self.verdict.get("claim") or f"no verdict (exit {self.exit_code}); see "
                   f"{self.run_dir.name}/console.log")


def member_dir(fleet_run_dir: Path, name: str) -> Path:
    return fleet_run_dir / "members" / name


def command(member: Member, fleet_run_dir: Path, ledger: Ledger, suite: str,
            forwarded: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", suite, "-q", "-p", "no:xdist",
            "--target", str(member.profile.path),
            *(["--target-host", member.profile.host] if member.profile.host else []),
            "--run-dir", str(member_dir(fleet_run_dir, member.name)),
            "--fleet-member", member.name, "--fleet-ledger", str(ledger.path), *forwarded]


def run_member(member: Member, fleet_run_dir: Path, ledger: Ledger, root: Path, suite: str,
               forwarded: list[str]) -> MemberRun:
    """Run the member's acceptance to its end; its exit code goes into the ledger."""
    run_dir = member_dir(fleet_run_dir, member.name)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    console = fleet_run_dir / "members" / f"{member.name}.console.log"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_XDIST_", "PYTEST_CURRENT_TEST"))}
    argv = command(member, fleet_run_dir, ledger, suite, forwarded)
    with open(console, "w") as out:
        out.write("$ " + " ".join(argv) + "\n")
        out.flush()
        proc = subprocess.Popen(argv, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=die_with_parent())  # noqa: PLW1509
        ledger.update(member.name, pid=proc.pid)
        try:
            code = proc.wait()
        except BaseException:
            proc.terminate()  # its own interruption handling puts its known-good back
            proc.wait()
            raise
    verdict_path = run_dir / "verdict.json"
    try:
        verdict = json.loads(verdict_path.read_text())
    except (OSError, ValueError):
        verdict = {}
    ledger.update(member.name, state=ENDED, exit=code, outcome=verdict.get("outcome"))
    return MemberRun(member.name, run_dir, code, verdict)
