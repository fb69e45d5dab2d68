"""The model lab, through real HTTP against the real subprocess (`ModelLab`)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.common.errors import InfrastructureError, InputError
from harness.common.nonce import find_nonces, new_nonce
from harness.modellab import DEFAULT_MODELS, ModelLab, load_models

pytestmark = pytest.mark.timeout(60)

MODELS_TOML = """
[models.echo]
first_chunk_delay_s = 0
token_interval_s = 0
reply_words = 3

[models.slow1]
first_chunk_delay_s = 1.0
token_interval_s = 0.01
reply_words = 2

[models.every3]
fault = "http500"
fault_every = 3
first_chunk_delay_s = 0
token_interval_s = 0

[models.err500]
fault = "http500"

[models.err429]
fault = "http429"

[models.hang]
fault = "hang"
"""


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("modellab")


@pytest.fixture(scope="module")
def lab(lab_dir: Path) -> Iterator[ModelLab]:
    models = lab_dir / "models.toml"
    models.write_text(MODELS_TOML)
    with ModelLab(models, log_path=lab_dir / "lab.log") as running:
        yield running


@pytest.fixture(scope="module")
def default_lab() -> Iterator[ModelLab]:
    # 0.01: the 70 s reasoners think for 0.7 s, reasoning deltas every 0.1 s.
    with ModelLab(time_scale=0.01) as running:
        yield running


def body(model: str, content: Any, stream: bool = True,
         history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A request shaped like a gateway's: tools attached, streaming unless told otherwise."""
    return {"model": model, "stream": stream, "tools": [{"type": "function", "function": {
        "name": "noop", "parameters": {"type": "object", "properties": {}}}}],
            "messages": [*(history or []), {"role": "user", "content": content}]}


def sse_events(lines: Iterable[str]) -> list[Any]:
    events: list[Any] = []
    for line in lines:
        if line.startswith("data: "):
            data = line[len("data: "):]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def content_of(events: list[Any]) -> str:
    return "".join(e["choices"][0]["delta"].get("content", "") for e in events
                   if isinstance(e, dict) and e["choices"])


def chat(lab: ModelLab, payload: dict[str, Any]) -> tuple[httpx.Response, list[Any]]:
    """One call; SSE events for a stream, else the one JSON body."""
    with httpx.Client(trust_env=False, timeout=20) as client, client.stream(
            "POST", f"{lab.base_url}/chat/completions", json=payload) as response:
        is_sse = response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.iter_lines()) if is_sse else [json.loads(response.read())]
    return response, events


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)
    return result


def record_of(lab: ModelLab, nonce: str) -> dict[str, Any]:
    return next(r for r in lab.requests() if nonce in r["nonces"])


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# --- the OpenAI surface ---------------------------------------------------------------------

def test_models_lists_the_default_models(default_lab: ModelLab) -> None:
    listing = httpx.get(f"{default_lab.base_url}/models", trust_env=False).json()
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == list(DEFAULT_MODELS)
    assert {"fast-chat", "steady", "slow-reasoner", "slow-thinker-streaming", "flaky",
            "hang"} <= set(DEFAULT_MODELS)
    assert httpx.get(f"{default_lab.url}/lab/health", trust_env=False).json()["ok"] is True


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "plain"])
@pytest.mark.parametrize("parts", [True, False], ids=["parts", "string"])
def test_reply_echoes_exactly_the_nonces_of_the_last_user_message(
        lab: ModelLab, stream: bool, parts: bool) -> None:
    old, first, second = new_nonce(), new_nonce(), new_nonce()
    history = [{"role": "user", "content": f"earlier {old}"},
               {"role": "assistant", "content": f"Ack {old}."}]
    text = f"please echo {first} and {second} and {first} again"
    content: Any = [{"type": "text", "text": text}] if parts else text
    response, events = chat(lab, body("echo", content, stream, history))
    assert response.status_code == 200
    if stream:
        assert events[-1] == "[DONE]"
        chunks = events[:-1]
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        reply = content_of(chunks)
    else:
        (completion,) = events
        assert completion["object"] == "chat.completion"
        assert completion["usage"]["completion_tokens"] > 0
        reply = completion["choices"][0]["message"]["content"]
    # the nonces come last, where the prompts ask for them: a cut reply lacks them
    assert reply.startswith("Ack. ") and reply.endswith(f". Reference {first} {second}.")
    assert len(reply.split()) == 1 + 3 + 3  # "Ack.", reply_words filler, "Reference" + nonces
    assert find_nonces(reply) == [first, second]
    assert record_of(lab, first)["nonces"] == [first, second]


def test_a_user_message_the_gateway_appends_after_the_prompt_does_not_hide_its_nonce(
        lab: ModelLab) -> None:
    """OpenClaw 2026.9 sends its internal context as a second user message after the user's
    prompt: the lab reads the user's whole turn, and still never an earlier turn's nonce."""
    old, nonce = new_nonce(), new_nonce()
    history = [{"role": "user", "content": f"earlier {old}"},
               {"role": "assistant", "content": f"Ack {old}."},
               {"role": "user", "content": f"please echo {nonce}"}]
    appended = "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>> runtime notes <<<END>>>"
    _, events = chat(lab, body("echo", appended, False, history))
    (completion,) = events
    assert find_nonces(completion["choices"][0]["message"]["content"]) == [nonce]
    assert record_of(lab, nonce)["nonces"] == [nonce]


def test_reply_without_nonce_is_a_plain_ack(lab: ModelLab) -> None:
    _, events = chat(lab, body("echo", [{"type": "text", "text": "hello"}]))
    assert content_of(events).startswith("Ack. ")


def test_unknown_model_and_malformed_json_are_openai_errors(lab: ModelLab) -> None:
    url = f"{lab.base_url}/chat/completions"
    missing = httpx.post(url, json=body("no-such-model", "hi"), trust_env=False)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"
    malformed = httpx.post(url, content=b"{not json", trust_env=False,
                           headers={"content-type": "application/json"})
    assert malformed.status_code == 400
    assert malformed.json()["error"]["type"] == "invalid_request_error"


# --- timing behaviours ----------------------------------------------------------------------

def test_slow_first_chunk_sends_headers_at_once_then_stays_silent(lab: ModelLab) -> None:
    nonce = new_nonce()
    started = time.monotonic()
    with httpx.Client(trust_env=False, timeout=20) as client, client.stream(
            "POST", f"{lab.base_url}/chat/completions", json=body("slow1", nonce)) as response:
        headers_after = time.monotonic() - started
        lines = response.iter_lines()
        first_data = next(line for line in lines if line)
        first_data_after = time.monotonic() - started
        events = sse_events([first_data, *lines])
    assert response.status_code == 200
    assert headers_after < 0.5  # generous: this is a behaviour check, not a benchmark
    assert first_data_after >= 0.9
    assert find_nonces(content_of(events)) == [nonce]
    record = record_of(lab, nonce)
    assert record["outcome"] == "completed"
    assert record["first_byte"] - record["started"] >= 0.9


def test_streaming_thinker_sends_reasoning_during_the_silence(default_lab: ModelLab) -> None:
    arrivals: list[tuple[float, dict[str, Any]]] = []
    started = time.monotonic()
    with httpx.Client(trust_env=False, timeout=20) as client, client.stream(
            "POST", f"{default_lab.base_url}/chat/completions",
            json=body("slow-thinker-streaming", new_nonce())) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                arrivals.append((time.monotonic() - started, json.loads(line[6:])))
    deltas = [(t, e["choices"][0]["delta"]) for t, e in arrivals if e["choices"]]
    first_content = next(i for i, (_, d) in enumerate(deltas) if d.get("content"))
    reasoning = deltas[:first_content]
    assert len(reasoning) >= 3 and all("reasoning_content" in d for _, d in reasoning)
    assert reasoning[0][0] < 0.5  # well inside the 0.7 s think time
    assert deltas[first_content][0] >= 0.6


def test_silent_reasoner_sends_nothing_at_all_before_its_answer(default_lab: ModelLab) -> None:
    started = time.monotonic()
    with httpx.Client(trust_env=False, timeout=20) as client, client.stream(
            "POST", f"{default_lab.base_url}/chat/completions",
            json=body("slow-reasoner", new_nonce())) as response:
        first_bytes = next(response.iter_raw())
        first_after = time.monotonic() - started
    assert first_after >= 0.6  # no role delta, no comment line during the 0.7 s silence
    first = json.loads(first_bytes.decode().split("\n", 1)[0][len("data: "):])
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert first["choices"][0]["delta"]["content"]


# --- faults and abandoned calls -------------------------------------------------------------

def test_http500_fault(lab: ModelLab) -> None:
    response, (error,) = chat(lab, body("err500", "hi"))
    assert response.status_code == 500
    assert error == {"error": {"message": "modellab injected fault", "type": "server_error"}}


def test_http429_fault_says_when_to_retry(lab: ModelLab) -> None:
    response, _ = chat(lab, body("err429", "hi"))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"


def test_fault_every_third_request(lab: ModelLab) -> None:
    statuses = [chat(lab, body("every3", "hi", stream=n % 2 == 0))[0].status_code
                for n in range(7)]
    assert statuses == [200, 200, 500, 200, 200, 500, 200]
    assert lab.stats()["models"]["every3"]["faults"] == 2


def test_hang_then_client_disconnect_is_recorded_as_client_aborted(
        lab: ModelLab, lab_dir: Path) -> None:
    stream_nonce, plain_nonce = new_nonce(), new_nonce()
    with httpx.Client(trust_env=False, timeout=httpx.Timeout(5, read=0.3)) as client:
        with client.stream("POST", f"{lab.base_url}/chat/completions",
                           json=body("hang", stream_nonce)) as response:
            assert response.status_code == 200  # headers, then nothing
            assert record_of(lab, stream_nonce)["outcome"] == "hang"
            with pytest.raises(httpx.ReadTimeout):
                next(response.iter_raw())
        with pytest.raises(httpx.ReadTimeout):
            client.post(f"{lab.base_url}/chat/completions",
                        json=body("hang", plain_nonce, stream=False))
    for nonce in (stream_nonce, plain_nonce):
        record = wait_for(lambda n=nonce: (r := record_of(lab, n))["outcome"] != "hang" and r)
        assert record["outcome"] == "client_aborted"
        assert record["first_byte"] is None and record["ended"] >= record["started"]
    stats = lab.stats()["models"]["hang"]
    assert stats["client_aborted"] >= 2 and stats["in_flight"] == 0
    assert "Traceback" not in (lab_dir / "lab.log").read_text()


def test_client_giving_up_on_a_thinking_model_is_client_aborted(lab: ModelLab) -> None:
    nonce = new_nonce()
    with httpx.Client(trust_env=False, timeout=httpx.Timeout(5, read=0.2)) as client:
        with client.stream("POST", f"{lab.base_url}/chat/completions",
                           json=body("slow1", nonce)) as response:
            with pytest.raises(httpx.ReadTimeout):  # a gateway's idle timeout, in small
                next(response.iter_raw())
    record = wait_for(lambda: (r := record_of(lab, nonce))["ended"] and r)
    assert record["outcome"] == "client_aborted"
    assert record["ended"] - record["started"] < 0.9  # noticed at once, not after the think


# --- load -----------------------------------------------------------------------------------

def test_two_hundred_concurrent_open_streams(tmp_path: Path) -> None:
    models = tmp_path / "crowd.toml"
    models.write_text("[models.crowd]\nfirst_chunk_delay_s = 2.0\ntoken_interval_s = 0.01\n"
                      "reply_words = 3\n")

    async def one(client: httpx.AsyncClient, url: str, nonce: str) -> str:
        async with client.stream("POST", url, json=body("crowd", nonce)) as response:
            assert response.status_code == 200
            return content_of(sse_events([line async for line in response.aiter_lines()]))

    async def crowd(url: str, nonces: list[str]) -> list[str]:
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
        async with httpx.AsyncClient(limits=limits, timeout=30, trust_env=False) as client:
            return await asyncio.gather(*(one(client, url, n) for n in nonces))

    nonces = [new_nonce() for _ in range(200)]
    with ModelLab(models) as lab:
        replies = asyncio.run(crowd(f"{lab.base_url}/chat/completions", nonces))
        stats = lab.stats()
    assert [find_nonces(r) for r in replies] == [[n] for n in nonces]
    assert stats["peak_in_flight"] >= 200
    assert stats["models"]["crowd"]["completed"] == 200


# --- models files ---------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "key"), [
    ('[models.x]\nfault = "explode"\n', "models.x.fault"),
    ("[models.x]\nbogus = 1\n", "models.x.bogus"),
    ("[models.x]\nfirst_chunk_delay_s = -1\n", "models.x.first_chunk_delay_s"),
    ('[models.x]\ntoken_interval_s = "fast"\n', "models.x.token_interval_s"),
    ("[models.x]\nreply_words = 1.5\n", "models.x.reply_words"),
    ("[models.x]\nreasoning_interval_s = 0\n", "models.x.reasoning_interval_s"),
    ("[models.x]\nfirst_chunk_delay_s = inf\n", "models.x.first_chunk_delay_s"),
    ("[models]\nx = 3\n", "models.x"),
    ("[other]\n", "other"),
    ("[models]\n", "models"),
    ("[models.x\n", ""),
])
def test_bad_models_file_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        load_models(path)
    assert (caught.value.source, caught.value.key) == (str(path), key)


def test_models_file_fields_default(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text("[models.think]\nfirst_chunk_delay_s = 70\nreasoning_interval_s = 5\n")
    (think,) = load_models(path).values()
    assert (think.id, think.first_chunk_delay_s, think.reasoning_interval_s) == ("think", 70, 5)
    assert (think.fault, think.fault_every, think.reply_words) == ("none", 0, 12)
    assert think.scaled(0.01).first_chunk_delay_s == pytest.approx(0.7)


@pytest.mark.parametrize(("text", "expected"), [
    ('[models.x]\nfault = "explode"\n', "models.x.fault: unknown fault 'explode'"),
    ("[models.x\n", "bad.toml: not valid TOML"),
])
def test_cli_rejects_bad_models_file_with_exit_20(tmp_path: Path, text: str,
                                                  expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    done = subprocess.run([sys.executable, "-m", "harness.modellab", "--models", str(path)],
                          capture_output=True, text=True, timeout=20, cwd=tmp_path)
    assert done.returncode == 20
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"modellab: error: {path}")
    assert expected in line


# --- process lifecycle ----------------------------------------------------------------------

def test_cli_prints_one_line_and_exits_0_on_sigterm_with_a_stream_hanging(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "harness.modellab", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"modellab listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match and int(match.group(2)) > 0
        with httpx.Client(trust_env=False, timeout=10) as client, client.stream(
                "POST", f"{match.group(1)}/v1/chat/completions", json=body("hang", "x")) as r:
            assert r.status_code == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=4) == 0  # does not wait for the hanging stream
        assert proc.stdout.read() == ""
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_lab_leaves_no_process_behind() -> None:
    with ModelLab() as lab:
        pid = lab.pid
        assert pid is not None and not gone(pid)
        assert lab.base_url == f"http://127.0.0.1:{lab.port}/v1"
    assert gone(pid)

    with pytest.raises(RuntimeError, match="boom"), ModelLab() as lab:
        pid = lab.pid
        raise RuntimeError("boom")
    assert pid is not None and gone(pid)


def test_failed_start_leaves_no_process_and_says_why(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def recording_popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    bad = tmp_path / "bad.toml"
    bad.write_text('[models.x]\nfault = "explode"\n')
    with pytest.raises(InfrastructureError, match=r"exit code 20.*models\.x\.fault"):
        with ModelLab(bad, log_path=tmp_path / "lab.log"):
            pass
    with pytest.raises(InfrastructureError, match="not listening within"):
        with ModelLab(startup_timeout_s=0.01):
            pass
    assert len(started) == 2
    assert all(p.returncode is not None and gone(p.pid) for p in started)
