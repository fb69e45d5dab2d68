"""Talking to a gateway's OpenAI-compatible HTTP surface and its health probes.

A reply is whole only when it says it ended: a streamed one with a finish reason (unless the
target's streams never carry one) and `data: [DONE]`, without an in-band error event
(`data: {"error": ...}`, or an SSE `event: error`) anywhere in it; a plain one with a
`finish_reason`. `length` (the model's token limit) and `content_filter` are truncations. A
gateway that gives up mid-stream (LiteLLM 1.80.0 when its stream_timeout fires) answers HTTP
200, streams part of the reply, then an error event and no `[DONE]`: `ChatOutcome.unfinished`
says what such a reply lacks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from harness.common import http

TRUNCATED = {"length": "the model hit its token limit",
             "content_filter": "a content filter withheld the rest"}
_ERROR_CHARS = 300  # of an in-band error's message, in a reason


@dataclass(slots=True)  # one per request, kept for the soak's report: no dict of its own
class ChatOutcome:
    agent: str
    stream: bool
    status: int | None
    content: str
    started: float  # unix time
    first_byte: float | None
    ended: float
    error: str | None = None
    finish_reason: str | None = None  # the last one the reply carried
    done: bool = False  # a stream's `data: [DONE]` arrived
    inband_errors: list[str] = field(default_factory=list)  # error events or a 200 error body
    # the target's streams carry a finish reason (OpenClaw's end with [DONE] alone)
    finish_reason_expected: bool = True

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    def unfinished(self) -> str | None:
        """What an HTTP 200 reply lacks to be whole, or None (also for any other status)."""
        if self.status != 200 or (not self.stream and self.error):
            return None  # no reply to judge: the status or the transport error says why
        took = f"after {self.seconds:.1f} s"
        problems = []
        if self.stream:
            missing = [what for what, seen in (
                ("a finish reason", self.finish_reason is not None
                 or not self.finish_reason_expected), ("[DONE]", self.done)) if not seen]
            if missing:
                problems.append(f"stream ended {took} without {' or '.join(missing)}")
        elif self.finish_reason is None and not self.inband_errors:
            problems.append(f"reply {took} without a finish_reason")
        if self.finish_reason in TRUNCATED:
            problems.append(f"reply truncated {took}: finish_reason {self.finish_reason} "
                            f"({TRUNCATED[self.finish_reason]})")
        if self.inband_errors:
            where = "in-band error" if self.stream else f"HTTP 200 {took} with an error body"
            problems.append(f"{where}: {'; '.join(self.inband_errors)}")
        if problems and self.error:
            problems.append(f"transport error: {self.error}")
        return "; ".join(problems) or None


@dataclass(frozen=True)
class GatewayEndpoint:
    base_url: str  # http://127.0.0.1:PORT
    token: str
    headers: dict[str, str]
    chat_path: str
    model_prefix: str
    stream_finish_reason: bool = True  # its streams end with a finish reason before [DONE]

    def auth_headers(self) -> dict[str, str]:
        return {**self.headers, "Authorization": f"Bearer {self.token}"}

    def probe(self, path: str, timeout: float = 5.0) -> tuple[int | None, str]:
        """GET a health path; (None, reason) when nothing answers."""
        try:
            with http.sync_client(timeout=timeout) as client:
                response = client.get(self.base_url + path)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return response.status_code, response.text[:500]

    async def chat(self, client: httpx.AsyncClient, agent: str, prompt: str, stream: bool,
                   timeout: float) -> ChatOutcome:
        body = {"model": f"{self.model_prefix}{agent}", "stream": stream,
                "messages": [{"role": "user", "content": prompt}]}
        started = time.time()
        outcome = ChatOutcome(agent, stream, None, "", started, None, started,
                              finish_reason_expected=self.stream_finish_reason)
        try:
            async with client.stream("POST", self.base_url + self.chat_path, json=body,
                                     headers=self.auth_headers(), timeout=timeout) as response:
                outcome.status = response.status_code
                if stream and response.status_code == 200:
                    events = SseEvents()
                    async for line in response.aiter_lines():
                        if outcome.first_byte is None:
                            outcome.first_byte = time.time()
                        for name, data in events.feed(line):
                            take_event(outcome, name, data)
                    for name, data in events.close():
                        take_event(outcome, name, data)
                else:
                    raw = await response.aread()
                    outcome.first_byte = time.time()
                    if response.status_code == 200:
                        take_message(outcome, raw)
                    else:
                        outcome.content = raw.decode(errors="replace")[:500]
        except httpx.HTTPError as exc:
            outcome.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        outcome.ended = time.time()
        return outcome


class SseEvents:
    """Server-sent events from lines: `data:` lines gathered until a blank line, with their
    `event:` name ("message" when none); comments (keep-alives) skipped."""

    def __init__(self) -> None:
        self.name = ""
        self.data: list[str] = []

    def feed(self, line: str) -> Iterator[tuple[str, str]]:
        if not line:
            yield from self.close()
            return
        if line.startswith(":"):
            return
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "data":
            self.data.append(value)
        elif key == "event":
            self.name = value

    def close(self) -> Iterator[tuple[str, str]]:
        """The event pending at the end of the stream (a last one without its blank line)."""
        name, data, self.name, self.data = self.name or "message", self.data, "", []
        if not data:
            return
        joined = "\n".join(data)
        if len(data) > 1 and _json(joined) is None and all(_json(d) is not None for d in data):
            # one JSON object per data line with no blank line between: events, not one
            for each in data:
                yield name, each
            return
        yield name, joined


def take_event(outcome: ChatOutcome, name: str, data: str) -> None:
    """One SSE event into the outcome: content, finish reason, [DONE], or an in-band error."""
    text = data.strip()
    if text == "[DONE]":
        outcome.done = True
        return
    payload = _json(text)
    if name == "error" or (isinstance(payload, dict) and "error" in payload):
        message = _error_message(payload["error"] if isinstance(payload, dict)
                                 and "error" in payload else payload if payload is not None
                                 else text)
        outcome.inband_errors.append(("after [DONE]: " if outcome.done else "") + message)
        return
    if outcome.done or not isinstance(payload, dict):
        return  # nothing counts after [DONE] but an error; not JSON: not an OpenAI event
    choice = _first_choice(payload)
    delta = choice.get("delta")
    if isinstance(delta, dict) and isinstance(delta.get("content"), str):
        outcome.content += delta["content"]
    if isinstance(choice.get("finish_reason"), str):
        outcome.finish_reason = choice["finish_reason"]


def take_message(outcome: ChatOutcome, raw: bytes) -> None:
    """A plain reply's body: its content and finish reason, or the error it carries."""
    payload = _json(raw.decode(errors="replace"))
    if isinstance(payload, dict) and "error" in payload:
        outcome.inband_errors.append(_error_message(payload["error"]))
    choice = _first_choice(payload) if isinstance(payload, dict) else {}
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if content is None:
        outcome.content = raw.decode(errors="replace")[:500]
    else:
        outcome.content = content if isinstance(content, str) else json.dumps(content)
    if isinstance(choice.get("finish_reason"), str):
        outcome.finish_reason = choice["finish_reason"]


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _first_choice(payload: dict[str, Any]) -> dict[str, Any]:
    choices = payload.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


def _error_message(error: Any) -> str:
    """An error object's message (the whole object when it has none), on one line."""
    if isinstance(error, dict):
        message = error.get("message")
        text = message if isinstance(message, str) and message else json.dumps(error)
    else:
        text = error if isinstance(error, str) else json.dumps(error)
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_CHARS else text[:_ERROR_CHARS] + "..."
