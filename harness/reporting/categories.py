"""Report categories: a product regression, a harness or infrastructure error, inconclusive.

They match the messages the harness itself writes (`harness.judge.assess`,
`harness.procedure.phases`,
`harness.reporting.headline`):
- the run's own verdict result, when the release was not accepted: "release not accepted: ..."
  (first, so that the verdict is never filed as one of the failures it sums up);
- inconclusive: "inconclusive, failing closed (...)" or, when the run accepted it,
  "inconclusive, accepted by on_inconclusive = pass" (a skipped test);
- product regression: a trigger fired ("trigger X fired: observed ...", "X fired: observed",
  "this path was hit while X fired"), a path with no good iteration, a watch with bad
  or unanswered iterations;
- harness or infrastructure error: a test that broke (an exception that is not a failed
  check: Allure's status "broken"), or a phase that stopped on an error of the harness
  ("harness error in phase ...": the registry, npm, the disk);
- a restart gate that was not approved (a timeout or a refusal) is "waiting on a person";
- any other failed check of a phase (a candidate that never became ready, a bad health
  reply, a restored state that differs) is "phase check failed".
First match wins. Allure 2 reads `categories.json` from the results folder; Allure 3's
report reads the same rules from its config (`allure_config`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

INCONCLUSIVE = r"inconclusive"
HARNESS_ERROR = r"harness error|InfrastructureError|GatewayUnreachableError"
REGRESSION = (r"\bfired\b|this path was hit while|no good iteration|\d+ bad iterations?"
              r"|unanswered when the watch ended")

CATEGORIES: list[dict[str, Any]] = [
    {"name": "Release not accepted",
     "description": "The run's verdict: any outcome but passed (rolled back, aborted, ...). "
                    "The quality gate release-accepted fails on it.",
     "matchedStatuses": ["failed"], "messageRegex": "(?s)release not accepted.*"},
    {"name": "Inconclusive: too few samples to judge",
     "description": "A path finished fewer iterations than min_samples; it fails closed "
                    "unless the run accepted it (on_inconclusive = pass).",
     "matchedStatuses": ["failed", "broken", "skipped"], "messageRegex": f"(?s).*{INCONCLUSIVE}.*"},
    {"name": "Harness or infrastructure error",
     "description": "The harness could not do its own work (registry, npm, disk, a bug): "
                    "no verdict about the product.",
     "matchedStatuses": ["broken"]},
    {"name": "Harness or infrastructure error",
     "matchedStatuses": ["failed"], "messageRegex": f"(?s).*({HARNESS_ERROR}).*"},
    {"name": "Waiting on a person: a restart was not approved",
     "description": "A manual restart gate got no approval in time, or a refusal: nothing "
                    "was interrupted; after a failed candidate, its rollback waits on a "
                    "person.",
     "matchedStatuses": ["failed"], "messageRegex": "(?s).*restart not approved.*"},
    {"name": "Product regression: a trigger fired",
     "description": "A rollback trigger declared before the release fired, or a path stopped "
                    "working while the candidate ran.",
     "matchedStatuses": ["failed"], "messageRegex": f"(?s).*({REGRESSION}).*"},
    {"name": "Phase check failed",
     "description": "A phase's own check failed (not ready, a bad health reply, a restored "
                    "state that differs).",
     "matchedStatuses": ["failed"]},
]


def categorize(status: str, message: str) -> str | None:
    """The category Allure shows for a result (the same rules, applied here)."""
    for rule in CATEGORIES:
        if status not in rule["matchedStatuses"]:
            continue
        regex = rule.get("messageRegex")
        if regex is None or re.fullmatch(regex, message or ""):
            return rule["name"]
    return None


def write_categories(results_dir: Path) -> Path:
    """categories.json in a results folder, as Allure 2 (and Allure 3's allure2 plugin) read it."""
    path = results_dir / "categories.json"
    path.write_text(json.dumps(CATEGORIES, indent=2))
    return path


def allure3_categories() -> list[dict[str, Any]]:
    """The same rules in Allure 3's config form (one rule per name, its matchers listed)."""
    rules: dict[str, dict[str, Any]] = {}
    for rule in CATEGORIES:
        matcher: dict[str, Any] = {"statuses": rule["matchedStatuses"]}
        if "messageRegex" in rule:
            matcher["message"] = _js(rule["messageRegex"])
        entry = rules.setdefault(rule["name"], {"name": rule["name"], "matchers": [],
                                                "expand": True})
        entry["matchers"].append(matcher)
    return list(rules.values())


def _js(regex: str) -> str:
    """A full-match regex as Allure 2 reads it ("(?s).*X.*") as the search regex "X" that
    Allure 3 tests with JavaScript's RegExp.test."""
    return regex.removeprefix("(?s)").removeprefix(".*").removesuffix(".*")


def allure_config(history: Path | None, name: str) -> dict[str, Any]:
    """Allure 3's config for a run's report: categories, history, the tree by epic, feature,
    story (target, phase family, scenario)."""
    config: dict[str, Any] = {
        "name": name,
        "categories": allure3_categories(),
        "plugins": {"awesome": {"options": {"reportName": name,
                                            "groupBy": ["epic", "feature", "story"]}}},
    }
    if history is not None:
        config["historyPath"] = str(history)
    return config
