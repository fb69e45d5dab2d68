"""An OpenAI-compatible upstream whose models behave as declared, with a record of every call.

`/lab/requests` and `/lab/stats` are the lab's own evidence. A call the client abandoned before
it was answered is recorded as `client_aborted`: that is how a gateway's idle timeout (giving
up on a model that is still thinking) looks from the model's side.

Record outcomes: `in_flight` (still running), `hang` (deliberately never answering, client
still there), then one of `completed`, `client_aborted`, `fault_500`, `fault_429`, or
`fault_<ending>` for a reply ended by one of the endings of `behaviour.ENDINGS`.

Replies put the nonces they echo at their very end, where the scenarios' prompts ask for them:
a reply cut anywhere lacks them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from harness.common.nonce import find_nonces
from harness.modellab.behaviour import ENDINGS, ModelBehaviour

FILLER = ("steady", "careful", "upgrade", "review", "window", "signal", "gateway", "release",
          "rollback", "evidence", "policy", "soak")
LIVE = ("in_flight", "hang")  # outcomes of a call that has not ended yet


@dataclass
class CallRecord:
    id: int
    model: str
    stream: bool
    nonces: list[str]  # nonces of the last user message, i.e. what the reply echoes
    started: float  # unix time the request arrived
    first_byte: float | None = None  # first content or reasoning chunk (non-stream: the reply)
    ended: float | None = None
    outcome: str = "in_flight"
    fault: str | None = None  # the fault injected into this call, if any


def last_user_text(messages: list[Any]) -> str:
    """Text of the user's turn: every user message after the last assistant message, string
    content or arrays of text parts. A gateway may add a user message of its own after the
    user's prompt (OpenClaw 2026.9 appends its internal context), so reading only the last one
    would miss the prompt; reading earlier turns would let an old nonce prove this one."""
    turn: list[str] = []
    for message in reversed(messages):
        if not isinstance(message, dict):
            continue
        if message.get("role") == "assistant":
            break
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            turn.append(content)
        elif isinstance(content, list):
            turn.append(" ".join(p["text"] for p in content
                                 if isinstance(p, dict) and isinstance(p.get("text"), str)))
    return "\n".join(reversed(turn))


_WANTS_JSON = re.compile(r"\b(?:as|in) JSON\b", re.IGNORECASE)


def reply_text(nonces: list[str], reply_words: int, prompt: str = "") -> str:
    """Some filler, then the echo of the prompt's nonces at the very end; a JSON object (its
    tags last) when the prompt asks for JSON ("reply as JSON"), as an instruction-following
    model would."""
    text = " ".join(["Ack.", *(FILLER[i % len(FILLER)] for i in range(reply_words))])
    if nonces:
        text += f". Reference {' '.join(nonces)}."
    if _WANTS_JSON.search(prompt):
        return json.dumps({"summary": text, "tags": nonces})
    return text


def _error_body(ending: str) -> dict[str, Any]:
    # the shape OpenAI (and LiteLLM, vLLM) give an error that happens after HTTP 200 went out
    return {"error": {"message": f"modellab injected {ending}: the upstream timed out "
                                 "mid-reply", "type": "server_error", "param": None,
                      "code": "503"}}


CUTS = ("length", "error_event", "error_then_done", "drop")  # endings that cut the words


def _error(status: int, message: str, kind: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, **extra}},
                             status=status)


def _prompt_tokens(messages: list[Any]) -> int:
    # A rough count is enough: the lab's usage numbers only need to be plausible and stable.
    words = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            words += len(content.split())
        elif isinstance(content, list):
            words += sum(len(str(p.get("text", "")).split()) for p in content
                         if isinstance(p, dict))
    return words


class Lab:
    def __init__(self, models: dict[str, ModelBehaviour]) -> None:
        self.models = models
        self.records: list[CallRecord] = []
        self.counters: dict[str, int] = dict.fromkeys(models, 0)  # for fault_every
        self.in_flight = 0
        self.peak_in_flight = 0
        self.ids = itertools.count(1)

    async def list_models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "modellab"}
            for m in self.models]})

    async def health(self, _: web.Request) -> web.Response:
        return web.json_response({"ok": True, "models": len(self.models)})

    async def requests(self, request: web.Request) -> web.Response:
        # ?since=N returns only calls after id N, so a long soak can poll incrementally.
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            return _error(400, "since must be an integer", "invalid_request_error")
        return web.json_response([asdict(r) for r in self.records[max(since, 0):]])

    async def stats(self, _: web.Request) -> web.Response:
        per_model = {m: {"requests": 0, "in_flight": 0, "completed": 0, "client_aborted": 0,
                         "faults": 0} for m in self.models}
        for r in self.records:
            entry = per_model[r.model]
            entry["requests"] += 1
            entry["in_flight"] += r.outcome in LIVE
            entry["completed"] += r.outcome == "completed"
            entry["client_aborted"] += r.outcome == "client_aborted"
            entry["faults"] += r.fault is not None
        return web.json_response({"models": per_model, "requests": len(self.records),
                                  "in_flight": self.in_flight,
                                  "peak_in_flight": self.peak_in_flight})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
        except ValueError:  # also covers bytes that are not UTF-8
            return _error(400, "request body is not valid JSON", "invalid_request_error")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "expected a JSON object with a messages array",
                          "invalid_request_error", param="messages")
        model = body.get("model")
        behaviour = self.models.get(model) if isinstance(model, str) else None
        if behaviour is None:
            return _error(404, f"The model {model!r} does not exist",
                          "invalid_request_error", param="model", code="model_not_found")
        self.counters[behaviour.id] += 1
        fault = self._fault(behaviour)
        stream = bool(body.get("stream"))
        prompt = last_user_text(body["messages"])
        nonces = find_nonces(prompt)
        record = CallRecord(next(self.ids), behaviour.id, stream, nonces, time.time(),
                            fault=None if fault == "none" else fault)
        self.records.append(record)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if fault == "http500":
                record.outcome = "fault_500"
                return _error(500, "modellab injected fault", "server_error")
            if fault == "http429":
                record.outcome = "fault_429"
                response = _error(429, "modellab injected rate limit", "rate_limit_error")
                response.headers["Retry-After"] = "1"
                return response
            text = reply_text(nonces, behaviour.reply_words, prompt)
            ending = fault if fault in ENDINGS else None
            if stream:
                options = body.get("stream_options")
                usage = isinstance(options, dict) and options.get("include_usage") is True
                return await self._stream(request, behaviour, record, text, fault == "hang",
                                          _prompt_tokens(body["messages"]) if usage else None,
                                          ending)
            return await self._plain(request, behaviour, record, text, fault == "hang",
                                     _prompt_tokens(body["messages"]), ending)
        finally:
            # The server runs with handler_cancellation: a client that goes away cancels this
            # handler (CancelledError passes through here), so a call that did not finish was
            # abandoned by its client.
            self.in_flight -= 1
            record.ended = time.time()
            if record.outcome in LIVE:
                record.outcome = "client_aborted"

    def _fault(self, behaviour: ModelBehaviour) -> str:
        if behaviour.fault == "none":
            return "none"
        if behaviour.fault_every and self.counters[behaviour.id] % behaviour.fault_every:
            return "none"
        return behaviour.fault

    async def _plain(self, request: web.Request, behaviour: ModelBehaviour, record: CallRecord,
                     text: str, hang: bool, prompt_tokens: int,
                     ending: str | None) -> web.StreamResponse:
        if ending == "no_done":  # a plain reply has no [DONE] to leave out
            ending = record.fault = None
        words = text.split(" ")
        if ending in CUTS:
            words = words[:behaviour.cut_after_words]
        if hang:
            record.outcome = "hang"
            await asyncio.get_running_loop().create_future()  # until the client goes away
        await asyncio.sleep(behaviour.first_chunk_delay_s + behaviour.token_interval_s * len(words))
        record.first_byte = time.time()
        record.outcome = "completed" if ending is None else f"fault_{ending}"
        if ending == "drop":
            return _drop(request, None)
        if ending is not None and ending.startswith("error_"):
            return web.json_response(_error_body(ending))
        finish = {"length": "length", "no_finish_reason": None}.get(ending or "", "stop")
        return web.json_response({
            "id": f"chatcmpl-lab-{record.id}", "object": "chat.completion",
            "created": int(record.started), "model": behaviour.id,
            "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                         "message": {"role": "assistant", "content": " ".join(words)}}],
            "usage": _usage(prompt_tokens, len(words)),
        })

    async def _stream(self, request: web.Request, behaviour: ModelBehaviour, record: CallRecord,
                      text: str, hang: bool, prompt_tokens: int | None,
                      ending: str | None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
        # StreamResponse.prepare flushes the headers at once, as real providers do; what
        # follows is the model's silence.
        await response.prepare(request)

        def chunk(delta: dict[str, Any] | None, finish: str | None = None,
                  usage: dict[str, int] | None = None) -> bytes:
            return _chunk(record, behaviour.id, delta, finish, usage)

        async def send(data: bytes) -> None:
            await response.write(data)
            if record.first_byte is None:
                record.first_byte = time.time()

        words = text.split(" ")
        if ending in CUTS:
            words = words[:behaviour.cut_after_words]
        try:
            if hang:
                record.outcome = "hang"
                await asyncio.get_running_loop().create_future()  # until the client goes away
            await self._think(behaviour, send, chunk)
            await _words(send, chunk, words, behaviour.token_interval_s)
            if ending == "drop":
                record.outcome = "fault_drop"
                return _drop(request, response)
            await _stream_end(send, chunk, ending, prompt_tokens, len(words))
            await response.write_eof()
        except ConnectionResetError:
            # The client left between two writes. Returning (not raising) keeps aiohttp from
            # logging a traceback; chat() records the call as client_aborted.
            return response
        record.outcome = "completed" if ending is None else f"fault_{ending}"
        return response

    @staticmethod
    async def _think(behaviour: ModelBehaviour, send: Callable[[bytes], Awaitable[None]],
                     chunk: Callable[[dict[str, Any]], bytes]) -> None:
        """The silence before the first content chunk, or reasoning deltas paced through it."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + behaviour.first_chunk_delay_s
        interval = behaviour.reasoning_interval_s
        step = 1
        # Absolute ticks (start + k * interval) so pacing does not drift with write latency.
        while interval and start + step * interval < deadline:
            await asyncio.sleep(max(0.0, start + step * interval - loop.time()))
            delta: dict[str, Any] = {"reasoning_content": f"Thinking, step {step}. "}
            if step == 1:
                delta["role"] = "assistant"
            await send(chunk(delta))
            step += 1
        await asyncio.sleep(max(0.0, deadline - loop.time()))


Send = Callable[[bytes], Awaitable[None]]
Chunk = Callable[..., bytes]


def _chunk(record: CallRecord, model: str, delta: dict[str, Any] | None,
           finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    """One server-sent event of a streamed completion (no `choices` for the usage chunk)."""
    payload: dict[str, Any] = {
        "id": f"chatcmpl-lab-{record.id}", "object": "chat.completion.chunk",
        "created": int(record.started), "model": model,
        "choices": [] if delta is None else [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    if usage is not None:
        payload["usage"] = usage
    return f"data: {json.dumps(payload)}\n\n".encode()


async def _words(send: Send, chunk: Chunk, words: list[str], interval_s: float) -> None:
    """The reply, a word a chunk, `interval_s` apart (the model's pace)."""
    for i, word in enumerate(words):
        if i and interval_s:
            await asyncio.sleep(interval_s)
        # The first content chunk carries the role, as OpenAI's does.
        await send(chunk({"role": "assistant", "content": word} if i == 0
                         else {"content": " " + word}))


async def _stream_end(send: Send, chunk: Chunk, ending: str | None, prompt_tokens: int | None,
                      words: int) -> None:
    """What follows the words: the finish reason, usage and [DONE], or the fault `ending`
    asks for in their place (an in-band error event, no finish reason, no [DONE])."""
    error = f"data: {json.dumps(_error_body(ending or ''))}\n\n".encode()
    if ending in ("error_event", "error_then_done"):
        await send(error)
    elif ending != "no_finish_reason":
        await send(chunk({}, "length" if ending == "length" else "stop"))
        if prompt_tokens is not None:  # stream_options.include_usage, as OpenAI's
            await send(chunk(None, usage=_usage(prompt_tokens, words)))
    if ending not in ("no_done", "error_event"):
        await send(b"data: [DONE]\n\n")
    if ending == "error_after_done":
        await send(error)


def _drop(request: web.Request, response: web.StreamResponse | None) -> web.StreamResponse:
    """Close the connection where it stands: mid-body for a stream, before any response for a
    plain call (a gateway that crashed, a proxy that reset the connection)."""
    if request.transport is not None:
        request.transport.close()
    return response or web.Response()


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def build_app(models: dict[str, ModelBehaviour], time_scale: float = 1.0) -> web.Application:
    """The lab's routes; serve it with `start_server` so abandoned calls are noticed."""
    lab = Lab({k: v.scaled(time_scale) for k, v in models.items()})
    app = web.Application(client_max_size=16 * 1024 * 1024)  # long agent transcripts
    app.router.add_get("/v1/models", lab.list_models)
    app.router.add_post("/v1/chat/completions", lab.chat)
    app.router.add_get("/lab/health", lab.health)
    app.router.add_get("/lab/requests", lab.requests)
    app.router.add_get("/lab/stats", lab.stats)
    return app


async def start_server(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Bind and serve `app`; returns the runner (cleanup() it) and the bound port."""
    # handler_cancellation: a client that disconnects cancels its handler at once, even in a
    # silent think period where no write would notice; that is what makes client_aborted
    # accurate and lets hangs end. shutdown_timeout: SIGTERM must not wait for 70 s thinkers
    # (aiohttp waits it twice per open call, then cancels), and a torn-down lab has no one to
    # finish answering for.
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.25)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, runner.addresses[0][1]
