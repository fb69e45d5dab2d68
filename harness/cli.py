"""`harness`: the commands around an acceptance run (the run itself is `pytest scenarios`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import HarnessError
from harness.report import latest_run, render
from harness.reporting.compare import SECTIONS, compare_paths
from harness.target.runtime import Runtime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="render a run's Allure results to HTML")
    report.add_argument("run_dir", nargs="?", type=Path,
                        help="a run folder (default: reports/latest)")
    report.add_argument("--cache", type=Path, default=Path(".cache"),
                        help="the project's cache folder (default: .cache)")
    compare = commands.add_parser(
        "compare", help="two runs side by side, per scenario and signature class (Markdown)")
    compare.add_argument("run_a", type=Path, help="a run folder or its verdict.json")
    compare.add_argument("run_b", type=Path, help="a run folder or its verdict.json")
    compare.add_argument("--section-a", choices=SECTIONS, default="soak",
                         help="which soak of RUN_A (default: soak)")
    compare.add_argument("--section-b", choices=SECTIONS,
                         help="which soak of RUN_B (default: the same as RUN_A's)")
    args = parser.parse_args(argv)
    try:
        if args.command == "compare":
            sys.stdout.write(compare_paths(args.run_a, args.run_b, args.section_a,
                                           args.section_b))
            return 0
        run_dir = args.run_dir or latest_run(Path("reports"))
        index = render(run_dir.resolve(), Runtime(args.cache.resolve() / "runtime"))
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    print(f"harness: report written to {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
