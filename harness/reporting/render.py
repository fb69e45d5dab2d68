"""Render a run's Allure results to HTML with the real Allure CLI (Allure 3, from the registry).

Allure 3 is a Node.js package, so it installs like a gateway version: resolved in the registry,
installed into its own prefix under the cache, run with the cached Node.js.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from harness.common import commands
from harness.common.errors import InfrastructureError
from harness.reporting.categories import allure_config, write_categories
from harness.reporting.headline import (
    GATE_ID,
    accepted,
    config_module,
    gate_results,
    outcome_line,
    read_verdict,
    report_name,
    run_of,
    write_verdict_result,
)
from harness.targets.runtime import Runtime

ALLURE_SPEC = "3"  # the major line; resolved to an exact version and integrity per render
NODE_MAJOR = "22"


def render(run_dir: Path, runtime: Runtime) -> Path:
    """Render `run_dir/allure-results` into `run_dir/html`; return the index page.

    The report's name and its quality gate `release-accepted` carry the run's verdict
    (harness.reporting.headline). `allure generate` evaluates no quality gate; `allure run`
    does, on the results its command writes while it runs (results already in a folder when
    it starts are not read). So Allure runs the delivery of this run's results: a copy into a
    fresh folder, ending with the run's own exit code (the report shows it as the original
    exit code beside its own, which is the gate's). The gate Allure wrote must agree with the
    verdict, or the render fails."""
    results = run_dir / "allure-results"
    if not results.is_dir():
        raise InfrastructureError(f"{results}: no Allure results to render")
    verdict = read_verdict(run_dir)
    run_id = run_dir.name
    node = runtime.node(NODE_MAJOR)
    release = runtime.registry.resolve("allure", ALLURE_SPEC, "the report renderer")
    install = runtime.install(release, node)
    html = run_dir / "html"
    write_categories(results)
    write_verdict_result(results, verdict, run_id, run_dir / "summary.md")
    # the report's config: categories, the tree by target / phase family / scenario, the
    # history shared by every run in the same reports folder (Allure's trend charts), the gate
    config = run_dir / "allurerc.mjs"
    name = report_name(verdict, run_id)
    history = history_file(run_dir)
    forget_run(history, run_id)  # rendering a run again replaces its point, never adds one
    config.write_text(config_module(allure_config(history, name)))
    delivery = run_dir / ".allure-run"  # where the delivered results appear
    shutil.rmtree(delivery, ignore_errors=True)
    delivery.mkdir()
    code = verdict["exit_code"] if verdict is not None else 1
    try:
        done = commands.run(
            [str(install.bin("allure")), "run", "--config", str(config), "--output", str(html),
             "--results-dir", str(delivery / "allure-results"), "--ignore-logs", "--",
             str(node.bin_dir / "node"), "-e", DELIVER, str(results),
             str(delivery / "allure-results"), str(code)],
            env={"PATH": node.path_env(), "NO_COLOR": "1"}, cwd=run_dir, timeout=600,
        )
    finally:
        shutil.rmtree(delivery, ignore_errors=True)
    index = html / "index.html"
    gate = gate_results(html)
    if not index.exists() or not gate:
        raise InfrastructureError(f"allure run failed for {run_dir}: {done.tail(3)}")
    gate_passed = all(r.get("success") for r in gate)
    if gate_passed != accepted(verdict) or gate_passed != (done.returncode == 0):
        raise InfrastructureError(
            f"{html}: the quality gate {GATE_ID} {'passed' if gate_passed else 'failed'} "
            f"(allure exit {done.returncode}), but the run's verdict is "
            f"{outcome_line(verdict)}")
    return index


# The command `allure run` runs: copy the run's results into the folder it watches, then end
# with the run's exit code.
DELIVER = ("const fs = require('node:fs'); const [from, to, code] = process.argv.slice(1); "
           "fs.cpSync(from, to, { recursive: true }); process.exit(Number(code));")


def history_file(run_dir: Path) -> Path:
    """Allure's history (one line per rendered run), kept in the folder that holds the runs."""
    return run_dir.resolve().parent / "history.jsonl"


def forget_run(history: Path, run_id: str) -> int:
    """Drop the history entries of the run `run_id` (its folder's name); return how many.

    Several runs may share a report name (target, versions and outcome), so an entry is known
    by its release verdict's run label; entries written before the verdict result existed,
    by their old name `Release acceptance <run id>`. Other lines (malformed ones too) are
    left as they were."""
    if not history.exists():
        return 0
    kept: list[str] = []
    dropped = 0
    for line in history.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if run_of(entry) == run_id or (
                isinstance(entry, dict) and entry.get("name") == f"Release acceptance {run_id}"):
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        tmp = history.with_name(history.name + ".tmp")
        tmp.write_text("".join(f"{line}\n" for line in kept))
        tmp.replace(history)
    return dropped


def latest_run(reports: Path) -> Path:
    latest = reports / "latest"
    if not latest.exists():
        raise InfrastructureError(f"{latest}: no run yet (run `make acceptance` first)")
    return Path(os.path.realpath(latest))
