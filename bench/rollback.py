"""Rollback speed: from the decision to roll back to the first good reply, two ways, one run.

- prefix switch: the known-good stayed installed in its own prefix beside the candidate, so
  the rollback switches `current` back. The harness's npm is made offline and its registry
  unreachable from the decision on, so nothing in this path can download.
- reinstall: the known-good's prefix and the npm cache are gone (deleted at the decision), so
  the rollback reinstalls it from the registry.

Each path provisions its own real gateway on loopback against the model lab, upgrades it from
the known-good to the candidate with the harness's own phases, then, at the decision, runs the
rollback phases (fresh backup, prepare, restart gate (auto), restore, start) and asks one real
reply carrying its nonce until one comes back good. Run: `make bench` (or
`python -m bench.rollback [--known-good V --candidate V]`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.common import commands
from harness.common.nonce import new_nonce
from harness.judge.policy import load_policy
from harness.modellab import ModelLab
from harness.procedure.phases import PhaseResult, Procedure, one_reply
from harness.procedure.run import RunRecord, RunSettings, with_windows
from harness.signals.signatures import timestamp_seconds
from harness.soak.driver import check
from harness.soak.scenarios import load_scenarios
from harness.targets.gateway import Gateway
from harness.targets.groundtruth import TRUTH_DIR
from harness.targets.profile import TargetProfile, load_target
from harness.targets.registry import Release
from harness.targets.runtime import NodeRuntime, Runtime

ROOT = Path(__file__).resolve().parents[1]
UNREACHABLE = "http://127.0.0.1:9/"  # discard port: nothing answers
PATHS = ("prefix switch", "reinstall")
GOAL_S = 12.0


@contextmanager
def npm_calls() -> Iterator[list[dict[str, Any]]]:
    """Every npm command the harness runs inside the block, with its exit code."""
    calls: list[dict[str, Any]] = []
    real = commands.run

    def watched(argv: Any, **kwargs: Any) -> commands.Completed:
        done = real(argv, **kwargs)
        if Path(str(list(argv)[0])).name == "npm":
            calls.append({"argv": list(argv)[1:3], "exit": done.returncode})
        return done

    commands.run = watched  # type: ignore[assignment]
    try:
        yield calls
    finally:
        commands.run = real  # type: ignore[assignment]


@contextmanager
def registry_unreachable() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("npm_config_offline", "npm_config_registry")}
    os.environ.update(npm_config_offline="true", npm_config_registry=UNREACHABLE)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def must(result: PhaseResult) -> PhaseResult:
    if not result.ok:
        raise SystemExit(f"bench: phase {result.name} failed: {result.summary}")
    return result


def first_good_reply(gateway: Gateway, agent: str, limit_s: float = 180) -> float:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        nonce = new_nonce()
        verdict, _ = check(one_reply(gateway, agent, f"Bench: quote {nonce}.", timeout=60),
                           (nonce,))
        if verdict == "good":
            return time.monotonic()
        time.sleep(0.25)
    raise SystemExit(f"bench: no good reply within {limit_s:g} s after the rollback")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.target: TargetProfile = load_target(args.target)
        self.policy = load_policy(ROOT / "scenarios" / "policy.toml")
        self.scenarios = load_scenarios(ROOT / "scenarios" / "soak")
        self.cache = args.cache.resolve()
        self.runtime = Runtime(self.cache / "runtime")
        name = self.target.package.name
        self.known_good: Release = self.runtime.registry.resolve(
            name, args.known_good or self.target.known_good, "--known-good")
        self.candidate: Release = self.runtime.registry.resolve(
            name, args.candidate or self.target.candidate, "--candidate")
        self.id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        self.paths = args.paths
        self.root = self.cache / "bench" / f"rollback-{self.id}"
        pin = self.target.package.node_major  # each version on its own Node.js
        self.node: NodeRuntime = self.runtime.node_for(self.known_good, pin)
        env = self.target.package.install_env
        for release in (self.known_good, self.candidate):  # both kept in the shared cache
            self.runtime.install(release, self.runtime.node_for(release, pin), env)

    def say(self, line: str) -> None:
        print(f"  [bench] {line}", flush=True)

    def cold_runtime(self, folder: Path) -> Runtime:
        """A runtime of its own with an empty npm cache: the candidate's prefix (linked, it is
        not what is measured), a copy of the known-good's that the decision deletes, and the
        registry facts (ground truth, keyed by integrity) a run fetches at its preflight."""
        cold = Runtime(folder / "runtime")
        for release, link in ((self.candidate, True), (self.known_good, False)):
            target = cold.prefix_for(release)
            target.parent.mkdir(parents=True, exist_ok=True)
            if link:
                target.symlink_to(self.runtime.prefix_for(release))
            else:
                shutil.copytree(self.runtime.prefix_for(release), target, symlinks=True)
        shutil.copytree(self.runtime.root / TRUTH_DIR, cold.root / TRUTH_DIR)
        return cold

    def measure(self, path: str, lab: ModelLab) -> dict[str, Any]:
        folder = self.root / path.replace(" ", "-")
        runtime = self.cold_runtime(folder) if path == "reinstall" else self.runtime
        self.say(f"{path}: provisioning {self.known_good.label} and upgrading to "
                 f"{self.candidate.version}")
        gateway = Gateway.embedded(self.target, runtime, self.node, folder / "deployment",
                                   lab.base_url)
        gateway.activate(runtime.install(self.known_good, self.node,
                                         self.target.package.install_env))
        try:
            gateway.start()
            if not gateway.wait_ready().ready:
                raise SystemExit(f"bench: {self.known_good.label} never became ready")
            first_good_reply(gateway, self.target.api.health_agent)
            windows = with_windows(self.policy)
            settings = RunSettings(
                run_id=f"bench-{self.id}-{path.replace(' ', '-')}", run_dir=folder / "run",
                cache_dir=self.cache, target=self.target, policy=self.policy,
                scenarios=self.scenarios, known_good=self.known_good,
                candidate=self.candidate, soak=windows.soak, watch=windows.watch,
                restart_gate="auto")
            procedure = Procedure(settings, RunRecord(), runtime, self.node, gateway)
            for step in (procedure.preflight, procedure.backup, procedure.install,
                         lambda: procedure.restart_gate("upgrade"), procedure.stop,
                         procedure.start, procedure.health):
                must(step())
            if path == "reinstall":  # the old prefix and the download cache are gone
                shutil.rmtree(runtime.prefix_for(self.known_good))
                shutil.rmtree(runtime.npm_cache, ignore_errors=True)
            self.say(f"{path}: decision to roll back")
            steps: dict[str, float] = {}
            offline = registry_unreachable() if path == "prefix switch" else _nothing()
            with offline, npm_calls() as calls:
                decided = time.monotonic()
                log_from = _size(gateway.log_path)
                for name, step in (("fresh backup", procedure.rollback_backup),
                                   ("prepare", procedure.rollback_prepare),
                                   ("gate", lambda: procedure.restart_gate("rollback")),
                                   ("restore", procedure.rollback_restore),
                                   ("start", procedure.start)):
                    began = time.monotonic()
                    must(step())
                    steps[name] = round(time.monotonic() - began, 2)
                began = time.monotonic()
                replied = first_good_reply(gateway, self.target.api.health_agent)
                steps["first reply"] = round(replied - began, 2)
            total = round(replied - decided, 2)
            listening = _listening_s(gateway.log_path, log_from)
            if listening is not None:  # the start: the gateway's own boot, then readiness
                steps["listening"] = listening
            taken = procedure.record.rollback.path.path  # type: ignore[union-attr]
            self.say(f"{path}: first good reply {total:.1f} s after the decision ({taken})")
            return {"path": path, "seconds": total, "steps": steps, "rollback_path": taken,
                    "active_version": gateway.active_version(), "npm_calls": calls,
                    "registry": UNREACHABLE + " (offline)" if path == "prefix switch"
                    else "the public registry, empty npm cache"}
        finally:
            gateway.stop()
            if path == "reinstall":
                shutil.rmtree(folder / "runtime", ignore_errors=True)

    def run(self) -> dict[str, Any]:
        self.root.mkdir(parents=True, exist_ok=True)
        with ModelLab(log_path=self.root / "modellab.log") as lab:
            results = [self.measure(path, lab) for path in self.paths]
        out = {"bench": "rollback", "id": self.id, "known_good": self.known_good.as_dict(),
               "candidate": self.candidate.as_dict(), "results": results}
        if len(results) == 2:
            switch, reinstall = results
            out["ratio_reinstall_to_switch"] = round(reinstall["seconds"] / switch["seconds"], 2)
        return out


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


LISTENING = re.compile(r"listening on|Uvicorn running on|Application startup complete")


def _listening_s(log: Path | None, offset: int) -> float | None:
    """From the harness's start of the known-good to the gateway's own line saying it listens
    (its boot, before it answers readiness), read from its console log."""
    if log is None:
        return None
    try:
        with open(log, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
    except OSError:
        return None
    started = None
    for line in text.splitlines():
        if line.startswith("--- harness: starting ") and " at " in line:
            started = float(line.rsplit(" at ", 1)[1])
        elif started is not None and LISTENING.search(line):
            logged = timestamp_seconds(line.split(" ", 1)[0])
            return round(logged - started, 2) if logged is not None else None
    return None


def report(result: dict[str, Any], write: Callable[[str], None] = print) -> None:
    good = result["known_good"]["version"]
    write(f"rollback {result['candidate']['version']} -> {good}: time from the decision to the "
          "first good reply")
    for entry in result["results"]:
        listening = entry["steps"].get("listening")
        steps = ", ".join(f"{k} {v:.1f}" + (f" (its own line 'listening' at {listening:.1f})"
                                            if k == "start" and listening is not None else "")
                          for k, v in entry["steps"].items() if k != "listening")
        npm = entry["npm_calls"]
        answered = sum(c["exit"] == 0 for c in npm)
        installs = sum(c["argv"][:1] in (["install"], ["pack"]) for c in npm)
        goal = ""  # the goal is the prefix switch's; a reinstall is what it is compared with
        if entry["path"] == "prefix switch":
            goal = f"goal <= {GOAL_S:g} s ({'met' if entry['seconds'] <= GOAL_S else 'missed'})   "
        write(f"  {entry['path']:<14} {entry['seconds']:7.1f} s   {goal}({steps})")
        write(f"  {'':<14} {entry['rollback_path']}; registry: {entry['registry']}; npm: "
              f"{len(npm)} calls, {answered} answered, {installs} installs")
    if "ratio_reinstall_to_switch" in result:
        write(f"  reinstall / prefix switch: {result['ratio_reinstall_to_switch']:.1f}x")
    write(f"  goal: prefix switch <= {GOAL_S:g} s from the decision to the first good reply")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rollback", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=Path,
                        default=ROOT / "scenarios" / "targets" / "local-openclaw.toml")
    parser.add_argument("--known-good")
    parser.add_argument("--candidate")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    parser.add_argument("--paths", default="prefix switch,reinstall",
                        help="which rollbacks to measure, in order (comma-separated)")
    args = parser.parse_args(argv)
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = [p for p in args.paths if p not in PATHS]
    if unknown or not args.paths:
        print(f"bench: --paths: {', '.join(unknown) or 'none given'}: choose from "
              f"{', '.join(PATHS)}", file=sys.stderr)
        return 20  # bad input
    bench = Bench(args)
    result = bench.run()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"rollback-{result['id']}.json"
    path.write_text(json.dumps(result, indent=2))
    report(result)
    print(f"bench: written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
