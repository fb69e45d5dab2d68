"""Soak scenarios as data: each becomes one parametrized soak test.

    [[scenarios]]
    id = "reply-streaming"      # the test id: test_soak[reply-streaming]
    kind = "reply"              # reply: one request; panel: reviewers then a synthesis
    agent = "main"
    stream = true
    concurrency = 2             # workers running this scenario side by side
    pause_s = 0                 # think time between a worker's iterations
    timeout_s = 240             # per request, client side
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.schema import load_toml

KINDS = ("reply", "panel")


@dataclass(frozen=True)
class Scenario:
    id: str
    kind: str
    stream: bool
    concurrency: int
    pause_s: float
    timeout_s: float
    agent: str = ""  # reply
    reviewers: tuple[str, ...] = ()  # panel
    synthesiser: str = ""  # panel

    @property
    def agents(self) -> tuple[str, ...]:
        return (self.agent,) if self.kind == "reply" else (*self.reviewers, self.synthesiser)


@dataclass(frozen=True)
class ScenarioSet:
    path: Path
    sha256: str
    scenarios: tuple[Scenario, ...]

    def ids(self) -> list[str]:
        return [s.id for s in self.scenarios]


def load_scenarios(path: Path) -> ScenarioSet:
    root, digest = load_toml(path)
    root.reject_unknown({"scenarios"})
    scenarios = []
    for table in root.tables("scenarios"):
        kind = table.str("kind", choices=KINDS)
        common = {"id", "kind", "stream", "concurrency", "pause_s", "timeout_s"}
        table.reject_unknown(common | ({"agent"} if kind == "reply" else {"reviewers",
                                                                          "synthesiser"}))
        fields = dict(
            id=table.str("id"), kind=kind, stream=table.bool("stream", True),
            concurrency=table.int("concurrency", 1, minimum=1),
            pause_s=table.number("pause_s", 0.0),
            timeout_s=table.number("timeout_s", 240.0, minimum=0, exclusive=True),
        )
        if kind == "reply":
            scenarios.append(Scenario(**fields, agent=table.str("agent")))
        else:
            scenarios.append(Scenario(**fields, reviewers=tuple(table.str_list("reviewers")),
                                      synthesiser=table.str("synthesiser")))
    if not scenarios:
        raise root.fail("scenarios", "declare at least one [[scenarios]] entry")
    ids = [s.id for s in scenarios]
    for i, sid in enumerate(ids):
        if sid in ids[:i]:
            raise root.fail(f"scenarios[{i}].id", f"duplicate scenario id {sid!r}")
    return ScenarioSet(path, digest, tuple(scenarios))
