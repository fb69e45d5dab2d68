"""Render a run's Allure results to HTML with the real Allure CLI (Allure 3, from the registry).

Allure 3 is a Node.js package, so it installs like a gateway version: resolved in the registry,
installed into its own prefix under the cache, run with the cached Node.js.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness import commands
from harness.errors import InfrastructureError
from harness.reporting.categories import allure_config, write_categories
from harness.target.runtime import Runtime

ALLURE_SPEC = "3"  # the major line; resolved to an exact version and integrity per render
NODE_MAJOR = "22"


def render(run_dir: Path, runtime: Runtime) -> Path:
    """Render `run_dir/allure-results` into `run_dir/html`; return the index page."""
    results = run_dir / "allure-results"
    if not results.is_dir():
        raise InfrastructureError(f"{results}: no Allure results to render")
    node = runtime.node(NODE_MAJOR)
    release = runtime.registry.resolve("allure", ALLURE_SPEC, "the report renderer")
    install = runtime.install(release, node)
    html = run_dir / "html"
    write_categories(results)
    # the report's config: categories, the tree by target / phase family / scenario, and the
    # history shared by every run in the same reports folder (Allure's trend charts)
    config = run_dir / "allurerc.json"
    name = f"Release acceptance {run_dir.name}"
    history = history_file(run_dir)
    forget_run(history, name)  # rendering a run again replaces its point, never adds one
    config.write_text(json.dumps(allure_config(history, name), indent=2))
    done = commands.run(
        [str(install.bin("allure")), "generate", str(results), "--output", str(html),
         "--config", str(config)],
        env={"PATH": node.path_env(), "NO_COLOR": "1"}, cwd=run_dir, timeout=600,
    )
    index = html / "index.html"
    if done.returncode != 0 or not index.exists():
        raise InfrastructureError(f"allure generate failed for {run_dir}: {done.tail(3)}")
    return index


def history_file(run_dir: Path) -> Path:
    """Allure's history (one line per rendered run), kept in the folder that holds the runs."""
    return run_dir.resolve().parent / "history.jsonl"


def forget_run(history: Path, name: str) -> int:
    """Drop the history entries of the report called `name`; return how many were dropped.
    Lines that are not an entry of that name (malformed ones too) are left as they were."""
    if not history.exists():
        return 0
    kept: list[str] = []
    dropped = 0
    for line in history.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict) and entry.get("name") == name:
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
