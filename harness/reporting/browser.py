"""Look at a rendered report as a person does: headless Chromium, screenshots, what it shows.

Debian's Chromium (`/usr/bin/chromium`, installed with apt-get when missing and the harness
runs as root) is driven by playwright-core, installed from the registry into the cache like
any other Node package, with the cached Node.js. The report is served on 127.0.0.1 by a
Python HTTP server for the length of the look; both stop when it ends.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from harness.common import commands
from harness.common.errors import InfrastructureError
from harness.reporting.render import NODE_MAJOR
from harness.targets.runtime import Runtime

PLAYWRIGHT_SPEC = "1"
CHROMIUM = "/usr/bin/chromium"


def ensure_chromium() -> Path:
    """Debian's Chromium, installed with apt-get when it is missing (as root)."""
    found = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if found:
        return Path(found)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise InfrastructureError("chromium is not installed (apt-get install chromium)")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        done = commands.run(argv, env=env, timeout=1200)
        if done.returncode != 0:
            raise InfrastructureError(f"{' '.join(argv)} failed: {done.tail(3)}")
    if not Path(CHROMIUM).exists():
        raise InfrastructureError(f"apt-get installed chromium, but {CHROMIUM} is missing")
    return Path(CHROMIUM)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve `folder` on a free port of 127.0.0.1 until the block ends; yield its URL."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="report-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def look_at_report(html: Path, shots: Path, runtime: Runtime, test: str = "test_soak_policy",
                   attachment: str = "evidence") -> dict[str, Any]:
    """Open the report, read the overview and the tree, open `test` and its first attachment
    whose name contains `attachment`, look at the categories; screenshots go to `shots`.
    Returns what the browser showed (texts and the tree's tests with their groups)."""
    return _drive("look-at-report.mjs", SCRIPT, html, shots, runtime, test, attachment)


def look_at_graphs(html: Path, shots: Path, runtime: Runtime) -> dict[str, Any]:
    """Open the report's Graphs section (the trend over the runs rendered from one reports
    folder) and read each chart's title and text; a screenshot goes to `shots/graphs.png`."""
    return _drive("look-at-graphs.mjs", GRAPHS_SCRIPT, html, shots, runtime)


def look_at_verdict(html: Path, shots: Path, runtime: Runtime) -> dict[str, Any]:
    """Read the report's first screen (its title, the line under it, the Quality Gates tab's
    counter and its colour) and the gate's results (rule, passed or failed, message), as a
    person deciding on the release sees them; screenshots `verdict.png` (the first screen)
    and `quality-gate.png` go to `shots`."""
    return _drive("look-at-verdict.mjs", VERDICT_SCRIPT, html, shots, runtime)


def _drive(name: str, source: str, html: Path, shots: Path, runtime: Runtime,
           *args: str) -> dict[str, Any]:
    """Run one of the scripts below against `html`, served on loopback; its JSON is what the
    browser saw."""
    chromium = ensure_chromium()
    node = runtime.node(NODE_MAJOR)
    release = runtime.registry.resolve("playwright-core", PLAYWRIGHT_SPEC, "the report check")
    install = runtime.install(release, node)
    shots.mkdir(parents=True, exist_ok=True)
    script = runtime.root / name
    # written whole and renamed into place: parallel runs read it while another writes it
    partial = script.with_name(f".{name}.{os.getpid()}")
    partial.write_text(source)
    partial.replace(script)
    with serve(html) as url:
        done = commands.run(
            [str(node.bin_dir / "node"), str(script), url, str(shots), *args],
            env={"PATH": node.path_env(), "PLAYWRIGHT_PREFIX": str(install.prefix),
                 "CHROMIUM": str(chromium)}, timeout=300)
    try:
        seen = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise InfrastructureError(f"the report check did not finish: {done.tail(5)}") from None
    if seen.get("error"):
        raise InfrastructureError(f"the report check failed in the browser: {seen['error']}")
    return seen


# Driven by Node.js: playwright-core with Debian's Chromium. Prints what it saw as JSON.
# What both scripts start with: playwright-core from its cached prefix, Debian's Chromium
# headless, the report's URL and the screenshot folder as their first two arguments.
PRELUDE = r"""import { createRequire } from "node:module";
const require = createRequire(process.env.PLAYWRIGHT_PREFIX + "/node_modules/");
const { chromium } = require("playwright-core");
const [url, shots, ...rest] = process.argv.slice(2);
const seen = {};
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM, headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
"""

SCRIPT = PRELUDE + r"""// The overview, the tree, a test and its evidence, the categories.
const [policyTest, evidenceName] = rest;
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(url, { waitUntil: "networkidle" });
  await page.waitForSelector('[data-testid="tree-leaf"], [data-testid="tree-section"]');
  const text = async (sel) => (await page.locator(sel).first().innerText()).trim();
  seen.title = await text('[data-testid="report-title"]');
  seen.total = await text('[data-testid="metadata-item-total"]');
  seen.failed = await text('[data-testid="metadata-item-failed"]');
  seen.passed = await text('[data-testid="metadata-item-passed"]');
  seen.environment = await page.locator('[data-testid="metadata-item"]').allInnerTexts();
  // the report scrolls to the first failed test: the overview is shot from the top, tall
  await page.setViewportSize({ width: 1400, height: 1250 });
  await page.evaluate(() => {
    window.scrollTo(0, 0);
    for (const el of document.querySelectorAll("*")) if (el.scrollTop > 0) el.scrollTop = 0;
  });
  await page.waitForTimeout(500);
  await page.screenshot({ path: `${shots}/overview.png` });
  await page.setViewportSize({ width: 1400, height: 900 });
  // open every group of the tree, then read each test with the groups it sits in
  for (let round = 0; round < 200; round++) {  // until none is closed
    const closed = page.locator('[data-testid="tree-arrow"] svg:not([class*="opened"])');
    if (await closed.count() === 0) break;
    await closed.first().click();
  }
  seen.tests = await page.locator('[data-testid="tree-leaf"]').evaluateAll((leaves) =>
    leaves.map((leaf) => {
      const groups = [];
      for (let n = leaf.parentElement; n; n = n.parentElement) {
        const t = n.querySelector(
          ':scope > [data-testid="tree-section"] [data-testid="tree-section-title"]');
        if (t) groups.unshift(t.textContent.trim());
      }
      const status = [...leaf.querySelectorAll('[data-testid^="tree-leaf-status-"]')]
        .map((e) => e.getAttribute("data-testid").replace("tree-leaf-status-", ""))[0];
      const title = leaf.querySelector('[data-testid="tree-leaf-title"]').textContent.trim();
      return { title, status, groups };
    }));
  await page.screenshot({ path: `${shots}/overview-tree.png`, fullPage: true });
  // the soak policy test, and its trigger evidence
  await page.locator('[data-testid="tree-leaf-title"]', { hasText: policyTest }).first().click();
  await page.waitForTimeout(1500);
  seen.policyPage = (await page.locator("body").innerText()).slice(0, 4000);
  await page.screenshot({ path: `${shots}/soak-policy.png` });
  const attachment = page.getByText(evidenceName, { exact: false }).first();
  seen.evidenceVisible = await attachment.isVisible();
  await attachment.click();
  await page.waitForTimeout(1500);
  await attachment.scrollIntoViewIfNeeded();
  seen.evidenceText = await page.locator("body").innerText();
  await page.screenshot({ path: `${shots}/trigger-evidence.png` });
  // the categories
  await page.goto(url, { waitUntil: "networkidle" });
  await page.locator('[data-testid="nav-tab-categories"]').click();
  await page.waitForTimeout(1000);
  seen.categories = (await page.locator("body").innerText()).slice(0, 4000);
  await page.screenshot({ path: `${shots}/categories.png` });
} catch (error) {
  seen.error = String(error && error.stack || error);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(seen));
"""


# The first screen and the quality gate: the verdict a person deciding on the release sees.
VERDICT_SCRIPT = PRELUDE + r"""// The title, the line under it, the Quality Gates tab, its results.
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(url, { waitUntil: "networkidle" });
  await page.waitForSelector('[data-testid="report-title"]');
  const text = async (sel) => (await page.locator(sel).first().innerText()).trim();
  seen.title = await text('[data-testid="report-title"]');
  seen.under = await text('[data-testid="report-data"]');
  seen.gateTab = await text('[data-testid="nav-tab-qualityGate"]');
  // the tab's counter is coloured by the gate's status (its class names "status-failed")
  const counter = await page.locator('[data-testid="nav-tab-qualityGate"] [data-testid="counter"]')
    .getAttribute("class");
  seen.gateTabStatus = (/status-([a-z]+)/.exec(counter || "") || [])[1] || null;
  await page.evaluate(() => {  // the report scrolls to the first failed test: the top, please
    window.scrollTo(0, 0);
    for (const el of document.querySelectorAll("*")) if (el.scrollTop > 0) el.scrollTop = 0;
  });
  await page.waitForTimeout(500);
  await page.screenshot({ path: `${shots}/verdict.png` });
  await page.locator('[data-testid="nav-tab-qualityGate"]').click();
  await page.locator('[data-testid="quality-gate-result"]').first().waitFor();
  seen.gates = await page.locator('[data-testid="quality-gate-result"]').evaluateAll((rows) =>
    rows.map((row) => ({
      rule: row.querySelector('[data-testid="quality-gate-result-rule"]').textContent.trim(),
      status: row.querySelector('[data-testid="quality-gate-result-failed-icon"]')
        ? "failed" : row.querySelector('[data-testid="quality-gate-result-passed-icon"]')
        ? "passed" : null,
      message: row.querySelector('[data-testid="quality-gate-result-message"]')
        .innerText.trim(),
    })));
  await page.screenshot({ path: `${shots}/quality-gate.png` });
} catch (error) {
  seen.error = String(error && error.stack || error);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(seen));
"""


# The Graphs section: Allure 3 switches sections from the menu at the report's top left.
GRAPHS_SCRIPT = PRELUDE + r"""// The Graphs section: each chart's title, text and x labels.
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  await page.goto(url, { waitUntil: "networkidle" });
  await page.waitForSelector('[data-testid="report-title"]');
  await page.getByText("Report", { exact: true }).first().click();
  await page.getByText("Graphs", { exact: true }).first().click();
  await page.getByText("Status dynamics", { exact: true }).first().waitFor();
  await page.waitForTimeout(1500);  // the charts draw after their data arrives
  seen.text = (await page.locator("body").innerText()).slice(0, 6000);
  // each chart: its title, its text, and the labels under its x axis (one per run in a trend)
  seen.charts = await page.locator('[class*="styles_widget"]').evaluateAll((widgets) =>
    widgets.map((w) => ({
      title: (w.querySelector('[class*="styles_header"]') || w).textContent.trim(),
      text: w.innerText.trim().slice(0, 500),
      columns: [...w.querySelectorAll("svg text")]
        .filter((t) => /rotate\((?!0\))/.test(t.getAttribute("transform") || ""))
        .map((t) => t.textContent.trim()),
    })));
  await page.screenshot({ path: `${shots}/graphs.png`, fullPage: true });
} catch (error) {
  seen.error = String(error && error.stack || error);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(seen));
"""
