"""An OpenAI-compatible upstream whose models behave as declared, with a record of every call.

`/lab/requests` and `/lab/stats` are the lab's own evidence: a stream the client abandoned
before the first chunk is recorded as `client_aborted`, which is how a gateway's idle timeout
looks from the model's side.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from harness.modellab.behaviour import ModelBehaviour
from harness.nonce import find_nonces

FILLER = ("steady", "careful", "upgrade", "review", "window", "signal", "gateway", "release",
          "rollback", "evidence", "policy", "soak")


@dataclass
class CallRecord:
    id: int
    model: str
    stream: bool
    nonces: list[str]
    started: float
    first_byte: float | None = None
    ended: float | None = None
    outcome: str = "in_flight"


def last_user_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content
                                if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _error(status: int, message: str, kind: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind}}, status=status)


class Lab:
    def __init__(self, models: dict[str, ModelBehaviour]) -> None:
        self.models = models
        self.records: list[CallRecord] = []
        self.counters: dict[str, int] = {m: 0 for m in models}
        self.in_flight = 0
        self.peak_in_flight = 0
        self.ids = itertools.count(1)

    async def list_models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "modellab"}
            for m in self.models]})

    async def health(self, _: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def requests(self, _: web.Request) -> web.Response:
        return web.json_response([asdict(r) for r in self.records])

    async def stats(self, _: web.Request) -> web.Response:
        per_model: dict[str, dict[str, int]] = {}
        for r in self.records:
            entry = per_model.setdefault(r.model, {"requests": 0, "in_flight": 0, "completed": 0,
                                                   "client_aborted": 0, "faults": 0})
            entry["requests"] += 1
            key = {"in_flight": "in_flight", "completed": "completed",
                   "client_aborted": "client_aborted"}.get(r.outcome, "faults")
            entry[key] += 1
        return web.json_response({"models": per_model, "in_flight": self.in_flight,
                                  "peak_in_flight": self.peak_in_flight})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "request body is not JSON", "invalid_request_error")
        if not isinstance(body, dict):
            return _error(400, "request body must be an object", "invalid_request_error")
        behaviour = self.models.get(str(body.get("model")))
        if behaviour is None:
            return _error(404, f"model {body.get('model')!r} does not exist", "not_found_error")
        self.counters[behaviour.id] += 1
        stream = bool(body.get("stream"))
        nonces = find_nonces(last_user_text(body.get("messages")))
        record = CallRecord(next(self.ids), behaviour.id, stream, nonces, time.time())
        self.records.append(record)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            fault = self._fault(behaviour)
            if fault == "http500":
                record.outcome = "fault_500"
                return _error(500, "modellab injected fault", "server_error")
            if fault == "http429":
                record.outcome = "fault_429"
                response = _error(429, "modellab injected rate limit", "rate_limit_error")
                response.headers["Retry-After"] = "1"
                return response
            words = self._words(nonces, behaviour)
            if stream:
                return await self._stream(request, behaviour, record, words, hang=fault == "hang")
            return await self._plain(behaviour, record, words, hang=fault == "hang")
        except (asyncio.CancelledError, ConnectionResetError):
            record.outcome = "client_aborted"
            raise
        finally:
            self.in_flight -= 1
            record.ended = time.time()
            if record.outcome == "in_flight":
                record.outcome = "client_aborted"

    def _fault(self, behaviour: ModelBehaviour) -> str:
        if behaviour.fault == "none":
            return "none"
        if behaviour.fault_every and self.counters[behaviour.id] % behaviour.fault_every:
            return "none"
        return behaviour.fault

    @staticmethod
    def _words(nonces: list[str], behaviour: ModelBehaviour) -> list[str]:
        ack = f"Ack {' '.join(nonces)}." if nonces else "Ack."
        return [ack] + [FILLER[i % len(FILLER)] for i in range(behaviour.reply_words)]

    async def _plain(self, behaviour: ModelBehaviour, record: CallRecord, words: list[str],
                     hang: bool) -> web.Response:
        if hang:
            await asyncio.Event().wait()  # until the client goes away
        await asyncio.sleep(behaviour.first_chunk_delay_s + behaviour.token_interval_s * len(words))
        record.first_byte = time.time()
        text = " ".join(words)
        record.outcome = "completed"
        return web.json_response({
            "id": f"chatcmpl-lab-{record.id}", "object": "chat.completion",
            "created": int(record.started), "model": behaviour.id,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": len(words),
                      "total_tokens": 10 + len(words)},
        })

    async def _stream(self, request: web.Request, behaviour: ModelBehaviour, record: CallRecord,
                      words: list[str], hang: bool) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)  # headers go out at once, as real providers do

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload = {"id": f"chatcmpl-lab-{record.id}", "object": "chat.completion.chunk",
                       "created": int(record.started), "model": behaviour.id,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(payload)}\n\n".encode()

        if hang:
            await asyncio.Event().wait()
        deadline = time.monotonic() + behaviour.first_chunk_delay_s
        interval = behaviour.reasoning_interval_s
        while interval and time.monotonic() + interval < deadline:
            await asyncio.sleep(interval)
            record.first_byte = record.first_byte or time.time()
            await response.write(chunk({"reasoning_content": "thinking… "}))
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        for i, word in enumerate(words):
            record.first_byte = record.first_byte or time.time()
            delta = {"role": "assistant", "content": word} if i == 0 else {"content": " " + word}
            await response.write(chunk(delta))
            if behaviour.token_interval_s:
                await asyncio.sleep(behaviour.token_interval_s)
        await response.write(chunk({}, "stop"))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        record.outcome = "completed"
        return response


def build_app(models: dict[str, ModelBehaviour], time_scale: float = 1.0) -> web.Application:
    lab = Lab({k: v.scaled(time_scale) for k, v in models.items()})
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_get("/v1/models", lab.list_models)
    app.router.add_post("/v1/chat/completions", lab.chat)
    app.router.add_get("/lab/health", lab.health)
    app.router.add_get("/lab/requests", lab.requests)
    app.router.add_get("/lab/stats", lab.stats)
    return app
