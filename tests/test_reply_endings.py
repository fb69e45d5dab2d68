"""Cut replies are bad: every way a reply can end, through the real model lab and the harness's
own client and reply check (no gateway between, no mocks).

The lab's endings are what upstreams and gateways really do: LiteLLM 1.80.0 ends a stream its
stream_timeout cut with an in-band error event and no `[DONE]`; vLLM sends the error event and
then `[DONE]`; a model at its token limit says `finish_reason: length`; a crashed proxy drops the
connection mid-body; OpenClaw ends every stream with `[DONE]` and no finish reason at all.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.common.nonce import new_nonce
from harness.judge.judge import Judge
from harness.judge.policy import Window, load_policy
from harness.modellab import ModelLab
from harness.soak.driver import SoakDriver, check
from harness.soak.scenarios import load_scenarios
from harness.targets.client import ChatOutcome, GatewayEndpoint, SseEvents, take_event

ENDINGS = ("no_done", "no_finish_reason", "length", "error_event", "error_then_done",
           "error_after_done", "drop")
MODELS = "\n".join(
    f'[models.{name}]\nfirst_chunk_delay_s = 0\ntoken_interval_s = 0.01\nfault = "{fault}"\n'
    for name, fault in (("whole", "none"), *((e, e) for e in ENDINGS)))
LAB_MESSAGE = "modellab injected {}: the upstream timed out mid-reply"
S = r"\d+\.\d s"  # "after 0.1 s"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelLab]:
    folder = tmp_path_factory.mktemp("endings")
    (folder / "models.toml").write_text(MODELS)
    with ModelLab(folder / "models.toml", log_path=folder / "lab.log") as running:
        yield running


def endpoint(lab: ModelLab, stream_finish_reason: bool = True) -> GatewayEndpoint:
    return GatewayEndpoint(base_url=lab.url, token="lab", headers={},
                           chat_path="/v1/chat/completions", model_prefix="",
                           stream_finish_reason=stream_finish_reason)


def ask(lab: ModelLab, model: str, stream: bool,
        stream_finish_reason: bool = True) -> tuple[ChatOutcome, str, str, str]:
    """One real request, as the soak sends it, and the harness's check of it."""
    nonce = new_nonce()

    async def go() -> ChatOutcome:
        async with httpx.AsyncClient() as client:
            return await endpoint(lab, stream_finish_reason).chat(
                client, model, f"Answer briefly, then end with the tag {nonce}.", stream, 10)

    outcome = asyncio.run(go())
    verdict, reason = check(outcome, (nonce,))
    return outcome, nonce, verdict, reason


# -- streams -----------------------------------------------------------------------------------
def test_a_whole_stream_is_good(lab: ModelLab) -> None:
    outcome, nonce, verdict, reason = ask(lab, "whole", True)
    assert (verdict, outcome.finish_reason, outcome.done) == ("good", "stop", True), reason
    assert outcome.content.endswith(f"Reference {nonce}.") and not outcome.inband_errors


def test_a_stream_closed_without_done_is_bad_even_with_its_nonce(lab: ModelLab) -> None:
    outcome, nonce, verdict, reason = ask(lab, "no_done", True)
    assert nonce in outcome.content and outcome.finish_reason == "stop"  # all but [DONE]
    assert verdict == "bad" and re.fullmatch(f"stream ended after {S} without \\[DONE\\]", reason)


def test_a_stream_without_a_finish_reason_is_bad_unless_the_target_never_sends_one(
        lab: ModelLab) -> None:
    outcome, nonce, verdict, reason = ask(lab, "no_finish_reason", True)
    assert outcome.done and nonce in outcome.content
    assert verdict == "bad" and re.fullmatch(f"stream ended after {S} without a finish reason",
                                             reason)
    # OpenClaw's way (2026.3.28 and 2026.4.1): the whole reply, [DONE], never a finish reason
    _, _, verdict, reason = ask(lab, "no_finish_reason", True, stream_finish_reason=False)
    assert verdict == "good", reason
    # ...which does not excuse a missing [DONE]
    _, _, verdict, reason = ask(lab, "no_done", True, stream_finish_reason=False)
    assert verdict == "bad" and "without [DONE]" in reason


def test_a_stream_at_its_token_limit_is_reported_as_truncated(lab: ModelLab) -> None:
    outcome, nonce, verdict, reason = ask(lab, "length", True)
    assert outcome.done and outcome.finish_reason == "length" and nonce not in outcome.content
    assert verdict == "bad" and re.fullmatch(
        f"reply truncated after {S}: finish_reason length \\(the model hit its token limit\\)",
        reason)


def test_an_error_event_then_close_is_bad_and_says_what_was_missing(lab: ModelLab) -> None:
    # LiteLLM 1.80.0 when stream_timeout fires: HTTP 200, part of the reply, the error event
    outcome, nonce, verdict, reason = ask(lab, "error_event", True)
    assert outcome.status == 200 and outcome.content.startswith("Ack. ")
    assert nonce not in outcome.content and not outcome.done
    assert verdict == "bad" and re.fullmatch(
        f"stream ended after {S} without a finish reason or \\[DONE\\]; in-band error: "
        + re.escape(LAB_MESSAGE.format("error_event")), reason)


def test_an_error_event_then_done_is_bad(lab: ModelLab) -> None:
    # vLLM's way: the error event, then [DONE] as if all were well
    outcome, _, verdict, reason = ask(lab, "error_then_done", True)
    assert outcome.done and verdict == "bad"
    assert re.fullmatch(f"stream ended after {S} without a finish reason; in-band error: "
                        + re.escape(LAB_MESSAGE.format("error_then_done")), reason)


def test_an_error_event_after_done_is_bad(lab: ModelLab) -> None:
    outcome, nonce, verdict, reason = ask(lab, "error_after_done", True)
    assert outcome.done and outcome.finish_reason == "stop" and nonce in outcome.content
    assert verdict == "bad" and reason == (
        "in-band error: after [DONE]: " + LAB_MESSAGE.format("error_after_done"))


def test_a_connection_dropped_mid_stream_is_bad_and_says_what_was_missing(
        lab: ModelLab) -> None:
    outcome, nonce, verdict, reason = ask(lab, "drop", True)
    assert outcome.status == 200 and outcome.content and nonce not in outcome.content
    assert verdict == "bad" and re.fullmatch(
        f"stream ended after {S} without a finish reason or \\[DONE\\]; transport error: "
        "RemoteProtocolError: peer closed connection without sending complete message body.*",
        reason)
    records = {r["model"]: r["outcome"] for r in lab.requests()}
    assert records["drop"] == "fault_drop"  # the lab's own record says what it did


# -- plain replies -----------------------------------------------------------------------------
@pytest.mark.parametrize(("model", "verdict", "pattern"), [
    ("whole", "good", f"HTTP 200 after {S}, checks passed"),
    ("no_done", "good", f"HTTP 200 after {S}, checks passed"),  # no [DONE] in a plain reply
    ("no_finish_reason", "bad", f"reply after {S} without a finish_reason"),
    ("length", "bad", f"reply truncated after {S}: finish_reason length .*"),
    ("error_event", "bad", f"HTTP 200 after {S} with an error body: "
                           + re.escape(LAB_MESSAGE.format("error_event"))),
    ("drop", "bad", f"transport error after {S}: RemoteProtocolError: Server disconnected.*"),
])
def test_a_plain_reply_needs_a_finish_reason_and_no_error(
        lab: ModelLab, model: str, verdict: str, pattern: str) -> None:
    _, _, got, reason = ask(lab, model, False)
    assert got == verdict and re.fullmatch(pattern, reason), reason


# -- in a soak ---------------------------------------------------------------------------------
def test_a_soak_of_cut_streams_is_judged_bad_with_the_reason_in_its_records(
        lab: ModelLab, tmp_path: Path) -> None:
    (tmp_path / "soak").mkdir()
    (tmp_path / "soak" / "mix.toml").write_text(
        '[[scenarios]]\nid = "cut"\nkind = "reply"\nagent = "error_event"\nstream = true\n'
        '[[scenarios]]\nid = "whole"\nkind = "reply"\nagent = "whole"\nstream = true\n')
    (tmp_path / "policy.toml").write_text(
        '[policy]\nname = "t"\nmin_samples = 1\n[soak]\nwindow_s = 1\ndrain_s = 5\n'
        '[watch]\nwindow_s = 1\ndrain_s = 5\n'
        '[[triggers]]\nname = "bad"\nkind = "replies"\ninterval_s = 0.5\ncount = 1\n'
        'dry_run = true\n')
    scenarios = load_scenarios(tmp_path / "soak")
    judge = Judge(load_policy(tmp_path / "policy.toml"), None)
    run = SoakDriver(endpoint(lab), scenarios.scenarios, judge, None).run(
        "soak", Window(1, 5), once=True)
    (cut,), (whole,) = run.of("cut"), run.of("whole")
    assert whole.verdict == "good", whole.reason
    assert cut.verdict == "bad" and "without a finish reason or [DONE]; in-band error: " \
        "modellab injected error_event" in cut.reason
    record = run.exchanges("cut")[0].as_dict()
    assert (record["finish_reason"], record["done"], record["verdict"]) == (None, False, "bad")
    assert next(d for d in run.decisions if d.label == "bad").fired  # the policy sees it


# -- the SSE parser: what a wire may carry -----------------------------------------------------
def events_of(*lines: str) -> ChatOutcome:
    outcome = ChatOutcome("a", True, 200, "", 0.0, None, 3.0)
    parser = SseEvents()
    for line in lines:
        for name, data in parser.feed(line):
            take_event(outcome, name, data)
    for name, data in parser.close():
        take_event(outcome, name, data)
    return outcome


def chunk(content: str, finish: str | None = None) -> str:
    event = {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}
    return f"data: {json.dumps(event)}"


def test_litellm_1_80_0s_cut_stream_reads_as_it_was_seen() -> None:
    # the shape of what LiteLLM 1.80.0 sent at 3.02 s (BerriAI/litellm#19184)
    error = ('{"error": {"message": "litellm.ServiceUnavailableError: litellm.'
             'MidStreamFallbackError: litellm.Timeout: APITimeoutError - Request timed out. '
             'Received Model Group=long-gen", "type": null, "param": null, "code": "503"}}')
    outcome = events_of(chunk("Part"), "", f"data: {error}", "")
    assert outcome.content == "Part" and outcome.inband_errors == [
        "litellm.ServiceUnavailableError: litellm.MidStreamFallbackError: litellm.Timeout: "
        "APITimeoutError - Request timed out. Received Model Group=long-gen"]
    assert outcome.unfinished() == (
        "stream ended after 3.0 s without a finish reason or [DONE]; in-band error: "
        "litellm.ServiceUnavailableError: litellm.MidStreamFallbackError: litellm.Timeout: "
        "APITimeoutError - Request timed out. Received Model Group=long-gen")


def test_named_error_events_comments_and_a_last_event_without_its_blank_line() -> None:
    outcome = events_of(": keep-alive", chunk("a"), "", "event: error",
                        "data: upstream went away", "", chunk("b", "stop"), "", "data: [DONE]")
    assert (outcome.content, outcome.finish_reason, outcome.done) == ("ab", "stop", True)
    assert outcome.inband_errors == ["upstream went away"]


def test_data_lines_of_one_event_join_and_json_lines_without_blank_lines_split() -> None:
    # one event over two data lines (SSE's own rule), then two events with no blank between
    outcome = events_of('data: {"choices":[{"index":0,', 'data: "delta":{"content":"x"}}]}', "",
                        chunk("y"), chunk("z", "stop"), "", "data: [DONE]", "")
    assert (outcome.content, outcome.finish_reason, outcome.done) == ("xyz", "stop", True)
    assert outcome.unfinished() is None


def test_a_long_error_message_is_one_line_and_bounded() -> None:
    outcome = events_of('data: {"error": {"message": "Traceback\\n' + "x" * 1000 + '"}}', "")
    (message,) = outcome.inband_errors
    assert "\n" not in message and len(message) <= 303 and message.endswith("...")
