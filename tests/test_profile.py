"""Target profiles and scenario files are validated at the edge, with file and key."""

from pathlib import Path

import pytest

from harness.common.errors import InputError
from harness.soak.scenarios import load_scenarios
from harness.targets import semver
from harness.targets.profile import load_target

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "scenarios" / "targets" / "local-openclaw.toml"


def test_the_shipped_target_and_scenarios_load() -> None:
    profile = load_target(TARGET)
    assert (profile.kind, profile.driver, profile.provision) == ("openclaw", "local", "embedded")
    assert profile.agent_model("main") == "openclaw/main"
    scenarios = load_scenarios(ROOT / "scenarios" / "soak")
    assert "panel-3-reviewers" in scenarios.ids()


def test_openclaws_profiles_say_its_streams_carry_no_finish_reason() -> None:
    # 2026.3.28 and 2026.4.1 end every stream with [DONE] alone (seen on the real gateways)
    for name in ("local-openclaw", "systemd-openclaw", "staging-systemd-openclaw"):
        profile = load_target(TARGET.parent / f"{name}.toml")
        assert profile.api.stream_finish_reason is False, name


@pytest.mark.parametrize(("old", "new", "key"), [
    ('node = "auto"', 'node = "lts"', "package.node"),
    ("[versions]", "[versionz]", "versionz"),
    ('health_agent = "quick"', "health_agent = 3", "api.health_agent"),
    ("ready_timeout_s = 90", "ready_timeout_s = -1", "gateway.ready_timeout_s"),
    ("stream_finish_reason = false", 'stream_finish_reason = "no"', "api.stream_finish_reason"),
])
def test_a_malformed_target_names_file_and_key(tmp_path: Path, old: str, new: str,
                                               key: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(TARGET.read_text().replace(old, new, 1))
    (tmp_path / "openclaw").symlink_to(TARGET.parent / "openclaw")
    with pytest.raises(InputError) as caught:
        load_target(path)
    assert str(caught.value).startswith(f"{path}: {key}: "), str(caught.value)


@pytest.mark.parametrize("name", ["local-openclaw", "local-litellm"])
def test_an_agent_the_config_template_does_not_define_is_named_at_load(
        tmp_path: Path, name: str) -> None:
    """api.agents is what scenarios are checked against: an agent the embedded deployment's
    config lacks would fail every request to it at run time, as if the candidate did."""
    source = TARGET.parent / f"{name}.toml"
    path = tmp_path / "t.toml"
    text = source.read_text()
    assert '"reviewer-c", "synth"]' in text
    path.write_text(text.replace('"reviewer-c", "synth"]', '"reviewer-c", "synth", "ghost"]'))
    folder = name.split("-", 1)[1]
    (tmp_path / folder).symlink_to(TARGET.parent / folder)
    with pytest.raises(InputError) as caught:
        load_target(path)
    said = str(caught.value)
    assert said.startswith(f"{path}: api.agents: ghost not defined by the config template "), said
    assert "synth" in said  # what the template does define


def test_a_scenario_with_an_unknown_key_names_it(tmp_path: Path) -> None:
    path = tmp_path / "soak.toml"
    path.write_text('[[scenarios]]\nid = "r"\nkind = "reply"\nagent = "main"\nconcurrncy = 2\n')
    with pytest.raises(InputError) as caught:
        load_scenarios(path)
    assert str(caught.value).startswith(f"{path}: scenarios[0].concurrncy: unknown key")


def test_duplicate_scenario_ids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "soak.toml"
    one = '[[scenarios]]\nid = "r"\nkind = "reply"\nagent = "main"\n'
    path.write_text(one + one)
    with pytest.raises(InputError, match=r"scenarios\[1\]\.id: duplicate"):
        load_scenarios(path)


@pytest.mark.parametrize(("version", "spec", "ok"), [
    ("22.23.3", ">=22.14.0", True),
    ("22.9.0", ">=22.14.0", False),
    ("20.20.2", ">=22.14.0", False),
    ("24.16.0", ">=24.16.0 <25 || >=26.1.0", True),
    ("25.1.0", ">=24.16.0 <25 || >=26.1.0", False),
    ("22.23.3", "^22", True),
    ("22.23.3", "~22.22", False),
    ("22.23.3", "22.x", True),
])
def test_engine_ranges(version: str, spec: str, ok: bool) -> None:
    assert semver.satisfies(version, spec) is ok
