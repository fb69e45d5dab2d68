"""A run's three input files, loaded and checked against each other, before anything runs.

Each file is validated on its own as it loads (harness.common.schema: located errors). What only the
three together can tell is checked here, so nothing a trigger or a scenario names can silently
mean nothing: a trigger's signature names and classes against the target's catalogue and the
policy's own `[[signatures]]` (a name that matches nothing would switch detection off without a
word), the scenarios a trigger names against the scenario files, and every agent a scenario
addresses against the target's `api.agents`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.common.errors import InputError
from harness.judge.policy import Policy, check_scenarios, load_policy
from harness.signals.signatures import Signature, catalogue
from harness.soak.scenarios import ScenarioSet, check_agents, load_scenarios
from harness.targets.profile import TargetProfile, load_target, with_host


@dataclass(frozen=True)
class Inputs:
    target: TargetProfile
    policy: Policy
    scenarios: ScenarioSet


def check_signatures(policy: Policy, known: tuple[Signature, ...], kind: str) -> None:
    """Every signature name and class a trigger counts must be able to match something."""
    names = {s.name for s in known}
    classes = {s.klass for s in known}
    for i, trigger in enumerate(policy.triggers):
        for name in trigger.signatures:
            if name not in names:
                raise InputError(str(policy.path), f"triggers[{i}].signatures",
                                 f"no signature {name!r} in the {kind!r} catalogue or the "
                                 f"policy's [[signatures]] (known: {', '.join(sorted(names))})")
        # a trigger over several classes fires on any of them: one kind's catalogue may have
        # no failover class (LiteLLM proxy's), another's no fallback one
        if trigger.classes and not any(klass in classes for klass in trigger.classes):
            raise InputError(str(policy.path), f"triggers[{i}].classes",
                             f"no signature of class {' or '.join(map(repr, trigger.classes))} "
                             f"in the {kind!r} catalogue or the policy's [[signatures]]: this "
                             "trigger could never fire")


def check_inputs(target: TargetProfile, policy: Policy, scenarios: ScenarioSet) -> None:
    check_signatures(policy, policy.signatures + catalogue(target.kind), target.kind)
    check_scenarios(policy, scenarios.ids())
    if target.api.agents:
        check_agents(scenarios, target.api.agents, str(target.path))


def option_version(option: str, value: str | None) -> str | None:
    """A version or dist-tag from the command line (None: not given, the target file's).
    An empty one is an error: it would silently mean the target file's version."""
    if value is None:
        return None
    if not value.strip():
        raise InputError(option, "", f"expected a version, range or dist-tag, got {value!r} "
                         "(leave the option out to use the target file's)")
    return value.strip()


def load_inputs(target: Path, policy: Path, scenarios: Path | None,
                target_host: str | None = None,
                on_target: Callable[[TargetProfile], None] | None = None,
                default_scenarios: Path | None = None) -> Inputs:
    """Load the target, policy and scenario files and check them against each other.
    `on_target` gets the target as soon as it is valid (its alert hooks hear of a bad policy).
    Without `scenarios` the target's own (`target.scenarios`) are soaked, else the default."""
    profile = load_target(target)
    scenarios = scenarios or profile.scenarios or default_scenarios
    if scenarios is None:
        raise InputError(str(target), "target.scenarios", "no soak scenarios named")
    if target_host:
        profile = with_host(profile, target_host)
    if on_target is not None:
        on_target(profile)
    loaded = Inputs(profile, load_policy(policy), load_scenarios(scenarios))
    check_inputs(loaded.target, loaded.policy, loaded.scenarios)
    return loaded
