"""Settings resolved in one place and one order (command line > target file > policy >
default), each value saying where it came from; against the suite's real input files."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.common.errors import InputError
from harness.procedure.settings import (
    COMMAND_LINE,
    DEFAULT,
    GATE_TIMEOUT_S,
    POLICY,
    TARGET_FILE,
    CommandLine,
    Defaults,
    Settings,
    offer,
    pick,
    resolve_settings,
)

ROOT = Path(__file__).resolve().parents[1]
OPENCLAW = ROOT / "scenarios" / "targets" / "local-openclaw.toml"
LITELLM = ROOT / "scenarios" / "targets" / "local-litellm.toml"
POLICY_FILE = ROOT / "scenarios" / "policy.toml"


def resolve(**given: str) -> Settings:
    return resolve_settings(CommandLine(**given), Defaults(root=ROOT))


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (2, 0, 3, 1)])
def test_command_line_beats_target_file_beats_policy_beats_default(
        order: tuple[int, ...]) -> None:
    layers = [offer(COMMAND_LINE, "--x", "cli"), offer(TARGET_FILE, "t.toml: x", "target"),
              offer(POLICY, "p.toml: x", "policy"), offer(DEFAULT, "built in", "default")]
    offers = [layers[i] for i in order]  # the order they are offered in does not matter
    assert pick(*offers).value == "cli"
    assert pick(*[o for o in offers if o.value != "cli"]).value == "target"
    assert pick(*[o for o in offers if o.value in ("policy", "default")]).value == "policy"
    assert pick(*[o for o in offers if o.value == "default"]).value == "default"


def test_a_value_no_layer_gives_is_off_and_says_so() -> None:
    chosen = pick(offer(COMMAND_LINE, "--accept-backup-posture", None),
                  offer(DEFAULT, "none: a posture below full stops the run", None))
    assert chosen.value is None and chosen.source.layer == DEFAULT


def test_zero_on_the_command_line_is_a_value_not_absence() -> None:
    chosen = pick(offer(COMMAND_LINE, "--baseline", 0.0), offer(POLICY, "p: [baseline]", 60.0))
    assert chosen.value == 0.0 and chosen.source.layer == COMMAND_LINE


def test_each_value_reports_its_source_when_nothing_is_given() -> None:
    settings = resolve()
    sources = settings.sources
    assert str(sources["target"]) == "default (ini harness_target)"
    assert sources["policy"].where == "ini harness_policy"
    assert sources["scenarios"].layer == DEFAULT  # the OpenClaw target names none of its own
    assert sources["known_good_spec"].where == f"{OPENCLAW}: versions.known_good"
    assert sources["candidate_spec"].layer == TARGET_FILE and settings.candidate_spec == \
        "2026.4.1"
    assert sources["target_host"].layer == TARGET_FILE
    assert sources["soak"].where == f"{POLICY_FILE}: [soak] window_s"
    assert settings.windows.soak.window_s == settings.policy.soak.window_s
    assert sources["on_inconclusive"].layer == POLICY and settings.on_inconclusive == "fail"
    assert sources["gate_timeout_s"].layer == DEFAULT and settings.gate_timeout_s == \
        GATE_TIMEOUT_S
    assert (settings.restart_gate, sources["restart_gate"].layer) == ("auto", DEFAULT)
    assert (settings.rollback_path, sources["rollback_path"].layer) == ("prefix", DEFAULT)
    assert settings.accept_backup_posture is None


def test_the_command_line_wins_and_says_which_option() -> None:
    settings = resolve(soak="90", baseline="0", candidate="2026.4.2", gate_timeout="1m",
                       restart_gate="manual", inconclusive="pass", target_host="local://")
    sources = settings.sources
    assert settings.windows.soak.window_s == 90 and sources["soak"].where == "--soak"
    assert settings.windows.baseline is None and sources["baseline"].layer == COMMAND_LINE
    assert settings.candidate_spec == "2026.4.2" and sources["candidate_spec"].where == \
        "--candidate"
    assert sources["known_good_spec"].layer == TARGET_FILE  # not given: still the file's
    assert settings.gate_timeout_s == 60 and sources["gate_timeout_s"].where == \
        "--gate-timeout"
    assert (settings.restart_gate, sources["restart_gate"].layer) == ("manual", COMMAND_LINE)
    assert (settings.on_inconclusive, sources["on_inconclusive"].where) == \
        ("pass", "--inconclusive")
    assert sources["target_host"].where == "--target-host"


def test_a_target_files_own_scenarios_beat_the_default_and_lose_to_the_option() -> None:
    own = resolve(target=str(LITELLM))
    assert own.sources["scenarios"].where == f"{LITELLM}: target.scenarios"
    assert own.scenarios.path == LITELLM.parent / "litellm" / "soak"
    given = resolve(target=str(LITELLM), scenarios="scenarios/targets/litellm/soak")
    assert given.sources["scenarios"].layer == COMMAND_LINE


def test_a_bad_option_is_one_located_error_before_the_files_are_read() -> None:
    with pytest.raises(InputError, match="--soak"):
        resolve(soak="-3", target="no/such/target.toml")
    with pytest.raises(InputError, match="--candidate"):
        resolve(candidate=" ")
