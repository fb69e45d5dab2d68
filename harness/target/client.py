"""Talking to a gateway's OpenAI-compatible HTTP surface and its health probes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx


@dataclass
class ChatOutcome:
    agent: str
    stream: bool
    status: int | None
    content: str
    started: float  # unix time
    first_byte: float | None
    ended: float
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass(frozen=True)
class GatewayEndpoint:
    base_url: str  # http://127.0.0.1:PORT
    token: str
    headers: dict[str, str]
    chat_path: str
    model_prefix: str

    def auth_headers(self) -> dict[str, str]:
        return {**self.headers, "Authorization": f"Bearer {self.token}"}

    def probe(self, path: str, timeout: float = 5.0) -> tuple[int | None, str]:
        """GET a health path; (None, reason) when nothing answers."""
        try:
            response = httpx.get(self.base_url + path, timeout=timeout)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return response.status_code, response.text[:500]

    async def chat(self, client: httpx.AsyncClient, agent: str, prompt: str, stream: bool,
                   timeout: float) -> ChatOutcome:
        body = {"model": f"{self.model_prefix}{agent}", "stream": stream,
                "messages": [{"role": "user", "content": prompt}]}
        started = time.time()
        outcome = ChatOutcome(agent, stream, None, "", started, None, started)
        try:
            async with client.stream("POST", self.base_url + self.chat_path, json=body,
                                     headers=self.auth_headers(), timeout=timeout) as response:
                outcome.status = response.status_code
                if stream and response.status_code == 200:
                    async for line in response.aiter_lines():
                        if outcome.first_byte is None:
                            outcome.first_byte = time.time()
                        outcome.content += _sse_delta(line)
                else:
                    raw = await response.aread()
                    outcome.first_byte = time.time()
                    outcome.content = _message_content(raw) if response.status_code == 200 \
                        else raw.decode(errors="replace")[:500]
        except httpx.HTTPError as exc:
            outcome.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        outcome.ended = time.time()
        return outcome


def _sse_delta(line: str) -> str:
    if not line.startswith("data:"):
        return ""
    data = line[5:].strip()
    if not data or data == "[DONE]":
        return ""
    try:
        event = json.loads(data)
        delta = event["choices"][0].get("delta") or {}
    except (json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
        return ""
    content = delta.get("content")
    return content if isinstance(content, str) else ""


def _message_content(raw: bytes) -> str:
    try:
        content = json.loads(raw)["choices"][0]["message"]["content"]
    except (json.JSONDecodeError, KeyError, IndexError, TypeError):
        return raw.decode(errors="replace")[:500]
    return content if isinstance(content, str) else json.dumps(content)
