"""`harness`: the commands around an acceptance run (the run itself is `pytest scenarios`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import HarnessError, InfrastructureError
from harness.report import latest_run, render
from harness.target.runtime import Runtime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="render a run's Allure results to HTML")
    report.add_argument("run_dir", nargs="?", type=Path,
                        help="a run folder (default: reports/latest)")
    report.add_argument("--cache", type=Path, default=Path(".cache"),
                        help="the project's cache folder (default: .cache)")
    sup = commands.add_parser("supervisor", help="the external update supervisor: a systemd "
                              "timer and oneshot service that run the acceptance suite")
    sup.add_argument("action", choices=("install", "remove", "status", "show"))
    sup.add_argument("--target", type=Path, help="the target profile the runs use")
    sup.add_argument("--name", default=None, help="unit name (default: "
                     "gateway-release-harness-update)")
    sup.add_argument("--on-calendar", default=None,
                     help="systemd OnCalendar= of the timer (default: daily)")
    sup.add_argument("--on-active", type=float, default=None,
                     help="run once this many seconds after the timer starts (OnActiveSec=)")
    sup.add_argument("--units-dir", default=None, help="default: /etc/systemd/system")
    sup.add_argument("--project", type=Path, default=None,
                     help="the folder with scenarios/ the runs start in (default: the current "
                          "folder if it has one, else this harness's checkout)")
    sup.add_argument("--env", action="append", default=[], metavar="K=V",
                     help="an environment variable of the runs (e.g. a PATH with node and npm)")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []  # after --: for pytest
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    args.pytest_args = extra
    if args.command == "supervisor":
        return _supervisor(args)
    try:
        run_dir = args.run_dir or latest_run(Path("reports"))
        index = render(run_dir.resolve(), Runtime(args.cache.resolve() / "runtime"))
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    print(f"harness: report written to {index}")
    return 0


def _project(given: Path | None) -> Path:
    if given is not None:
        return given.resolve()
    if (Path.cwd() / "scenarios").is_dir():
        return Path.cwd().resolve()
    return Path(__file__).resolve().parents[1]


def _supervisor(args: argparse.Namespace) -> int:
    from harness import supervisor

    name = args.name or supervisor.DEFAULT_NAME
    units_dir = args.units_dir or supervisor.UNITS_DIR
    try:
        if args.action in ("install", "show"):
            if args.target is None:
                raise InfrastructureError("supervisor install needs --target FILE")
            calendar = args.on_calendar or (None if args.on_active is not None else "daily")
            units = supervisor.render(args.target.resolve(), _project(args.project), name=name,
                                      on_calendar=calendar, on_active_s=args.on_active,
                                      pytest_args=args.pytest_args,
                                      env=dict(e.split("=", 1) for e in args.env))
            if args.action == "show":
                for filename, text in units.files().items():
                    print(f"# {units_dir}/{filename}\n{text}")
                return 0
            for path in supervisor.install(units, units_dir=units_dir):
                print(f"harness: wrote {path}")
            print(f"harness: {name}.timer enabled and started")
        elif args.action == "remove":
            supervisor.remove(name, units_dir=units_dir)
            print(f"harness: {name}.timer and .service removed")
        else:
            print(supervisor.status(name), end="")
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
