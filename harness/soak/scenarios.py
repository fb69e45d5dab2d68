"""Soak scenarios as data: each becomes one parametrized soak test, `test_soak[<id>]`.

A user adds a scenario by adding a file to the scenarios folder (every `*.toml` in it, in name
order; a single file works too). Each file holds one or more `[[scenarios]]`:

    [[scenarios]]
    id = "reply-streaming"      # the test id
    kind = "reply"              # reply | panel | sequence
    agent = "main"
    stream = true
    concurrency = 2             # closed model: workers, each starting its next iteration when
                                # the previous one ended (plus pause_s)
    # rate_per_min = 6          # open model instead: iterations started on a fixed schedule,
    # max_in_flight = 20        #   whatever the replies do; over the cap they are dropped
    timeout_s = 240             # per request, client side
    latency_budget_s = 200      # a correct reply slower than this is still a bad one
    min_samples = 2             # fewer finished iterations: the path is inconclusive
    prompt = "... {nonce}."    # optional; {nonce} is replaced by a fresh nonce (ask for it
                                # at the end of the reply, so a cut reply lacks it)
    contains = ["Ack"]          # content checks, on top of the nonce echo
    json_keys = ["tags"]        # the reply must be a JSON object with these keys

A `panel` has `reviewers` (in parallel) then a `synthesiser` that is given every review; a
`sequence` has `[[scenarios.steps]]`, run in order, each with its own agent, prompt and checks;
a step's prompt may embed `{previous}`, the replies of the step before. Nonces travel: a step
that embeds earlier replies must echo their nonces too.

Durations may carry their unit (`timeout_s = "4m"`); load is bounded (`concurrency` at most
256, `rate_per_min` at most 6000); a step with `nonce = false` needs another check, and every
agent must be one the target serves (`api.agents`, checked in harness.procedure.inputs).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from harness.common.errors import InputError
from harness.common.schema import Table, load_toml

KINDS = ("reply", "panel", "sequence")
# Load a soak may ask of one gateway from this harness: beyond these it measures the harness
# (threads, sockets), not the gateway, and a typo such as 100000 would exhaust the machine.
MAX_CONCURRENCY = 256
MAX_IN_FLIGHT = 1000
MAX_RATE_PER_MIN = 6000.0  # 100 iterations a second
MAX_REQUEST_S = 86400.0

# Each asks for the nonce at the very end of the reply: a reply cut anywhere lacks it.
REPLY_PROMPT = ("What is a good habit before upgrading a service? Answer in one short sentence, "
                "then end your reply with the reference tag {nonce}, verbatim.")
REVIEW_PROMPT = ("Review this change: raise the gateway's idle-stream timeout to 60 seconds. "
                 "End your review with the reference tag {nonce}, verbatim.")
SYNTHESIS_PROMPT = ("Synthesise these reviews into one verdict.\n\n{previous}\n\nEnd your verdict "
                    "with every reference tag of the reviews, then the tag {nonce}, verbatim.")

_CHECK_KEYS = {"prompt", "contains", "json_keys", "nonce", "stream", "timeout_s",
               "latency_budget_s"}


@dataclass(frozen=True)
class Step:
    name: str
    agent: str
    prompt: str
    stream: bool
    timeout_s: float
    latency_budget_s: float | None = None
    contains: tuple[str, ...] = ()
    json_keys: tuple[str, ...] = ()
    nonce: bool = True  # the prompt carries a fresh nonce the reply must echo

    @property
    def chains(self) -> bool:
        return "{previous}" in self.prompt


@dataclass(frozen=True)
class Scenario:
    id: str
    kind: str
    stages: tuple[tuple[Step, ...], ...]  # stages run in order, the steps of a stage at once
    concurrency: int = 1
    rate_per_min: float | None = None
    max_in_flight: int = 50
    pause_s: float = 0.0
    min_samples: int | None = None  # None: the policy's
    source: str = ""

    @property
    def open_model(self) -> bool:
        return self.rate_per_min is not None

    @property
    def agents(self) -> tuple[str, ...]:
        return tuple(step.agent for stage in self.stages for step in stage)

    @property
    def timeout_s(self) -> float:
        """The longest an iteration may take: its stages one after another."""
        return sum(max(step.timeout_s for step in stage) for stage in self.stages)

    def load(self) -> str:
        if self.open_model:
            return f"{self.rate_per_min:g}/min (max {self.max_in_flight} in flight)"
        return f"{self.concurrency} worker{'s' if self.concurrency != 1 else ''}"


@dataclass(frozen=True)
class ScenarioSet:
    path: Path
    sha256: str  # over every file, in order, with its name
    files: dict[str, str]  # file -> its own SHA-256
    scenarios: tuple[Scenario, ...]

    def ids(self) -> list[str]:
        return [s.id for s in self.scenarios]


def _step(table: Table, name: str, agent: str | None, defaults: dict[str, object],
          prompt: str) -> Step:
    stream = table.bool("stream", defaults["stream"])
    timeout = table.seconds("timeout_s", defaults["timeout_s"], minimum=0, exclusive=True,
                            maximum=MAX_REQUEST_S)
    budget = defaults["latency_budget_s"]
    if "latency_budget_s" in table.data:
        budget = table.seconds("latency_budget_s", minimum=0, exclusive=True,
                               maximum=MAX_REQUEST_S)
    text = table.data.get("prompt", prompt)
    if not isinstance(text, str) or not text.strip():
        raise table.fail("prompt", f"expected a non-empty string, got {text!r}")
    nonce = table.bool("nonce", True)
    if nonce and "{nonce}" not in text:
        raise table.fail("prompt", "needs a {nonce} placeholder (or set nonce = false): the "
                         "nonce echo is what proves a reply came from the model")
    has_checks = any(key in table.data for key in ("contains", "json_keys")) or \
        defaults["latency_budget_s"] is not None or "latency_budget_s" in table.data
    if not nonce and not has_checks:
        raise table.fail("nonce", "false with no other check (contains, json_keys, "
                         "latency_budget_s): a gateway that times out answers HTTP 200 with an "
                         "apology, so this path could never be judged bad")
    try:
        text.format(nonce="", previous="")
    except (KeyError, IndexError, ValueError) as exc:
        raise table.fail("prompt", f"unknown placeholder {exc} (known: {{nonce}}, "
                         "{previous}; write {{ and }} for braces)") from None
    return Step(
        name=name, agent=agent or table.str("agent"), prompt=text, stream=stream,
        timeout_s=timeout, latency_budget_s=budget,
        contains=tuple(table.str_list("contains", [], non_empty=False)),
        json_keys=tuple(table.str_list("json_keys", [], non_empty=False)), nonce=nonce,
    )


def _scenario(table: Table) -> Scenario:
    kind = table.str("kind", choices=KINDS)
    common = {"id", "kind", "concurrency", "rate_per_min", "max_in_flight", "pause_s",
              "min_samples"} | _CHECK_KEYS
    table.reject_unknown(common | {"reply": {"agent"}, "panel": {"reviewers", "synthesiser"},
                                   "sequence": {"steps"}}[kind])
    scenario_id = table.str("id")
    if not scenario_id.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise table.fail("id", f"use letters, digits, '-', '_' or '.', got {scenario_id!r}")
    defaults: dict[str, object] = {
        "stream": table.bool("stream", True),
        "timeout_s": table.seconds("timeout_s", 240.0, minimum=0, exclusive=True,
                                   maximum=MAX_REQUEST_S),
        "latency_budget_s": (table.seconds("latency_budget_s", minimum=0, exclusive=True,
                                            maximum=MAX_REQUEST_S)
                             if "latency_budget_s" in table.data else None),
    }
    if kind == "reply":
        stages = ((_step(table, "reply", None, defaults, REPLY_PROMPT),),)
    elif kind == "panel":
        reviews = tuple(_step(table, f"review:{agent}", agent, defaults, REVIEW_PROMPT)
                        for agent in table.str_list("reviewers"))
        synth = table.str("synthesiser")
        synthesis = Step(f"synthesis:{synth}", synth, SYNTHESIS_PROMPT, reviews[0].stream,
                         reviews[0].timeout_s, reviews[0].latency_budget_s)
        stages = (reviews, (synthesis,))
    else:
        steps = table.tables("steps")
        if not steps:
            raise table.fail("steps", "a sequence needs at least one [[scenarios.steps]]")
        built = []
        for i, step in enumerate(steps):
            step.reject_unknown(_CHECK_KEYS | {"name", "agent"})
            built.append(_step(step, step.str("name", f"step-{i + 1}"), None, defaults, ""))
        if built[0].chains:
            raise steps[0].fail("prompt", "the first step has no {previous} reply to embed")
        stages = tuple((s,) for s in built)
    rate = None
    if "rate_per_min" in table.data:
        if "concurrency" in table.data:
            raise table.fail("rate_per_min", "give either rate_per_min (open model) or "
                             "concurrency (closed model), not both")
        rate = table.number("rate_per_min", minimum=0, exclusive=True, maximum=MAX_RATE_PER_MIN)
    elif "max_in_flight" in table.data:
        raise table.fail("max_in_flight", "only applies with rate_per_min")
    min_samples = table.int("min_samples", minimum=1, maximum=1_000_000) \
        if "min_samples" in table.data else None
    return Scenario(
        id=scenario_id, kind=kind, stages=stages,
        concurrency=table.int("concurrency", 1, minimum=1, maximum=MAX_CONCURRENCY),
        rate_per_min=rate,
        max_in_flight=table.int("max_in_flight", 50, minimum=1, maximum=MAX_IN_FLIGHT),
        pause_s=table.seconds("pause_s", 0.0, maximum=3600), min_samples=min_samples,
        source=table.source,
    )


def check_agents(scenarios: ScenarioSet, agents: tuple[str, ...], target: str) -> None:
    """Every agent a scenario addresses must be one the target serves (`api.agents`)."""
    for scenario in scenarios.scenarios:
        for stage in scenario.stages:
            for step in stage:
                if step.agent not in agents:
                    key = _agent_key(scenario, step)
                    raise InputError(scenario.source, f"scenarios[{scenario.id}].{key}",
                                     f"no agent {step.agent!r} in {target} (api.agents: "
                                     f"{', '.join(agents)})")


def _agent_key(scenario: Scenario, step: Step) -> str:
    if scenario.kind == "panel":
        return "synthesiser" if step.name.startswith("synthesis:") else "reviewers"
    return "agent" if scenario.kind == "reply" else f"steps[{step.name}].agent"


def scenario_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.glob("*.toml") if p.is_file())
        if not files:
            raise InputError(str(path), "", "no *.toml scenario files in this folder")
        return files
    return [path]


def load_scenarios(path: Path) -> ScenarioSet:
    """Load a scenario file, or every `*.toml` of a folder; ids are unique across files."""
    scenarios: list[Scenario] = []
    hashes: dict[str, str] = {}
    combined = hashlib.sha256()
    seen: dict[str, str] = {}
    for file in scenario_files(path):
        root, digest = load_toml(file)
        root.reject_unknown({"scenarios"})
        tables = root.tables("scenarios")
        if not tables:
            raise root.fail("scenarios", "declare at least one [[scenarios]] entry")
        for table in tables:
            scenario = _scenario(table)
            if scenario.id in seen:
                raise table.fail("id", f"duplicate scenario id {scenario.id!r} "
                                 f"(first in {seen[scenario.id]})")
            seen[scenario.id] = str(file)
            scenarios.append(scenario)
        hashes[str(file)] = digest
        combined.update(f"{file.name}\0{digest}\n".encode())
    return ScenarioSet(path, combined.hexdigest(), hashes, tuple(scenarios))
