"""A run's settings, resolved once, in one order, each value knowing where it came from.

The one precedence, as pytest-timeout keeps one for its timeout:

    command line  >  target file  >  policy  >  default

Every value is picked by `pick` from what each layer offers, and keeps its `Source` (the
option, the file and key, or the built-in default): `Settings.sources["soak"]` says whether the
soak window came from `--soak` or from the policy. Nothing here has a side effect beyond reading
the three input files: the registry look-up and the release lock come later, as a step of the
procedure (harness.procedure.review). Nothing here knows pytest: harness.pytest.session hands
the options in as a `CommandLine`.

A bad option or file is an InputError naming it (exit 20), raised in the order a person reads
the command line: durations, the files, then what the files and options say together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.common.errors import InputError
from harness.common.schema import option_seconds
from harness.judge.policy import Policy
from harness.procedure.inputs import Inputs, load_inputs, option_version
from harness.procedure.run import Windows, with_windows
from harness.soak.scenarios import ScenarioSet
from harness.targets.config import load_json_patch
from harness.targets.profile import TargetProfile

COMMAND_LINE, TARGET_FILE, POLICY, DEFAULT = "command line", "target file", "policy", "default"
LAYERS = (COMMAND_LINE, TARGET_FILE, POLICY, DEFAULT)  # the precedence, highest first

GATE_TIMEOUT_S = 600.0
RESTART_GATE = "auto"
ROLLBACK_PATH = "prefix"
# Durations on the command line: (option, minimum, whether the minimum itself is refused).
# A soak or early watch of 0 s would judge nothing, so it is refused rather than read as "the
# policy's"; a baseline or later watch of 0 s means none.
DURATION_OPTIONS = (("soak", 0.0, True), ("watch", 0.0, True), ("late_watch", 0.0, False),
                    ("late_watch_delay", 0.0, False), ("baseline", 0.0, False),
                    ("gate_timeout", 0.0, True))


@dataclass(frozen=True)
class Source:
    layer: str  # one of LAYERS
    where: str  # the option, the file and key, or what the default is

    def __str__(self) -> str:
        return f"{self.layer} ({self.where})"


@dataclass(frozen=True)
class Offer:
    """What one layer offers for a value (None: nothing)."""
    value: Any
    source: Source


def offer(layer: str, where: str, value: Any) -> Offer:
    return Offer(value, Source(layer, where))


def pick(*offers: Offer) -> Offer:
    """The offer of the highest layer that gives a value; when none does, the lowest layer's
    (its value None: the setting is off)."""
    ranked = sorted(offers, key=lambda o: LAYERS.index(o.source.layer))
    for candidate in ranked:
        if candidate.value is not None:
            return candidate
    return ranked[-1]


def option_name(name: str) -> str:
    return f"--{name.replace('_', '-')}"


@dataclass(frozen=True)
class CommandLine:
    """The harness's options as given on the command line (None: not given)."""
    target: str | None = None
    policy: str | None = None
    scenarios: str | None = None
    target_host: str | None = None
    known_good: str | None = None
    candidate: str | None = None
    candidate_config: str | None = None
    soak: str | None = None
    watch: str | None = None
    late_watch: str | None = None
    late_watch_delay: str | None = None
    baseline: str | None = None
    inconclusive: str | None = None
    restart_gate: str | None = None
    gate_timeout: str | None = None
    rollback_path: str | None = None
    accept_backup_posture: str | None = None


@dataclass(frozen=True)
class Defaults:
    """The lowest layer: the ini settings (harness_target, ...), relative to the root."""
    root: Path
    target: str = "scenarios/targets/local-openclaw.toml"
    policy: str = "scenarios/policy.toml"
    scenarios: str = "scenarios/soak"
    cache: str = ".cache"

    def path(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.root / path


@dataclass(frozen=True)
class Settings:
    """Everything a run is asked to do, before the registry is asked what the versions are."""
    target: TargetProfile
    policy: Policy
    scenarios: ScenarioSet
    cache_dir: Path
    windows: Windows
    known_good_spec: str | None  # None for an attached deployment: nothing is installed
    candidate_spec: str | None
    candidate_config: dict[str, Any]
    restart_gate: str
    gate_timeout_s: float
    on_inconclusive: str
    rollback_path: str
    accept_backup_posture: str | None
    sources: dict[str, Source] = field(default_factory=dict)  # where each value came from


def option_durations(given: CommandLine) -> dict[str, float | None]:
    """Every duration option, in seconds (None: not given), or an InputError naming it."""
    return {name: option_seconds(option_name(name), getattr(given, name), minimum, exclusive)
            for name, minimum, exclusive in DURATION_OPTIONS}


def resolve_settings(given: CommandLine, defaults: Defaults,
                     on_target: Callable[[TargetProfile], None] | None = None) -> Settings:
    """Load and check the inputs and resolve every setting once. `on_target` hears of the
    target as soon as it is valid (its alert hooks then hear of a bad policy)."""
    durations = option_durations(given)
    inputs, sources = _inputs(given, defaults, on_target)
    target, policy = inputs.target, inputs.policy
    rollback_path = pick(offer(COMMAND_LINE, "--rollback-path", given.rollback_path),
                         offer(DEFAULT, ROLLBACK_PATH, ROLLBACK_PATH))
    if rollback_path.value == "updater" and target.package.updater is None:
        raise InputError("--rollback-path", "", f"updater: {target.path} declares no "
                         "[package.updater] (the target's own update command)")
    windows = _windows(durations, policy, sources)
    versions = _versions(given, target, sources)
    settings = {
        "restart_gate": pick(offer(COMMAND_LINE, "--restart-gate", given.restart_gate),
                             offer(DEFAULT, RESTART_GATE, RESTART_GATE)),
        "gate_timeout_s": pick(offer(COMMAND_LINE, "--gate-timeout", durations["gate_timeout"]),
                               offer(DEFAULT, f"{GATE_TIMEOUT_S:g} s", GATE_TIMEOUT_S)),
        "on_inconclusive": pick(offer(COMMAND_LINE, "--inconclusive", given.inconclusive),
                                offer(POLICY, f"{policy.path}: policy.on_inconclusive",
                                      policy.on_inconclusive)),
        "rollback_path": rollback_path,
        "accept_backup_posture": pick(
            offer(COMMAND_LINE, "--accept-backup-posture", given.accept_backup_posture),
            offer(DEFAULT, "none: a posture below full stops the run", None)),
        **versions}
    sources.update({name: chosen.source for name, chosen in settings.items()})
    return Settings(target=target, policy=policy, scenarios=inputs.scenarios,
                    cache_dir=defaults.path(defaults.cache), windows=windows,
                    **{name: chosen.value for name, chosen in settings.items()},
                    sources=sources)


def _inputs(given: CommandLine, defaults: Defaults,
            on_target: Callable[[TargetProfile], None] | None
            ) -> tuple[Inputs, dict[str, Source]]:
    """The three files (command line > default), checked against each other."""
    target = pick(offer(COMMAND_LINE, "--target", given.target or None),
                  offer(DEFAULT, "ini harness_target", defaults.target))
    policy = pick(offer(COMMAND_LINE, "--policy", given.policy or None),
                  offer(DEFAULT, "ini harness_policy", defaults.policy))
    scenarios = defaults.path(given.scenarios) if given.scenarios else None
    inputs = load_inputs(defaults.path(target.value), defaults.path(policy.value), scenarios,
                         given.target_host, on_target=on_target,
                         default_scenarios=defaults.path(defaults.scenarios))
    profile = inputs.target
    sources = {"target": target.source, "policy": policy.source, "cache_dir": Source(
        DEFAULT, "ini harness_cache"), "scenarios": pick(
            offer(COMMAND_LINE, "--scenarios", scenarios),
            offer(TARGET_FILE, f"{profile.path}: target.scenarios", profile.scenarios),
            offer(DEFAULT, "ini harness_scenarios", defaults.scenarios)).source,
        "target_host": pick(offer(COMMAND_LINE, "--target-host", given.target_host or None),
                            offer(TARGET_FILE, f"{profile.path}: target.host",
                                  profile.host)).source}
    return inputs, sources


def _windows(durations: dict[str, float | None], policy: Policy,
             sources: dict[str, Source]) -> Windows:
    """The soak and watch windows: the command line's lengths over the policy's."""
    windows = with_windows(policy, durations["soak"], durations["watch"], durations["baseline"],
                           durations["late_watch"], durations["late_watch_delay"])
    if policy.late_watch is None and durations["late_watch"] is None and \
            durations["late_watch_delay"] is not None:  # --late-watch 0 wins quietly
        raise InputError("--late-watch-delay", "", f"no later watch to delay: {policy.path} "
                         "declares no [late_watch] (give its window with --late-watch "
                         "SECONDS)")
    declared = {"soak": policy.soak, "watch": policy.watch, "baseline": policy.baseline,
                "late_watch": policy.late_watch}
    for name, window in declared.items():
        sources[name] = pick(
            offer(COMMAND_LINE, option_name(name), durations[name]),  # 0 s: none
            offer(POLICY, f"{policy.path}: [{name}] window_s",
                  window.window_s if window else None),
            offer(DEFAULT, f"no [{name}]: none", None)).source
    late = policy.late_watch
    sources["late_watch_delay"] = pick(
        offer(COMMAND_LINE, "--late-watch-delay", durations["late_watch_delay"]),
        offer(POLICY, f"{policy.path}: [late_watch] delay_s", late.delay_s if late else None),
        offer(DEFAULT, "no delay", 0.0)).source
    return windows


def _versions(given: CommandLine, target: TargetProfile,
              sources: dict[str, Source]) -> dict[str, Offer]:
    """The versions to look up (command line > target file) and the candidate's config."""
    if target.provision == "attached":  # the version is read from what runs; none installed
        for option in ("known_good", "candidate", "candidate_config"):
            if getattr(given, option) is not None:
                raise InputError(option_name(option), "",
                                 f"{target.path} is an attached deployment (target.provision"
                                 " = \"attached\"): it is soaked as it runs, never upgraded")
        found = "attached: read from what runs"
        return {"known_good_spec": offer(DEFAULT, found, None),
                "candidate_spec": offer(DEFAULT, found, None),
                "candidate_config": offer(TARGET_FILE, f"{target.path}: candidate_config",
                                          target.candidate_config)}
    known = pick(offer(COMMAND_LINE, "--known-good",
                       option_version("--known-good", given.known_good)),
                 offer(TARGET_FILE, f"{target.path}: versions.known_good", target.known_good))
    candidate = pick(offer(COMMAND_LINE, "--candidate",
                           option_version("--candidate", given.candidate)),
                     offer(TARGET_FILE, f"{target.path}: versions.candidate", target.candidate))
    config = pick(offer(COMMAND_LINE, "--candidate-config",
                        load_json_patch(Path(given.candidate_config))
                        if given.candidate_config else None),
                  offer(TARGET_FILE, f"{target.path}: candidate_config",
                        target.candidate_config))
    return {"known_good_spec": known, "candidate_spec": candidate, "candidate_config": config}
