"""`harness`: the commands around an acceptance run (the run itself is `pytest scenarios`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import HarnessError
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
    args = parser.parse_args(argv)
    try:
        run_dir = args.run_dir or latest_run(Path("reports"))
        index = render(run_dir.resolve(), Runtime(args.cache.resolve() / "runtime"))
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    print(f"harness: report written to {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
