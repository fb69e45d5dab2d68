"""The restart gate: a person decides when the interruption happens.

`auto` (CI) approves every restart itself and says so. `manual` prepares everything, then waits,
bounded, for an explicit decision before each interruption (the upgrade's and the rollback's):
- on a terminal: a prompt on stdin (a name approves, "no" refuses);
- otherwise: the gate writes `restart-gate.json` into the run dir (what it waits for and until
  when), and a person or a job answers with `harness approve RUN_DIR [--by NAME] [--deny]`, or
  by writing their name into `RUN_DIR/approve-restart` (`deny-restart` refuses).
An answer left over from an earlier gate, or naming another request, never opens this one.
Without a decision before the deadline the gate stays shut and nothing is interrupted.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness.common.errors import InfrastructureError

MODES = ("auto", "manual")
REQUEST = "restart-gate.json"
APPROVE = "approve-restart"
DENY = "deny-restart"
LEDGER = "restart-decisions.jsonl"
REFUSALS = {"no", "n", "deny", "refuse", "abort"}


@dataclass
class Decision:
    purpose: str
    mode: str
    approved: bool
    by: str  # who or what decided ("--restart-gate auto", a name, "nobody")
    channel: str  # auto | tty | harness approve | approval file | timeout
    request: str | None
    opened_at: float
    decided_at: float
    reason: str = ""
    plan: dict[str, Any] = field(default_factory=dict)

    @property
    def waited_s(self) -> float:
        return round(self.decided_at - self.opened_at, 3)

    def summary(self) -> str:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.decided_at))
        if self.approved:
            return (f"restart approved by {self.by} via {self.channel} at {at} after "
                    f"{self.waited_s:g} s ({self.purpose})")
        return f"restart not approved ({self.purpose}): {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "waited_s": self.waited_s, "summary": self.summary()}


class Terminal:
    """Stdin as an approval channel, when it is a terminal. `suspend` lets pytest's capture
    (stdin included) step aside while the prompt is written and read."""

    def __init__(self, stream: IO[str], write: Callable[[str], None],
                 suspend: Callable[[], AbstractContextManager[Any]] = nullcontext) -> None:
        self.stream = stream
        self.write = write
        self.suspend = suspend

    @classmethod
    def detect(cls, write: Callable[[str], None],
               suspend: Callable[[], AbstractContextManager[Any]] = nullcontext
               ) -> Terminal | None:
        stream = sys.__stdin__
        with suspend():
            try:
                interactive = stream is not None and stream.isatty()
            except (ValueError, OSError):
                interactive = False
        return cls(stream, write, suspend) if interactive else None

    def prompt(self, text: str) -> None:
        with self.suspend():
            self.write(text)

    def poll(self, wait_s: float) -> str | None:
        """A line typed within `wait_s`, or None."""
        with self.suspend():
            ready, _, _ = select.select([self.stream], [], [], max(wait_s, 0.0))
            if not ready:
                return None
            return self.stream.readline().strip()


class RestartGate:
    def __init__(self, mode: str, run_dir: Path, timeout_s: float, *,
                 terminal: Terminal | None = None, say: Callable[[str], None] | None = None,
                 poll_s: float = 0.5) -> None:
        if mode not in MODES:
            raise ValueError(f"restart gate mode {mode!r}")
        self.mode = mode
        self.run_dir = run_dir
        self.timeout_s = timeout_s
        self.terminal = terminal
        self.say = say or (lambda line: None)
        self.poll_s = poll_s

    def ask(self, purpose: str, plan: dict[str, Any]) -> Decision:
        opened = time.time()
        if self.mode == "auto":
            decision = Decision(purpose, "auto", True, "--restart-gate auto", "auto", None,
                                opened, opened, "CI mode: the run approves its own restarts",
                                plan)
        else:
            decision = self._wait(purpose, plan, opened)
        self._record(decision)
        return decision

    # -- manual -------------------------------------------------------------------------
    def _wait(self, purpose: str, plan: dict[str, Any], opened: float) -> Decision:
        request = secrets.token_hex(4)
        deadline = opened + self.timeout_s
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name in (APPROVE, DENY):  # an answer written before this gate opened is not one
            (self.run_dir / name).unlink(missing_ok=True)
        _write_json(self.run_dir / REQUEST, {
            "request": request, "purpose": purpose, "plan": plan, "opened_at": opened,
            "deadline": deadline, "approve": f"harness approve {self.run_dir} --by NAME",
            "or": f"write your name into {self.run_dir / APPROVE}",
            "deny": f"harness approve {self.run_dir} --deny (or write {DENY})"})
        until = time.strftime("%H:%M:%S", time.localtime(deadline))
        self.say(f"restart gate: waiting until {until} for approval to {purpose}: "
                 f"`harness approve {self.run_dir} --by NAME`"
                 f"{' or type your name here (no: refuse)' if self.terminal else ''}")
        if self.terminal is not None:
            self.terminal.prompt(f"Approve: {purpose}? Type your name to approve, 'no' to "
                                f"refuse (waiting until {until}): ")
        try:
            while True:
                now = time.time()
                found = self._answer(request, purpose, plan, opened)
                if found is not None:
                    return found
                if now >= deadline:
                    return Decision(purpose, "manual", False, "nobody", "timeout", request,
                                    opened, now, f"no approval within {self.timeout_s:g} s; "
                                    "nothing was interrupted", plan)
                wait = min(self.poll_s, deadline - now)
                if self.terminal is not None:
                    line = self.terminal.poll(wait)
                    if line:
                        refused = line.lower() in REFUSALS
                        return Decision(purpose, "manual", not refused,
                                        f"{line} (terminal user {_user()})", "tty", request,
                                        opened, time.time(),
                                        "refused at the terminal" if refused else "", plan)
                else:
                    time.sleep(wait)
        finally:
            (self.run_dir / REQUEST).unlink(missing_ok=True)

    def _answer(self, request: str, purpose: str, plan: dict[str, Any],
                opened: float) -> Decision | None:
        for name, approved in ((DENY, False), (APPROVE, True)):
            path = self.run_dir / name
            try:
                text = path.read_text()
            except FileNotFoundError:
                continue
            if not text.strip():
                continue  # created but not written yet (or naming nobody): not an answer
            path.unlink(missing_ok=True)
            answer = _parse_answer(text)
            if answer.get("request") not in (None, request):
                self.say(f"restart gate: ignored {name} for another request "
                         f"({answer.get('request')}); still waiting")
                continue
            channel = answer.get("via") or "approval file"
            return Decision(purpose, "manual", approved, answer.get("by") or "unnamed",
                            channel, request, opened, time.time(),
                            "" if approved else f"refused: {answer.get('reason') or 'deny'}",
                            plan)
        return None

    def _record(self, decision: Decision) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / LEDGER, "a") as ledger:
            ledger.write(json.dumps(decision.as_dict(), default=str) + "\n")


def _user() -> str:
    try:
        return os.getlogin()
    except OSError:
        return os.environ.get("USER", "unknown")


def _parse_answer(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        return data
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return {"by": first}


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(partial, path)


def pending(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / REQUEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def answer(run_dir: Path, by: str, deny: bool = False, reason: str = "") -> dict[str, Any]:
    """`harness approve`: answer the request the gate of `run_dir` is waiting on."""
    request = pending(run_dir)
    if request is None:
        raise InfrastructureError(f"{run_dir}: no restart is waiting for approval "
                                  f"(no {REQUEST})")
    payload = {"request": request["request"], "by": by, "via": "harness approve",
               "at": time.time(), "reason": reason}
    _write_json(run_dir / (DENY if deny else APPROVE), payload)
    return request


def waiting_runs(reports: Path) -> Iterator[Path]:
    """Run dirs under `reports` whose gate is waiting, newest first."""
    found = [p.parent for p in reports.glob(f"*/{REQUEST}")]
    yield from sorted(found, key=lambda p: (p / REQUEST).stat().st_mtime, reverse=True)
