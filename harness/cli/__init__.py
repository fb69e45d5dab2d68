"""`harness`: the commands around an acceptance run (the run itself is `pytest scenarios`)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from harness.common.errors import HarnessError, InfrastructureError, InputError, exit_codes_text
from harness.common.schema import option_seconds
from harness.procedure.gate import answer, waiting_runs
from harness.reporting.compare import SECTIONS, compare_paths
from harness.reporting.render import latest_run, render
from harness.targets.groundtruth import (
    DEFAULT_PATTERNS,
    GroundTruth,
    check_installed,
    judge_report,
    package_root,
)
from harness.targets.profile import load_target
from harness.targets.runtime import Runtime


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ours, extra = _split_at_dashes(argv)
    args = _parser().parse_args(ours)
    args.pytest_args = extra
    if args.command == "supervisor":
        return _supervisor(args)
    try:
        return _run(args)
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)


def _split_at_dashes(argv: list[str]) -> tuple[list[str], list[str]]:
    """The harness's own arguments, and those after `--` (for pytest)."""
    if "--" not in argv:
        return argv, []
    at = argv.index("--")
    return argv[:at], argv[at + 1:]


def _run(args: argparse.Namespace) -> int:
    """Every command but `supervisor` (which reports its own errors)."""
    if args.command == "compare":
        sys.stdout.write(compare_paths(args.run_a, args.run_b, args.section_a, args.section_b))
        return 0
    if args.command == "groundtruth":
        return _groundtruth(args)
    if args.command == "approve":
        return _approve(args)
    if args.command == "status":
        from harness.cli.status import status

        sys.stdout.write(status(args.run_dir.resolve()))
        return 0
    run_dir = args.run_dir or latest_run(Path("reports"))
    index = render(run_dir.resolve(), Runtime(args.cache.resolve() / "runtime"))
    print(f"harness: report written to {index}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=exit_codes_text() + "  (of `pytest scenarios`; `harness` commands use 0, 20, "
        "21 and 1 for a corrupt install)")
    parser.add_argument("--cache", type=Path, default=Path(".cache"),
                        help="the project's cache folder (default: .cache)")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_report_commands(commands)
    _add_groundtruth_command(commands)
    _add_run_commands(commands)
    _add_supervisor_command(commands)
    return parser


def _add_report_commands(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="render a run's Allure results to HTML")
    report.add_argument("run_dir", nargs="?", type=Path,
                        help="a run folder (default: reports/latest)")
    compare = commands.add_parser(
        "compare", help="two runs side by side, per scenario and signature class (Markdown)")
    compare.add_argument("run_a", type=Path, help="a run folder or its verdict.json")
    compare.add_argument("run_b", type=Path, help="a run folder or its verdict.json")
    compare.add_argument("--section-a", choices=SECTIONS, default="soak",
                         help="which soak of RUN_A (default: soak)")
    compare.add_argument("--section-b", choices=SECTIONS,
                         help="which soak of RUN_B (default: the same as RUN_A's)")


def _add_groundtruth_command(commands: argparse._SubParsersAction) -> None:
    truth = commands.add_parser(
        "groundtruth", help="check an installed package (and a tool's warnings about it) "
        "against the registry's own package for that exact version")
    truth.add_argument("spec", help="package@version, e.g. openclaw@2026.3.28")
    truth.add_argument("installed", type=Path,
                       help="the install: an npm prefix or the package folder itself")
    truth.add_argument("--verifier-output", type=Path, metavar="FILE",
                       help="a tool's output naming missing files ('-' for stdin), e.g. the JSON "
                       "of `openclaw update --json`")
    truth.add_argument("--target", type=Path, help="a target profile whose "
                       "package.verifier_patterns say how its tool names files")
    truth.add_argument("--json", action="store_true", help="print the findings as JSON")


def _add_run_commands(commands: argparse._SubParsersAction) -> None:
    """The commands about one run: approve its restart, say what happened to it."""
    approve = commands.add_parser(
        "approve", help="approve (or refuse) the restart a run's manual gate is waiting on")
    approve.add_argument("run_dir", nargs="?", type=Path,
                         help="the run folder (default: the newest run under reports/ waiting)")
    approve.add_argument("--by", default=os.environ.get("USER") or "unknown",
                         help="who approves (default: $USER)")
    approve.add_argument("--deny", action="store_true", help="refuse the restart instead")
    approve.add_argument("--reason", default="", help="why (recorded with the decision)")
    stat = commands.add_parser(
        "status", help="what happened to a run (one that died too: its guard's steps and "
        "verdict) and what serves now")
    stat.add_argument("run_dir", type=Path, help="the run folder")


def _add_supervisor_command(commands: argparse._SubParsersAction) -> None:
    sup = commands.add_parser("supervisor", help="the external update supervisor: a systemd "
                              "timer and oneshot service that run the acceptance suite")
    sup.add_argument("action", choices=("install", "remove", "status", "show", "alert"),
                     help="alert: what the service's OnFailure= unit runs when a run died")
    sup.add_argument("--target", type=Path, help="the target profile the runs use")
    sup.add_argument("--name", default=None, help="unit name (default: "
                     "gateway-release-harness-update)")
    sup.add_argument("--on-calendar", default=None,
                     help="systemd OnCalendar= of the timer (default: daily)")
    sup.add_argument("--on-active", default=None, metavar="S",
                     help="run once this many seconds after the timer starts (OnActiveSec=)")
    sup.add_argument("--units-dir", default=None, help="default: /etc/systemd/system")
    sup.add_argument("--project", type=Path, default=None,
                     help="the folder with scenarios/ the runs start in (default: the current "
                          "folder if it has one, else this harness's checkout)")
    sup.add_argument("--timeout", default=str(6 * 3600), metavar="S",
                     help="TimeoutStartSec= of one run, in seconds (default 21600: 6 h); a run "
                     "that takes longer is stopped and its failure unit alerts")
    sup.add_argument("--env", action="append", default=[], metavar="K=V",
                     help="an environment variable of the runs (e.g. a PATH with node and npm)")


def _project(given: Path | None) -> Path:
    if given is not None:
        return given.resolve()
    if (Path.cwd() / "scenarios").is_dir():
        return Path.cwd().resolve()
    return Path(__file__).resolve().parents[2]


def _check_unit_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_.@-]+", name) or name.startswith(("-", ".")):
        raise InputError("--name", "", "expected a systemd unit name (letters, digits, "
                         f"'_', '.', '@', '-'), got {name!r}")


def _unit_value(option: str, value: str | None) -> str | None:
    """A value written into a unit file: one line, no control characters (a newline would
    add a directive of the user's choosing to the unit)."""
    if value is not None and (not value.strip() or any(ord(c) < 32 for c in value)):
        raise InputError(option, "", f"expected one line of text, got {value!r}")
    return value


def _env_pairs(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise InputError("--env", "", f"expected NAME=VALUE, got {pair!r}")
        env[key] = _unit_value("--env", value) if value else value
    return env


def _supervisor(args: argparse.Namespace) -> int:
    from harness.cli import supervisor

    name = args.name or supervisor.DEFAULT_NAME
    units_dir = args.units_dir or supervisor.UNITS_DIR
    try:
        _check_unit_name(name)
        if args.action in ("install", "show"):
            if args.target is None:
                raise InputError("--target", "", "supervisor install and show need the target "
                                 "profile FILE the runs use")
            load_target(args.target)  # a profile the runs cannot load fails here, not nightly
            on_active = option_seconds("--on-active", args.on_active)
            timeout = option_seconds("--timeout", args.timeout, minimum=0, exclusive=True)
            assert timeout is not None
            calendar = args.on_calendar or (None if on_active is not None else "daily")
            units = supervisor.render(args.target.resolve(), _project(args.project), name=name,
                                      on_calendar=_unit_value("--on-calendar", calendar),
                                      on_active_s=on_active, pytest_args=args.pytest_args,
                                      timeout_s=timeout, env=_env_pairs(args.env))
            if args.action == "show":
                for filename, text in units.files().items():
                    print(f"# {units_dir}/{filename}\n{text}")
                return 0
            for path in supervisor.install(units, units_dir=units_dir):
                print(f"harness: wrote {path}")
            print(f"harness: {name}.timer enabled and started")
        elif args.action == "alert":
            return _supervisor_alert(args, name)
        elif args.action == "remove":
            supervisor.remove(name, units_dir=units_dir)
            print(f"harness: {name}.timer and .service removed")
        else:
            print(supervisor.status(name), end="")
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    return 0


def _supervisor_alert(args: argparse.Namespace, name: str) -> int:
    """The OnFailure= unit: the profile's alert hook, for a run that could not call it."""
    from harness.cli import supervisor
    from harness.procedure.transitions import deliver

    if args.target is None:
        raise InfrastructureError("supervisor alert needs --target FILE")
    profile = load_target(args.target)
    monitor = {k: v for k, v in os.environ.items() if k.startswith("MONITOR_")}
    body, why = supervisor.failure_alert(name, profile, monitor=monitor)
    if body is None:
        print(f"harness: no alert: {why}")
        return 0
    print(f"harness: {body['summary']}")
    if not (profile.alert.command or profile.alert.webhook):
        print(f"harness: {profile.path} declares no [alert] hook: nobody was told", file=sys.stderr)
        return 1
    failed = 0
    for result in deliver(profile.alert, body):
        where = result.get("url") or " ".join(result.get("command", []))
        print(f"harness: alert {'sent' if result['ok'] else 'FAILED'} ({result['hook']} "
              f"{where}): {result['detail']}")
        failed += not result["ok"]
    return 1 if failed else 0


def _approve(args: argparse.Namespace) -> int:
    run_dir = args.run_dir or next(waiting_runs(Path("reports")), None)
    if run_dir is None:
        raise InfrastructureError("no run under reports/ is waiting for a restart approval")
    request = answer(run_dir.resolve(), args.by, args.deny, args.reason)
    verb = "refused" if args.deny else "approved"
    print(f"harness: {verb} by {args.by}: {request['purpose']} (request {request['request']} "
          f"of {run_dir})")
    return 0


def _groundtruth(args: argparse.Namespace) -> int:
    """Exit 0 when the install is the package and no named path is damage, 1 when corrupt."""
    package, _, version = args.spec.rpartition("@")
    if not package or not version:
        raise InputError("groundtruth", "spec", f"expected package@version, got {args.spec!r}")
    runtime = Runtime(args.cache.resolve() / "runtime")
    release = runtime.registry.resolve(package, version, "groundtruth")
    if release.version != version:
        raise InputError("groundtruth", "spec", f"{args.spec} is not an exact version "
                         f"(it resolves to {release.version}); name the version installed")
    truth = GroundTruth(runtime.root, runtime.npm_env()).truth(release)
    given = args.installed.resolve()
    roots = [given, package_root(given, package), package_root(given / "lib", package)]
    root = next((r for r in roots if (r / "package.json").is_file()), None)
    if root is None:
        raise InputError(str(given), "", f"no installed {package} here (looked for package.json "
                         "in it, in node_modules/ and in lib/node_modules/)")
    findings = check_installed(truth, root)
    out: dict[str, object] = {"install": findings.as_dict()}
    judged = None
    if args.verifier_output is not None:
        text = sys.stdin.read() if str(args.verifier_output) == "-" \
            else args.verifier_output.read_text()
        patterns = load_target(args.target).package.verifier_patterns if args.target else ()
        judged = judge_report(text, truth, root, patterns or DEFAULT_PATTERNS)
        out["verifier_output"] = judged.as_dict()
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"registry: {truth.label} {truth.integrity} ({len(truth.files)} files)")
        print(f"install:  {findings.summary()}")
        if judged is not None:
            print(f"warning:  {judged.summary()}")
            for finding in judged.findings:
                print(f"  {finding.explanation}")
    corrupt = findings.corrupt or (judged is not None and judged.verdict == "corrupt")
    return 1 if corrupt else 0

