"""Malformed input, generated: every case is refused with one line naming file and key (or
option), exit 20, or accepted on purpose; never a traceback, a hang or an install.

The cases are generated from the shipped target, policy and scenario files: every number in
them replaced by values that must not pass (nan, inf, 1e308, negative, a string, a boolean),
every required key removed, unknown keys and names added, and every duration option given
bad values. They run in-process through `harness.procedure.inputs.load_inputs` and
`harness.common.schema.option_seconds`, which is what `pytest scenarios` calls; a sample of them
also
runs through a real `pytest scenarios` (an e2e test).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.common.errors import ExitCode, InputError
from harness.common.schema import option_seconds
from harness.procedure.inputs import load_inputs, option_version
from harness.procedure.settings import DURATION_OPTIONS

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = {
    "target": ROOT / "scenarios" / "targets" / "local-openclaw.toml",
    "policy": ROOT / "scenarios" / "policy.toml",
    "scenario": ROOT / "scenarios" / "soak" / "triage-then-answer.toml",
}
ATTACHED = ROOT / "scenarios" / "targets" / "staging-systemd-openclaw.toml"
# every number gets nan and a string, and one of the others in turn (the suite stays fast)
ALWAYS_BAD = (math.nan, "five")
IN_TURN_BAD = (math.inf, 1e308, -5, True, -math.inf)


# -- a small TOML writer, enough for the shipped files ----------------------------------------
def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def dump(data: dict[str, Any], prefix: str = "") -> str:
    plain = {k: v for k, v in data.items() if not isinstance(v, dict) and not _is_table_array(v)}
    lines = [f"{json.dumps(k)} = {_value(v)}" for k, v in plain.items()]
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in data.items():
        name = f"{prefix}.{json.dumps(key)}" if prefix else json.dumps(key)
        if isinstance(value, dict):
            out += f"\n[{name}]\n" + dump(value, name)
        elif _is_table_array(value):
            for item in value:
                out += f"\n[[{name}]]\n" + dump(item, name)
    return out


# -- the cases --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    id: str
    file: str  # target | policy | scenario | option
    path: tuple[str | int, ...]  # where in the file's data the change is
    change: str  # set | delete
    value: Any = None
    key: str | None = ""  # the key the error must name; None: accepted on purpose
    option: str = ""  # option cases: the option and its value
    argv: tuple[str, ...] = ()


def located(path: tuple[str | int, ...]) -> str:
    """The key as harness.common.schema.Table names it: `triggers[0].within_s`."""
    key = ""
    for part in path:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else part)
    return key


def leaves(data: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple, Any]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from leaves(value, (*path, key))
    elif _is_table_array(data):
        for i, value in enumerate(data):
            yield from leaves(value, (*path, i))
    else:
        yield path, data


def number_cases() -> Iterator[Case]:
    turn = 0
    for file, source in SHIPPED.items():
        data = tomllib.loads(source.read_text())
        for path, value in leaves(data):
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            turn += 1
            for bad in (*ALWAYS_BAD, IN_TURN_BAD[turn % len(IN_TURN_BAD)]):
                yield Case(f"{file}:{located(path)}={bad!r}", file, path, "set", bad,
                           located(path))


def required_cases() -> Iterator[Case]:
    """Keys without a default: removing one is refused, naming it."""
    required = {
        "target": [("target", "name"), ("target", "kind"), ("target", "driver"),
                   ("package", "name"), ("package", "bin"), ("versions", "candidate"),
                   ("gateway", "start"), ("gateway", "token_env"), ("state", "config"),
                   # api.live, ready and chat default to the kind's (harness.targets.kinds)
                   ("versions", "known_good"), ("api", "health_agent"), ("api", "agents")],
        "policy": [("policy", "name"), ("soak", "window_s"), ("watch", "drain_s"),
                   ("triggers", 0, "name"), ("triggers", 0, "kind")],
        "scenario": [("scenarios", 0, "id"), ("scenarios", 0, "kind"),
                     ("scenarios", 0, "steps", 0, "agent")],
    }
    for file, paths in required.items():
        for path in paths:
            yield Case(f"{file}:-{located(path)}", file, path, "delete", key=located(path))


def name_cases() -> Iterator[Case]:
    """Names that would mean nothing, and unknown keys."""
    yield Case("kind typo", "target", ("target", "kind"), "set", "opencalw", "target.kind")
    yield Case("driver typo", "target", ("target", "driver"), "set", "lokal", "target.driver")
    yield Case("health agent", "target", ("api", "health_agent"), "set", "nobody",
               "api.health_agent")
    yield Case("start placeholder", "target", ("gateway", "start", 3), "set", "{prot}",
               "gateway.start[3]")
    yield Case("env placeholder", "target", ("gateway", "env", "HOME"), "set", "{hom}",
               "gateway.env.HOME")
    yield Case("env brace", "target", ("gateway", "env", "HOME"), "set", "{home",
               "gateway.env.HOME")
    yield Case("backup placeholder", "target", ("state", "backup", "full", 4), "set",
               "{dst}", "state.backup.full[4]")
    yield Case("backup no dest", "target", ("state", "backup", "full", 5), "set", "/tmp/x",
               "state.backup.full")
    yield Case("port 70000", "target", ("gateway", "port"), "set", 70000, "gateway.port")
    yield Case("unknown target key", "target", ("gateway", "ready_timout_s"), "set", 9,
               "gateway.ready_timout_s")
    yield Case("ready 10m", "target", ("gateway", "ready_timeout_s"), "set", "10m", None)
    yield Case("agents empty", "target", ("api", "agents"), "set", [], "api.agents")
    yield Case("signature typo", "policy", ("triggers", 0, "signatures"), "set",
               ["failover-decison"], "triggers[0].signatures")
    yield Case("class typo", "policy", ("triggers", 0, "classes"), "set", ["timeouts"],
               "triggers[0].classes")
    yield Case("pattern hangs re", "policy", ("signatures",), "set",
               [{"name": "w", "class": "error", "pattern": r"(\w+)\1"}],
               "signatures[0].pattern")
    yield Case("pattern ok", "policy", ("signatures",), "set",
               [{"name": "w", "class": "error", "pattern": r"^(\w+\s?)+$"}], None)
    yield Case("trigger kind", "policy", ("triggers", 0, "kind"), "set", "metric",
               "triggers[0].kind")
    yield Case("window 90s", "policy", ("soak", "window_s"), "set", "90s", None)
    yield Case("window 10 min", "policy", ("soak", "window_s"), "set", "10 min",
               "soak.window_s")
    yield Case("unknown policy key", "policy", ("soak", "windw_s"), "set", 5, "soak.windw_s")
    yield Case("interval tiny", "policy", ("triggers", 0, "interval_s"), "set", 1e-9,
               "triggers[0].interval_s")
    yield Case("agent typo", "scenario", ("scenarios", 0, "steps", 0, "agent"), "set", "qiuck",
               "scenarios[triage-then-answer].steps[triage].agent")
    yield Case("nonce off, no check", "scenario", ("scenarios", 0), "set",
               {"id": "triage-then-answer", "kind": "reply", "agent": "quick", "nonce": False,
                "prompt": "hello"}, "scenarios[0].nonce")
    yield Case("nonce off, contains", "scenario", ("scenarios", 0, "steps", 0), "set",
               {"name": "triage", "agent": "quick", "nonce": False, "prompt": "hello",
                "contains": ["hi"]}, None)
    yield Case("concurrency 100000", "scenario", ("scenarios", 0, "concurrency"), "set",
               100000, "scenarios[0].concurrency")
    yield Case("rate inf", "scenario", ("scenarios", 0, "rate_per_min"), "set", math.inf,
               "scenarios[0].rate_per_min")
    yield Case("rate 1e308", "scenario", ("scenarios", 0, "rate_per_min"), "set", 1e308,
               "scenarios[0].rate_per_min")
    yield Case("placeholder", "scenario", ("scenarios", 0, "steps", 0, "prompt"), "set",
               "{nonce} {prev}", "scenarios[0].steps[0].prompt")
    yield Case("scenario kind", "scenario", ("scenarios", 0, "kind"), "set", "chain",
               "scenarios[0].kind")


def option_cases() -> Iterator[Case]:
    for name, _minimum, exclusive in DURATION_OPTIONS:
        option = f"--{name.replace('_', '-')}"
        for bad in ("nan", "inf", "-inf", "-5", "1e308", "ten", "10 minutes", "5d"):
            yield Case(f"{option} {bad}", "option", (), "option", bad, "", option, ())
        for good in ("10m", "90s", "1h30m", "45"):
            yield Case(f"{option} {good}", "option", (), "option", good, None, option, ())
        yield Case(f"{option} 0", "option", (), "option", "0", "" if exclusive else None,
                   option, ())
    for option in ("--candidate", "--known-good"):
        yield Case(f"{option} ''", "option", (), "version", "", "", option)
        yield Case(f"{option} ' '", "option", (), "version", " ", "", option)
        yield Case(f"{option} 2026.3", "option", (), "version", "2026.3", None, option)


CASES = [*number_cases(), *required_cases(), *name_cases(), *option_cases()]


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 150, len(CASES)
    assert len({c.id for c in CASES}) == len(CASES)


# -- running a case ---------------------------------------------------------------------------
def write_inputs(tmp: Path, case: Case) -> dict[str, Path]:
    """The shipped inputs, the one the case changes written to `tmp` (the scenario folder
    with the shipped others beside it: the policy names them)."""
    paths = {"target": SHIPPED["target"], "policy": SHIPPED["policy"],
             "scenario": SHIPPED["scenario"]}
    if case.file not in paths:
        return paths
    data = tomllib.loads(SHIPPED[case.file].read_text())
    *parents, last = case.path
    node: Any = data
    for part in parents:
        node = node[part]
    if case.change == "delete":
        del node[last]
    else:
        node[last] = case.value
    if case.file == "target":
        paths["target"] = tmp / "target.toml"
        (tmp / "openclaw").symlink_to(SHIPPED["target"].parent / "openclaw")
    elif case.file == "policy":
        paths["policy"] = tmp / "policy.toml"
    else:
        paths["scenario"] = tmp / "soak" / SHIPPED["scenario"].name
        paths["scenario"].parent.mkdir()
        for other in SHIPPED["scenario"].parent.glob("*.toml"):
            if other.name != SHIPPED["scenario"].name:
                (paths["scenario"].parent / other.name).symlink_to(other)
    paths[case.file].write_text(dump(data))
    return paths


def outcome(case: Case, tmp: Path) -> tuple[str, str] | None:
    """(source, key) of the refusal, or None when accepted; anything else raises."""
    try:
        if case.change == "option":
            option_seconds(case.option, case.value,
                           *next((m, e) for n, m, e in DURATION_OPTIONS
                                 if f"--{n.replace('_', '-')}" == case.option))
        elif case.change == "version":
            option_version(case.option, case.value)
        else:
            paths = write_inputs(tmp, case)
            load_inputs(paths["target"], paths["policy"], paths["scenario"].parent)
    except InputError as exc:
        assert "\n" not in str(exc) and exc.exit_code == ExitCode.BAD_INPUT
        return exc.source, exc.key
    return None


@pytest.mark.timeout(10)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_is_one_line_naming_file_and_key(tmp_path: Path, case: Case) -> None:
    found = outcome(case, tmp_path)
    if case.key is None:
        assert found is None, f"refused, but meant to be accepted: {found}"
        return
    assert found is not None, "accepted, but must be refused"
    source, key = found
    if case.file == "option":
        assert source == case.option
        return
    expected = {"target": "target.toml", "policy": "policy.toml",
                "scenario": SHIPPED["scenario"].name}
    assert Path(source).name == expected[case.file]
    assert key == case.key, found


# -- a sample through a real `pytest scenarios` ---------------------------------------------
SAMPLE = ("policy:triggers[0].count=nan", "port 70000", "kind typo",
          "signature typo", "agent typo", "nonce off, no check", "rate 1e308",
          "pattern hangs re", "--soak nan", "--candidate ''")


def run_case(case: Case, tmp: Path) -> tuple[int, str, Path]:
    tmp.mkdir()
    args: list[str] = []
    if case.change == "option":
        args = [f"{case.option}={case.value}"]
    elif case.change == "version":
        args = [f"{case.option}={case.value}"]
    else:
        paths = write_inputs(tmp, case)
        args = ["--target", str(paths["target"]), "--policy", str(paths["policy"]),
                "--scenarios", str(paths["scenario"].parent)]
    done = subprocess.run([sys.executable, "-m", "pytest", "scenarios", "-x", "-q",
                           "--run-dir", str(tmp / "run"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr, tmp / "run"


@pytest.mark.e2e
def test_a_sample_of_the_cases_through_a_real_pytest_run(tmp_path: Path) -> None:
    cases = [next(c for c in CASES if c.id == sid) for sid in SAMPLE]
    runtime = ROOT / ".cache" / "runtime"
    before = sorted(p.name for p in runtime.iterdir()) if runtime.is_dir() else []
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda ic: run_case(ic[1], tmp_path / f"c{ic[0]}"),
                                enumerate(cases)))
    for case, (code, output, run_dir) in zip(cases, results, strict=True):
        errors = [x for x in output.splitlines() if x.startswith("harness: error: ")]
        assert code == 20, f"{case.id}: exit {code}\n{output[-1500:]}"
        assert len(errors) == 1, f"{case.id}: {output[-1500:]}"
        where = case.option if case.file == "option" else f": {case.key}: "
        assert where in errors[0], f"{case.id}: {errors[0]}"
        assert "Traceback" not in output and "INTERNALERROR" not in output, output[-1500:]
        assert "Backup posture" not in output, output[-1500:]
        verdict = json.loads((run_dir / "verdict.json").read_text())
        assert verdict["outcome"] == "error" and verdict["phases"] == []
        assert not (run_dir / "allure-results").exists() or not any(
            p.name.endswith("-result.json") for p in (run_dir / "allure-results").iterdir())
    after = sorted(p.name for p in runtime.iterdir()) if runtime.is_dir() else []
    assert after == before  # nothing installed
