"""Gateway kinds: folders of data found through entry points, LiteLLM proxy's log lines read as
records (colours stripped, tracebacks folded, a clock-only time dated on arrival), a profile
naming an unknown kind or a kind without a catalogue refused at load."""

import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from harness.common.errors import InputError
from harness.signals.logwatch import LogWatcher
from harness.signals.records import RecordReader, clock_stamp, strip_ansi
from harness.signals.signatures import catalogue, classify
from harness.targets import kinds
from harness.targets.logsource import records_for
from harness.targets.profile import load_target

ROOT = Path(__file__).resolve().parents[1]
LITELLM = ROOT / "scenarios" / "targets" / "local-litellm.toml"
OPENCLAW = ROOT / "scenarios" / "targets" / "local-openclaw.toml"
EXAMPLE = Path(__file__).parent / "data" / "kind-example"

# 1.80.0's log for one cut stream, as it writes it (colours on, NO_COLOR=1 notwithstanding)
CUT_STREAM = [
    "\x1b[91m23:59:58 - LiteLLM Router:ERROR\x1b[0m: router.py:1360 - Fallback also failed: "
    "litellm.ServiceUnavailableError: litellm.MidStreamFallbackError: litellm.Timeout: "
    "APITimeoutError - Request timed out. ",
    "Original exception: litellm.Timeout: Connection timed out after 4.0 seconds.",
    "Traceback (most recent call last):",
    '  File "/venv/lib/python3.11/site-packages/litellm/router.py", line 1340, in stream',
    "    async for chunk in response:",
    "litellm.exceptions.Timeout: litellm.Timeout: APITimeoutError - Request timed out.",
    "\x1b[91m23:59:58 - LiteLLM Proxy:ERROR\x1b[0m: proxy_server.py:4059 - "
    "litellm.proxy.proxy_server.async_data_generator(): Exception occured - litellm.Timeout",
    "Traceback (most recent call last):",
    '  File "/venv/lib/python3.11/site-packages/litellm/proxy/proxy_server.py", line 4040',
    "INFO:     127.0.0.1:40000 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK",
]


def test_the_built_in_kinds_are_registered_as_entry_points() -> None:
    assert {"openclaw", "litellm"} <= set(kinds.known())
    litellm = kinds.kind("litellm")
    assert (litellm.ecosystem, litellm.config_format) == ("pypi", "yaml")
    assert kinds.kind("openclaw").ecosystem == "npm"
    assert [s.name for s in catalogue("openclaw")][:2] == ["embedded-run-timeout",
                                                           "profile-timeout"]


def test_colour_codes_are_stripped() -> None:
    assert strip_ansi("\x1b[92m10:00:00 - LiteLLM:INFO\x1b[0m: ok") == "10:00:00 - LiteLLM:INFO: ok"


def test_a_traceback_is_folded_into_the_line_that_starts_it() -> None:
    reader = records_for("litellm")
    assert reader is not None
    arrived = datetime(2026, 12, 1, 0, 0, 1).astimezone().timestamp()
    records = [r for line in CUT_STREAM for r in reader.feed(line, arrived)] + reader.flush()
    texts = [text for text, _, _ in records]
    assert len(records) == 2, texts  # uvicorn's access line carries no clock: folded too
    assert texts[0].startswith("23:59:58 - LiteLLM Router:ERROR: router.py:1360 - Fallback")
    assert "Traceback (most recent call last):" in texts[0] and "\x1b" not in texts[0]
    signatures = catalogue("litellm")
    assert [classify(t, signatures).name for t in texts] == [
        "router-fallback-timeout", "stream-generator-exception"]
    assert [classify(t, signatures).klass for t in texts] == ["timeout", "error"]
    # read just after midnight: logged the day before
    assert records[0][1] == datetime(2026, 11, 30, 23, 59, 58).astimezone().isoformat(
        timespec="seconds")


def test_a_clock_only_line_is_dated_on_arrival() -> None:
    arrived = datetime(2026, 12, 1, 14, 0, 5).astimezone().timestamp()
    assert clock_stamp("14:00:03 - x", arrived) == datetime(2026, 12, 1, 14, 0, 3).astimezone(
        ).isoformat(timespec="seconds")
    assert clock_stamp("no clock", arrived) is None
    assert clock_stamp("25:00:00 - x", arrived) is None


def test_openclaw_lines_stay_one_line_one_record() -> None:
    assert records_for("openclaw") is None


def test_the_watcher_folds_a_real_log_file_as_it_grows(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    log.write_text("")
    watcher = LogWatcher(log, catalogue("litellm"), poll_s=0.05)
    watcher.records = RecordReader(kinds.kind("litellm").log.record_start, True, "hh:mm:ss")
    with watcher:
        with open(log, "a") as handle:
            handle.write("\n".join(CUT_STREAM[:6]) + "\n")
        deadline = time.monotonic() + 5
        while watcher.count() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)  # held until the log goes quiet for a poll, then kept whole
        assert watcher.count() == 1
        with open(log, "a") as handle:
            handle.write("\n".join(CUT_STREAM[6:]) + "\n")
    names = [m.signature for m in watcher.snapshot()]
    assert names == ["router-fallback-timeout", "stream-generator-exception"]
    assert watcher.snapshot()[0].logged_at and "Traceback" in watcher.snapshot()[0].line


def _variant(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    path = tmp_path / "t.toml"
    path.write_text(source.read_text().replace(old, new, 1))
    for sub in ("litellm", "openclaw"):
        (tmp_path / sub).symlink_to(source.parent / sub)
    return path


def test_an_unknown_kind_is_refused_at_load_with_file_and_key(tmp_path: Path) -> None:
    path = _variant(tmp_path, LITELLM, 'kind = "litellm"', 'kind = "nginx"')
    with pytest.raises(InputError) as caught:
        load_target(path)
    assert str(caught.value).startswith(f"{path}: target.kind: no gateway kind 'nginx'")
    assert caught.value.exit_code == 20


def test_the_shipped_litellm_profile_loads() -> None:
    profile = load_target(LITELLM)
    assert (profile.kind, profile.package.ecosystem, profile.package.extras) == (
        "litellm", "pypi", ("proxy",))
    assert profile.agent_model("long-answer") == "long-answer"
    assert set(profile.state.not_applicable) == {"credentials", "sessions", "state"}
    assert [d.version for d in profile.deny] == ["1.82.7", "1.82.8"]


def _install_example(tmp_path: Path) -> Path:
    """The example kind in tests/data, installed by pip as any plug-in is (no index needed).
    From a copy of its own: pip builds in the source tree (build/, egg-info), and two workers
    building the one in tests/data at once collided there."""
    source = tmp_path / "kind-example"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return target


def test_a_kind_from_a_pip_installed_package_is_found_and_loaded(tmp_path: Path) -> None:
    site = _install_example(tmp_path)
    assert list(site.glob("grh_kind_example-*.dist-info/entry_points.txt"))
    profile = tmp_path / "example.toml"
    profile.write_text(OPENCLAW.read_text().replace('kind = "openclaw"', 'kind = "example"')
                       .replace('config_template = "openclaw/', f'config_template = "'
                                f'{OPENCLAW.parent}/openclaw/'))
    script = (
        "import sys; from pathlib import Path\n"
        "from harness.targets.profile import load_target\n"
        "from harness.signals.signatures import catalogue, classify\n"
        "p = load_target(Path(sys.argv[1]))\n"
        "sig = classify('12:00:00 - example ERROR upstream gone', catalogue(p.kind))\n"
        "print(p.kind, sig.name, sig.klass)\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", script, str(profile)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["example", "example-upstream-gone", "error"]
    # without the package on the path the same profile names an unknown kind, file and key
    done = subprocess.run([sys.executable, "-c", script, str(profile)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and f"{profile}: target.kind: no gateway kind 'example'" \
        in done.stderr


def test_a_kind_without_a_catalogue_is_refused_at_load(tmp_path: Path) -> None:
    site = _install_example(tmp_path)
    (site / "grh_kind_example" / "signatures.toml").unlink()
    profile = tmp_path / "example.toml"
    profile.write_text(OPENCLAW.read_text().replace('kind = "openclaw"', 'kind = "example"'))
    script = ("import sys; from pathlib import Path\n"
              "from harness.common.errors import InputError\n"
              "from harness.targets.profile import load_target\n"
              "try:\n    load_target(Path(sys.argv[1]))\n"
              "except InputError as exc:\n    print(exc); sys.exit(exc.exit_code)\n")
    done = subprocess.run([sys.executable, "-c", script, str(profile)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(site)}, timeout=120)
    assert done.returncode == 20
    assert done.stdout.startswith(f"{profile}: target.kind: kind 'example' cannot be used: ")
    assert "no log signature catalogue" in done.stdout and done.stdout.count("\n") == 1


def test_litellm_yaml_secrets_are_found_for_redaction(tmp_path: Path) -> None:
    from harness.reporting.redact import kind_config_secrets

    template = LITELLM.parent / "litellm" / "litellm.template.yaml"
    config = tmp_path / "config.yaml"
    config.write_text(template.read_text().replace("${token}", "sk-master-123")
                      .replace("${model_lab}", "http://127.0.0.1:1/v1"))
    found = set(kind_config_secrets("litellm", config))
    assert found == {("sk-master-123", "config:master_key"),
                     ("sk-modellab-local", "config:api_key")}
    assert kind_config_secrets("litellm", tmp_path / "absent.yaml") == []


@pytest.mark.parametrize(("old", "new", "key"), [
    ('credentials = "no database', 'config = "no database', "state.not_applicable.config"),
    ('sessions = "no database: LiteLLM proxy keeps no sessions or spend logs on disk"',
     'sessions = " "', "state.not_applicable.sessions"),
    ('extras = ["proxy"]', 'extras = ["proxy"]\nnode = "22"', "package.node"),
])
def test_a_malformed_litellm_profile_names_file_and_key(tmp_path: Path, old: str, new: str,
                                                        key: str) -> None:
    path = _variant(tmp_path, LITELLM, old, new)
    with pytest.raises(InputError) as caught:
        load_target(path)
    assert str(caught.value).startswith(f"{path}: {key}: "), str(caught.value)


def test_a_profile_takes_its_kinds_http_surface_when_it_names_none(tmp_path: Path) -> None:
    text = LITELLM.read_text()
    for line in ('live = "/health/liveliness"\n', 'ready = "/health/readiness"\n',
                 'chat = "/v1/chat/completions"\n'):
        text = text.replace(line, "")
    path = tmp_path / "t.toml"
    path.write_text(text)
    (tmp_path / "litellm").symlink_to(LITELLM.parent / "litellm")
    api = load_target(path).api
    assert (api.live, api.ready, api.chat, api.model_prefix) == (
        "/health/liveliness", "/health/readiness", "/v1/chat/completions", "")
    assert load_target(OPENCLAW).api.live == "/healthz"  # a profile's own still wins
